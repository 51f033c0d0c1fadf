"""The `tcpkb` command: a thin Typer shell over lookup, lint and build.

Exit status: 0 found, 1 not found (with the closest matches), 2 bad usage.
The lookup commands import nothing heavier than sqlite3; lint and build load
their modules only when called.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from . import lookup, output

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="The failures people meet on TCP sockets on Linux: errno codes, signals, TCP states "
    "and flags, explained from the notes in kb/.",
)

JSON = typer.Option(False, "--json", help="Print JSON with the public ids instead of text.")
BRIEF = typer.Option(False, "--brief", "-b", help="Only the headline and the summaries.")


@contextmanager
def answering(as_json: bool):
    """Turn lookup outcomes into exit codes and one-line messages, never tracebacks."""
    try:
        from .paths import ensure_db

        with lookup.connect(ensure_db()) as conn:
            yield conn
    except lookup.NotFound as e:
        if as_json:
            output.print_json({"error": str(e), "suggestions": e.suggestions})
        output.fail(str(e), e.suggestions)
        raise typer.Exit(1)
    except lookup.BadQuery as e:
        output.fail(str(e))
        raise typer.Exit(2)
    except sqlite3.Error as e:
        output.fail(f"cannot read the database: {e}; run `tcpkb build`")
        raise typer.Exit(1)
    except Exception as e:  # a first-use build that met a broken note
        from .build import BuildError

        if not isinstance(e, BuildError):
            raise
        for p in e.problems[:10]:
            output.echo(str(p), err=True)
        output.fail(f"there is no database yet and the notes do not build ({len(e.problems)} "
                    "problem(s)); fix them (`tcpkb lint`) and run `tcpkb build`")
        raise typer.Exit(1)


def _answer(found: lookup.Found, as_json: bool, brief: bool) -> None:
    if as_json:
        output.print_json(found.as_json())
    else:
        output.print_found(found, brief=brief)


# Negative numbers (-104, as system calls return them) are values, not options.
NUMERIC = {"ignore_unknown_options": True}


@app.command(context_settings=NUMERIC)
def errno(
    code: str = typer.Argument(..., help="104, ECONNRESET, econnreset, 0x68, -104, WSAECONNRESET or 10054"),
    os_: Optional[str] = typer.Option(None, "--os", help="Read the number as darwin, freebsd, windows or linux."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Read the number on a Linux ABI: alpha, mips, sparc, parisc, powerpc."),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up an errno by number or name."""
    with answering(as_json) as conn:
        _answer(lookup.find_errno(conn, code, os_, arch), as_json, brief)


@app.command(context_settings=NUMERIC)
def signal(
    sig: str = typer.Argument(..., help="13, SIGPIPE, pipe, 141 (a shell exit status), SIGRTMIN+3"),
    arch: Optional[str] = typer.Option(None, "--arch", help="Read the number on a Linux ABI: alpha, mips, sparc, parisc, powerpc."),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a signal by number, name or shell exit status."""
    with answering(as_json) as conn:
        _answer(lookup.find_signal(conn, sig, arch), as_json, brief)


@app.command()
def state(
    name: str = typer.Argument(..., help="TIME_WAIT, time-wait, TIME-WAIT, ESTAB, FIN_WAIT1, 6, 06, 0A"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a TCP state by any spelling (RFC, kernel, ss, netstat) or number."""
    with answering(as_json) as conn:
        _answer(lookup.find_state(conn, name), as_json, brief)


@app.command()
def flag(
    name: str = typer.Argument(..., help="RST, R, S. (SYN+ACK), SYN+ACK, 0x12"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a TCP flag, or a combination as tcpdump prints it."""
    with answering(as_json) as conn:
        _answer(lookup.find_flag(conn, name), as_json, brief)


@app.command()
def show(
    entry_id: str = typer.Argument(..., metavar="ID", help="errno:ECONNRESET, state:TIME_WAIT, or a bare name"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Show one entry by its public id."""
    with answering(as_json) as conn:
        _answer(lookup.show(conn, entry_id), as_json, brief)


@app.command("list")
def list_(
    kind: str = typer.Argument(..., help="errno, signal, state or flag"),
    as_json: bool = JSON,
) -> None:
    """List every entry of a kind."""
    with answering(as_json) as conn:
        entries = lookup.list_kind(conn, kind.lower())
        output.print_json(entries) if as_json else output.print_list(entries)


@app.command()
def search(
    words: list[str] = typer.Argument(..., help="words to find: connection reset, reuseaddr, ECONNRESET"),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Only this kind."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=500, help="At most this many results."),
    as_json: bool = JSON,
) -> None:
    """Full-text search over names, aliases, messages, summaries and bodies."""
    text = " ".join(words)
    with answering(as_json) as conn:
        results = lookup.search(conn, text, kind, limit)
        if as_json:
            output.print_json({"query": text, "results": results})
        elif results:
            output.print_search(results)
        if not results:
            raise lookup.NotFound(f"nothing matches {text!r}", lookup.suggest(conn, text))


@app.command()
def lint(
    kb: Optional[Path] = typer.Argument(None, help="The notes directory (default: this install's kb/)."),
) -> None:
    """Check every note against the grammar; print path:line: KBnnn message."""
    from .lint import lint as run_lint
    from .paths import kb_dir

    kb = kb or kb_dir()
    if not kb.is_dir():
        output.fail(f"{kb} is not a directory")
        raise typer.Exit(2)
    problems = run_lint(kb)
    for p in problems:
        output.echo(str(p))
    if problems:
        output.fail(f"{len(problems)} problem(s)")
        raise typer.Exit(1)
    output.echo(output.dim(f"{kb}: all notes pass"), err=True)


@app.command()
def build(
    kb: Optional[Path] = typer.Option(None, "--kb", help="The notes directory (default: kb/)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Where to write the database (default: data/tcpkb.db)."),
) -> None:
    """Compile the notes into the SQLite database, atomically."""
    from .build import BuildError, build as run_build
    from .paths import db_path, kb_dir

    kb = kb or kb_dir()
    target = db or db_path(kb)
    if not kb.is_dir():
        output.fail(f"{kb} is not a directory")
        raise typer.Exit(2)
    try:
        counts = run_build(kb, target)
    except BuildError as e:
        for p in e.problems:
            output.echo(str(p), err=True)
        output.fail(f"build failed with {len(e.problems)} problem(s); {target} was left as it was")
        raise typer.Exit(1)
    output.echo(f"built {target}: {counts['entries']} entries, {counts['messages']} messages, "
                f"{counts['transitions']} transitions")


def main() -> None:
    """Console entry point: a closed pipe (`tcpkb list errno | head -1`) ends quietly."""
    try:
        app()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
