"""Answer a lookup: open the database, run the query, print, and give the exit status.

Shared by the Typer commands (cli.py) and the fast path (main.py), so the two
print the same thing and exit the same way: 0 found, 1 not found, 2 bad usage.
"""

from __future__ import annotations

import sqlite3

from .commands import default_lang
from .present import terminal as output
from .query import lookup

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: its import costs a lookup ~2 ms
if TYPE_CHECKING:
    from collections.abc import Callable


def run(action: Callable[[sqlite3.Connection], None], as_json: bool = False, hint: str = "") -> int:
    """Call action(conn) on the database; turn every expected failure into a message and a status
    (a JSON object too under --json). `hint` follows a miss: where else to look."""
    try:
        try:
            with lookup.connect(ensure_db()) as conn:
                action(conn)
        except sqlite3.DatabaseError as e:
            if not _rebuild_unreadable(e):
                raise
            with lookup.connect(ensure_db()) as conn:  # once: a second failure is reported
                action(conn)
        return 0
    except lookup.NotFound as e:
        if as_json:
            output.print_json({"error": str(e), "suggestions": e.suggestions})
        output.fail(str(e), e.suggestions)
        if hint:
            output.echo(output.dim(hint), err=True)
        return 1
    except lookup.BadQuery as e:
        return _failed(str(e), as_json, 2)
    except (sqlite3.Error, IndexError) as e:  # IndexError: a column a database of another layout lacks
        return _failed(f"cannot read the database {_db_name()}: {e}", as_json)
    except BrokenPipeError:
        raise  # the reader went away: main.py ends quietly
    except OSError as e:  # a database named by TCPKB_DB that cannot be written, a full disk
        return _failed(f"cannot build the database: {e.strerror or e} ({e.filename or _db_name()})", as_json)
    except Exception as e:  # a first-use build that met a broken note
        from .build.database import BuildError

        if not isinstance(e, BuildError):
            raise
        for p in e.problems[:10]:
            output.echo(str(p), err=True)
        return _failed(f"there is no database yet and the notes do not build ({len(e.problems)} "
                       "problem(s)); fix them (`tcpkb lint`) and run `tcpkb build`", as_json)


def _failed(message: str, as_json: bool, status: int = 1) -> int:
    if as_json:
        output.print_json({"error": message, "suggestions": []})
    output.fail(message)
    return status


def _db_name() -> str:
    from .paths import db_path

    return db_path()


def _rebuild_unreadable(error: sqlite3.DatabaseError) -> bool:
    """A database this install manages (the cache, a checkout's) that SQLite cannot read is
    corrupt or truncated: build it again, once, and say so. One named by TCPKB_DB is the
    user's: never replaced."""
    import os

    from . import paths

    path = paths.db_path()
    if os.environ.get("TCPKB_DB") or not os.path.exists(path) or not os.access(path, os.R_OK):
        return False
    from .build.ensure import build_db

    os.unlink(path)
    build_db(path, _proof_records, why=f"{path} could not be read ({error}); ")
    return True


def miss_hint(query: str) -> str:
    """Where to look after a miss: the words as a search, the text as an error line."""
    import shlex

    quoted = shlex.quote(query)
    return f"try `tcpkb search {quoted}` (words anywhere in the notes) or `tcpkb explain {quoted}` (an error line)"


def find(kind: str, query: str, as_json: bool = False, brief: bool = False, lang: str | None = None,
         **platform) -> int:
    """Look up one entry of a kind (or any kind, for `show`) and print it."""
    if kind == "sysctl":  # a knob's answer carries this machine's live value
        return sysctl(query, as_json, brief, lang)

    def action(conn: sqlite3.Connection) -> None:
        found = (lookup.show(conn, query) if kind == "show" else lookup.find(conn, kind, query, **platform))
        if as_json:
            output.print_json(found.as_json())
        else:
            output.print_found(found, brief=brief, lang=lang or default_lang())

    return run(action, as_json, miss_hint(query))


def bare(query: str, as_json: bool = False, brief: bool = False, lang: str | None = None) -> int:
    """`tcpkb QUERY` with no command: answered as the first kind (in the registry's order) that
    knows the query would answer it; the other kinds that know it are named on stderr with
    their command. A miss says where else to look, and which command a typo may have meant."""
    from .kinds import KINDS

    hits: list[tuple[str, str]] = []

    def action(conn: sqlite3.Connection) -> None:
        for kind in KINDS.values():
            if not kind.command_help:
                continue
            try:
                hit = kind.find(conn, query)
            except (lookup.NotFound, lookup.BadQuery):
                continue
            hits.append((kind.name, hit.id or f"{kind.name} {hit.answer.get('letters', query)}"))
        if not hits:
            raise lookup.NotFound(f"no entry is named {query!r}", lookup.suggest(conn, query))

    status = run(action, as_json, _bare_hint(query))
    if status:
        return status
    if len(hits) > 1:
        output.echo(output.dim("also: " + ", ".join(f"{i} (tcpkb {k} {query})" for k, i in hits[1:])), err=True)
    return find(hits[0][0], query, as_json, brief, lang)


def _bare_hint(query: str) -> str:
    import difflib

    from .commands import COMMANDS

    typo = difflib.get_close_matches(query.lower(), COMMANDS, n=1, cutoff=0.75)
    if typo:
        return f"did you mean the command `tcpkb {typo[0]}`? (`tcpkb --help` lists them)"
    return miss_hint(query)


