"""The explain index: `tcpkb explain` answered without opening SQLite or importing `re`.

explain runs as a whole process per pasted line, and `sqlite3`, `re` and `json` would cost more
to import than its rules take to run. So after each build, beside the answer index, one file
holds what explain reads (`<db>.explain`):

- the lexicon (tcpkb.query.lexicon): the tables explain's rules look things up in, read from the
  database by the same function the web server uses;
- the programs of every pattern the rules use (tcpkb.patterns), made by this interpreter's `re`;
- each entry's title, summaries and card (its summary, top causes and advice as a pipe prints
  them, tcpkb.present.explained), read only for the entries a text matched.

Each table is marshalled apart, and read the first time a rule asks for it: most texts need a
few. Like the answer index, it names the database it was made from (inode, size, mtime) and is
ignored the moment that file changes. An index made by another interpreter (a wheel's, built by
another Python) is not used on the fast path: the database path answers, with the lexicon but
compiling with `re`, and rewrites it for this one where it can. tests/test_explain_index.py holds
the answers to the database path's.

Layout: a header line `tcpkb-explain <version> <database stat> <notes digest> <interpreter>
<code stamp> <contents bytes>`; the contents (each table's offset and length); then the tables, the rows of
BY_ROW tables each after its list of offsets.
"""

from __future__ import annotations

import marshal
import os
import sys

from . import patterns
from .answer_index import db_stamp
from .present import explained as layout
from .present.style import unstyled
from .query.explain import NO_MATCH, explained, public
from .query.lexicon import VERSION as LEXICON_VERSION

MAGIC = b"tcpkb-explain"
VERSION = b"2"  # bump when the layout or a card's printed form changes: older indexes are rewritten
# tables kept row by row: every text is checked against each message's last clause, and few rows
# are read; an entry's record is read when a text matched it
BY_ROW = ("message_rows", "entries")


def index_path(db: str) -> str:
    return db + ".explain"


class Rows:
    """A table read a row at a time from the index: row i (or the row of a key) is the marshalled
    bytes between offsets[i] and offsets[i + 1] of its region."""

    __slots__ = ("f", "base", "offsets", "keys")

    def __init__(self, f, base: int, offsets: list[int], keys: dict | None):
        self.f, self.base, self.offsets, self.keys = f, base, offsets, keys

    def __getitem__(self, key):
        i = key if self.keys is None else self.keys[key]
        self.f.seek(self.base + self.offsets[i])
        return marshal.loads(self.f.read(self.offsets[i + 1] - self.offsets[i]))



class Lexicon(dict):
    """The lexicon, each table read from the index the first time a rule asks for it: most texts
    need a few of them."""

    def __init__(self, f, base: int, contents: dict):
        super().__init__()
        self.f, self.base, self.contents = f, base, contents

    def __missing__(self, name: str):
        offset, length, keys = self.contents[name]
        self.f.seek(self.base + offset)
        data = marshal.loads(self.f.read(length))
        self[name] = table = Rows(self.f, self.base + offset + length, data, keys) if name in BY_ROW else data
        return table


# the modules that lay the index's tables and cards out: a change to any makes older indexes stale
FORMAT_MODULES = ("explain_index.py", "query/lexicon.py", "present/explained.py", "present/terminal.py",
                  "present/text.py")


def code_stamp() -> str:
    """A crc32 of FORMAT_MODULES' source, in the header: an upgrade that changes how a table or a
    card is made retires the indexes written before it, without anyone bumping a version."""
    import zlib

    crc, here = 0, os.path.dirname(os.path.abspath(__file__))
    for name in FORMAT_MODULES:
        try:
            with open(os.path.join(here, name), "rb") as f:
                crc = zlib.crc32(f.read(), crc)
        except OSError:  # installed without sources: the version numbers alone decide
            crc = zlib.crc32(name.encode(), crc)
    return f"{crc:08x}"


def _header(db: str):
    """The open index file and its header's fields (notes digest, interpreter, contents size)
    when it is current for `db`; None otherwise."""
    try:
        f = open(index_path(db), "rb")
    except OSError:
        return None
    try:
        parts = f.readline(512).split()
        if len(parts) == 7 and parts[0] == MAGIC and parts[1] == VERSION and parts[2].decode() == db_stamp(db) \
                and parts[5].decode() == code_stamp() and 0 < int(parts[6]) <= os.fstat(f.fileno()).st_size:
            return f, parts[3].decode(), parts[4].decode(), int(parts[6])
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    f.close()
    return None


def current(db: str) -> bool:
    """Whether `db` has an index made from it by this interpreter (one from another is rewritten)."""
    header = _header(db)
    if header is None:
        return False
    header[0].close()
    return header[2] == patterns.interpreter()


def load(db: str):
    """(lexicon, notes digest, whether this interpreter made its patterns' programs, which are then
    adopted) from a current index of `db`; None when there is no current index. Tables are read
    from the open file as the rules ask: call close(lexicon) when done."""
    header = _header(db)
    if header is None:
        return None
    f, notes, interpreter, size = header
    try:
        contents = marshal.loads(f.read(size))
        lexicon = Lexicon(f, f.tell(), contents["tables"])
        if contents["version"] != LEXICON_VERSION:
            raise ValueError("another lexicon")
        ours = interpreter == patterns.interpreter()
        if ours:
            patterns.adopt(lexicon["programs"])
    except Exception:  # whatever a damaged file makes marshal or the sizes do: no index
        f.close()
        return None
    return lexicon, notes, ours


