"""Answer a lookup: open the database, run the query, print, and give the exit status.

Shared by the Typer commands (cli.py) and the fast path (main.py), so the two
print the same thing and exit the same way: 0 found, 1 not found, 2 bad usage.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .present import terminal as output
from .query import lookup

if TYPE_CHECKING:  # typing's runtime import is not free on the lookup path
    from collections.abc import Callable


def run(action: Callable[[sqlite3.Connection], None], as_json: bool = False) -> int:
    """Call action(conn) on the database; turn every expected failure into a message and a status."""
    try:
        with lookup.connect(ensure_db()) as conn:
            action(conn)
        return 0
    except lookup.NotFound as e:
        if as_json:
            output.print_json({"error": str(e), "suggestions": e.suggestions})
        output.fail(str(e), e.suggestions)
        return 1
    except lookup.BadQuery as e:
        output.fail(str(e))
        return 2
    except (sqlite3.Error, IndexError) as e:  # IndexError: a column a database of another layout lacks
        output.fail(f"cannot read the database: {e}; run `tcpkb build`")
        return 1
    except Exception as e:  # a first-use build that met a broken note
        from .build.database import BuildError

        if not isinstance(e, BuildError):
            raise
        for p in e.problems[:10]:
            output.echo(str(p), err=True)
        output.fail(f"there is no database yet and the notes do not build ({len(e.problems)} "
                    "problem(s)); fix them (`tcpkb lint`) and run `tcpkb build`")
        return 1


def find(kind: str, query: str, as_json: bool = False, brief: bool = False, **platform) -> int:
    """Look up one entry of a kind (or any kind, for `show`) and print it."""
    if kind == "sysctl":  # a knob's answer carries this machine's live value
        return sysctl(query, as_json, brief)

    def action(conn: sqlite3.Connection) -> None:
        found = (lookup.show(conn, query) if kind == "show" else lookup.find(conn, kind, query, **platform))
        if as_json:
            output.print_json(found.as_json())
        else:
            output.print_found(found, brief=brief)

    return run(action, as_json)


def sysctl(query: str, as_json: bool = False, brief: bool = False) -> int:
    """A knob's entry with this machine's live value beside its default."""
    def action(conn: sqlite3.Connection) -> None:
        from .machine.live import with_live

        found = lookup.find(conn, "sysctl", query)
        found.entry = with_live(found.entry)
        if as_json:
            output.print_json(found.as_json())
        else:
            output.print_found(found, brief=brief)

    return run(action, as_json)


def sysctl_diff(as_json: bool = False) -> int:
    """Every knob whose live value differs from the default: 0 when none does, 1 when some do."""
    report: dict = {}

    def action(conn: sqlite3.Connection) -> None:
        from .machine.live import diff

        report.update(diff(conn))
        output.print_json(report) if as_json else output.print_diff(report)

    status = run(action, as_json)
    return status or (1 if report.get("differs") else 0)


def explain(text: str | None, as_json: bool = False, limit: int = 5) -> int:
    """Name the entries an error text means: 0 when something matched, 1 when nothing did."""
    import sys

    if text is None or text == "-":
        if sys.stdin.isatty():
            output.fail("give the error text as an argument, or pipe it in")
            return 2
        # a log may hold bytes that are not UTF-8: they are replaced, never a reason to fail
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    if not text.strip():
        output.fail("the text is empty")
        return 2
    matched: list = []

    def action(conn: sqlite3.Connection) -> None:
        from .query.explain import explained, public

        matched.extend(explained(conn, text, limit))
        if as_json:
            output.print_json(public(matched))
        elif matched:
            output.print_explained(matched)
        if not matched:
            raise lookup.NotFound("no entry matches this text: it does not look like a socket error")

    return run(action, as_json)


def ensure_db() -> str:
    """The database the lookups read, built on first use with the shipped proof."""
    from .build.ensure import ensure_db as ensure

    return ensure(_proof_records)


def _proof_records():
    from .verify import proof_records

    return proof_records()
