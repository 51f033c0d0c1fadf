"""Checks: every entry's numbers, names and messages against the live libc, kernel and headers.

A check compares facts, not behaviour: it returns one verdict per entry with
what the note says and what this machine says. Headers of other ABIs (the
linux-libc-dev-*-cross packages) and MinGW's winerror.h are used when they are
installed; what could not be compared is named, never counted as agreement.
"""

from __future__ import annotations

import errno as errno_mod
import os
import signal as signal_mod
import socket

from ... import lookup, sources
from .. import check
from ..lab import TCP_INFO, proc_tcp


def _entries(db: str, kind: str) -> list[dict]:
    conn = lookup.connect(db)
    try:
        return [lookup.entry(conn, r["id"], full=False)
                for r in conn.execute("select id from entries where kind = ? order by id", (kind,))]
    finally:
        conn.close()


def _optional(fn, *args):
    try:
        return fn(*args) or None
    except OSError:
        return None


def _verdict(entry: str, expected: dict, observed: dict, unchecked: list[str]) -> dict:
    compared = [k for k in expected if k in observed]
    # Nothing comparable here (no headers for it, no live socket) is not agreement.
    ok = all(expected[k] == observed[k] for k in compared) if compared else None
    return {"entry": entry, "ok": ok, "expected": expected, "observed": observed,
            "compared": compared, "unchecked": unchecked}


@check(kind="errno", claim="Each errno entry's number and message are the running glibc's, and its numbers on "
             "other Linux ABIs and on Windows are those of their headers.")
def errno_numbers_match_libc_and_headers(lab, db: str) -> list[dict]:
    abis = {abi: _optional(sources.linux_errnos, abi) for abi in sources.CROSS_ROOTS}
    native = _optional(sources.linux_errnos, "generic") or {}
    wsa = _optional(sources.windows_wsa)
    out = []
    for e in _entries(db, "errno"):
        name, number = e["name"], e["number"]
        expected, observed, unchecked = {"number": number, "message": e["message"]}, {}, []
        if e["internal"]:
            # Not exported to user space: glibc has neither a name nor a message for it.
            observed["number"] = number if not hasattr(errno_mod, name) else getattr(errno_mod, name)
            observed["message"] = os.strerror(number)
        else:  # Python's errno module is the libc's table; the native header knows newer codes
            observed["number"] = getattr(errno_mod, name, native.get(name))
            observed["message"] = os.strerror(number)
        for abi, table in abis.items():
            key = f"numbers.{abi}"
            if table is None:
                unchecked.append(key)
            elif not e["internal"] and name in table:
                expected[key], observed[key] = e["numbers"].get(abi), table[name]
        if e["numbers"].get("windows") is not None:
            if wsa is None:
                unchecked.append("numbers.windows")
            else:
                expected["numbers.windows"] = e["numbers"]["windows"]
                observed["numbers.windows"] = next(
                    (wsa[w] for w in ["WSA" + n for n in [name, *e["aliases"]]] if w in wsa), None)
        unchecked += [f"numbers.{p}" for p in ("darwin", "freebsd") if e["numbers"].get(p) is not None]
        out.append(_verdict(e["id"], expected, observed, unchecked))
    return out


@check(kind="signal", claim="Each signal entry's number is the one Python's signal module (the running glibc) "
             "gives, and its numbers on other Linux ABIs are those of their headers.")
def signal_numbers_match_libc_and_headers(lab, db: str) -> list[dict]:
    abis = {abi: _optional(sources.linux_signals, abi) for abi in sources.CROSS_ROOTS}
    man = _optional(sources.signal_man_table)
    out = []
    for e in _entries(db, "signal"):
        name = e["name"]
        expected, observed, unchecked = {"number": e["number"]}, {}, []
        live = getattr(signal_mod, name, None)
        observed["number"] = int(live) if live is not None else None
        for abi, table in abis.items():
            if table is None:
                unchecked.append(f"numbers.{abi}")
            elif name in table and name not in ("SIGRTMIN", "SIGRTMAX"):  # glibc moves those
                expected[f"numbers.{abi}"], observed[f"numbers.{abi}"] = e["numbers"].get(abi), table[name]
        if man and name in man:
            expected["action"], observed["action"] = e["action"], man[name].get("action")
        else:
            unchecked.append("action")
        out.append(_verdict(e["id"], expected, observed, unchecked))
    return out


@check(kind="state", claim="Each TCP state's number is what TCP_INFO reports for a live socket in that state "
             "and what the libc headers define; its hex is the st column of /proc/net/tcp.",
       needs=("netns",))
def state_numbers_match_tcp_info(lab, db: str) -> list[dict]:
    live = _live_states(lab)
    headers = _optional(sources.tcp_states) or {}
    out = []
    for e in _entries(db, "state"):
        name = e["name"]
        expected = {"number": e["number"], "hex": e["hex"]}
        observed, unchecked = {}, []
        if name in live:
            observed["number"] = live[name]
        elif name in headers:
            observed["number"] = headers[name]
        else:
            unchecked.append("number")
        if "number" in observed:
            observed["hex"] = f"{observed['number']:02X}"
        out.append(_verdict(e["id"], expected, observed, unchecked))
    return out


def _live_states(lab) -> dict[str, int]:
    """Sockets put into states by what they did, and the number TCP_INFO gives each."""
    def info(sock) -> int:
        return sock.sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8)[0]

    found = {}
    fresh = lab.socket("fresh")
    found["CLOSE"] = info(fresh)
    lst, client, server = lab.connected_pair()
    found["LISTEN"], found["ESTABLISHED"] = info(lst), info(client)
    client.shutdown(socket.SHUT_WR).value
    lab.wait_for(lambda: info(server) != 1 and info(client) != 4, 1.0, "the FIN and its ACK")
    found["CLOSE_WAIT"], found["FIN_WAIT2"] = info(server), info(client)
    server.close()
    lab.wait_for(lambda: client.state() == "TIME_WAIT", 1.0, "the client's TIME_WAIT")
    # TCP_INFO cannot see TIME_WAIT (a separate kernel object): /proc/net/tcp's st column can.
    found["TIME_WAIT"] = next(r["st"] for r in proc_tcp() if r["local"] == tuple(client.local)
                              and r["remote"] == tuple(client.remote))
    return found


@check(kind="flag", claim="Each TCP flag's bit is the TCP_FLAG_* value of the kernel's uapi linux/tcp.h.")
def flag_bits_match_headers(lab, db: str) -> list[dict]:
    bits = _optional(sources.tcp_flag_bits) or {}
    out = []
    for e in _entries(db, "flag"):
        observed = {"bit": bits[e["name"]]} if e["name"] in bits else {}
        out.append(_verdict(e["id"], {"bit": e["bit"]}, observed, [] if observed else ["bit"]))
    return out
