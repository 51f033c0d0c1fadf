"""The `tcpkb` command: a thin Typer shell over lookup, lint and build.

Exit status: 0 found, 1 not found (with the closest matches), 2 bad usage.
The lookup commands import nothing heavier than sqlite3; lint and build load
their modules only when called.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

from enum import Enum

import typer
from typer.core import TyperGroup

from . import answer
from .kinds import KINDS
from .present import terminal as output
from .query import lookup

class QueryGroup(TyperGroup):
    """`tcpkb QUERY`: a first word that names no command is a query for the hidden `query`
    command, as main.py's fast path reads it."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and (not args[0].startswith("-") or args[0][1:].isdigit()):
            return "query", self.commands["query"], args
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=QueryGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="The failures people meet on TCP sockets on Linux: errno codes, signals, TCP states "
    "and flags, sysctl knobs, socket options, system calls and the kernel's reasons for a reset, "
    "explained and proved on a live kernel. `tcpkb QUERY` with no command finds the entry "
    "(tcpkb 104, tcpkb ECONNRESET, tcpkb TIME_WAIT).",
)

JSON = typer.Option(False, "--json", help="Print JSON with the public ids instead of text.")
BRIEF = typer.Option(False, "--brief", "-b", help="At most four lines: headline, summary, verification.")
class Lang(str, Enum):
    en = "en"
    zh = "zh"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


LANG = typer.Option(None, "--lang", help="The summary's language for --brief: en or zh (default: from the locale).")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        output.echo(f"tcpkb {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    kb: Optional[Path] = typer.Option(None, "--kb", envvar="TCPKB_KB", metavar="DIR",
                                      help="Use the notes in DIR (default: the checkout around the "
                                           "current directory, else those installed with tcpkb)."),
    no_pager: bool = typer.Option(False, "--no-pager", help="Never page an answer taller than the "
                                  "terminal (default: $TCPKB_PAGER, $PAGER or less; never when piped)."),
) -> None:
    """Options that apply to every command."""
    if no_pager:  # main.py reads it before any command runs; here for the help and the docs
        import os

        os.environ["TCPKB_PAGER"] = "cat"
    if kb is not None:
        import os

        if "\0" in str(kb):
            raise typer.BadParameter("a path cannot hold a NUL byte", param_hint="--kb")
        os.environ["TCPKB_KB"] = str(kb)


def complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a lookup's query: the names of the command's entries (ids for show)."""
    from .query.complete import names

    try:
        return names(answer.ensure_db(), ctx.info_name or "", incomplete)
    except Exception:  # completion must never print a traceback into the shell
        return []


# Negative numbers (-104, as system calls return them) are values, not options.
NUMERIC = {"ignore_unknown_options": True}


def _lookup_command(kind) -> None:
    """`tcpkb <kind> QUERY [options] [--json] [--brief]`, made from the kind's registry entry."""
    def command(**args) -> None:
        query, as_json, brief, lang = args.pop("query"), args.pop("as_json"), args.pop("brief"), args.pop("lang")
        raise typer.Exit(answer.find(kind.name, query, as_json, brief, lang and lang.value, **args))

    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("query", keyword, annotation=str, default=typer.Argument(
        ..., help=kind.query_help, autocompletion=complete_name))]
    params += [inspect.Parameter(o.keyword, keyword, annotation=Optional[str],
                                 default=typer.Option(None, o.flag, help=o.help)) for o in kind.options]
    params += [inspect.Parameter("as_json", keyword, annotation=bool, default=JSON),
               inspect.Parameter("brief", keyword, annotation=bool, default=BRIEF),
               inspect.Parameter("lang", keyword, annotation=Optional[Lang], default=LANG)]
    command.__signature__ = inspect.Signature(params)
    app.command(kind.name, help=kind.command_help, short_help=kind.command_help,
                context_settings=NUMERIC if kind.negative_numbers else {})(command)


