"""records -> SQLite: compile the notes (and the proof's records) into data/tcpkb.db.

The build lints first and refuses to write anything if a note is wrong. It writes a new
file beside the target and renames it over the old one, so a reader never sees half a
database and a failed build leaves the previous one byte for byte as it was. Every kind's
tables and rows come from its module in tcpkb.kinds; the verification records come from
whoever calls the build (the proof engine is a layer of its own, not imported here).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path

import sqlite_utils

from .. import __version__, kernels
from ..kinds import KINDS, slug
from ..lint import Problem, lint
from ..notes import Note, load, markdown
from ..paths import content_hash, message_files, umask, vocab_files
from .fragments import fragment_table
from .proof import Proof, write_proof
from .schema import create_tables
from .vocab import vocab_rows


class BuildError(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) in the notes")
        self.problems = problems


def build(kb: Path, target: Path, proof: Proof | None = None) -> dict[str, int]:
    """Lint kb/, then write the database to `target` atomically. Returns row counts.

    `proof` gives the scenario catalogue and the verification results to load
    (tcpkb.verify.proof_records); without it the database holds the notes alone."""
    loaded = load(kb)  # read once: the lint and the rows share the parsed notes
    problems = lint(kb, loaded)
    if problems:
        raise BuildError(problems)
    notes = loaded[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tcpkb-", suffix=".db", dir=target.parent)
    os.close(fd)
    try:
        db = sqlite_utils.Database(tmp)
        # a temporary file renamed into place when whole: no journal or fsync per insert needed
        db.conn.execute("pragma journal_mode = off")
        db.conn.execute("pragma synchronous = off")
        counts = _write(db, notes, kb, proof or Proof([], []))
        db.conn.commit()
        db.conn.execute("VACUUM")
        db.close()
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it 0600; honour the umask as open() would
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts


class Context:
    """What a kind's rows may need from the other notes (which calls return an errno)."""

    def __init__(self, notes: list[Note]):
        self.notes = notes
        self._calls: dict[str, list[str]] | None = None

    def calls_returning(self, errno_id: str) -> list[str]:
        if self._calls is None:  # written once, in the call notes, and read both ways
            calls: dict[str, set[str]] = {}
            for note in self.notes:
                for e in note.meta.get("errors") or [] if note.kind == "call" else []:
                    calls.setdefault(f"errno:{e['errno']}", set()).add(note.meta["name"])
            self._calls = {k: sorted(v) for k, v in calls.items()}
        return self._calls.get(errno_id, [])


