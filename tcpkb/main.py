"""The `tcpkb` console entry point: it only reads argv and picks the cheapest way to answer.

1. A plain lookup whose answer is in the answer index (`tcpkb errno 104` piped, or any
   `--json`) is copied from it with os and sys alone (tcpkb.answer_index); `tcpkb explain TEXT`
   piped is answered from the explain index, without sqlite3 or re (tcpkb.explain_index).
2. Other plain lookups, `tcpkb QUERY` with no command and `tcpkb explain TEXT` go through
   tcpkb.answer with sqlite3, without importing Typer, whose import alone costs several times
   a bare Python start-up. tests/test_main.py checks they print what the Typer commands print.
3. `tcpkb --help`/`-h` piped or on a wide terminal prints the help text shipped with the
   package (tcpkb/cli_help.txt, generated from the Typer app; a test keeps them equal).
4. Anything else (other commands, an option this parser does not know, bad usage) goes to the
   Typer app in cli.py.
"""

from __future__ import annotations

import os
import sys

from .commands import COMMANDS, LOOKUPS, default_lang

LOOKUP_FLAGS = {"--json": "as_json", "--brief": "brief", "-b": "brief"}
KIND_OPTIONS = {"errno": {"--os": "os_", "--arch": "arch"}, "signal": {"--arch": "arch"},
                "resolver": {"--os": "os_"}}
NEGATIVE_NUMBERS = (None, "errno", "signal", "resolver")  # kinds whose query may be -104 or -2


def _is_number(arg: str) -> bool:
    """-104, -0x68: a value a system call returns, not an option."""
    body = arg[1:]
    return body.isdigit() or (body[:2] in ("0x", "0X") and len(body) > 2
                              and all(c in "0123456789abcdefABCDEF" for c in body[2:]))


def plain_lookup(argv: list[str]) -> dict | None:
    """argv as answer.find arguments when it is a plain lookup, else None (Typer decides).
    A first word that is no command is a bare query (`kind` None)."""
    if not argv:
        return None
    first = argv[0]
    if first in COMMANDS and first not in LOOKUPS:
        return None
    bare = first not in COMMANDS
    if bare and first.startswith("-") and not _is_number(first):
        return None
    kind, rest = (None, argv) if bare else (first, argv[1:])
    options = KIND_OPTIONS.get(kind or "", {})
    call: dict = {"kind": kind, "as_json": False, "brief": False}
    query = None
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in LOOKUP_FLAGS:
            call[LOOKUP_FLAGS[arg]] = True
        elif arg in ("--lang", *options) and i + 1 < len(rest) and not rest[i + 1].startswith("-"):
            call["lang" if arg == "--lang" else options[arg]] = rest[i + 1]
            i += 1
        elif arg.startswith("-") and not (_is_number(arg) and kind in NEGATIVE_NUMBERS):
            return None  # --help, --os=darwin, a typo: Typer's job
        elif query is None:
            query = arg
        else:
            return None  # two queries: bad usage, reported by Typer
        i += 1
    if query is None or (kind not in NEGATIVE_NUMBERS and query.startswith("-")):
        return None
    if call.get("lang") not in (None, "en", "zh"):
        return None  # Typer says which languages there are
    call["query"] = query
    return call


def indexed(call: dict) -> bytes | None:
    """The answer's bytes from the answer index, when it holds them and they are what this
    stream would print (text is pre-rendered for a pipe; on a terminal it is laid out anew)."""
    if call["kind"] is None or len(call) > 5 + ("lang" in call):
        return None  # a bare query, or --os/--arch
    if not call["as_json"] and sys.stdout.isatty():
        return None
    from . import answer_index, paths

    db, root = _database()
    header = answer_index.read_header(db)
    if header is None:
        return None
    f, notes, size = header
    with f:
        if root:
            paths.warn_if_stale(db, notes)
        if call["as_json"]:
            variant = "json"
        elif call["brief"]:
            variant = "brief-" + (call.get("lang") or default_lang())
        else:
            variant = "full"
        return answer_index.answer(f, size, call["kind"], call["query"], variant)


def _database() -> tuple[str, str | None]:
    """(the database the lookups read, the checkout it belongs to or None), saying once that a
    checkout's is used."""
    from . import paths

    db = os.environ.get("TCPKB_DB")
    root = None if db else paths.checkout_root()
    if root:
        paths.announce_checkout(root)
        db = os.path.join(root, "data", "tcpkb.db")
    elif not db:
        db = paths.db_path()
    return db, root


def quick_explain(explained: dict) -> int | None:
    """`tcpkb explain` from the explain index (tcpkb.explain_index): the exit status, or None
    when the database path must answer (no current index, a terminal's layout, no text)."""
    text = explained["text"]
    if text is None or text == "-":
        if sys.stdin.isatty():
            return None  # the database path says how to give the text
        # a log may hold bytes that are not UTF-8: they are replaced, never a reason to fail;
        # read once here, so the database path gets the same text (and does not read again)
        explained["text"] = text = sys.stdin.buffer.read().decode("utf-8", "replace")
        explained["read_stdin"] = False
    if not text.strip() or (not explained["as_json"] and sys.stdout.isatty()):
        return None
    from . import explain_index

    db, root = _database()
    return explain_index.answer(db, text, explained["as_json"], checkout=root is not None)


