"""Lookups over the built database: an entry by id or query, a kind's list, search.

Plain sqlite3 and the standard library only: this module runs on every
`tcpkb errno 104`, so it must not import sqlite-utils, YAML or markdown.
Every function returns plain dicts shaped exactly as `--json` prints them;
each kind's own fields, finders and facts come from its module in tcpkb.kinds.
"""

from __future__ import annotations

import json
import re
import sqlite3

from ..kinds import KINDS, BadQuery, Hit, NotFound  # noqa: F401  (re-exported: the faces catch them)
from ..kinds.base import clean, suggest  # noqa: F401

KIND_NAMES = tuple(KINDS)


class Found:
    """A lookup answer: the entry, and remarks on how the query was read."""

    def __init__(self, entry: dict, notes: list[str] | None = None, also: list[dict] | None = None):
        self.entry = entry
        self.notes = notes or []
        self.also = also or []

    def as_json(self) -> dict:
        out = dict(self.entry)
        if self.notes:
            out["query_notes"] = self.notes
        if self.also:
            out["also"] = self.also
        return out


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


# --- entries -----------------------------------------------------------------

def entry(conn: sqlite3.Connection, entry_id: str, full: bool = True) -> dict:
    """An entry as the public JSON shape: shared fields, the kind's own, then its facts."""
    row = conn.execute("select * from entries where id = ?", (entry_id,)).fetchone()
    if row is None:
        raise NotFound(f"no entry {entry_id!r}", suggest(conn, entry_id))
    kind = KINDS[row["kind"]]
    out = {"id": row["id"], "kind": row["kind"], "name": row["name"], "title": row["title"],
           "summary": row["summary"], "summary_zh": row["summary_zh"]}
    out["aliases"] = [r[0] for r in conn.execute(
        "select alias from aliases where entry_id = ? order by rowid", (entry_id,))]
    out.update(kind.json(conn, entry_id))
    if by_kernel := _by_kernel(conn, entry_id):
        out["by_kernel"] = by_kernel
    out["facts"] = kind.facts(out)
    if full:
        out.update(_connections(conn, entry_id))
        out["sections"] = {r["slug"]: r["markdown"] for r in conn.execute(
            "select slug, markdown from sections where entry_id = ? order by position", (entry_id,))}
        out["path"] = "kb/" + row["path"]
        out["verification"] = verification(conn, entry_id)
    return out


def _connections(conn: sqlite3.Connection, entry_id: str) -> dict:
    """related, linked_from (entries whose `related` name this one), and the error text people see."""
    out = {"related": [r[0] for r in conn.execute(
        "select dst from links where src = ? order by position", (entry_id,))]}
    out["linked_from"] = [r[0] for r in conn.execute(
        "select src from links where dst = ? and src not in "
        "(select dst from links where src = ?) order by src", (entry_id, entry_id))]
    out["seen_as"] = [r[0] for r in conn.execute(
        "select text from messages where entry_id = ? and source = 'note' and not deadline "
        "order by rowid", (entry_id,))]
    deadline = [r[0] for r in conn.execute(
        "select text from messages where entry_id = ? and deadline order by rowid", (entry_id,))]
    if deadline:
        out["seen_as_deadline"] = deadline
    return out


def _by_kernel(conn: sqlite3.Connection, entry_id: str) -> dict[str, list[dict]]:
    """{field: [{value, kernels, source}]}: a note's per-kernel values and what checks observed."""
    out: dict[str, list[dict]] = {}
    for r in conn.execute("select field, value, kernels, source from facts_by_kernel "
                          "where entry_id = ? order by rowid", (entry_id,)):
        out.setdefault(r["field"], []).append({"value": json.loads(r["value"]),
                                               "kernels": json.loads(r["kernels"]),
                                               "source": r["source"]})
    return out


def verification(conn: sqlite3.Connection, entry_id: str) -> list[dict]:
    """How the entry was verified on each machine: reproductions first, then checks."""
    rows = conn.execute(
        "select level, scenario, claim, ok, kernel, arch, time, detail from verifications"
        " where entry_id = ? order by level = 'checked', kernel, arch, scenario", (entry_id,))
    out = []
    for r in rows:
        item = {"level": r["level"], "scenario": r["scenario"], "claim": r["claim"], "ok": bool(r["ok"]),
                "kernel": r["kernel"], "arch": r["arch"], "time": r["time"]}
        if r["detail"]:
            item["compared"] = json.loads(r["detail"]).get("compared", [])
        out.append(item)
    return out


