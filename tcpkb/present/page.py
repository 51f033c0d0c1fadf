"""What the shared entry article and kind table need beyond an entry's JSON, for both web faces.

The faces differ only in their frame and their URLs: each passes its own `entry_url`, and
gets the same sections, drawings and linked-entry titles back.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3

from ..kinds import KINDS
from ..kinds.base import kernels_text
from ..query import lookup
from . import diagrams

LADDERS_PER_ENTRY = 3  # packet ladders drawn on an entry page; the rest are linked
PRE = re.compile(r"<pre(?=[\s>])")


def template_dir() -> str:
    """The templates both faces render: the entry article, the kind table, their macros."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


# what a reader calls each platform an errno number is read on (kinds/errno.py's keys)
PLATFORM_NAMES = {"linux": "Linux", "alpha": "Linux on Alpha", "mips": "Linux on MIPS",
                  "sparc": "Linux on SPARC", "parisc": "Linux on PA-RISC", "powerpc": "Linux on PowerPC",
                  "darwin": "macOS", "freebsd": "FreeBSD", "windows": "Windows", "libuv": "libuv"}


def platform_names(platforms: list[str]) -> str:
    """['darwin', 'freebsd', 'sparc'] -> 'macOS, FreeBSD and Linux on SPARC'."""
    order = list(PLATFORM_NAMES)  # other operating systems first: where a pasted number comes from
    first = sorted(platforms, key=lambda p: (p not in ("darwin", "freebsd", "windows"),
                                             order.index(p) if p in order else len(order)))
    names = [PLATFORM_NAMES.get(p, p) for p in first]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def template_globals() -> dict:
    """Names the shared templates call, set in each face's Jinja environment."""
    return {"kernels_text": kernels_text, "platform_names": platform_names}


def titles(conn: sqlite3.Connection, ids) -> dict[str, dict]:
    """{id: {id, kind, name, title, verdict}} for the entries a page links to."""
    ids = sorted({i for i in ids if i})
    out = {}
    for i in range(0, len(ids), 500):  # SQLite's bound on variables in one statement
        chunk = ids[i:i + 500]
        rows = conn.execute("select e.id, e.kind, e.name, e.title, c.verdict from entries e "
                            "left join claims c on c.id = e.id where e.id in "
                            f"({','.join('?' * len(chunk))})", chunk)
        out.update({r["id"]: dict(r) for r in rows})
    return out


def linked_ids(e: dict, incoming: list[dict]) -> set[str]:
    ids = set(e.get("related") or []) | set(e.get("linked_from") or [])
    ids |= {t["from_state"] for t in incoming}
    for f in e.get("facts") or []:
        ids |= {p["id"] for p in f["value"] if isinstance(p, dict)}
    return ids


def ladder(conn: sqlite3.Connection, scenario: str, cache: dict) -> dict | None:
    """The newest run of a scenario drawn as a ladder and a timeline, once per scenario."""
    if scenario not in cache:
        run = conn.execute("select scenario, kernel, arch, time, status, duration_ms, trace from runs "
                           "where scenario = ? order by time desc, kernel limit 1", (scenario,)).fetchone()
        trace = json.loads(run["trace"]) if run and run["trace"] else None
        if not trace or not (trace.get("packets") or trace.get("steps")):
            cache[scenario] = None
        else:
            caption = f"{scenario} on Linux {run['kernel']} {run['arch']}"
            cache[scenario] = {"name": scenario, "svg": diagrams.ladder(trace, caption),
                               "timeline": diagrams.timeline(trace), "packets": len(trace.get("packets") or []),
                               "run": {k: run[k] for k in ("kernel", "arch", "time", "status", "duration_ms")}}
    return cache[scenario]


def article(conn: sqlite3.Connection, e: dict, entry_url, cache: dict | None = None,
            transitions: list[dict] | None = None) -> dict:
    """The shared article's context for entry `e` (lookup.entry's JSON): its sections as HTML,
    the state machine around a state, the ladders of the scenarios that prove it, and the
    titles of the entries it links to."""
    cache = {} if cache is None else cache
    sections = [{**dict(r), "html": keyboard_scrollable(r["html"])} for r in conn.execute(
        "select slug, title, html from sections where entry_id = ? order by position", (e["id"],))]
    drawn = [ladder(conn, name, cache) for name in lookup.proving_scenarios(conn, e["id"])]
    shown = [d for d in drawn if d and d["packets"]]
    diagram, incoming = None, []
    if e["kind"] == "state":
        transitions = transitions if transitions is not None else all_transitions(conn)
        diagram = diagrams.state_diagram(transitions, e["id"], entry_url)
        incoming = [t for t in transitions if t["to_state"] == e["id"] and t["from_state"] != e["id"]]
    return {"e": e, "sections": sections, "diagram": diagram, "incoming": incoming,
            "chinese_messages": chinese_messages(conn, e["id"]),
            "ladders": shown[:LADDERS_PER_ENTRY], "more_ladders": [d["name"] for d in shown[LADDERS_PER_ENTRY:]],
            "entries": titles(conn, linked_ids(e, incoming))}


CHINESE = {"glibc:zh_CN": "zh-CN", "glibc:zh_TW": "zh-TW"}  # message source -> its language tag


def chinese_messages(conn: sqlite3.Connection, entry_id: str) -> list[dict]:
    """glibc's Chinese translations of an entry's message: [{lang, text}], simplified first."""
    rows = conn.execute(f"select source, text from messages where entry_id = ? and source in "
                        f"({','.join('?' * len(CHINESE))}) order by source", (entry_id, *CHINESE))
    return [{"lang": CHINESE[r["source"]], "text": r["text"]} for r in rows]


def keyboard_scrollable(html: str) -> str:
    """A note's code blocks take the keyboard's focus: a long line scrolls inside its block,
    and a reader without a mouse scrolls it with the arrow keys."""
    return PRE.sub('<pre tabindex="0"', html)


def all_transitions(conn: sqlite3.Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(
        "select from_state, to_state, position, cause, event, send, side, rfc from transitions"
        " order by from_state, position")]


def inlinks(conn: sqlite3.Connection) -> dict[str, int]:
    """{id: how many notes name the entry as related}: how central an entry is to the rest."""
    return dict(conn.execute("select dst, count(*) from links group by dst").fetchall())


def kind_rows(kind: str, entries: list[dict], linked: dict[str, int] | None = None) -> list[tuple[dict, list]]:
    """A kind's list page rows: (entry, its list columns), in the kind's own order. A kind whose
    notes say which entries socket programs meet (errno, signal: the `socket` field) lists
    those first, the ones most notes link to at the top (ECONNRESET, ETIMEDOUT, ECONNREFUSED
    before EPERM, which a socket meets too, less often); the others follow in the kind's order."""
    k = KINDS[kind]
    ordered = sorted(entries, key=k.sort_key)
    if any("socket" in e for e in ordered):
        linked = linked or {}
        # stable sort: equal counts, and the other group, keep the kind's own order
        ordered.sort(key=lambda e: (not e.get("socket"), -linked.get(e["id"], 0) if e.get("socket") else 0))
    return [(e, k.list_columns(e)) for e in ordered]


def scenario_source(source: str | None):
    """A scenario's Python source as both faces show it: highlighted like the notes' code, in a
    block the keyboard can scroll."""
    if not source:
        return None
    from markupsafe import Markup

    from ..notes import highlight

    return Markup(keyboard_scrollable(highlight(source, "python", "")))