def plain_explain(argv: list[str]) -> dict | None:
    """`tcpkb explain TEXT [--json]` (or stdin) as answer.explain arguments; else None."""
    if not argv or argv[0] != "explain":
        return None
    rest = argv[1:]
    as_json = "--json" in rest
    texts = [a for a in rest if a != "--json"]
    if len(texts) > 1 or any(_looks_like_option(t) for t in texts):
        return None  # options Typer knows (--limit, --help), or bad usage
    return {"text": texts[0] if texts else None, "as_json": as_json}


def _looks_like_option(arg: str) -> bool:
    """`-n`, `--limit=3`, `--help`; not pasted text that starts with dashes (.NET's "---> System…",
    a log's "-- Logs begin"), which Typer then takes as the text too."""
    name = arg.split("=", 1)[0]
    return arg != "-" and (name.startswith("--") and name[2:3].isalpha() or
                           name.startswith("-") and len(name) == 2 and name[1].isalpha()) \
        and " " not in name and "\n" not in name


def utf8_arguments(argv: list[str]) -> list[str] | None:
    """The arguments as text. Bytes that are not UTF-8 arrive as surrogates; explain reads them
    as a log line (replaced, like stdin), anything else cannot name an entry: None."""
    if not any("\udc80" <= ch <= "\udcff" or "\ud800" <= ch <= "\udfff" for a in argv for ch in a):
        return argv
    if argv and argv[0] == "explain":
        return [a.encode("utf-8", "surrogateescape" if _escaped(a) else "replace")
                 .decode("utf-8", "replace") for a in argv]
    return None


def _escaped(arg: str) -> bool:
    try:
        arg.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def global_options(argv: list[str]) -> list[str]:
    """`--kb DIR` before the command: the notes to use, as TCPKB_KB. `--no-pager` anywhere
    (before a `--`): print straight to the terminal, as TCPKB_PAGER=cat."""
    while len(argv) >= 2 and argv[0] == "--kb":
        os.environ["TCPKB_KB"] = argv[1]
        argv = argv[2:]
    end = argv.index("--") if "--" in argv else len(argv)
    if "--no-pager" in argv[:end]:
        os.environ["TCPKB_PAGER"] = "cat"
        argv = [a for a in argv[:end] if a != "--no-pager"] + argv[end:]
    return argv


# what may be paged on a terminal: answers, not commands that run, watch or serve
PAGED = (*LOOKUPS, "explain", "list", "search")


def _pageable(argv: list[str]) -> bool:
    if not argv or not sys.stdout.isatty() or os.environ.get("TCPKB_PAGER") == "cat":
        return False
    return argv[0] in PAGED or argv[0] not in COMMANDS and not argv[0].startswith("-")


def main() -> None:
    argv = utf8_arguments(sys.argv[1:])
    if argv is None:
        bad = next(a for a in sys.argv[1:] if utf8_arguments([a]) is None)
        shown = bad.encode("utf-8", "surrogateescape" if _escaped(bad) else "backslashreplace")
        print(f"tcpkb: the argument {shown!r} is not valid UTF-8; give names and words as "
              "UTF-8 text", file=sys.stderr)
        sys.exit(2)
    if any("\0" in a for a in argv):  # no exec() can pass one; only a caller in this process
        print("tcpkb: an argument holds a NUL byte", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = argv = global_options(argv)
    try:
        if _pageable(argv):
            from .present.pager import paged

            status: int | None = 0
            try:
                with paged():
                    status = dispatch(argv)
            except SystemExit as e:  # Typer's commands end this way: the answer is paged first
                status = e.code
            sys.exit(status)
        sys.exit(dispatch(argv))
    except BrokenPipeError:
        # `tcpkb list errno | head -1`: point stdout at /dev/null so the final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def dispatch(argv: list[str]) -> int:
    """Answer argv by the cheapest path that can; the exit status."""
    if (explained := plain_explain(argv)) is not None:
        if (status := quick_explain(explained)) is not None:
            return _flushed(status)
        from .answer import explain

        return _flushed(explain(**explained))
    call = plain_lookup(argv)
    if call is not None:
        if (data := indexed(call)) is not None:
            sys.stdout.buffer.write(data)
            return _flushed(0)
        from .answer import bare, find

        kind = call.pop("kind")
        return _flushed(bare(**call) if kind is None else find(kind, **call))
    if argv in (["--help"], ["-h"]) and (text := _shipped_help()) is not None:
        sys.stdout.write(text)
        return _flushed(0)
    from .cli import app

    app(prog_name="tcpkb")  # also names the completion variable: _TCPKB_COMPLETE
    return 0


def _flushed(status: int) -> int:
    sys.stdout.flush()
    return status


def _shipped_help() -> str | None:
    """tcpkb/cli_help.txt when Click would lay the help out the same: on a pipe or a terminal
    at least 80 columns wide (Click wraps at 78 there)."""
    columns = os.environ.get("COLUMNS", "")
    if not columns.isdigit():
        try:
            columns = str(os.get_terminal_size(sys.__stdout__.fileno()).columns)
        except (OSError, AttributeError, ValueError):
            columns = "80"
    if int(columns) < 80:
        return None
    try:
        with open(os.path.join(os.path.dirname(__file__), "cli_help.txt"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None
