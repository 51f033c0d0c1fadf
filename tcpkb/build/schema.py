"""The database's tables: the ones every entry has, each kind's own (from its module), the proof's.

Explicit schemas: primary and foreign keys, and columns that exist even when empty. In a
kind's extra tables, a column that holds an entry id is named `entry_id` or ends in `_id`
or `_state`, and gets a foreign key to entries.
"""

from __future__ import annotations

import sqlite_utils

from ..kinds import KINDS

TYPES = {"text": str, "integer": int, "real": float, "boolean": bool}

COMMON = {
    "sections": ({"entry_id": str, "position": int, "slug": str, "title": str, "markdown": str, "html": str},
                 ("entry_id", "slug")),
    "aliases": ({"entry_id": str, "alias": str}, None),
    # seen_as texts, glibc messages, and translated or other-libc messages from data/messages/
    # and vendors' phrases from data/vocab/ (their reason, and a confidence where the phrase
    # only suggests the entry)
    "messages": ({"entry_id": str, "text": str, "source": str, "deadline": bool, "fragments": str,
                  "last": str, "reason": str, "confidence": float}, None),
    # data/vocab/: where a vendor's codes stand in a line (a regex with a `term` group), and
    # what each code means
    "vocab_forms": ({"vocabulary": str, "pattern": str, "what": str, "split": str, "needs": str}, None),
    "vocab_terms": ({"vocabulary": str, "term": str, "entry_id": str, "reason": str, "source": str,
                     "confidence": float, "deadline": bool}, None),
    "links": ({"src": str, "dst": str, "position": int}, None),
    # a value per kernel: a note's per-range value (source "note") or what a check read on a
    # kernel (source "observed"); value is JSON, kernels a JSON list of ranges or releases
    "facts_by_kernel": ({"entry_id": str, "field": str, "value": str, "kernels": str, "source": str}, None),
}
ENTRY_COLUMNS = ("entry_id", "src", "dst")
INDEXES = (("aliases", "alias"), ("aliases", "entry_id"), ("messages", "entry_id"), ("links", "src"), ("vocab_terms", "term"),
           ("verifications", "entry_id"), ("scenario_entries", "entry_id"), ("facts_by_kernel", "entry_id"))


def _entry_fks(columns: dict) -> list[tuple[str, str, str]]:
    return [(c, "entries", "id") for c in columns
            if c in ENTRY_COLUMNS or c.endswith("_id") or c.endswith("_state")]


def create_tables(db: sqlite_utils.Database) -> None:
    db.conn.execute("PRAGMA foreign_keys = ON")
    db["entries"].create({"id": str, "kind": str, "name": str, "title": str, "summary": str,
                          "summary_zh": str, "body_md": str, "body_html": str, "path": str}, pk="id")
    for table, (columns, pk) in COMMON.items():
        db[table].create(columns, pk=pk, foreign_keys=_entry_fks(columns))
    for kind in KINDS.values():
        db[kind.table].create({c: TYPES[t] for c, t in kind.columns.items()}, pk="id",
                              foreign_keys=[("id", "entries", "id")])
        for table, (columns, indexed) in kind.extra_tables.items():
            typed = {c: TYPES[t] for c, t in columns.items()}
            db[table].create(typed, foreign_keys=_entry_fks(typed))
            for column in indexed:
                db[table].create_index([column])
    _create_proof_tables(db)
    db["search"].create({"id": str, "kind": str, "name": str, "aliases": str, "title": str,
                         "summary": str, "summary_zh": str, "messages": str, "body": str,
                         "boost": float}, pk="id")
    for table, column in INDEXES:
        db[table].create_index([column])
    # names and aliases are found in any case (kinds.base.by_name): without these, every
    # lookup scans both tables, and the answer index makes thousands of lookups
    db.conn.execute("create index idx_entries_kind_upper_name on entries(kind, upper(name))")
    db.conn.execute("create index idx_aliases_upper_alias on aliases(upper(alias))")
    db.conn.execute("create index idx_links_dst on links(dst)")


def _create_proof_tables(db: sqlite_utils.Database) -> None:
    db["scenarios"].create({"name": str, "module": str, "level": str, "claim": str, "needs": str,
                            "timeout_s": float, "source": str}, pk="name")
    db["scenario_entries"].create({"scenario": str, "entry_id": str, "verdict": str},
                                  foreign_keys=[("scenario", "scenarios", "name"),
                                                ("entry_id", "entries", "id")])
    db["runs"].create({"id": str, "scenario": str, "kernel": str, "arch": str, "time": str,
                       "status": str, "reason": str, "duration_ms": float, "file": str, "trace": str},
                      pk="id", foreign_keys=[("scenario", "scenarios", "name")])
    db["verifications"].create({"entry_id": str, "scenario": str, "run_id": str, "level": str,
                                "claim": str, "ok": bool, "kernel": str, "arch": str, "time": str,
                                "detail": str},
                               foreign_keys=[("entry_id", "entries", "id"),
                                             ("scenario", "scenarios", "name"),
                                             ("run_id", "runs", "id")])
