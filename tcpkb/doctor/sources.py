"""What doctor reads, from this network namespace or from another one.

A *reading* is plain, JSON-able data, so that a child process that has joined another
namespace can send it back over a pipe:

    rows      every row of /proc/net/tcp and tcp6 (machine.proc.tcp_sockets)
    owners    {socket inode: {"pid", "comm"}}
    counters  the COUNTERS present, {name: value}
    sysctls   {name: [value, why it could not be read]} for the knobs asked for
    origin    {"sockets" | "owners" | "counters" | "sysctls": [the files that part came from]}

A saved dump gives the same shape (doctor.dump), so one scan reads all three.
"""

from __future__ import annotations

import os

from ..machine.proc import mib_counters, parse_mib, process_name

# Counters kept, as /proc/net/netstat and /proc/net/snmp name them with their line prefix.
COUNTERS = ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPTimeWaitOverflow",
            "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnTimeout", "TcpExtTCPAbortOnData",
            "TcpRetransSegs", "TcpExtSyncookiesSent", "TcpExtTCPReqQFullDrop")
PORT_RANGE = "net.ipv4.ip_local_port_range"
PROC_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
PROC_COUNTERS = ("/proc/net/netstat", "/proc/net/snmp")


def sockets() -> list[dict]:
    """Every TCP socket of this namespace (see proc.tcp_sockets)."""
    from ..machine.proc import tcp_sockets

    return tcp_sockets()


def parse_counters(text: str) -> dict[str, int]:
    """The COUNTERS in /proc/net/netstat or snmp text."""
    return {name: value for name, value in parse_mib(text).items() if name in COUNTERS}


def in_order(found: dict[str, int]) -> dict[str, int]:
    return {k: found[k] for k in COUNTERS if k in found}


def counters() -> dict[str, int]:
    """The COUNTERS, since boot (or since this namespace was made); a missing one is left out."""
    return in_order(mib_counters())


def read_here(knobs: list[str]) -> dict:
    """The sockets, counters and the given knobs of the namespace this process is in."""
    from ..machine.live import read

    names = list(dict.fromkeys([*knobs, PORT_RANGE]))
    return {"rows": sockets(), "owners": {}, "counters": counters(),
            "sysctls": {n: list(read(n)) for n in names},
            "origin": {"sockets": list(PROC_TCP), "counters": list(PROC_COUNTERS),
                       "sysctls": ["/proc/sys/net"], "owners": ["/proc/*/fd"]}}


def owners(inodes: set[int], pids: list[int] | None = None) -> dict[int, dict]:
    """Socket inode -> {"pid", "comm"} from /proc/<pid>/fd links; what cannot be read is skipped.

    `pids` narrows the search to the processes of one namespace (every process otherwise).
    """
    found: dict[int, dict] = {}
    if not inodes:
        return found
    if pids is None:
        try:
            pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
        except OSError:
            return found
    for pid in pids:
        mine = [i for i in _socket_inodes(pid) if i in inodes and i not in found]
        if mine:
            comm = process_name(pid)
            for inode in mine:
                found[inode] = {"pid": pid, "comm": comm}
        if len(found) == len(inodes):
            break
    return found


def _socket_inodes(pid: int) -> list[int]:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return []
    out = []
    for fd in fds:
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.append(int(link[8:-1]))
    return out


def live(knobs: list[str]) -> dict:
    """The reading of this process's own namespace, with the owners of its sockets."""
    reading = read_here(knobs)
    reading["owners"] = owners({r["inode"] for r in reading["rows"] if r["inode"]})
    return reading


def in_namespace(ns: dict, knobs: list[str], timeout: float = 10.0) -> dict:
    """The reading of another namespace: a forked child joins it with setns() and reads there;
    the owners come from /proc/<pid>/fd of the processes in it, read from here."""
    from ..machine.netns import in_namespace_at

    try:
        own = os.stat("/proc/self/ns/net").st_ino == ns["inode"]
    except OSError:
        own = False
    # this process's own namespace needs no child (and no CAP_SYS_ADMIN for setns)
    reading = read_here(knobs) if own else in_namespace_at(ns["path"], lambda: read_here(knobs), timeout)
    inodes = {r["inode"] for r in reading["rows"] if r["inode"]}
    reading["owners"] = owners(inodes, ns.get("pids") or [])
    return reading
