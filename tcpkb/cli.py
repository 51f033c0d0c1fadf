"""The `tcpkb` command: a thin Typer shell over lookup, lint and build.

Exit status: 0 found, 1 not found (with the closest matches), 2 bad usage.
The lookup commands import nothing heavier than sqlite3; lint and build load
their modules only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import answer, lookup, output

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="The failures people meet on TCP sockets on Linux: errno codes, signals, TCP states "
    "and flags, sysctl knobs, socket options and system calls, explained from the notes in kb/.",
)

JSON = typer.Option(False, "--json", help="Print JSON with the public ids instead of text.")
BRIEF = typer.Option(False, "--brief", "-b", help="Only the headline and the summaries.")


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
    raise typer.Exit(answer.find("errno", code, as_json, brief, os_=os_, arch=arch))


@app.command(context_settings=NUMERIC)
def signal(
    sig: str = typer.Argument(..., help="13, SIGPIPE, pipe, 141 (a shell exit status), SIGRTMIN+3"),
    arch: Optional[str] = typer.Option(None, "--arch", help="Read the number on a Linux ABI: alpha, mips, sparc, parisc, powerpc."),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a signal by number, name or shell exit status."""
    raise typer.Exit(answer.find("signal", sig, as_json, brief, arch=arch))


@app.command()
def state(
    name: str = typer.Argument(..., help="TIME_WAIT, time-wait, TIME-WAIT, ESTAB, FIN_WAIT1, 6, 06, 0A"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a TCP state by any spelling (RFC, kernel, ss, netstat) or number."""
    raise typer.Exit(answer.find("state", name, as_json, brief))


@app.command()
def flag(
    name: str = typer.Argument(..., help="RST, R, S. (SYN+ACK), SYN+ACK, 0x12"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a TCP flag, or a combination as tcpdump prints it."""
    raise typer.Exit(answer.find("flag", name, as_json, brief))


@app.command()
def sysctl(
    name: Optional[str] = typer.Argument(
        None, help="net.ipv4.tcp_fin_timeout, tcp_fin_timeout, /proc/sys/net/ipv4/tcp_fin_timeout, "
                   "or a sysctl.conf line"),
    diff: bool = typer.Option(False, "--diff", help="List every knob whose live value differs from its "
                              "default, with the advice; exit 1 if any does."),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a sysctl knob, with this machine's live value beside the default."""
    if diff == (name is not None):
        output.fail("give a knob's name, or --diff")
        raise typer.Exit(2)
    raise typer.Exit(answer.sysctl_diff(as_json) if diff else answer.find("sysctl", name, as_json, brief))


@app.command()
def sockopt(
    name: str = typer.Argument(..., help="SO_LINGER, so_linger, linger, TCP_NODELAY, MSG_NOSIGNAL"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a socket option or a send/recv flag."""
    raise typer.Exit(answer.find("sockopt", name, as_json, brief))


@app.command()
def call(
    name: str = typer.Argument(..., help="connect, shutdown, sendmsg, accept4, epoll_wait"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Look up a system call: what it does to the connection and the errno codes it returns."""
    raise typer.Exit(answer.find("call", name, as_json, brief))


@app.command()
def show(
    entry_id: str = typer.Argument(..., metavar="ID", help="errno:ECONNRESET, state:TIME_WAIT, or a bare name"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
) -> None:
    """Show one entry by its public id."""
    raise typer.Exit(answer.find("show", entry_id, as_json, brief))


@app.command()
def explain(
    text: Optional[str] = typer.Argument(None, help="The error text; omit it (or give -) to read stdin."),
    as_json: bool = JSON,
    limit: int = typer.Option(5, "--limit", "-n", min=1, max=50, help="At most this many matches."),
) -> None:
    """Name the entries a pasted error line, traceback or log excerpt means, with the evidence."""
    raise typer.Exit(answer.explain(text, as_json, limit))


@app.command()
def doctor(
    as_json: bool = JSON,
    watch: Optional[float] = typer.Option(None, "--watch", min=0.5, help="Refresh every N seconds."),
    times: Optional[int] = typer.Option(None, "--times", min=1, help="With --watch, stop after this many reports."),
) -> None:
    """Read this machine's TCP sockets, knobs and counters through the knowledge base.

    Exit status 0 when nothing needs attention, 1 when there are findings."""
    from .doctor import main as run_doctor

    raise typer.Exit(run_doctor(as_json, watch, times))


@app.command("list")
def list_(
    kind: str = typer.Argument(..., help="errno, signal, state, flag, claim, sysctl, sockopt or call"),
    as_json: bool = JSON,
) -> None:
    """List every entry of a kind."""
    def action(conn) -> None:
        entries = lookup.list_kind(conn, kind.lower())
        output.print_json(entries) if as_json else output.print_list(entries)

    raise typer.Exit(answer.run(action, as_json))


@app.command()
def search(
    words: list[str] = typer.Argument(..., help="words to find: connection reset, reuseaddr, ECONNRESET"),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Only this kind."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=500, help="At most this many results."),
    as_json: bool = JSON,
) -> None:
    """Full-text search over names, aliases, messages, summaries and bodies."""
    text = " ".join(words)

    def action(conn) -> None:
        results = lookup.search(conn, text, kind, limit)
        if as_json and results:  # nothing found: the error object alone, as every lookup does
            output.print_json({"query": text, "results": results})
        elif results:
            output.print_search(results)
        if not results:
            raise lookup.NotFound(f"nothing matches {text!r}", lookup.suggest(conn, text))

    raise typer.Exit(answer.run(action, as_json))


@app.command()
def lint(
    kb: Optional[Path] = typer.Argument(None, help="The notes directory (default: this install's kb/)."),
) -> None:
    """Check every note against the grammar; print path:line: KBnnn message."""
    from .lint import lint as run_lint
    from .paths import kb_dir

    kb = kb or Path(kb_dir())
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

    kb = kb or Path(kb_dir())
    target = db or Path(db_path(kb))
    if not kb.is_dir():
        output.fail(f"{kb} is not a directory")
        raise typer.Exit(2)
    try:
        counts = run_build(kb, target)
    except ValueError as e:  # an unreadable verification results file
        output.fail(f"{e}; {target} was left as it was")
        raise typer.Exit(1)
    except BuildError as e:
        for p in e.problems:
            output.echo(str(p), err=True)
        output.fail(f"build failed with {len(e.problems)} problem(s); {target} was left as it was")
        raise typer.Exit(1)
    output.echo(f"built {target}: {counts['entries']} entries, {counts['messages']} messages, "
                f"{counts['transitions']} transitions, {counts['verifications']} verifications")


@app.command()
def verify(
    targets: Optional[list[str]] = typer.Argument(
        None, help="Scenario names, scenario modules (states) or entry ids (errno:ECONNRESET); default: all."),
    as_json: bool = JSON,
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, max=64,
                                       help="Scenarios run at once (default: twice the number of CPUs)."),
    coverage: bool = typer.Option(False, "--coverage", help="List the entries no result reproduces or checks."),
    list_only: bool = typer.Option(False, "--list", help="List the scenarios and their claims; run nothing."),
    kernel: Optional[str] = typer.Option(
        None, "--kernel", metavar="SPEC",
        help="Run on another kernel in a QEMU VM with no network device: a vmlinuz path, or a Debian "
             "series (6.1, 6.12) fetched with apt-get."),
    build: bool = typer.Option(True, "--build/--no-build", hidden=True,
                               help="Rebuild the database with the results (a VM's guest does not)."),
) -> None:
    """Reproduce the notes' claims on this kernel: each scenario in a fresh network namespace.

    Results are saved per kernel release and architecture and loaded into the database."""
    from .verify.command import verify as run_verify

    raise typer.Exit(run_verify(targets or [], as_json, jobs, coverage, list_only, kernel, build))


@app.command()
def serve(
    port: int = typer.Option(8001, "--port", "-p", min=0, max=65535, help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """Serve the database as a web reference and JSON API (Datasette, read-only)."""
    from .serve import main as run_serve

    raise typer.Exit(run_serve(host, port))


@app.command()
def site(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the site (default: site/_build/ in a checkout, ./tcpkb-site when installed)."),
) -> None:
    """Build the static docs site: a page per entry, the state diagram, packet ladders, offline search."""
    from .site import main as run_site

    raise typer.Exit(run_site(out))
