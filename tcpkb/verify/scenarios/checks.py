"""Checks: every entry's numbers, names and messages against the live libc, kernel and headers.

A check compares facts, not behaviour: it returns one verdict per entry with
what the note says and what this machine says. Headers of other ABIs (the
linux-libc-dev-*-cross packages) and MinGW's winerror.h are used when they are
installed; what could not be compared is named, never counted as agreement.
"""

from __future__ import annotations

import errno as errno_mod
import os
import platform
import re
import signal as signal_mod
import socket

from ... import sources
from ...kinds.base import exists_on, value_on
from ...query import lookup
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
        if "number" in observed and e["hex"] is not None:  # null: /proc/net/tcp never prints it
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


# -- knobs, options, calls ----------------------------------------------------------

def _probe_namespace(names: list[str], ranges: dict[str, tuple[int, int]]) -> dict:
    """In a fresh namespace: which knobs exist, their mode and value, and what writes succeed."""
    from ...machine.netns import sysctl_path

    out = {}
    for name in names:
        path = sysctl_path(name)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            value = " ".join(f.read().split())
        out[name] = {"value": value, "writable": bool(os.stat(path).st_mode & 0o222), "writes": {}}
    for name, (low, high) in ranges.items():  # after every read: writes can move other knobs
        if name not in out or not out[name]["writable"]:
            continue
        path = sysctl_path(name)
        for value in (low - 1, low, high, high + 1):
            try:
                with open(path, "w") as f:
                    f.write(str(value))
                out[name]["writes"][str(value)] = True
            except OSError:
                out[name]["writes"][str(value)] = False
        with open(path, "w") as f:
            f.write(out[name]["value"])
    return out


def _range(text: str | None) -> tuple[int, int] | None:
    if text and (m := re.fullmatch(r"(-?\d+)\.\.(-?\d+)", text)):
        return int(m.group(1)), int(m.group(2))
    return None


@check(kind="sysctl", claim="Each sysctl entry's knob exists on this kernel exactly when the note says "
             "so for this kernel (since, removed_in, absent_on); it is per network namespace exactly "
             "when the note says so; a fresh namespace (or the host, for a machine-wide knob) shows "
             "the note's default for this kernel; and writes inside a namespace accept the note's "
             "range and refuse one past either end.")
def sysctl_defaults_and_ranges_match_a_fresh_namespace(lab, db: str) -> list[dict]:
    from ...machine.netns import IsolationError, in_new_namespace

    kernel = platform.release()
    entries = _entries(db, "sysctl")
    # a vector's range holds for each of its numbers: one number alone is not a valid write
    ranges = {e["name"]: r for e in entries if (r := _range(value_on(e, "range", kernel)))
              and value_on(e, "per_netns", kernel) and e["type"] != "vector"}
    try:
        fresh = in_new_namespace(lambda: _probe_namespace([e["name"] for e in entries], ranges))
    except IsolationError:
        fresh = None
    return [_sysctl_verdict(e, kernel, fresh, ranges) for e in entries]


def _sysctl_verdict(e: dict, kernel: str, fresh: dict | None, ranges: dict) -> dict:
    """One knob against this kernel: the note's values for this kernel, what the host and a
    fresh namespace show."""
    from ...machine.netns import read_sysctl, sysctl_path

    name, path = e["name"], sysctl_path(e["name"])
    on_host = os.path.exists(path)
    expected, observed, unchecked = {"exists": exists_on(e, kernel)}, {"exists": on_host}, []
    if not on_host and e.get("module") and not os.path.isdir(f"/sys/module/{e['module']}"):
        # an environment fact: the module that provides the file is not loaded on this machine
        return _verdict(e["id"], {}, {}, [f"exists (module {e['module']} is not loaded)"])
    if not on_host or fresh is None:
        unchecked += [] if not on_host else ["per_netns", "default", "range"]
        return _verdict(e["id"], expected, observed, unchecked)
    child = fresh.get(name)
    per_netns, default = value_on(e, "per_netns", kernel), value_on(e, "default", kernel)
    # A machine-wide knob is absent from a child namespace, or shown there read-only;
    # a file read-only everywhere says nothing about its scope.
    if not os.stat(path).st_mode & 0o222:
        unchecked.append("per_netns (read-only)")
    elif per_netns is None:
        unchecked.append("per_netns (the note gives none for this kernel)")
    else:
        expected["per_netns"] = per_netns
        observed["per_netns"] = child is not None and child["writable"]
    if default is not None:
        expected["default"] = default
        if per_netns and child is not None:
            observed["default"] = child["value"]
        else:  # the host's value: the default only if nobody changed it, so say which was read
            observed["default"] = read_sysctl(name)
            unchecked.append("default read on the host")
    elif e["default"] is not None or (e.get("by_kernel") or {}).get("default"):
        unchecked.append("default (the note gives none for this kernel)")
    if name in ranges and child is not None and child["writes"]:
        low, high = ranges[name]
        w = child["writes"]
        expected["range"] = value_on(e, "range", kernel)
        observed["range"] = expected["range"] if (w[str(low)] and w[str(high)] and not w[str(low - 1)]
                                                  and not w[str(high + 1)]) else \
            ", ".join(f"{v} {'accepted' if ok else 'refused'}" for v, ok in w.items())
    elif value_on(e, "range", kernel):
        unchecked.append("range")
    return _verdict(e["id"], expected, observed, unchecked)


