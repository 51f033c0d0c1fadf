"""The kernel matrix: what differs between the kernels whose results were loaded.

Two kinds of difference: a fact with another value on another kernel (a knob's default, whether
it exists, an enum's number), as the notes declare it per kernel range or as checks read it; and
a scenario whose outcome differs (passed on one kernel, skipped on another because a knob or
feature is missing). Both web faces show the same answer.
"""

from __future__ import annotations

import json
import sqlite3

from .. import kernels as releases


def kernels(conn: sqlite3.Connection) -> list[dict]:
    """Every kernel with results, oldest first: {kernel, arch, runs, passed, skipped, failed}."""
    rows = conn.execute(
        "select kernel, arch, count(*) as runs, sum(status = 'passed') as passed, "
        "sum(status = 'skipped') as skipped, sum(status not in ('passed', 'skipped')) as failed "
        "from runs group by kernel, arch").fetchall()
    return sorted((dict(r) for r in rows), key=lambda r: (_order(r["kernel"]), r["arch"]))


def _order(kernel: str) -> tuple:
    try:
        return releases.release(kernel)
    except ValueError:
        return (1 << 30,)


def differing_facts(conn: sqlite3.Connection) -> list[dict]:
    """[{entry, name, kind, field, source, values: [{value, kernels}]}] for each fact whose value
    is not the same everywhere: declared per kernel range, or observed differently."""
    groups: dict[tuple, list[dict]] = {}
    for r in conn.execute("select f.entry_id, e.name, e.kind, f.field, f.value, f.kernels, f.source "
                          "from facts_by_kernel f join entries e on e.id = f.entry_id "
                          "order by e.kind, e.name, f.field, f.rowid"):
        key = (r["entry_id"], r["name"], r["kind"], r["field"], r["source"])
        groups.setdefault(key, []).append({"value": json.loads(r["value"]), "kernels": json.loads(r["kernels"])})
    out = []
    for (entry, name, kind, field, source), values in groups.items():
        if source == "observed" and len({json.dumps(v["value"]) for v in values}) < 2:
            continue  # every kernel read the same value: nothing differs
        out.append({"entry": entry, "name": name, "kind": kind, "field": field, "source": source,
                    "values": values})
    return out


def differing_scenarios(conn: sqlite3.Connection) -> list[dict]:
    """[{scenario, claim, outcomes: {kernel: {status, reason}}}] for scenarios whose status is not
    the same on every kernel that ran them."""
    by_scenario: dict[str, dict] = {}
    for r in conn.execute("select r.scenario, s.claim, r.kernel, r.status, r.reason from runs r "
                          "join scenarios s on s.name = r.scenario order by r.scenario"):
        item = by_scenario.setdefault(r["scenario"], {"scenario": r["scenario"], "claim": r["claim"],
                                                       "outcomes": {}})
        item["outcomes"][r["kernel"]] = {"status": r["status"], "reason": r["reason"]}
    return [s for s in by_scenario.values() if len({o["status"] for o in s["outcomes"].values()}) > 1]


def matrix(conn: sqlite3.Connection) -> dict:
    """The whole answer: the kernels, the facts and the scenarios that differ between them."""
    return {"kernels": kernels(conn), "facts": differing_facts(conn), "scenarios": differing_scenarios(conn)}
