"""`tcpkb doctor`: what is wrong with the TCP sockets on this machine, read through the notes.

`scan()` reads the current network namespace: every socket in /proc/net/tcp and
tcp6 (state, queues, owner), the listeners' accept queues, the counters of
/proc/net/netstat and snmp that point at trouble, the knobs off their default
and the size of the ephemeral port range. `findings()` turns that into a short
list of problems, each with the entries of the knowledge base to read next.
Nothing here writes anything; reads that are not permitted are skipped.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time

from .present import terminal as output
from .query import lookup

# Counters kept, as /proc/net/netstat and /proc/net/snmp name them with their line prefix.
COUNTERS = ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPTimeWaitOverflow",
            "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnTimeout", "TcpExtTCPAbortOnData",
            "TcpRetransSegs", "TcpExtSyncookiesSent", "TcpExtTCPReqQFullDrop")
PILE = 10            # this many sockets in one state (CLOSE_WAIT on a port, SYN_RECV) is a pile
TIME_WAIT_SHARE = 0.5  # TIME_WAIT sockets against the size of the ephemeral port range
ORPHANS = 100        # FIN_WAIT2 sockets without a descriptor worth mentioning
TOP_PORTS = 10
SEVERITIES = ("problem", "warning", "info")


# --- reading the machine --------------------------------------------------------------------

def state_table(conn: sqlite3.Connection) -> dict[int, str]:
    """/proc/net/tcp `st` number -> the knowledge base's state id (8 -> state:CLOSE_WAIT)."""
    return {r[0]: r[1] for r in conn.execute("select number, id from states")}


def sockets() -> list[dict]:
    """Every TCP socket of this namespace (see proc.tcp_sockets)."""
    from .machine.proc import tcp_sockets

    return tcp_sockets()


def owners(inodes: set[int]) -> dict[int, dict]:
    """Socket inode -> {"pid", "comm"} from /proc/<pid>/fd links; what cannot be read is skipped."""
    found: dict[int, dict] = {}
    if not inodes:
        return found
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        mine = []
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inode = int(link[8:-1])
                if inode in inodes and inode not in found:
                    mine.append(inode)
        if mine:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                comm = None
            for inode in mine:
                found[inode] = {"pid": int(pid), "comm": comm}
        if len(found) == len(inodes):
            break
    return found


def counters() -> dict[str, int]:
    """The COUNTERS, since boot (or since this namespace was made); a missing one is left out."""
    from .machine.proc import mib_counters

    out = mib_counters()
    return {k: out[k] for k in COUNTERS if k in out}


def port_range() -> dict | None:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    return {"low": low, "high": high, "size": high - low + 1}


def _open_db() -> sqlite3.Connection:
    from .answer import ensure_db

    return lookup.connect(ensure_db())


def scan(conn: sqlite3.Connection | None = None) -> dict:
    """Read the sockets, queues, counters and knobs of the current network namespace."""
    own = conn is None
    if own:
        conn = _open_db()
    try:
        from .machine.live import diff

        names = state_table(conn)
        knobs = diff(conn)["differs"]
    finally:
        if own:
            conn.close()
    rows = sockets()
    who = owners({r["inode"] for r in rows if r["inode"]})

    states: dict[str, int] = {}
    by_port: dict[int, dict] = {}
    listeners = []
    detached: dict[str, int] = {}
    for r in rows:
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
            "total": len(rows), "ports": ports, "listeners": listeners, "detached": detached,
            "counters": counters(), "knobs": knobs, "port_range": port_range()}


# --- reading it through the notes -------------------------------------------------------------

def _who(owners_: list[dict]) -> str:
    if not owners_:
        return "its owner could not be seen (no permission, or the descriptors are gone)"
    return "owned by " + ", ".join(f"pid {o['pid']} ({o['comm'] or '?'})" for o in owners_[:5])


def _first_paragraph(text: str) -> str:
    para = text.strip().split("\n\n", 1)[0] if text else ""
    return " ".join(para.split())


