"""The proof's records -> rows: scenarios, which entries they prove, runs, verifications, and the
values checks observed on each kernel (facts_by_kernel).

The records are handed in (tcpkb.verify.proof_records makes them from the scenario modules and
the results files), so the build never imports the proof engine.
"""

from __future__ import annotations

import json
import sys
from typing import NamedTuple

import sqlite_utils

from ..kinds import KINDS


class Proof(NamedTuple):
    catalog: list[dict]   # {name, module, level, claim, needs, timeout_s, proves, verdicts, source?}
    results: list[dict]   # what results.load_all() reads: one per scenario per kernel


def write_proof(db: sqlite_utils.Database, proof: Proof, kind_of: dict[str, str]) -> dict[str, int]:
    columns = ("name", "module", "level", "claim", "needs", "timeout_s", "source")
    scenarios = {s["name"]: {k: s.get(k) for k in columns} for s in proof.catalog}
    links = [{"scenario": s["name"], "entry_id": e, "verdict": s["verdicts"].get(e)}
             for s in proof.catalog for e in s["proves"] if e in kind_of]
    runs, verifications, unknown = [], [], set()
    for r in proof.results:
        scenarios.setdefault(r["scenario"], {"name": r["scenario"], "module": r.get("module"),
                                             "level": r["level"], "claim": r["claim"],
                                             "needs": None, "timeout_s": None, "source": None})
        run = _run_row(r)
        runs.append(run)
        for entry, ok, detail in _proved(r):
            if entry not in kind_of:
                unknown.add(entry)
                continue
            verifications.append({"entry_id": entry, "scenario": r["scenario"], "run_id": run["id"],
                                  "level": r["level"], "claim": r["claim"], "ok": ok,
                                  "kernel": r["kernel"], "arch": r["arch"], "time": r["time"],
                                  "detail": json.dumps(detail, ensure_ascii=False) if detail else None})
    if unknown:  # results from an older tcpkb may name entries that are gone
        print(f"tcpkb: verification results name {len(unknown)} unknown entries "
              f"(first: {sorted(unknown)[0]}); skipped", file=sys.stderr)
    observed = observed_facts(proof.results, kind_of)
    for table, batch in (("scenarios", list(scenarios.values())), ("scenario_entries", links),
                         ("runs", runs), ("verifications", verifications), ("facts_by_kernel", observed)):
        if batch:
            db[table].insert_all(batch)
    return {t: db[t].count for t in ("scenarios", "scenario_entries", "runs", "verifications")}


def _run_row(r: dict) -> dict:
    return {"id": f"{r['scenario']}@{r['kernel']}-{r['arch']}", "scenario": r["scenario"],
            "kernel": r["kernel"], "arch": r["arch"], "time": r["time"], "status": r["status"],
            "reason": r["reason"], "duration_ms": r["duration_ms"], "file": r["file"],
            "trace": json.dumps(r["trace"], ensure_ascii=False)}


def _proved(r: dict) -> list[tuple[str, bool, dict | None]]:
    """(entry, ok, what a check compared) for each entry a result verifies."""
    if r["level"] == "checked":
        return [(e["entry"], e["ok"], {k: e[k] for k in ("expected", "observed", "compared", "unchecked")})
                for e in r.get("entries") or [] if e["ok"] is not None]
    if r["status"] in ("passed", "failed"):
        return [(e, r["status"] == "passed", None) for e in r["proves"]]
    return []  # skipped or broken: the run is kept, it verifies nothing


def observed_facts(results: list[dict], kind_of: dict[str, str]) -> list[dict]:
    """What checks read on each kernel for the fields a kind keeps per kernel (a knob's default,
    an RST reason's number): one row per entry, field and value, with the kernels that showed it."""
    seen: dict[tuple, list[str]] = {}
    for r in results:
        for e in r.get("entries") or [] if r["level"] == "checked" else []:
            kind = KINDS.get(kind_of.get(e["entry"], ""))
            for field in kind.kernel_facts if kind else ():
                if field in (e.get("observed") or {}):
                    key = (e["entry"], field, json.dumps(e["observed"][field]))
                    seen.setdefault(key, []).append(r["kernel"])
    return [{"entry_id": entry, "field": field, "value": value,
             "kernels": json.dumps(sorted(set(kernels))), "source": "observed"}
            for (entry, field, value), kernels in seen.items()]