def _write(db: sqlite_utils.Database, notes: list[Note], kb: Path, proof: Proof) -> dict[str, int]:
    md = markdown()
    order = list(KINDS)
    notes = sorted(notes, key=lambda n: (order.index(n.kind), KINDS[n.kind].order(n.meta)))
    create_tables(db)
    rows: dict[str, list[dict]] = {}
    ctx = Context(notes)
    for note in notes:
        for table, batch in _common_rows(note, md).items():
            rows.setdefault(table, []).extend(batch)
        for table, batch in KINDS[note.kind].rows(note, ctx).items():
            rows.setdefault(table, []).extend(batch)
    # errno and getaddrinfo names never collide (EAI_*), so one map serves both kinds' tables
    _other_messages(rows, {n.meta["name"]: n.id for n in notes if n.kind in ("errno", "resolver")})
    for table, batch in vocab_rows(vocab_files(), {n.id for n in notes}).items():
        rows.setdefault(table, []).extend(batch)
    # explain's matching data, computed once here rather than on every pasted line
    for row, frags in zip(rows["messages"], fragment_table(
            [(m["entry_id"], m["text"]) for m in rows["messages"]])):
        row["fragments"] = json.dumps(frags, ensure_ascii=False)
        row["last"] = frags[-1][0] if frags else None  # the clause explain looks for first, in SQL
    for table, batch in rows.items():
        _insert(db.conn, table, batch)
    db["search"].enable_fts(
        ["name", "aliases", "title", "summary", "summary_zh", "messages", "body"],
        fts_version="FTS5", tokenize="unicode61 remove_diacritics 2")
    counts = write_proof(db, proof, {n.id: n.kind for n in notes})
    db["meta"].insert_all([
        {"key": "notes_hash", "value": content_hash(kb)},
        {"key": "tcpkb_version", "value": __version__},
        {"key": "built_at", "value": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
    ], pk="key")
    return {**{table: db[table].count for table in rows}, **counts}


def _insert(conn, table: str, batch: list[dict]) -> None:
    """Rows into a table create_tables made, in one executemany: sqlite-utils' insert_all
    inspects every value of every row, a third of a build's time. Lists and objects are stored
    as JSON, as sqlite-utils stores them."""
    if not batch:
        return
    columns = list(dict.fromkeys(c for row in batch for c in row))

    def value(v):
        return json.dumps(v) if isinstance(v, (dict, list, tuple)) else v

    conn.executemany(f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
                     f"values ({', '.join('?' * len(columns))})",
                     [[value(row.get(c)) for c in columns] for row in batch])


def _common_rows(note: Note, md) -> dict[str, list[dict]]:
    """The rows every entry has, whatever its kind: entries, sections, aliases, messages, links,
    search, and the values a note gives per kernel range."""
    m, id_ = note.meta, note.id
    kind = KINDS[note.kind]
    body_html, section_html = _html(md, note)
    messages = [{"entry_id": id_, "text": t, "source": "note", "deadline": False} for t in m.get("seen_as") or []]
    messages += [{"entry_id": id_, "text": t, "source": "note", "deadline": True}
                 for t in m.get("seen_as_deadline") or []]
    if note.kind == "errno":  # glibc's own strerror text is the message people see most
        messages.append({"entry_id": id_, "text": m["message"], "source": "glibc", "deadline": False})
    return {
        "entries": [{"id": id_, "kind": note.kind, "name": m["name"], "title": m["title"],
                     "summary": m["summary"], "summary_zh": m["summary_zh"], "body_md": note.body,
                     "body_html": body_html, "path": note.path.relative_to(note.path.parents[1]).as_posix()}],
        "sections": [{"entry_id": id_, "position": i, "slug": slug(s.title), "title": s.title,
                      "markdown": s.markdown, "html": html} for i, (s, html) in enumerate(zip(note.sections, section_html))],
        "aliases": [{"entry_id": id_, "alias": a} for a in m.get("aliases") or []],
        "messages": messages,
        "links": [{"src": id_, "dst": d, "position": i} for i, d in enumerate(m.get("related") or [])],
        "facts_by_kernel": [{"entry_id": id_, "field": field, "value": json.dumps(value),
                             "kernels": json.dumps([spec]), "source": "note"}
                            for field, f in kind.fields.items() if f.versioned
                            and kernels.is_versioned(m.get(field)) for spec, value in m[field].items()],
        "search": [{"id": id_, "kind": note.kind, "name": m["name"], "aliases": " ".join(m.get("aliases") or []),
                    "title": m["title"], "summary": m["summary"], "summary_zh": m["summary_zh"],
                    "messages": "\n".join((m.get("seen_as") or []) + (m.get("seen_as_deadline") or [])),
                    "body": note.body, "boost": kind.search_boost(m)}],
    }


def _html(md, note: Note) -> tuple[str, list[str]]:
    """The body's HTML and each `## ` section's, rendered from the tokens the note was parsed
    into (a section's HTML is its tokens between its heading and the next)."""
    tokens = [t for t in note.tokens if t.type != "front_matter"]
    render = md.renderer.render
    heads = [i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    bounds = list(zip(heads, heads[1:] + [len(tokens)]))
    sections = [render(tokens[start + 3:end], md.options, {})  # heading_open, inline, heading_close
                for start, end in bounds]
    # the renderer renders token by token, so the body is its pieces joined: each rendered once
    body = [render(tokens[:heads[0] if heads else len(tokens)], md.options, {})]
    for (start, _), html in zip(bounds, sections):
        body += [render(tokens[start:start + 3], md.options, {}), html]
    return "".join(body), sections


def _other_messages(rows: dict[str, list[dict]], errnos: dict[str, str]) -> None:
    """data/messages/: glibc's translations and musl's texts as messages, libuv's Windows codes as
    numbers (each generated by scripts/extract_messages.py from an installed package), and Windows'
    own socket messages in other languages (windows-l10n.json: each text with the public page
    that quotes it; scripts/windows_l10n.py checks them)."""
    for path in message_files():
        with open(path, encoding="utf-8") as f:
            data = json.load(f)["messages"]
        name = Path(path).stem
        if name == "libuv-windows":
            rows.setdefault("errno_numbers", []).extend([{"entry_id": errnos[e], "platform": "libuv", "name": "UV_" + e,
                                       "number": n} for e, n in data.items() if e in errnos])
        elif name == "windows-l10n":  # [{code, lang, text, source}]: the WSA code names the entry
            windows = {r["number"]: r["entry_id"] for r in rows.get("errno_numbers", [])
                       if r["platform"] == "windows"}
            rows["messages"] += [{"entry_id": windows[m["code"]], "text": m["text"],
                                  "source": f"windows:{m['lang']}", "deadline": False}
                                 for m in data if m["code"] in windows]
        elif name in ("glibc-l10n", "glibc-gai-l10n"):  # strerror's and gai_strerror's translations
            rows["messages"] += [{"entry_id": errnos[e], "text": t, "source": f"glibc:{lang}",
                                  "deadline": False}
                                 for lang, table in data.items() for e, t in table.items() if e in errnos]
        else:  # another C library: {errno name: its message}
            rows["messages"] += [{"entry_id": errnos[e], "text": t, "source": name, "deadline": False}
                                 for e, t in data.items() if e in errnos]