def proving_scenarios(conn: sqlite3.Connection, entry_id: str) -> list[str]:
    """The scenarios that reproduced an entry, the typical case first, then those most about it.

    Typical is read from what a run departed from: a default socket on a default kernel with a
    real peer. Each need beyond a network namespace (a scripted TUN peer, a knob or feature the
    kernel must have), sysctl the scenario set and setsockopt() call in its newest run counts
    one; the fewest come first. Then: runs that captured packets, where
    the entry stands in the scenario's list (claims aside), the scenarios proving fewest
    entries. Both web faces draw the first few."""
    rows = conn.execute("""
        with mine as (select distinct scenario from verifications
                      where entry_id = :id and level = 'reproduced' and ok),
        listed as (select scenario, entry_id, rowid as n from scenario_entries
                   where scenario in (select scenario from mine)
                     and (entry_id = :id or entry_id not like 'claim:%'))
        select m.scenario,
          (select max(coalesce(json_array_length(r.trace, '$.packets'), 0)) from runs r
            where r.scenario = m.scenario) as packets,
          (select count(*) from listed l where l.scenario = m.scenario and l.n <
            (select min(n) from listed x where x.scenario = m.scenario and x.entry_id = :id)) as place,
          (select count(*) from listed l where l.scenario = m.scenario) as size,
          (select s.needs from scenarios s where s.name = m.scenario) as needs,
          coalesce((select (select count(*) from json_each(r.trace, '$.sysctls'))
                        + (select count(*) from json_each(r.trace, '$.steps')
                           where json_extract(value, '$.call') like '%setsockopt(%')
                      from runs r where r.scenario = m.scenario and json_valid(r.trace)
                      order by r.time desc limit 1), 0) as departures
        from mine m""", {"id": entry_id}).fetchall()
    def departures(r) -> int:
        return r["departures"] + sum(1 for need in (r["needs"] or "").split() if need != "netns")
    rows.sort(key=lambda r: (departures(r), not r["packets"], r["place"], r["size"], r["scenario"]))
    return [r["scenario"] for r in rows]


def list_kind(conn: sqlite3.Connection, kind: str) -> list[dict]:
    if kind not in KINDS:
        raise BadQuery(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
    ids = [r[0] for r in conn.execute("select id from entries where kind = ? order by rowid", (kind,))]
    return [entry(conn, i, full=False) for i in ids]


def find(conn: sqlite3.Connection, kind: str, query: str, **options) -> Found:
    """A query read by one kind's finder (options such as os_ and arch are the kind's own)."""
    if kind not in KINDS:
        raise BadQuery(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
    return answer_of(conn, KINDS[kind].find(conn, query, **options))


def answer_of(conn: sqlite3.Connection, hit: Hit) -> Found:
    if hit.answer is not None:  # an answer without a note (a flag combination): its parts are entries
        answer = dict(hit.answer)
        answer["flags"] = [entry(conn, i, full=False) for i in answer.get("flags", [])]
        return Found(answer, hit.notes, hit.also)
    return Found(entry(conn, hit.id), hit.notes, hit.also)


def show(conn: sqlite3.Connection, query: str) -> Found:
    """`kind:NAME` -> that entry; a bare name is looked up in every kind."""
    query = clean(query)
    if ":" in query:
        kind, _, name = query.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise BadQuery(f"unknown kind {kind!r} in {query!r}; kinds are: {', '.join(KINDS)}")
        return find(conn, kind, name)
    for kind in KINDS.values():
        try:
            return answer_of(conn, kind.find(conn, query))
        except (NotFound, BadQuery):
            continue
    raise NotFound(f"no entry named {query!r}", suggest(conn, query))


# --- search ------------------------------------------------------------------

def fts_query(words: str, phrase: bool = False) -> str:
    """User words -> a safe FTS5 query: each word a quoted term (never FTS syntax).

    phrase=True asks for the words side by side ("connection reset"); otherwise
    every word must appear, the last one as a prefix so `reuse` finds REUSEADDR.
    """
    terms = [t.replace('"', "") for t in re.findall(r"\w+", words)[:20]]
    if not terms:
        return ""
    if phrase:
        return '"' + " ".join(terms) + '"' if len(terms) > 1 else ""
    return " ".join(f'"{t}"' for t in terms[:-1]) + f' "{terms[-1]}"*'


def search(conn: sqlite3.Connection, words: str, kind: str | None = None, limit: int = 20,
           mark: tuple[str, str] = ("[", "]")) -> list[dict]:
    """Entries holding the words, best first, each with a snippet whose hits are between `mark`."""
    words = clean(words)
    if kind and kind not in KIND_NAMES:
        raise BadQuery(f"unknown kind {kind!r}; kinds are: {', '.join(KIND_NAMES)}")
    results: dict[str, dict] = {}
    # Entries where the words stand together come first, then those that merely hold them all.
    for query in (fts_query(words, phrase=True), fts_query(words)):
        if not query or len(results) >= limit:
            continue
        rows = conn.execute(
            "select s.id, s.kind, s.name, s.summary, "
            "snippet(search_fts, -1, ?, ?, ' … ', 12) as snippet, "
            # names and aliases weigh most, then titles, error messages, summaries, bodies
            "bm25(search_fts, 10.0, 8.0, 4.0, 2.0, 1.0, 3.0, 0.5) * s.boost as rank "
            "from search_fts join search s on s.rowid = search_fts.rowid "
            "where search_fts match ? and (? is null or s.kind = ?) order by rank limit ?",
            (*mark, query, kind, kind, limit)).fetchall()
        for r in rows:
            results.setdefault(r["id"], {"id": r["id"], "kind": r["kind"], "name": r["name"],
                                         "summary": r["summary"], "snippet": r["snippet"],
                                         "score": round(-r["rank"], 3)})
    results = list(results.values())[:limit]
    if not results:  # a fragment of a name, like CONNRES
        like = "%" + re.sub(r"[%_\\]", lambda m: "\\" + m.group(0), words.upper()) + "%"
        rows = conn.execute(
            "select id, kind, name, summary from entries where upper(name) like ? escape '\\' "
            "and (? is null or kind = ?) order by rowid limit ?", (like, kind, kind, limit)).fetchall()
        results = [{"id": r["id"], "kind": r["kind"], "name": r["name"], "summary": r["summary"],
                    "snippet": "", "score": 0.0} for r in rows]
    return results