_STRUCTS = {"SO_LINGER": "ii", "SO_RCVTIMEO": "ll", "SO_SNDTIMEO": "ll"}
_STRINGS = {"TCP_CONGESTION", "SO_BINDTODEVICE"}
_LEVELS = {"SOL_SOCKET": socket.SOL_SOCKET, "IPPROTO_TCP": socket.IPPROTO_TCP,
           "IPPROTO_IP": socket.IPPROTO_IP, "IPPROTO_IPV6": socket.IPPROTO_IPV6}


def _getsockopt_default(name: str, level: str, number: int) -> str | None:
    """What getsockopt gives on a fresh TCP socket, written as the notes write defaults."""
    import struct

    family = socket.AF_INET6 if level == "IPPROTO_IPV6" else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if name in _STRUCTS:
            fmt = _STRUCTS[name]
            return "{" + ", ".join(map(str, struct.unpack(fmt, s.getsockopt(
                _LEVELS[level], number, struct.calcsize(fmt))))) + "}"
        if name in _STRINGS:
            return s.getsockopt(_LEVELS[level], number, 64).split(b"\0")[0].decode()
        return str(s.getsockopt(_LEVELS[level], number))


@check(kind="sockopt", claim="Each socket option's and flag's number is the one the kernel and glibc "
             "headers define, on x86-64 and on the other Linux ABIs, and getsockopt on a fresh TCP "
             "socket returns the note's default.")
def sockopt_numbers_and_defaults_match_headers_and_a_fresh_socket(lab, db: str) -> list[dict]:
    generic = _optional(sources.socket_options) or {}
    abis = {abi: _optional(sources.socket_options, abi) for abi in sources.CROSS_ROOTS}
    out = []
    for e in _entries(db, "sockopt"):
        name = e["name"]
        expected, observed, unchecked = {"number": e["number"]}, {}, []
        if name in generic:
            observed["number"] = generic[name]
        elif hasattr(socket, name):  # no header here: Python's socket module has the libc value
            observed["number"] = getattr(socket, name)
        else:
            unchecked.append("number")
        if e["level"] == "SOL_SOCKET":
            for abi, table in abis.items():
                if table is None:
                    unchecked.append(f"numbers.{abi}")
                elif name in table:
                    expected[f"numbers.{abi}"], observed[f"numbers.{abi}"] = e["numbers"][abi], table[name]
        default = value_on(e, "default", platform.release())
        if default is None and e["default_from"] and e["level"] != "flags":
            # a default the machine decides (a build's congestion control): the knob's value now
            from ...machine.netns import read_sysctl

            default = read_sysctl(e["default_from"].split(":", 1)[1])
            unchecked.append(f"default: from {e['default_from']} on this machine")
        if default is not None and e["level"] != "flags":
            expected["default"] = default
            try:
                observed["default"] = _getsockopt_default(name, e["level"], e["number"])
            except OSError as err:
                observed["default"] = f"getsockopt failed: {errno_mod.errorcode.get(err.errno, err)}"
        out.append(_verdict(e["id"], expected, observed, unchecked))
    return out


@check(kind="call", claim="Each system call entry, and every variant it covers, is a function the "
             "running C library exports or a system call of the kernel's table (as strace names it), "
             "with a manual page installed for the entry.")
def calls_exist_in_libc_and_man_pages(lab, db: str) -> list[dict]:
    import ctypes

    libc = ctypes.CDLL(None)
    syscalls = sources.syscall_names()
    out = []
    for e in _entries(db, "call"):
        names = [e["name"], *e["aliases"]]
        expected = {"exist": names, "man": e["man"]}
        observed = {"exist": [n for n in names if hasattr(libc, n) or n in syscalls]}
        page, _, section = e["man"].rstrip(")").partition("(")
        man_dir = f"/usr/share/man/man{section[:1]}"
        unchecked = []
        if os.path.isdir(man_dir):
            found = any(os.path.exists(f"{man_dir}/{page}.{section}{ext}") for ext in ("", ".gz"))
            observed["man"] = e["man"] if found else f"no {page}.{section} in {man_dir}"
        else:
            unchecked.append("man")
        out.append(_verdict(e["id"], expected, observed, unchecked))
    return out
