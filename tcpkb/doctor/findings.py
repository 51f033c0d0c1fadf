"""doctor's rules: a scan read through the notes, as findings with a severity and entries to read.

Each finding names the files its facts came from (`from`) when the scan knows them: the
/proc files of a live namespace, or the saved files of `--from DIR`.
"""

from __future__ import annotations

import sqlite3

PILE = 10            # this many sockets in one state (CLOSE_WAIT on a port, SYN_RECV) is a pile
TIME_WAIT_SHARE = 0.5  # TIME_WAIT sockets against the size of the ephemeral port range
ORPHANS = 100        # FIN_WAIT2 sockets without a descriptor worth mentioning
SEVERITIES = ("problem", "warning", "info")
# The parts of a reading (see doctor.sources) each finding stands on.
PARTS = {"close-wait-pile": ("sockets", "owners"), "time-wait-exhaustion": ("sockets", "sysctls"),
         "listen-overflow": ("sockets", "counters"), "time-wait-overflow": ("counters",),
         "syncookies-sent": ("counters",), "abort-on-timeout": ("counters",),
         "fin-wait2-orphans": ("sockets",), "sysctl-off-default": ("sysctls",)}


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
    if origin := scan_.get("origin"):
        for f in out:
            f["from"] = list(dict.fromkeys(path for part in PARTS[f["id"]] for path in origin.get(part, [])))
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