class _Findings(list):
    """The findings of one scan, and whether a counter moved since the previous round."""

    def __init__(self, counters: dict, previous: dict | None):
        super().__init__()
        self.counters, self.previous = counters, previous

    def counted(self, *names: str) -> str:
        """'warning' if any counter moved since the previous round, else 'info'."""
        c, previous = self.counters, self.previous
        if previous is not None and any(c.get(n, 0) > previous.get(n, 0) for n in names):
            return "warning"
        return "info"

    def add(self, id_, severity, title, detail, explain, read) -> None:
        self.append({"id": id_, "severity": severity, "title": title, "detail": detail,
                     "explain": explain, "read": read})


def findings(scan_: dict, conn: sqlite3.Connection, previous: dict | None = None) -> list[dict]:
    """The scan read through the notes: each finding with a code, a severity and what to read.

    Counters count since boot (or since the namespace was made): a count alone is history and
    only informs. With `previous` counters (the last round of --watch) a counter that moved since
    is happening now, and warns.
    """
    out = _Findings(scan_["counters"], previous)
    for rule in (_close_wait_piles, _time_wait_exhaustion, _listen_overflow, _counters, _knobs):
        rule(scan_, out)
    return sorted(out, key=lambda f: SEVERITIES.index(f["severity"]))


def _close_wait_piles(scan_: dict, out: _Findings) -> None:
    """CLOSE_WAIT piling up on one local port: the application there never calls close()."""
    for p in scan_["ports"]:
        n = p["states"].get("state:CLOSE_WAIT", 0)
        if n >= PILE:
            out.add("close-wait-pile", "problem",
                f"{n} connections in CLOSE_WAIT on local port {p['port']}",
                f"{n} sockets on local port {p['port']} got the peer's FIN and were never closed; "
                f"{_who(p['owners'])}.",
                "CLOSE_WAIT ends only when the application calls close() (or shutdown() for writing) "
                "on the socket; no timer or sysctl ends it, so the fix is in that program.",
                ["state:CLOSE_WAIT", "call:close"])


def _time_wait_exhaustion(scan_: dict, out: _Findings) -> None:
    """TIME_WAIT against the ephemeral range: connect() is about to run out of ports."""
    states = scan_["states"]
    tw, pr = states.get("state:TIME_WAIT", 0), scan_.get("port_range")
    if pr and tw and tw >= TIME_WAIT_SHARE * pr["size"]:
        out.add("time-wait-exhaustion", "warning",
            f"{tw} TIME_WAIT sockets against {pr['size']} ephemeral ports",
            f"{tw} sockets in TIME_WAIT; ip_local_port_range is {pr['low']}-{pr['high']} "
            f"({pr['size']} ports, {100 * tw // pr['size']}% taken by TIME_WAIT).",
            "A port held in TIME_WAIT toward the same peer cannot be picked again, so connect() "
            "to that peer fails with EADDRNOTAVAIL once the range is used up; widen the range, "
            "reuse connections, or let tcp_tw_reuse recycle them for outgoing connections.",
            ["state:TIME_WAIT", "errno:EADDRNOTAVAIL", "sysctl:net.ipv4.ip_local_port_range",
             "sysctl:net.ipv4.tcp_tw_reuse"])


def _listen_overflow(scan_: dict, out: _Findings) -> None:
    """The accept queue or the SYN backlog overflows."""
    states, c, previous = scan_["states"], scan_["counters"], out.previous
    syn_recv = states.get("state:SYN_RECV", 0) + states.get("state:NEW_SYN_RECV", 0)
    drops, overflows = c.get("TcpExtListenDrops", 0), c.get("TcpExtListenOverflows", 0)
    if syn_recv >= PILE or drops or overflows:
        queued = [x for x in scan_["listeners"] if x["accept_queue"]]
        seen = []
        if syn_recv:
            seen.append(f"{syn_recv} connections in SYN_RECV")
        if overflows or drops:
            seen.append(f"ListenOverflows {overflows} and ListenDrops {drops} since the counters started"
                        + (f" ({overflows - previous.get('TcpExtListenOverflows', 0)} overflows since the "
                           "last round)" if previous is not None else ""))
        if queued:
            seen.append("accept queue not empty on " + ", ".join(
                f"port {x['port']} ({x['accept_queue']} waiting"
                + (f", pid {x['owner']['pid']} {x['owner']['comm'] or ''}".rstrip() if x["owner"] else "")
                + ")" for x in queued[:5]))
        out.add("listen-overflow", "problem" if syn_recv >= PILE or queued
            else out.counted("TcpExtListenDrops", "TcpExtListenOverflows"),
            "connections are dropped at a listener (accept queue or SYN backlog full)",
            "; ".join(seen) + ".",
            "A listener's accept queue holds backlog + 1 connections (listen()'s backlog, capped "
            "by net.core.somaxconn); when the application accepts too slowly it fills and new "
            "handshakes are dropped, so accept faster or raise the backlog and somaxconn together.",
            ["counter:TcpExtListenOverflows", "counter:TcpExtListenDrops", "drop:TCP_LISTEN_OVERFLOW",
             "state:SYN_RECV", "sysctl:net.core.somaxconn", "sysctl:net.ipv4.tcp_max_syn_backlog",
             "sysctl:net.ipv4.tcp_abort_on_overflow", "call:listen", "call:accept"])


