"""records -> SQLite: compile the notes into data/tcpkb.db with sqlite-utils.

The build lints first and refuses to write anything if a note is wrong. It
writes a new file beside the target and renames it over the old one, so a
reader never sees half a database and a failed build leaves the previous
one byte for byte as it was.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path

import sqlite_utils

from . import __version__
from .explain import fragment_table
from .kinds import KINDS, LINUX_ABIS, slug
from .lint import Problem, lint
from .notes import Note, load, markdown
from .paths import content_hash


class BuildError(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) in the notes")
        self.problems = problems


def build(kb: Path, target: Path) -> dict[str, int]:
    """Lint kb/, then write the database to `target` atomically. Returns row counts."""
    problems = lint(kb)
    if problems:
        raise BuildError(problems)
    notes, _ = load(kb)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tcpkb-", suffix=".db", dir=target.parent)
    os.close(fd)
    try:
        db = sqlite_utils.Database(tmp)
        counts = _write(db, notes, kb)
        db.conn.commit()
        db.conn.execute("VACUUM")
        db.close()
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts


def _write(db: sqlite_utils.Database, notes: list[Note], kb: Path) -> dict[str, int]:
    md = markdown()
    notes = sorted(notes, key=lambda n: (list(KINDS).index(n.kind), _order(n)))
    _create_tables(db)
    rows: dict[str, list[dict]] = {t: [] for t in (
        "entries", "sections", "aliases", "messages", "links", "errno", "errno_numbers",
        "signals", "signal_numbers", "states", "transitions", "flags", "flag_combinations",
        "claims", "sysctls", "sockopts", "sockopt_numbers", "calls", "call_names", "call_errors",
        "search")}
    # Which calls return an errno is written once, in the call notes, and read both ways.
    calls_of = _calls_by_errno(notes)
    for note in notes:
        m = note.meta
        rows["entries"].append({
            "id": note.id, "kind": note.kind, "name": m["name"], "title": m["title"],
            "summary": m["summary"], "summary_zh": m["summary_zh"],
            "body_md": note.body, "body_html": md.render(note.body),
            "path": note.path.relative_to(kb).as_posix(),
        })
        for i, s in enumerate(note.sections):
            rows["sections"].append({"entry_id": note.id, "position": i, "slug": slug(s.title),
                                     "title": s.title, "markdown": s.markdown,
                                     "html": md.render(s.markdown)})
        rows["aliases"] += [{"entry_id": note.id, "alias": a} for a in m.get("aliases") or []]
        rows["messages"] += [{"entry_id": note.id, "text": t, "source": "note", "deadline": False}
                             for t in m.get("seen_as") or []]
        rows["messages"] += [{"entry_id": note.id, "text": t, "source": "note", "deadline": True}
                             for t in m.get("seen_as_deadline") or []]
        if note.kind == "errno":  # glibc's own strerror text is the message people see most
            rows["messages"].append({"entry_id": note.id, "text": m["message"], "source": "glibc",
                                     "deadline": False})
        rows["links"] += [{"src": note.id, "dst": d, "position": i}
                          for i, d in enumerate(m.get("related") or [])]
        _kind_rows(note, rows, calls_of)
        rows["search"].append({
            "id": note.id, "kind": note.kind, "name": m["name"],
            "aliases": " ".join(m.get("aliases") or []), "title": m["title"],
            "summary": m["summary"], "summary_zh": m["summary_zh"],
            "messages": "\n".join((m.get("seen_as") or []) + (m.get("seen_as_deadline") or [])),
            "body": note.body,
            # tcpkb is about sockets: the entries a socket program meets rank first
            "boost": 2.0 if m.get("socket") or note.kind in ("state", "flag", "sockopt", "call") else 1.0,
        })
    _other_messages(rows, {n.meta["name"]: n.id for n in notes if n.kind == "errno"})
    # explain's matching data, computed once here rather than on every pasted line
    for row, frags in zip(rows["messages"], fragment_table(
            [(m["entry_id"], m["text"]) for m in rows["messages"]])):
        row["fragments"] = json.dumps(frags, ensure_ascii=False)
    for table, batch in rows.items():
        if batch:
            db[table].insert_all(batch)
    db["search"].enable_fts(
        ["name", "aliases", "title", "summary", "summary_zh", "messages", "body"],
        fts_version="FTS5", tokenize="unicode61 remove_diacritics 2")
    counts = _write_proof(db, {n.id for n in notes})
    db["meta"].insert_all([
        {"key": "notes_hash", "value": content_hash(kb)},
        {"key": "tcpkb_version", "value": __version__},
        {"key": "built_at", "value": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
    ], pk="key")
    return {**{table: db[table].count for table in rows}, **counts}


def _write_proof(db: sqlite_utils.Database, entry_ids: set[str]) -> dict[str, int]:
    """The scenarios in the package, and every verification result file found."""
    import sys

    from .verify import all_scenarios, results

    registry = all_scenarios().values()
    scenarios = {s.name: {"name": s.name, "module": s.module, "level": s.level, "claim": s.claim,
                          "needs": " ".join(sorted(s.needs)), "timeout_s": s.timeout}
                 for s in registry}
    links = [{"scenario": s.name, "entry_id": e, "verdict": s.verdicts.get(e)}
             for s in registry for e in s.proves]
    runs, verifications, unknown = [], [], set()
    for r in results.load_all():
        scenarios.setdefault(r["scenario"], {"name": r["scenario"], "module": r.get("module"),
                                             "level": r["level"], "claim": r["claim"],
                                             "needs": None, "timeout_s": None})
        run_id = f"{r['scenario']}@{r['kernel']}-{r['arch']}"
        runs.append({"id": run_id, "scenario": r["scenario"], "kernel": r["kernel"], "arch": r["arch"],
                     "time": r["time"], "status": r["status"], "reason": r["reason"],
                     "duration_ms": r["duration_ms"], "file": r["file"],
                     "trace": json.dumps(r["trace"], ensure_ascii=False)})
        if r["level"] == "checked":
            proved = [(e["entry"], e["ok"], {k: e[k] for k in ("expected", "observed", "compared", "unchecked")})
                      for e in r.get("entries") or [] if e["ok"] is not None]
        elif r["status"] in ("passed", "failed"):
            proved = [(e, r["status"] == "passed", None) for e in r["proves"]]
        else:
            proved = []  # skipped or broken: the run is kept, it verifies nothing
        for entry, ok, detail in proved:
            if entry not in entry_ids:
                unknown.add(entry)
                continue
            verifications.append({"entry_id": entry, "scenario": r["scenario"], "run_id": run_id,
                                  "level": r["level"], "claim": r["claim"], "ok": ok,
                                  "kernel": r["kernel"], "arch": r["arch"], "time": r["time"],
                                  "detail": json.dumps(detail, ensure_ascii=False) if detail else None})
    if unknown:  # results from an older tcpkb may name entries that are gone
        print(f"tcpkb: verification results name {len(unknown)} unknown entries "
              f"(first: {sorted(unknown)[0]}); skipped", file=sys.stderr)
    links = [link for link in links if link["entry_id"] in entry_ids]
    for table, batch in (("scenarios", list(scenarios.values())), ("scenario_entries", links),
                         ("runs", runs), ("verifications", verifications)):
        if batch:
            db[table].insert_all(batch)
    return {t: db[t].count for t in ("scenarios", "scenario_entries", "runs", "verifications")}


def _other_messages(rows: dict[str, list[dict]], errnos: dict[str, str]) -> None:
    """data/messages/: glibc's translations and musl's texts as messages, libuv's Windows codes as
    numbers. Each file is generated by scripts/extract_messages.py from an installed package."""
    from .paths import message_files

    for path in message_files():
        with open(path, encoding="utf-8") as f:
            data = json.load(f)["messages"]
        name = Path(path).stem
        if name == "libuv-windows":
            rows["errno_numbers"] += [{"entry_id": errnos[e], "platform": "libuv", "name": "UV_" + e,
                                       "number": n} for e, n in data.items() if e in errnos]
        elif name == "glibc-l10n":
            rows["messages"] += [{"entry_id": errnos[e], "text": t, "source": f"glibc:{lang}",
                                  "deadline": False}
                                 for lang, table in data.items() for e, t in table.items() if e in errnos]
        else:  # another C library: {errno name: its message}
            rows["messages"] += [{"entry_id": errnos[e], "text": t, "source": name, "deadline": False}
                                 for e, t in data.items() if e in errnos]


def _order(note: Note):
    """Entries sort by their number where they have one, then by name."""
    m = note.meta
    number = m.get("number", m.get("bit"))
    return (number if isinstance(number, int) else 1 << 30, m.get("name", ""))


def _calls_by_errno(notes: list[Note]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for note in notes:
        if note.kind == "call":
            for e in note.meta.get("errors") or []:
                out.setdefault(f"errno:{e['errno']}", []).append(note.meta["name"])
    return {k: sorted(set(v)) for k, v in out.items()}


def _kind_rows(note: Note, rows: dict[str, list[dict]], calls_of: dict[str, list[str]]) -> None:
    m, id_ = note.meta, note.id
    if note.kind == "errno":
        rows["errno"].append({"id": id_, "name": m["name"], "number": m["number"],
                              "message": m["message"], "socket": bool(m.get("socket")),
                              "internal": bool(m.get("internal")),
                              "calls": json.dumps(calls_of.get(id_, []))})
        for platform, number in errno_numbers(m).items():
            if number is not None:
                name = ("WSA" + m["name"]) if platform == "windows" else m["name"]
                rows["errno_numbers"].append({"entry_id": id_, "platform": platform,
                                              "name": name, "number": number})
        for alias, numbers in (m.get("alias_numbers") or {}).items():
            for platform, number in numbers.items():
                rows["errno_numbers"].append({"entry_id": id_, "platform": platform,
                                              "name": alias, "number": number})
    elif note.kind == "signal":
        rows["signals"].append({"id": id_, "name": m["name"], "number": m["number"],
                                "action": m["action"], "standard": m["standard"],
                                "socket": bool(m.get("socket"))})
        for platform, number in abi_numbers(m).items():
            if number is not None:
                rows["signal_numbers"].append({"entry_id": id_, "platform": platform, "number": number})
    elif note.kind == "state":
        rows["states"].append({"id": id_, "name": m["name"], "number": m["number"], "hex": m["hex"],
                               "rfc": m["rfc"], "ss": m["ss"], "netstat": m["netstat"],
                               "side": m["side"]})
        for i, t in enumerate(m["transitions"]):
            rows["transitions"].append({"from_state": id_, "to_state": f"state:{t['to']}",
                                        "position": i, "event": t["event"], "send": t.get("send"),
                                        "side": t.get("side"), "rfc": bool(t.get("rfc"))})
    elif note.kind == "flag":
        rows["flags"].append({"id": id_, "name": m["name"], "bit": m["bit"],
                              "letter": m["letter"], "rfc": m["rfc"]})
        rows["flag_combinations"] += [{"entry_id": id_, "flags": c["flags"], "name": c["name"],
                                       "meaning": c["meaning"]} for c in m.get("combinations") or []]
    elif note.kind == "claim":
        rows["claims"].append({"id": id_, "name": m["name"], "verdict": m["verdict"]})
    elif note.kind == "sysctl":
        rows["sysctls"].append({"id": id_, "name": m["name"], "type": m["type"], "unit": m.get("unit"),
                                "range": m.get("range"), "default": m["default"],
                                "computed": m.get("computed"), "per_netns": m["per_netns"],
                                "inherited": bool(m.get("inherited")),
                                "noop_since": m.get("noop_since"), "removed_in": m.get("removed_in"),
                                "path": "/proc/sys/" + m["name"].replace(".", "/")})
    elif note.kind == "sockopt":
        rows["sockopts"].append({"id": id_, "name": m["name"], "level": m["level"],
                                 "number": m["number"], "value": m["value"], "access": m["access"],
                                 "default": m.get("default"), "default_from": m.get("default_from")})
        for platform, number in abi_numbers(m).items():
            if number is not None:
                rows["sockopt_numbers"].append({"entry_id": id_, "platform": platform, "number": number})
    elif note.kind == "call":
        rows["calls"].append({"id": id_, "name": m["name"], "synopsis": m["synopsis"], "man": m["man"]})
        rows["call_names"] += [{"name": n, "entry_id": id_} for n in [m["name"], *(m.get("aliases") or [])]]
        rows["call_errors"] += [{"call_id": id_, "errno_id": f"errno:{e['errno']}", "position": i,
                                 "condition": e["when"]} for i, e in enumerate(m.get("errors") or [])]


def errno_numbers(meta: dict) -> dict[str, int | None]:
    """Every platform's number for an errno: the Linux ABIs default to the generic one."""
    listed = meta.get("numbers") or {}
    out: dict[str, int | None] = {"linux": meta["number"]}
    for abi in LINUX_ABIS:
        out[abi] = listed.get(abi, meta["number"])
    for osname in ("darwin", "freebsd", "windows"):
        out[osname] = listed.get(osname)
    return out


