"""What explain reads from the database, as plain Python data: the lexicon.

explain's rules (tcpkb.query.explain) look words, names and numbers up in these tables, never in
SQL, so one lexicon serves both faces: the web server reads it from the database once per file,
and the command line from the explain index (tcpkb.explain_index), which is this dict written
with marshal after each build, so a pasted line is answered without importing sqlite3.

Every table keeps the database's row order where the rules take the first row that fits, as the
SQL they replace did. A rule reads a table by key or index (never iterating one it looks things
up in), so the explain index can read each table, and each message row, only when asked.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the explain index reads VERSION without importing sqlite3 or json
if TYPE_CHECKING:
    import sqlite3

VERSION = 3  # bump when a table's shape changes: older explain indexes are rewritten


def read(conn: sqlite3.Connection) -> dict:
    """The lexicon of the database behind `conn`."""
    import json

    q = conn.execute
    lexicon: dict = {"version": VERSION}
    messages = [(last, (entry_id, text, source, bool(deadline), [tuple(f) for f in json.loads(fragments)],
                        reason, confidence))
                for entry_id, text, source, deadline, fragments, last, reason, confidence in q(
                    "select entry_id, text, source, deadline, fragments, last, reason, confidence from messages "
                    "where last is not null order by rowid")]
    # each message's last clause, which a text must hold for the message to match, apart from the
    # rest of its row: every text is checked against all the first, and few rows are read
    lexicon["message_lasts"] = [last for last, _ in messages]
    lexicon["message_rows"] = [row for _, row in messages]
    lexicon["names"] = _first_of(q(
        "select name, id from entries where kind in ('errno', 'signal') order by rowid"), q(
        "select a.alias, a.entry_id from aliases a join entries e on e.id = a.entry_id "
        "where e.kind in ('errno', 'signal') order by a.rowid"))
    lexicon["states"] = _states(conn)
    lexicon["signal_titles"] = _first_of(q("select title, id from entries where kind = 'signal' order by rowid"))
    lexicon["sysctls"] = _sysctls(conn)
    lexicon["counter_names"] = _first_of(q("select name, id from entries where kind = 'counter' order by rowid"))
    lexicon["netstat"] = [(entry_id, sentence, key, _wording_source(sentence)) for entry_id, sentence, key in q(
        "select id, netstat, netstat_key from counters where netstat_key is not null order by rowid")]
    fields: dict[str, list[str]] = {}
    for field, entry_id in q("select field, id from counters where field is not null order by rowid"):
        fields.setdefault(field, []).append(entry_id)
    lexicon["fields"] = fields
    lexicon["counter_rank"] = _counter_ranks(conn)
    lexicon["reasons"] = _first_of(q(
        "select kind || ':' || name, id from entries where kind in ('drop', 'rst') order by rowid"))
    lexicon["includes"] = [tuple(r) for r in q("select entry_id, counter_id from counter_includes order by rowid")]
    lexicon["vocab_forms"] = [(vocabulary, pattern, what, split, json.loads(needs)) for vocabulary, pattern, what,
                              split, needs in q("select vocabulary, pattern, what, split, needs from vocab_forms "
                                                "order by rowid")]
    terms: dict[str, tuple] = {}
    for vocabulary, term, *rest in q("select vocabulary, term, entry_id, reason, source, confidence, deadline "
                                     "from vocab_terms order by rowid"):
        terms.setdefault(f"{vocabulary}\t{term}", tuple(rest))
    lexicon["vocab_terms"] = terms
    lexicon["errno_numbers"] = _grouped(q("select number, entry_id, platform from errno_numbers order by rowid"))
    lexicon["signal_numbers"] = _first_of(q(
        "select number, entry_id from signal_numbers where platform = 'linux' order by rowid"))
    lexicon["resolver_numbers"] = _grouped(q("select number, entry_id, platform from resolver_numbers order by rowid"))
    lexicon["resolver_names"] = _first_of(q(
        "select name, id, 1 from entries where kind = 'resolver' order by rowid"), q(
        "select a.alias, a.entry_id, 0 from aliases a join entries e on e.id = a.entry_id "
        "where e.kind = 'resolver' order by a.rowid"))
    # sets as dicts in a fixed order (membership is all the rules ask), so the index is the same
    # bytes from build to build whatever the string hashes
    lexicon["socket_errnos"] = _ids(q("select id from errno where socket"))
    lexicon["quiet"] = _ids(q("select id from errno where not socket union select id from signals where not socket"))
    lexicon["general"] = _ids(q("select entry_id from errno_numbers where platform = 'linux' and number <= 34"))
    lexicon["links"] = _links(conn)
    lexicon["entries"] = {entry_id: (title, summary, summary_zh) for entry_id, title, summary, summary_zh in q(
        "select id, title, summary, summary_zh from entries order by rowid")}
    return lexicon


_READ: dict[tuple, dict] = {}  # (database file, its stat) -> its lexicon: the web server reads it once


def of_database(conn: sqlite3.Connection) -> dict:
    """The lexicon of the database file behind `conn`, read once per version of that file (the web
    server's threads share it: the rules only read it)."""
    import os

    path = conn.execute("pragma database_list").fetchone()[2]
    if not path:
        return read(conn)  # in memory: nothing names it
    st = os.stat(path)
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _READ:
        _READ.clear()
        _READ[key] = read(conn)
    return _READ[key]


def sources(lexicon: dict) -> list[str]:
    """The patterns the lexicon's own rows bring (counters' sentences, vendors' forms)."""
    return [row[3] for row in lexicon["netstat"]] + [row[1] for row in lexicon["vocab_forms"]]


def _ids(rows) -> dict[str, None]:
    return dict.fromkeys(sorted({r[0] for r in rows}))


def _first_of(*queries) -> dict:
    """key -> the rest of the first row with that key (one value alone), over the queries in turn."""
    out: dict = {}
    for rows in queries:
        for key, *rest in rows:
            out.setdefault(key, rest[0] if len(rest) == 1 else tuple(rest))
    return out


def _grouped(rows) -> dict:
    out: dict = {}
    for number, entry_id, platform in rows:
        out.setdefault(number, []).append((entry_id, platform))
    return out


def _states(conn: sqlite3.Connection) -> dict[str, str]:
    """A state as a text writes it, without - and _ (CLOSEWAIT, ESTAB, SYNRECEIVED) -> its entry:
    by its name, ss's abbreviation or the RFC's spelling."""
    out: dict[str, str] = {}
    for entry_id, name, ss, rfc in conn.execute("select id, name, ss, rfc from states order by rowid"):
        for spelling in (name, ss, rfc):
            if spelling:
                out.setdefault(spelling.replace("_", "").replace("-", "") if spelling == name
                               else spelling.replace("-", ""), entry_id)
        if name == "ESTABLISHED":
            out.setdefault("ESTAB", entry_id)
    return out


def _sysctls(conn: sqlite3.Connection) -> dict[str, str]:
    """A knob as a text names it: whole (net.ipv4.tcp_mem) or by any tail after a dot (tcp_mem,
    ipv4.tcp_mem); where tails are shared, a net.ipv4 knob first."""
    candidates: dict[str, list[str]] = {}
    for entry_id, name in conn.execute("select id, name from sysctls order by rowid"):
        parts = name.split(".")
        for i in range(len(parts)):
            candidates.setdefault(".".join(parts[i:]), []).append(entry_id)
    return {word: next((e for e in ids if e.startswith("sysctl:net.ipv4.")), ids[0])
            for word, ids in candidates.items()}


def _counter_ranks(conn: sqlite3.Connection) -> dict[str, int]:
    """A counter -> its group's place in kinds.counter.PREFERRED: where groups print the same
    sentence or field (Udp and UdpLite), the likelier group answers."""
    from ..kinds.counter import PREFERRED, group_of

    ranks = {}
    for (entry_id,) in conn.execute("select id from counters order by rowid"):
        group = group_of(entry_id.split(":", 1)[1])
        ranks[entry_id] = PREFERRED.index(group) if group in PREFERRED else len(PREFERRED)
    return ranks


def _links(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """A knob (sysctl, socket option) -> the entries it links to or that link to it."""
    out: dict[str, list[str]] = {}
    for src, dst in conn.execute("select src, dst from links order by rowid"):
        for knob, other in ((src, dst), (dst, src)):
            if knob.split(":")[0] in ("sysctl", "sockopt") and other not in out.setdefault(knob, []):
                out[knob].append(other)
    return out


def _wording_source(sentence: str) -> str:
    from ..kinds.counter import wording_source

    return wording_source(sentence)