def _counters(scan_: dict, out: _Findings) -> None:
    """Counters with one knob each."""
    c = scan_["counters"]
    if n := c.get("TcpExtTCPTimeWaitOverflow", 0):
        out.add("time-wait-overflow", out.counted("TcpExtTCPTimeWaitOverflow"),
            "TIME_WAIT sockets were dropped: the table was full",
            f"TCPTimeWaitOverflow is {n}: that many connections closed without a TIME_WAIT socket.",
            "tcp_max_tw_buckets caps the TIME_WAIT sockets; beyond it a closing connection skips "
            "TIME_WAIT, which loses its protection against late segments.",
            ["counter:TcpExtTCPTimeWaitOverflow", "sysctl:net.ipv4.tcp_max_tw_buckets", "state:TIME_WAIT"])
    if n := c.get("TcpExtSyncookiesSent", 0):
        out.add("syncookies-sent", out.counted("TcpExtSyncookiesSent"), "SYN cookies were sent: a SYN queue overflowed",
            f"SyncookiesSent is {n}.",
            "With tcp_syncookies at its default 1 the kernel answers with SYN cookies only while a "
            "listener's queue of half-open requests, bounded by its listen() backlog, is full: a "
            "SYN flood, or a backlog too small for the load.",
            ["counter:TcpExtSyncookiesSent", "sysctl:net.ipv4.tcp_syncookies",
             "sysctl:net.ipv4.tcp_max_syn_backlog"])
    if n := c.get("TcpExtTCPAbortOnTimeout", 0):
        out.add("abort-on-timeout", "info", "connections were aborted after retransmitting in vain",
            f"TCPAbortOnTimeout is {n} (TcpRetransSegs {c.get('TcpRetransSegs', 0)}).",
            "A connection whose retransmissions or keepalive probes go unanswered is reset and its "
            "next call fails with ETIMEDOUT.",
            ["counter:TcpExtTCPAbortOnTimeout", "counter:TcpRetransSegs", "errno:ETIMEDOUT"])
    fw2 = scan_.get("detached", {}).get("state:FIN_WAIT2", 0)
    if fw2 >= ORPHANS:
        out.add("fin-wait2-orphans", "info", f"{fw2} closed sockets wait in FIN_WAIT2 for the peer's FIN",
            f"{fw2} FIN_WAIT2 sockets have no descriptor left.",
            "A socket closed by its application waits in FIN_WAIT2 at most tcp_fin_timeout for the "
            "peer to close; many of them mean the peers keep their end open.",
            ["state:FIN_WAIT2", "sysctl:net.ipv4.tcp_fin_timeout"])


def _knobs(scan_: dict, out: _Findings) -> None:
    """Knobs off their default."""
    for k in scan_["knobs"]:
        out.add("sysctl-off-default", "info", f"{k['name']} is {k['value']} (default {k['default']})",
            f"{k['name']} = {k['value']}; the default is {k['default']}"
            + (" (read from a fresh namespace)" if k.get("default_source") == "fresh namespace" else "")
            + ".",
            _first_paragraph(k.get("advice", "")) or k.get("summary", ""),
            [k["id"]])


def status(found: list[dict]) -> int:
    return 1 if any(f["severity"] in ("problem", "warning") for f in found) else 0


