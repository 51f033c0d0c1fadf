"""A reading (doctor.sources, doctor.dump) summed up: sockets per state and per local port,
listeners with their accept queues, orphans, counters, knobs off their default."""

from __future__ import annotations

import sqlite3

from .sources import PORT_RANGE


def state_table(conn: sqlite3.Connection) -> dict[int, str]:
    """/proc/net/tcp `st` number -> the knowledge base's state id (8 -> state:CLOSE_WAIT)."""
    return {r[0]: r[1] for r in conn.execute("select number, id from states")}


def ss_states(conn: sqlite3.Connection) -> dict[str, int]:
    """ss's spelling of a state -> its /proc/net/tcp number (CLOSE-WAIT -> 8)."""
    return {r[0]: r[1] for r in conn.execute(
        "select ss, number from states where ss is not null and ss != ''")}


def knob_names(conn: sqlite3.Connection) -> list[str]:
    from ..machine.live import knob_names as names

    return names(conn)


def port_range(sysctls: dict) -> dict | None:
    value = (sysctls.get(PORT_RANGE) or [None])[0]
    try:
        low, high = (int(x) for x in value.split())
    except (AttributeError, ValueError):
        return None
    return {"low": low, "high": high, "size": high - low + 1}


def summarize(reading: dict, conn: sqlite3.Connection, knob_entries: list[dict] | None = None) -> dict:
    """The scan doctor's rules read: see findings.findings(). `knob_entries`
    (machine.live.knob_entries) saves looking the knobs up again for every namespace."""
    from ..machine.live import diff

    names = state_table(conn)
    knobs = diff(conn, {n: tuple(v) for n, v in reading["sysctls"].items()}, knob_entries)["differs"]
    who = reading["owners"]
    states: dict[str, int] = {}
    by_port: dict[int, dict] = {}
    listeners = []
    detached: dict[str, int] = {}
    for r in reading["rows"]:
        sid = names.get(r["st"], f"st:{r['st']:02X}")
        states[sid] = states.get(sid, 0) + 1
        owner = who.get(r["inode"])
        if not r["inode"] and sid != "state:LISTEN":  # no descriptor: TIME_WAIT, orphans, requests
            detached[sid] = detached.get(sid, 0) + 1
        if sid == "state:LISTEN":
            listeners.append({"address": r["local"][0], "port": r["local"][1],
                              "accept_queue": r["rx_queue"], "owner": owner})
            continue
        port = by_port.setdefault(r["local"][1], {"port": r["local"][1], "total": 0, "states": {},
                                                  "owners": []})
        port["total"] += 1
        port["states"][sid] = port["states"].get(sid, 0) + 1
        if owner and owner not in port["owners"]:
            port["owners"].append(owner)
    ports = sorted(by_port.values(), key=lambda p: (-p["total"], p["port"]))
    listeners.sort(key=lambda x: (-x["accept_queue"], x["port"], x["address"]))
    return {"states": dict(sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))),
            "total": len(reading["rows"]), "ports": ports, "listeners": listeners,
            "detached": detached, "counters": reading["counters"], "knobs": knobs,
            "port_range": port_range(reading["sysctls"]), "origin": reading.get("origin", {})}
