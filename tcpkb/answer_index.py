"""The answer index: what every plain lookup prints when piped, written from the database.

`tcpkb errno 104` must cost little more than Python's own start-up, and opening SQLite,
decoding JSON and compiling regular expressions cost more than the rest of the answer. So
after each build the printed answers of the plain lookups (`<kind> NAME|ALIAS|NUMBER`, and
`show ID`) are rendered once, by the same code that prints them from the database, into one
file beside it: `<db>.answers`. A lookup on the fast path (tcpkb.main) reads a key table
and copies bytes with `os` and `sys` alone. The database stays the one source of truth: the
index names the database file it was made from (inode, size, mtime), is ignored the moment
that file changes, and tests/test_answer_index.py holds every key to what the database path
prints.

Layout: a header line `tcpkb-answers 1 <database stat> <notes digest> <table bytes>`, the
key table (`kind<TAB>query<TAB>full brief-en brief-zh json<LF>`, each `offset:length`
into the blobs), then the blobs.
"""

from __future__ import annotations

import os

MAGIC = b"tcpkb-answers"
VERSION = b"2"  # bump when the printed form of an answer changes: older indexes are rewritten
VARIANTS = ("full", "brief-en", "brief-zh", "json")


def index_path(db: str) -> str:
    return db + ".answers"


def db_stamp(db: str) -> str:
    st = os.stat(db)
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


# --- reading (the fast path: os and sys only) ---------------------------------

def read_header(db: str):
    """(file, notes digest, table bytes) of a current index of `db`, or None."""
    try:
        f = open(index_path(db), "rb")
    except OSError:
        return None
    parts = f.readline().split()
    try:
        current = (len(parts) == 5 and parts[0] == MAGIC and parts[1] == VERSION
                   and parts[2].decode() == db_stamp(db))
    except OSError:
        current = False
    if not current:
        f.close()
        return None
    return f, parts[3].decode(), int(parts[4])


def answer(f, table_size: int, kind: str, query: str, variant: str) -> bytes | None:
    """The bytes `tcpkb <kind> <query>` prints (variant: one of VARIANTS), or None."""
    if any(c in query for c in "\t\n\r\0") or not query:
        return None
    try:
        key = f"\n{kind}\t{query}\t".encode()
    except UnicodeEncodeError:  # a surrogate from bytes that are not UTF-8: not a key
        return None
    table = b"\n" + f.read(table_size)
    at = table.find(key)
    if at < 0:
        return None
    end = table.index(b"\n", at + 1)
    spans = table[at + len(key):end].split()
    offset, length = spans[VARIANTS.index(variant)].split(b":")
    f.seek(int(offset), os.SEEK_CUR)  # the blobs start where the table ends
    return f.read(int(length))


# --- writing (after a build; imports the whole answer path) -------------------

def write(db: str) -> str:
    """Render every plain lookup's answer from `db` into its index; return the index's path."""
    from . import paths
    from .query import lookup

    blobs: dict[bytes, int] = {}
    out = bytearray()
    table: list[bytes] = []
    rendered: dict[tuple, bytes] = {}
    with lookup.connect(db) as conn:
        notes = conn.execute("select value from meta where key = 'notes_hash'").fetchone()[0]
        for kind, query, found_key, found in _answers(conn):
            if found_key not in rendered:
                spans = []
                for text in _render(found):
                    if text not in blobs:
                        blobs[text] = len(out)
                        out += text
                    spans.append(f"{blobs[text]}:{len(text)}")
                rendered[found_key] = " ".join(spans).encode()
            table.append(f"{kind}\t{query}\t".encode() + rendered[found_key] + b"\n")
    body = b"".join(table)
    header = b" ".join([MAGIC, VERSION, db_stamp(db).encode(), notes.encode(), str(len(body)).encode()])
    path = index_path(db)
    paths.write_atomic(path, header + b"\n" + body + bytes(out))
    return path


def adopt(source_db: str, db: str) -> str:
    """Give `db`, a byte-for-byte copy of `source_db`, the index of `source_db`: the same
    answers, under a header naming the copy (the wheel ships both, built together)."""
    from . import paths

    with open(index_path(source_db), "rb") as f:
        parts = f.readline().split()
        if len(parts) != 5 or parts[0] != MAGIC or parts[1] != VERSION:
            raise OSError(f"{index_path(source_db)} is not an answer index of this version")
        body = f.read()
    header = b" ".join([MAGIC, VERSION, db_stamp(db).encode(), parts[3], parts[4]])
    path = index_path(db)
    paths.write_atomic(path, header + b"\n" + body)
    return path


def _answers(conn):
    """(kind, query, key of the answer, Found) for every plain lookup worth a key: each entry's
    name, aliases and number under its kind, in the case given and lower case, and its id
    under `show`. The finder decides what each query means, as it does on the command line."""
    from .kinds import KINDS, BadQuery, NotFound
    from .query import lookup

    seen: set[tuple[str, str]] = set()
    for kind in KINDS.values():
        if kind.live_answer or not kind.command_help:
            continue
        for query in _queries(conn, kind):
            if (kind.name, query) in seen:
                continue
            seen.add((kind.name, query))
            try:
                hit = kind.find(conn, query)
            except (NotFound, BadQuery):
                continue
            key = (hit.id, tuple(hit.notes), repr(hit.also), repr(hit.answer))
            yield kind.name, query, key, lambda hit=hit: lookup.answer_of(conn, hit)
    for (entry_id,) in conn.execute("select id from entries order by rowid"):
        if not KINDS[entry_id.partition(":")[0]].live_answer:
            yield "show", entry_id, (entry_id, (), "[]", "None"), lambda i=entry_id: lookup.show(conn, i)


def _queries(conn, kind) -> list[str]:
    rows = conn.execute("select e.name, (select group_concat(alias, char(10)) from aliases a "
                        "where a.entry_id = e.id) from entries e where e.kind = ? order by e.rowid",
                        (kind.name,)).fetchall()
    columns = [r[1] for r in conn.execute(f"pragma table_info({kind.table})")] if kind.table else []
    numbers = ([str(r[0]) for r in conn.execute(f"select number from {kind.table} where number is not null")]
               if "number" in columns and not kind.numbers_by_kernel else [])
    queries = []
    for name, aliases in rows:
        for q in [name, *(aliases or "").split("\n")]:
            if q:
                queries += [q, q.lower()]
    return queries + numbers


def _render(found) -> list[bytes]:
    """The four printed forms of an answer, as a pipe receives them."""
    import io
    import sys

    from .present import terminal as output

    found = found()
    texts = []
    for variant in VARIANTS:
        buffer, saved = io.StringIO(), sys.stdout
        sys.stdout = buffer
        try:
            if variant == "json":
                output.print_json(found.as_json())
            else:
                output.print_found(found, brief=variant != "full", lang="zh" if variant == "brief-zh" else "en")
        finally:
            sys.stdout = saved
        texts.append(buffer.getvalue().encode())
    return texts