def sysctl(
    name: Optional[str] = typer.Argument(None, help=KINDS["sysctl"].query_help, autocompletion=complete_name),
    diff: bool = typer.Option(False, "--diff", help="List every knob whose live value differs from its "
                              "default, with the advice; exit 1 if any does."),
    as_json: bool = JSON,
    brief: bool = BRIEF,
    lang: Optional[Lang] = LANG,
) -> None:
    """Look up a sysctl knob, with this machine's live value beside the default."""
    if diff == (name is not None):
        output.fail("give a knob's name, or --diff")
        raise typer.Exit(2)
    raise typer.Exit(answer.sysctl_diff(as_json) if diff else answer.find("sysctl", name, as_json, brief, lang and lang.value))


OWN_COMMANDS = {"sysctl": sysctl}  # kinds whose command does more than look up
for _kind in KINDS.values():
    if _kind.name in OWN_COMMANDS:
        app.command(_kind.name)(OWN_COMMANDS[_kind.name])
    elif _kind.command_help:
        _lookup_command(_kind)


@app.command(hidden=True, context_settings=NUMERIC)
def query(
    words: str = typer.Argument(..., help="a name, number or spelling of any kind"),
    as_json: bool = JSON,
    brief: bool = BRIEF,
    lang: Optional[Lang] = LANG,
) -> None:
    """Find the entry a query names, whatever its kind (tcpkb 104, tcpkb TIME_WAIT)."""
    raise typer.Exit(answer.bare(words, as_json, brief, lang and lang.value))


@app.command()
def show(
    entry_id: str = typer.Argument(..., help="errno:ECONNRESET, state:TIME_WAIT, or a bare name",
                                   autocompletion=complete_name),
    as_json: bool = JSON,
    brief: bool = BRIEF,
    lang: Optional[Lang] = LANG,
) -> None:
    """Show one entry by its public id."""
    raise typer.Exit(answer.find("show", entry_id, as_json, brief, lang and lang.value))


@app.command(context_settings=NUMERIC)  # pasted text may start with dashes: .NET's "---> System…"
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
    netns: Optional[str] = typer.Option(None, "--netns", metavar="NAME|PID|PATH",
        help="Read another network namespace: a name under /run/netns, a process's, or a namespace file."),
    all_: bool = typer.Option(False, "--all", help="Read every network namespace that has TCP sockets, one group each."),
    from_: Optional[str] = typer.Option(None, "--from", metavar="DIR",
        help="Read a saved dump: an sosreport, or files of ss, nstat, netstat -s and sysctl -a."),
    prometheus: bool = typer.Option(False, "--prometheus",
        help="Print Prometheus metrics (node_exporter textfile format) instead of the report."),
    output_path: Optional[str] = typer.Option(None, "--output", metavar="FILE",
        help="With --prometheus, replace FILE atomically instead of printing (e.g. a .prom file)."),
) -> None:
    """Read this machine's TCP sockets, knobs and counters through the knowledge base.

    Exit status 0 when nothing needs attention, 1 when there are findings."""
    from .doctor import main as run_doctor

    raise typer.Exit(run_doctor(as_json, watch, times, netns, all_, from_, prometheus, output_path))