def report(scan_: dict, found: list[dict]) -> dict:
    """The JSON shape of `tcpkb doctor --json`."""
    return {"states": scan_["states"], "ports": scan_["ports"], "listeners": scan_["listeners"],
            "counters": scan_["counters"], "knobs": scan_["knobs"], "findings": found}


# --- printing -----------------------------------------------------------------------------

def _owner(o: dict | None) -> str:
    return f"pid {o['pid']} {o['comm'] or ''}".rstrip() if o else ""


def print_report(scan_: dict, found: list[dict]) -> None:
    echo, bold, dim, style, accent = output.echo, output.bold, output.dim, output.style, output.accent
    pr = scan_.get("port_range")
    echo(bold(f"{scan_['total']} TCP sockets")
         + dim(f"  (ephemeral ports {pr['low']}-{pr['high']}: {pr['size']})" if pr else ""))
    for sid, n in scan_["states"].items():
        echo(f"  {n:>7}  {sid.split(':', 1)[-1]}")
    if scan_["ports"]:
        echo()
        echo(bold("Top local ports"))
        for p in scan_["ports"][:TOP_PORTS]:
            by_state = ", ".join(f"{sid.split(':', 1)[-1]} {n}" for sid, n in
                                 sorted(p["states"].items(), key=lambda kv: -kv[1]))
            owners_ = ", ".join(_owner(o) for o in p["owners"][:3])
            echo(f"  {p['port']:>5}  {p['total']:>6}  {by_state}" + (dim(f"  {owners_}") if owners_ else ""))
    if scan_["listeners"]:
        echo()
        echo(bold("Listeners") + dim("  (accept queue: connections waiting for accept())"))
        for x in scan_["listeners"]:
            q = x["accept_queue"]
            queue = style(f"queue {q}", "33") if q else dim("queue 0")
            echo(f"  {x['address']}:{x['port']}  {queue}" + (dim(f"  {_owner(x['owner'])}") if x["owner"] else ""))
    loud = {k: v for k, v in scan_["counters"].items() if v}
    if loud:
        echo()
        echo(bold("Counters") + dim("  (since boot or since the namespace was made; nstat -az)"))
        for k, v in loud.items():
            echo(f"  {k:<28} {v}")
    echo()
    if not found:
        echo(style("no findings", "32"))
    colours = {"problem": "31", "warning": "33", "info": "2"}
    for f in found:
        echo(f"{style(f['severity'].upper(), '1', colours[f['severity']])}  {accent(f['id'])}  {bold(f['title'])}")
        echo(f"  {f['detail']}")
        echo(f"  {f['explain']}")
        echo(f"  {dim('read')} {', '.join(f['read'])}")
    bad = sum(f["severity"] in ("problem", "warning") for f in found)
    echo(dim(f"{bad} problem(s) or warning(s), {len(found) - bad} note(s)"))


def main(as_json: bool = False, watch: float | None = None, times: int | None = None) -> int:
    """Scan, print, and exit 0 when nothing is a problem or a warning, 1 otherwise (2 bad usage)."""
    if watch is not None and watch <= 0:
        output.fail("--watch takes a number of seconds above 0")
        return 2
    if times is not None and times < 1:
        output.fail("--times takes a count of 1 or more")
        return 2
    from . import answer

    last: dict = {"status": 0, "counters": None}

    def once(conn: sqlite3.Connection) -> None:
        s = scan(conn)
        found = findings(s, conn, last["counters"])
        last["status"], last["counters"] = status(found), s["counters"]
        if as_json:
            output.print_json(report(s, found))
        else:
            print_report(s, found)

    def action(conn: sqlite3.Connection) -> None:
        rounds = 0
        tty = sys.stdout.isatty()
        while True:
            if watch is not None and tty and not as_json:
                sys.stdout.write("\x1b[H\x1b[2J")
            once(conn)
            rounds += 1
            if watch is None or (times is not None and rounds >= times):
                return
            if not as_json:
                output.echo(output.dim(f"every {watch:g}s; Ctrl-C ends"))
            sys.stdout.flush()
            time.sleep(watch)

    try:
        code = answer.run(action, as_json)
    except KeyboardInterrupt:
        return last["status"]
    return code or last["status"]