def discard(db: str) -> None:
    """Forget a damaged index: its programs, and the file where it can be removed (the next
    lookup through the database writes a new one)."""
    patterns.forget()
    try:
        os.unlink(index_path(db))
    except OSError:
        pass


def close(lexicon: dict) -> None:
    if isinstance(lexicon, Lexicon):
        lexicon.f.close()


def answer(db: str, text: str, as_json: bool, checkout: bool = False, limit: int = 5) -> int | None:
    """Print what `tcpkb explain TEXT` prints in a pipe, from the index; the exit status, or None
    when the index cannot answer (none current, or output for a terminal, laid out anew). In a
    checkout, say so when its notes have changed since the database was built."""
    if not as_json and sys.stdout.isatty():
        return None
    loaded = load(db)
    if loaded is None:
        return None
    lexicon, notes, ours = loaded
    if not ours:  # made by another Python (a wheel's): the database path answers and rewrites it
        close(lexicon)
        return None
    try:
        if checkout:
            from .paths import warn_if_stale

            warn_if_stale(db, notes)
        matches = explained(lexicon, text, limit)
        printed = _printed(lexicon, matches, as_json)
    except Exception:  # a damaged index (marshal, sizes, a program the engine rejects): nothing
        close(lexicon)  # was printed, and the database path answers
        discard(db)
        return None
    close(lexicon)
    sys.stdout.write(printed)
    if any(m["confident"] for m in matches):
        return 0
    if not as_json:
        _fail(NO_MATCH)
    return 1


def _printed(lexicon: dict, matches: list[dict], as_json: bool) -> str:
    """The whole answer, made before any of it is written."""
    if as_json:  # one document in every case, as present.terminal.print_json lays it out
        from .present import json_text

        return unstyled(json_text.dumps(public(matches))) + "\n"
    if not matches:
        return ""
    whole, others = layout.shown(matches)
    out = []
    for m in whole:
        out += [unstyled(line) + "\n" for line in layout.head_lines(m)]
        out.append(lexicon["entries"][m["id"]][3])
    if others:
        out.append(unstyled(layout.others_line(others)) + "\n")
    return "".join(out)


def _fail(message: str) -> None:
    if sys.stderr.isatty():  # wrapped to the terminal, as every other message there
        from .present.terminal import fail

        sys.stdout.flush()
        fail(message)
    else:
        sys.stdout.flush()
        sys.stderr.write(f"tcpkb: {message}\n")


# --- writing (after a build; imports the whole answer path) -------------------

def write(db: str) -> str:
    """Write the explain index of `db`; return its path."""
    from . import paths
    from .query import lexicon as lexicons
    from .query import lookup

    with lookup.connect(db) as conn:
        notes = conn.execute("select value from meta where key = 'notes_hash'").fetchone()[0]
        lexicon = lexicons.read(conn)
        lexicon["entries"] = _entry_records(conn, lexicon["entries"])
    sources = dict.fromkeys(patterns.SOURCES + lexicons.sources(lexicon))
    lexicon["programs"] = {source: marshal.dumps(patterns.program(source)) for source in sources}
    data, tables = bytearray(), {}
    for name, table in lexicon.items():
        keys = None
        if name in BY_ROW:
            keys = {key: i for i, key in enumerate(table)} if isinstance(table, dict) else None
            rows = [marshal.dumps(row) for row in (table.values() if keys is not None else table)]
            offsets = [0]
            for row in rows:
                offsets.append(offsets[-1] + len(row))
            table, after = offsets, b"".join(rows)
        else:
            after = b""
        packed = marshal.dumps(table)
        tables[name] = (len(data), len(packed), keys)
        data += packed + after
    contents = marshal.dumps({"version": lexicons.VERSION, "tables": tables})
    header = b" ".join([MAGIC, VERSION, db_stamp(db).encode(), notes.encode(), patterns.interpreter().encode(),
                        code_stamp().encode(), str(len(contents)).encode()])
    path = index_path(db)
    paths.write_atomic(path, header + b"\n" + contents + bytes(data))
    return path


def adopt(source_db: str, db: str) -> str:
    """Give `db`, a byte-for-byte copy of `source_db`, the explain index of `source_db`."""
    from . import paths

    with open(index_path(source_db), "rb") as f:
        parts = f.readline().split()
        if len(parts) != 7 or parts[0] != MAGIC or parts[1] != VERSION:
            raise OSError(f"{index_path(source_db)} is not an explain index of this version")
        body = f.read()
    header = b" ".join([MAGIC, VERSION, db_stamp(db).encode(), *parts[3:]])
    path = index_path(db)
    paths.write_atomic(path, header + b"\n" + body)
    return path


def _entry_records(conn, entries: dict[str, tuple]) -> dict[str, tuple]:
    """entry id -> (title, summary, summary_zh, card): the card printed as a pipe gets it."""
    import io

    from .present.terminal import print_card

    records = {}
    for entry_id, (title, summary, summary_zh) in entries.items():
        sections = dict(conn.execute("select slug, markdown from sections where entry_id = ? order by position",
                                     (entry_id,)).fetchall())
        buffer, saved = io.StringIO(), sys.stdout
        sys.stdout = buffer
        try:
            print_card(summary, sections)
        finally:
            sys.stdout = saved
        records[entry_id] = (title, summary, summary_zh, buffer.getvalue())
    return records