@app.command()
def watch(
    port: Optional[list[int]] = typer.Option(
        None, "--port", "-p", help="Only events with this port at either end (repeatable)."),
    host: Optional[list[str]] = typer.Option(
        None, "--host", help="Only events with this address at either end (repeatable)."),
    event: Optional[list[str]] = typer.Option(
        None, "--event", "-e", help="Only these events (repeatable): error, reset-sent, reset-received, "
        "drop, retransmit, state, or a tracepoint's name."),
    reason: Optional[list[str]] = typer.Option(
        None, "--reason", "-r", help="Only events with this reason, errno or new state (repeatable): "
        "TCP_ABORT_ON_CLOSE, NO_SOCKET, ECONNRESET, CLOSE_WAIT."),
    duration: Optional[float] = typer.Option(
        None, "--duration", "-d", help="Stop after this many seconds (default: until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per event, one per line."),
    summary: bool = typer.Option(False, "--summary", help="At the end, print how many events of each kind "
                                 "and entry."),
    netns: Optional[str] = typer.Option(
        None, "--netns", metavar="NAME|PID|PATH", help="Only the events of one network namespace: a name "
        "under /run/netns, a process's, or a bound path."),
) -> None:
    """Show socket errors, resets, drops, retransmits and state changes as they happen, each
    explained by the entry to read next (tracepoints in a tracefs instance of its own; root).

    Without tracing, polls /proc/net/tcp and the counters instead, and says what it cannot see."""
    from .watch import main as run_watch

    raise typer.Exit(run_watch(port or (), host or (), event or (), reason or (), duration, as_json,
                               summary, netns))


@app.command("list")
def list_(
    kind: str = typer.Argument(..., help=", ".join(KINDS)),
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
        results = lookup.search(conn, text, kind, limit, mark=output.HIT)
        if as_json and results:  # nothing found: the error object alone, as every lookup does
            output.print_json({"query": text, "results": [{**r, "snippet": output.plain_hits(r["snippet"])}
                                                          for r in results]})
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
    from .build.database import BuildError, build as run_build
    from .paths import db_path, kb_dir
    from .verify import proof_records

    kb = kb or Path(kb_dir())
    target = db or Path(db_path(kb))
    if not kb.is_dir():
        output.fail(f"{kb} is not a directory")
        raise typer.Exit(2)
    try:
        counts = run_build(kb, target, proof_records())
    except ValueError as e:  # an unreadable verification results file
        output.fail(f"{e}; {target} was left as it was")
        raise typer.Exit(1)
    except BuildError as e:
        for p in e.problems:
            output.echo(str(p), err=True)
        output.fail(f"build failed with {len(e.problems)} problem(s); {target} was left as it was")
        raise typer.Exit(1)
    from .answer import write_indexes

    write_indexes(str(target))  # what the fast paths read, from the database just built
    output.echo(f"built {target}: {counts['entries']} entries, {counts['messages']} messages, "
                f"{counts['transitions']} transitions, {counts['verifications']} verifications")


@app.command()
def verify(
    targets: Optional[list[str]] = typer.Argument(
        None, help="Scenario names, scenario modules (states) or entry ids (errno:ECONNRESET); default: all."),
    as_json: bool = JSON,
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, max=64,
                                       help="Scenarios run at once (default: four per CPU)."),
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
    from .web.serve import main as run_serve

    raise typer.Exit(run_serve(host, port))


@app.command()
def site(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the site (default: site/_build/ in a checkout, ./tcpkb-site when installed)."),
) -> None:
    """Build the static docs site: a page per entry, the state diagram, packet ladders, offline search."""
    from .site.generate import main as run_site

    raise typer.Exit(run_site(out))


@app.command()
def man() -> None:
    """Print the tcpkb(1) manual page, generated from these commands (pipe it to `man -l -`)."""
    from .present.manpage import manpage

    output.echo(manpage(typer.main.get_command(app)))


@app.command()
def completion(
    shell: Shell = typer.Argument(..., help="bash, zsh or fish"),
) -> None:
    """Print the shell completion script: commands, options and entry names from the database.

    bash: tcpkb completion bash > ~/.local/share/bash-completion/completions/tcpkb"""
    from typer._completion_shared import get_completion_script

    output.echo(get_completion_script(prog_name="tcpkb", complete_var="_TCPKB_COMPLETE", shell=shell.value))


# Every command's one-line summary in full in `tcpkb --help` (Click would cut it at 45 characters).
for _command in app.registered_commands:
    if _command.short_help is None:
        _doc = _command.help or inspect.getdoc(_command.callback) or ""
        _command.short_help = _doc.split("\n\n")[0].replace("\n", " ")