def sysctl(query: str, as_json: bool = False, brief: bool = False, lang: str | None = None) -> int:
    """A knob's entry with this machine's live value beside its default."""
    def action(conn: sqlite3.Connection) -> None:
        from .machine.live import with_live

        found = lookup.find(conn, "sysctl", query)
        found.entry = with_live(found.entry)
        if as_json:
            output.print_json(found.as_json())
        else:
            output.print_found(found, brief=brief, lang=lang or default_lang())

    return run(action, as_json, miss_hint(query))


def sysctl_diff(as_json: bool = False) -> int:
    """Every knob whose live value differs from the default: 0 when none does, 1 when some do."""
    report: dict = {}

    def action(conn: sqlite3.Connection) -> None:
        from .machine.live import diff

        report.update(diff(conn))
        output.print_json(report) if as_json else output.print_diff(report)

    status = run(action, as_json)
    return status or (1 if report.get("differs") else 0)


def explain(text: str | None, as_json: bool = False, limit: int = 5, read_stdin: bool = True) -> int:
    """Name the entries an error text means: 0 when something matched, 1 when nothing did.
    `read_stdin` False: the text was read from stdin already (a lone "-" is then the text)."""
    import sys

    if read_stdin and (text is None or text == "-"):
        if sys.stdin.isatty():
            return _failed("give the error text as an argument, or pipe it in", as_json, 2)
        # a log may hold bytes that are not UTF-8: they are replaced, never a reason to fail
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    if not text.strip():
        return _failed("the text is empty", as_json, 2)
    matched: list = []

    def action(conn: sqlite3.Connection) -> None:
        from .query.explain import NO_MATCH, public

        matched.extend(_explained(conn, text, limit))
        for m in matched:  # the card a terminal lays out is made of the entry's sections
            m["sections"] = dict(conn.execute("select slug, markdown from sections where entry_id = ? "
                                              "order by position", (m["id"],)).fetchall())
        if as_json:  # one document in every case: a miss is {"matches": [...], "error"}
            output.print_json(public(matched))
            return
        if matched:
            output.print_explained(matched)
        if not any(m["confident"] for m in matched):
            raise lookup.NotFound(NO_MATCH)

    status = run(action, as_json)
    # a low-confidence answer is shown, marked, but names no entry: exit 1 as a miss does
    return 1 if status == 0 and not any(m["confident"] for m in matched) else status


def _explained(conn: sqlite3.Connection, text: str, limit: int) -> list[dict]:
    """explain's matches, from the explain index's lexicon when it is current (reading the tables
    costs more than the rules), else the database's. An index that fails while the rules read it
    is damaged: it is discarded, and the database's lexicon answers."""
    from . import explain_index
    from .query import lexicon
    from .query.explain import explained

    path = conn.execute("pragma database_list").fetchone()[2]
    loaded = explain_index.load(path) if path else None
    if loaded is not None:
        try:
            return explained(loaded[0], text, limit)
        except Exception:  # marshal, sizes, a program the engine rejects
            explain_index.discard(path)
        finally:
            explain_index.close(loaded[0])
    return explained(lexicon.read(conn), text, limit)


def ensure_db() -> str:
    """The database the lookups read, built on first use with the shipped proof; a database
    this install manages gets its answer and explain indexes when it lacks them (or they were
    made by another interpreter)."""
    import os

    from .build.ensure import ensure_db as ensure

    path = ensure(_proof_records, _prebuilt)
    if not os.environ.get("TCPKB_DB"):
        from . import answer_index, explain_index

        try:
            if answer_index.read_header(path) is None:
                answer_index.write(path)
            if not explain_index.current(path):
                explain_index.write(path)
        except (OSError, sqlite3.Error):
            pass  # an index is a shortcut: without one, lookups read the database
    return path


def write_indexes(db: str) -> None:
    """The answer and explain indexes of a database just built (tcpkb build, the wheel's)."""
    from . import answer_index, explain_index

    answer_index.write(db)
    explain_index.write(db)


def _prebuilt(path: str) -> str | None:
    """The wheel's database (built from the same content: the file name says so) copied to
    `path` with its answer index; where the cache cannot be written, the shipped file itself."""
    import os
    import shutil

    from . import answer_index, explain_index, paths

    shipped = paths.prebuilt_db(os.path.basename(path))
    if shipped is None:
        return None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            shutil.copyfile(shipped, tmp)
            os.chmod(tmp, 0o666 & ~paths.umask())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        answer_index.adopt(shipped, path)
        explain_index.adopt(shipped, path)
    except OSError:
        return shipped  # read where it is installed: lookups only read it
    return path


def prebuild(folder: str) -> str:
    """Build the database (and its answer and explain indexes) the wheel ships, named for its content, into
    `folder` (hatch_build.py calls this with the checkout's notes and results)."""
    import os
    from pathlib import Path

    from . import paths
    from .build.database import build

    kb = paths.kb_dir()
    target = os.path.join(folder, paths.db_name(paths.content_hash(kb)))
    build(Path(kb), Path(target), _proof_records())
    write_indexes(target)
    return target


def _proof_records():
    from .verify import proof_records

    return proof_records(shipped_checked=True)
