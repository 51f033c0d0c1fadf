"""The `tcpkb` console entry point.

The plain lookups — `tcpkb errno 104`, `tcpkb state TIME_WAIT --json` — are
answered here without importing Typer, whose import alone costs several times
a bare Python start-up; they go through the same answer.find as the Typer
commands, and tests/test_main.py checks that both print the same. Anything
else (help, other commands, an option this parser does not know, bad usage)
goes to the Typer app in cli.py.
"""

from __future__ import annotations

import os
import re
import sys

_NUMBER = re.compile(r"-\d+|-0[xX][0-9a-fA-F]+")


def plain_lookup(argv: list[str]) -> dict | None:
    """argv as find() arguments when it is a plain lookup, else None (Typer decides)."""
    from .kinds import KINDS

    if not argv or (argv[0] not in KINDS and argv[0] != "show"):
        return None
    kind, rest = argv[0], argv[1:]
    options = {o.flag: o.keyword for o in KINDS[kind].options} if kind in KINDS else {}
    call: dict = {"kind": kind, "as_json": False, "brief": False}
    query = None
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--json":
            call["as_json"] = True
        elif arg in ("--brief", "-b"):
            call["brief"] = True
        elif arg in options and i + 1 < len(rest) and not rest[i + 1].startswith("-"):
            call[options[arg]] = rest[i + 1]
            i += 1
        elif arg.startswith("-") and not _NUMBER.fullmatch(arg):
            return None  # --help, --os=darwin, a typo: Typer's job
        elif query is None:
            query = arg
        else:
            return None  # two queries: bad usage, reported by Typer
        i += 1
    negative = kind in KINDS and KINDS[kind].negative_numbers
    if query is None or (not negative and _NUMBER.fullmatch(query)):
        return None
    call["query"] = query
    return call


def plain_explain(argv: list[str]) -> dict | None:
    """`tcpkb explain TEXT [--json]` (or stdin) as answer.explain arguments; else None."""
    if not argv or argv[0] != "explain":
        return None
    rest = argv[1:]
    as_json = "--json" in rest
    texts = [a for a in rest if a != "--json"]
    if len(texts) > 1 or any(t.startswith("-") and t != "-" for t in texts):
        return None  # options Typer knows (--limit, --help), or bad usage
    return {"text": texts[0] if texts else None, "as_json": as_json}


def utf8_arguments(argv: list[str]) -> list[str] | None:
    """The arguments as text. Bytes that are not UTF-8 arrive as surrogates; explain reads them
    as a log line (replaced, like stdin), anything else cannot name an entry: None."""
    if not any("\udc80" <= ch <= "\udcff" for a in argv for ch in a):
        return argv
    if argv and argv[0] == "explain":
        return [os.fsencode(a).decode("utf-8", "replace") for a in argv]
    return None


def main() -> None:
    argv = utf8_arguments(sys.argv[1:])
    if argv is None:
        bad = next(a for a in sys.argv[1:] if any("\udc80" <= ch <= "\udcff" for ch in a))
        print(f"tcpkb: the argument {os.fsencode(bad)!r} is not valid UTF-8; give names and words as "
              "UTF-8 text", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = argv
    try:
        if (explained := plain_explain(sys.argv[1:])) is not None:
            from .answer import explain

            status = explain(**explained)
            sys.stdout.flush()
            sys.exit(status)
        call = plain_lookup(sys.argv[1:])
        if call is not None:
            from .answer import find

            status = find(**call)
            sys.stdout.flush()
            sys.exit(status)
        from .cli import app

        app()
    except BrokenPipeError:
        # `tcpkb list errno | head -1`: point stdout at /dev/null so the final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