def abi_numbers(meta: dict) -> dict[str, int | None]:
    """A signal's or option's number on every Linux ABI: listed where it differs, else the generic one."""
    listed = meta.get("numbers") or {}
    out: dict[str, int | None] = {"linux": meta["number"]}
    for abi in LINUX_ABIS:
        out[abi] = listed.get(abi, meta["number"])
    return out


def _create_tables(db: sqlite_utils.Database) -> None:
    """Explicit schemas: primary and foreign keys, and columns that exist even when empty."""
    db.conn.execute("PRAGMA foreign_keys = ON")
    db["entries"].create({"id": str, "kind": str, "name": str, "title": str, "summary": str,
                          "summary_zh": str, "body_md": str, "body_html": str, "path": str}, pk="id")
    db["sections"].create({"entry_id": str, "position": int, "slug": str, "title": str,
                           "markdown": str, "html": str}, pk=("entry_id", "slug"),
                          foreign_keys=[("entry_id", "entries", "id")])
    for table, cols, fk in (
        ("aliases", {"entry_id": str, "alias": str}, [("entry_id", "entries", "id")]),
        # seen_as texts, glibc messages, and translated or other-libc messages from data/messages/
        ("messages", {"entry_id": str, "text": str, "source": str, "deadline": bool, "fragments": str},
         [("entry_id", "entries", "id")]),
        ("links", {"src": str, "dst": str, "position": int},
         [("src", "entries", "id"), ("dst", "entries", "id")]),
        ("errno_numbers", {"entry_id": str, "platform": str, "name": str, "number": int},
         [("entry_id", "entries", "id")]),
        ("signal_numbers", {"entry_id": str, "platform": str, "number": int},
         [("entry_id", "entries", "id")]),
        ("transitions", {"from_state": str, "to_state": str, "position": int, "event": str,
                         "send": str, "side": str, "rfc": bool},
         [("from_state", "entries", "id"), ("to_state", "entries", "id")]),
        ("flag_combinations", {"entry_id": str, "flags": str, "name": str, "meaning": str},
         [("entry_id", "entries", "id")]),
        ("sockopt_numbers", {"entry_id": str, "platform": str, "number": int},
         [("entry_id", "entries", "id")]),
        ("call_names", {"name": str, "entry_id": str}, [("entry_id", "entries", "id")]),
        ("call_errors", {"call_id": str, "errno_id": str, "position": int, "condition": str},
         [("call_id", "entries", "id"), ("errno_id", "entries", "id")]),
    ):
        db[table].create(cols, foreign_keys=fk)
    for table, cols in (
        ("errno", {"id": str, "name": str, "number": int, "message": str, "socket": bool,
                   "internal": bool, "calls": str}),
        ("signals", {"id": str, "name": str, "number": int, "action": str, "standard": str,
                     "socket": bool}),
        ("states", {"id": str, "name": str, "number": int, "hex": str, "rfc": str, "ss": str,
                    "netstat": str, "side": str}),
        ("flags", {"id": str, "name": str, "bit": int, "letter": str, "rfc": str}),
        ("claims", {"id": str, "name": str, "verdict": str}),
        ("sysctls", {"id": str, "name": str, "type": str, "unit": str, "range": str, "default": str,
                     "computed": str, "per_netns": bool, "inherited": bool, "noop_since": str,
                     "removed_in": str,
                     "path": str}),
        ("sockopts", {"id": str, "name": str, "level": str, "number": int, "value": str,
                      "access": str, "default": str, "default_from": str}),
        ("calls", {"id": str, "name": str, "synopsis": str, "man": str}),
    ):
        db[table].create(cols, pk="id", foreign_keys=[("id", "entries", "id")])
    db["scenarios"].create({"name": str, "module": str, "level": str, "claim": str, "needs": str,
                            "timeout_s": float}, pk="name")
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
    db["search"].create({"id": str, "kind": str, "name": str, "aliases": str, "title": str,
                         "summary": str, "summary_zh": str, "messages": str, "body": str,
                         "boost": float}, pk="id")
    for table, column in (("aliases", "alias"), ("errno_numbers", "number"),
                          ("signal_numbers", "number"), ("aliases", "entry_id"),
                          ("messages", "entry_id"), ("links", "src"),
                          ("verifications", "entry_id"), ("scenario_entries", "entry_id"),
                          ("call_errors", "errno_id"), ("call_names", "name")):
        db[table].create_index([column])
