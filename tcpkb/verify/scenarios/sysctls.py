"""Sysctls: each knob set inside the scenario's own namespace, and what the kernel then does.

Every knob here is per network namespace (a fresh namespace has its own copy with the
kernel's default), so setting it touches nothing outside the scenario. Timers are made
short (one-second keepalives, two SYN retries) so each run takes a few seconds.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from .. import scenario
from ...machine.netns import read_sysctl, sysctl_path
from ..peer import Conn
from ..timing import chain_bounds, timer_bounds
from .errno_timeouts import expect_keepalive_schedule, expect_syn_schedule
from .errno_addresses import (CLOCK_SLEW_S, DEFAULT_TW_REUSE_DELAY_S, _client_side_time_waits,
                              _fin_into_time_wait, _tw_refused_then_reused)

SERVER_PORT = 5000  # outside the shrunken ephemeral range
RANGE = (40000, 40001)
TCP_INFO = 11


def _to_peer(lab, flags: str | None = None) -> list[dict]:
    """Segments the kernel sent to the scripted peer: those with exactly `flags`, or all."""
    return [p for p in lab.packets() if p.get("proto") == "tcp" and p.get("dir") == "to-peer"
            and (flags is None or p["flags"] == flags)]


def _times(packets: list[dict]) -> list[float]:
    return [round(p["t_ms"] / 1000, 2) for p in packets]


# -- TIME_WAIT: tcp_max_tw_buckets, tcp_tw_reuse, ip_local_port_range ----------------------

@scenario(
    claim="With net.ipv4.tcp_max_tw_buckets=0 the first closer gets no TIME_WAIT: when the "
          "peer's FIN arrives the socket goes straight to CLOSE, /proc/net/tcp lists nothing and "
          "TcpExtTCPTimeWaitOverflow counts it; an orphan (close() before the peer's FIN) even loses "
          "its FIN_WAIT2, so the peer's later FIN is answered with RST.",
    proves=["sysctl:net.ipv4.tcp_max_tw_buckets", "state:TIME_WAIT", "state:FIN_WAIT2", "flag:RST",
            "counter:TcpExtTCPTimeWaitOverflow"],
)
def max_tw_buckets_zero_skips_time_wait(lab):
    lab.note(f"tcp_max_tw_buckets here (half this namespace's hash table): "
             f"{read_sysctl('net.ipv4.tcp_max_tw_buckets')}")
    listener, before, before_srv = lab.connected_pair()
    before.shutdown(socket.SHUT_WR).value
    lab.wait_state(before, "FIN_WAIT2", 1.0)
    before_srv.close().value
    lab.wait_state(before, "TIME_WAIT", 1.0)
    lab.expect(lab.counter("TcpExtTCPTimeWaitOverflow") == 0, "with the default, no overflow is counted")

    lab.sysctl("net.ipv4.tcp_max_tw_buckets", 0)
    half, half_srv = lab.connect_to(listener, "half", "half-server")
    half.shutdown(socket.SHUT_WR).value
    lab.wait_state(half, "FIN_WAIT2", 1.0)
    half_srv.close().value
    lab.wait_for(lambda: half.sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8)[0] == 7, 1.0,
                 "the half-closed socket to reach CLOSE")
    lab.expect(half.proc_row() is None, "/proc/net/tcp lists no TIME_WAIT for it")
    lab.expect_state(half, "CLOSE")
    lab.expect_counter("TcpExtTCPTimeWaitOverflow", at_least=1)

    orphan, orphan_srv = lab.connect_to(listener, "orphan", "orphan-server")
    orphan.close().value
    lab.wait_state(orphan_srv, "CLOSE_WAIT", 1.0)
    lab.wait_for(lambda: orphan.proc_row() is None, 1.0, "the orphan to vanish once its FIN is ACKed")
    lab.expect(lab.counter("TcpExtTCPTimeWaitOverflow") >= 2,
               f"the orphan's FIN_WAIT2 overflowed too (counter {lab.counter('TcpExtTCPTimeWaitOverflow')})")
    orphan_srv.close().value
    lab.expect_packets("orphan-server *F", "orphan R")


@scenario(
    claim="With net.ipv4.tcp_tw_reuse=0, ip_local_port_range shrunk to two ports and both in a "
          "client-side TIME_WAIT to the same server, connect() fails with EADDRNOTAVAIL and still "
          "does 0.5 s later, long past tcp_tw_reuse_delay (100 ms) on a kernel that has that knob.",
    proves=["sysctl:net.ipv4.tcp_tw_reuse", "sysctl:net.ipv4.ip_local_port_range", "errno:EADDRNOTAVAIL",
            "state:TIME_WAIT"],
)
def tw_reuse_0_never_takes_time_wait_port(lab):
    lab.sysctl("net.ipv4.ip_local_port_range", f"{RANGE[0]} {RANGE[1]}")
    lab.sysctl("net.ipv4.tcp_tw_reuse", 0)
    # with reuse off the delay cannot matter, so a kernel without the knob (6.1, 6.12) still
    # shows the behaviour; where the knob exists, a short delay makes "long past it" mean something
    if os.path.exists(sysctl_path("net.ipv4.tcp_tw_reuse_delay")):
        lab.sysctl("net.ipv4.tcp_tw_reuse_delay", 100)
    else:
        lab.note("this kernel has no net.ipv4.tcp_tw_reuse_delay; with tcp_tw_reuse=0 none is consulted")
    listener = lab.listener(address=("127.0.0.1", SERVER_PORT))
    ports = _client_side_time_waits(lab, 2, listener)
    lab.expect(sorted(ports) == list(RANGE), f"the two connections used ports {RANGE} (used {ports})")
    first = lab.socket("first")
    lab.expect_errno(first.connect(listener.local), "EADDRNOTAVAIL")
    lab.sleep(0.5)
    later = lab.socket("later")
    began = time.time()  # the attempt happens no sooner than this
    lab.expect_errno(later.connect(listener.local), "EADDRNOTAVAIL")
    _expect_past_reuse_delay(lab, listener, ports, began, 0.1)
    lab.expect(lab.counter("TcpExtTWRecycled") == 0, "no TIME_WAIT was recycled")


def _expect_past_reuse_delay(lab, listener, ports: list[int], began: float, delay_s: float) -> None:
    """The connect() that began at `began` came when every TIME_WAIT was older than the delay:
    measured from the youngest one's FIN, whose stamp precedes the TIME_WAIT's own entry stamp.
    The lab slept 0.4-0.5 s for this; load only lengthens a sleep."""
    youngest = max(lab.stamp(_fin_into_time_wait(lab, listener.local, port)) for port in ports)
    lab.expect_window(began - youngest, delay_s + CLOCK_SLEW_S, None,
                      "the refused connect() began this long after the youngest TIME_WAIT", "capture+call")


def _tw_reuse_run(lab, mode: int, address: str) -> tuple:
    """Two client TIME_WAITs to `address`:5000 filling a two-port range under tcp_tw_reuse=`mode`
    and tcp_tw_reuse_delay=100 ms; returns (listener, the TIME_WAIT ports)."""
    _tw_reuse_sysctls(lab, mode)
    listener = lab.listener(address=(address, SERVER_PORT))
    return listener, _client_side_time_waits(lab, 2, listener)


def _tw_reuse_sysctls(lab, mode: int) -> None:
    lab.sysctl("net.ipv4.ip_local_port_range", f"{RANGE[0]} {RANGE[1]}")
    lab.sysctl("net.ipv4.tcp_tw_reuse", mode)
    lab.sysctl("net.ipv4.tcp_tw_reuse_delay", 100)


@scenario(
    claim="With net.ipv4.tcp_tw_reuse=1 and tcp_tw_reuse_delay=100 ms, a connection between two "
          "non-loopback addresses (10.0.0.1 to itself) takes over a client-side TIME_WAIT port: with "
          "both ports of the range in TIME_WAIT, connect() fails with EADDRNOTAVAIL at first and "
          "succeeds on one of them about 0.1 s later (TcpExtTWRecycled counts it).",
    proves=["sysctl:net.ipv4.tcp_tw_reuse", "sysctl:net.ipv4.tcp_tw_reuse_delay",
            "sysctl:net.ipv4.ip_local_port_range", "errno:EADDRNOTAVAIL", "state:TIME_WAIT",
            "counter:TcpExtTWRecycled"],
    needs=("netns", "tun"),
)
def tw_reuse_1_takes_non_loopback_time_wait_port_after_delay(lab):
    peer = lab.tun_peer()  # only for the address 10.0.0.1; the traffic stays on lo
    _tw_reuse_sysctls(lab, 1)
    _, _, reuser, gap = _tw_refused_then_reused(lab, peer.kernel_address, 0.1)
    lab.expect(reuser.local[0] == peer.kernel_address, f"the new connection is from {reuser.local[0]}")
    lab.expect_window(gap, 0.1 - CLOCK_SLEW_S, DEFAULT_TW_REUSE_DELAY_S,
                      "from the FIN that made the TIME_WAIT to the SYN that reused its port", "capture")
    lab.expect_counter("TcpExtTWRecycled", at_least=1)


@scenario(
    claim="net.ipv4.tcp_tw_reuse=2 judges loopback by address, not by device: with both ports of the "
          "range in TIME_WAIT towards 127.0.0.1 and towards 10.0.0.1 (a local address, so its traffic "
          "also crosses lo), after 0.4 s (tcp_tw_reuse_delay is 100 ms) connect() to 127.0.0.1 reuses "
          "a TIME_WAIT port while connect() to 10.0.0.1 still fails with EADDRNOTAVAIL.",
    proves=["sysctl:net.ipv4.tcp_tw_reuse", "sysctl:net.ipv4.tcp_tw_reuse_delay",
            "sysctl:net.ipv4.ip_local_port_range", "errno:EADDRNOTAVAIL", "state:TIME_WAIT"],
    needs=("netns", "tun"),
)
def tw_reuse_2_takes_only_loopback_time_wait_port(lab):
    peer = lab.tun_peer()
    local, local_ports = _tw_reuse_run(lab, 2, peer.kernel_address)
    loop = lab.listener("loop-listener", ("127.0.0.1", SERVER_PORT))
    loop_ports = []
    for i in range(2):
        client, server = lab.connect_to(loop, f"loop-client{i}", f"loop-server{i}")
        client.close()
        server.close()
        lab.wait_state(client, "TIME_WAIT", 1.0)
        loop_ports.append(client.local[1])
    lab.expect(sorted(local_ports) == sorted(loop_ports) == list(RANGE),
               f"both destinations hold both ports in TIME_WAIT ({local_ports}, {loop_ports})")
    lab.sleep(0.4)
    other = lab.socket("to-10.0.0.1")
    began = time.time()  # the attempt happens no sooner than this
    lab.expect_errno(other.connect(local.local), "EADDRNOTAVAIL")
    _expect_past_reuse_delay(lab, local, local_ports, began, 0.1)
    loopback = lab.socket("to-127.0.0.1")
    lab.expect_ok(loopback.connect(loop.local))
    lab.expect(loopback.local[1] in RANGE, f"the loopback connection reused port {loopback.local[1]}")
    lab.expect_counter("TcpExtTWRecycled", at_least=1)
    again = lab.socket("to-10.0.0.1-again")
    lab.expect_errno(again.connect(local.local), "EADDRNOTAVAIL")


@scenario(
    claim="With net.ipv4.ip_local_port_range shrunk to two ports and both held by ESTABLISHED "
          "connections to one server, a third connect() to that server fails with EADDRNOTAVAIL and "
          "bind() to port 0 fails with EADDRINUSE, while a connect() to a second server succeeds "
          "from a port already in use (only the four-tuple must be unique).",
    proves=["sysctl:net.ipv4.ip_local_port_range", "errno:EADDRNOTAVAIL", "errno:EADDRINUSE",
            "call:connect", "call:bind"],
)
def two_port_range_exhausted_by_established_connections(lab):
    lab.note(f"ip_local_port_range in a fresh namespace: {read_sysctl('net.ipv4.ip_local_port_range')}")
    lab.sysctl("net.ipv4.ip_local_port_range", f"{RANGE[0]} {RANGE[1]}")
    listener = lab.listener(address=("127.0.0.1", SERVER_PORT))
    ports = []
    for i in range(2):
        client, _ = lab.connect_to(listener, f"client{i}", f"server{i}")
        ports.append(client.local[1])
    lab.expect(sorted(ports) == list(RANGE), f"the two connections used ports {RANGE} (used {ports})")
    third = lab.socket("third")
    lab.expect_errno(third.connect(listener.local), "EADDRNOTAVAIL")
    bound = lab.socket("bound")
    lab.expect_errno(bound.bind(("127.0.0.1", 0)), "EADDRINUSE")
    second = lab.listener("listener2", ("127.0.0.1", SERVER_PORT + 1))
    elsewhere = lab.socket("elsewhere")
    lab.expect_ok(elsewhere.connect(second.local))
    lab.expect(elsewhere.local[1] in RANGE, f"it shares port {elsewhere.local[1]} with an open connection")


# -- connection setup: tcp_syn_retries, somaxconn, tcp_abort_on_overflow, tcp_syncookies -----

def _syn_retries_run(lab, linear: int | None) -> tuple:
    peer = lab.tun_peer()
    lab.sysctl("net.ipv4.tcp_syn_retries", 2)
    if linear is not None:
        lab.sysctl("net.ipv4.tcp_syn_linear_timeouts", linear)
    lab.note(f"tcp_syn_linear_timeouts = {read_sysctl('net.ipv4.tcp_syn_linear_timeouts')}")
    client = lab.socket("client")
    r, span = lab.timed_call(client, f"connect({peer.address}:80)", lambda: client.sock.connect((peer.address, 80)))
    lab.expect_errno(r, "ETIMEDOUT")
    syns = _to_peer(lab, "S")
    lab.note(f"SYNs sent at +{[round((p['t_ms'] - syns[0]['t_ms']) / 1000, 3) for p in syns]} s")
    return syns, span


@scenario(
    claim="With net.ipv4.tcp_syn_retries=2 (and the default tcp_syn_linear_timeouts=4), a blocking "
          "connect() to a host that never answers fails with ETIMEDOUT after about 7 s, the time the "
          "classic schedule gives two retries (1 + 2 + 4 s); the linear early retries fit six SYNs "
          "into it, 1 s apart (at 0, 1, 2, 3, 4 and 5 s).",
    proves=["sysctl:net.ipv4.tcp_syn_retries", "sysctl:net.ipv4.tcp_syn_linear_timeouts",
            "errno:ETIMEDOUT", "state:SYN_SENT", "flag:SYN"],
    needs=("netns", "tun", "sysctl:net.ipv4.tcp_syn_linear_timeouts"),
    timeout=10.0,
)
def syn_retries_2_times_out_after_7_s_with_linear_timeouts(lab):
    syns, span = _syn_retries_run(lab, None)
    lab.expect(len(syns) == 6, f"six SYNs on the wire (got {len(syns)})")
    expect_syn_schedule(lab, syns, [1.0] * 5)
    # connect() sleeps from the first SYN until the deadline of the classic schedule, 1 + 2 + 4 s
    # (tcp_model_timeout()): five 1 s linear timers, then the RTO doubles to 2 s
    lab.expect_window(span.slept, *chain_bounds([1.0] * 5 + [2.0]), "connect() slept until it gave up", "blocked")


@scenario(
    claim="With net.ipv4.tcp_syn_retries=2 and tcp_syn_linear_timeouts=0 (classic exponential "
          "backoff), a blocking connect() to a silent host sends three SYNs, at 0, 1 and 3 s, and "
          "fails with ETIMEDOUT after about 7 s.",
    proves=["sysctl:net.ipv4.tcp_syn_retries", "sysctl:net.ipv4.tcp_syn_linear_timeouts",
            "errno:ETIMEDOUT", "flag:SYN"],
    needs=("netns", "tun", "sysctl:net.ipv4.tcp_syn_linear_timeouts"),
    timeout=10.0,
)
def syn_retries_2_times_out_after_7_s_with_exponential_backoff(lab):
    syns, span = _syn_retries_run(lab, 0)
    lab.expect(len(syns) == 3, f"three SYNs on the wire (got {len(syns)})")
    expect_syn_schedule(lab, syns, [1.0, 2.0])  # the RTO doubles after each retry
    # the third timer, 4 s, finds the two retries spent: 1 + 2 + 4 s from the first SYN
    lab.expect_window(span.slept, *chain_bounds([1.0, 2.0, 4.0]), "connect() slept until it gave up", "blocked")


@scenario(
    claim="net.core.somaxconn=2 caps listen(128) at a backlog of 2, which TCP_INFO on the listener "
          "reports in tcpi_sacked (what ss prints as Send-Q); three connections (backlog + 1) then "
          "complete and wait unaccepted, and the fourth client's SYN is dropped, leaving it in "
          "SYN_SENT while TcpExtListenOverflows rises.",
    proves=["sysctl:net.core.somaxconn", "sockopt:TCP_INFO", "call:listen", "state:SYN_SENT",
            "state:ESTABLISHED", "counter:TcpExtListenOverflows"],
)
def somaxconn_caps_listen_backlog(lab):
    lab.note(f"net.core.somaxconn in a fresh namespace: {read_sysctl('net.core.somaxconn')}")
    lab.sysctl("net.core.somaxconn", 2)
    listener = lab.listener(backlog=128)
    info = listener.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104, label="TCP_INFO").value
    unacked, sacked = struct.unpack_from("II", info, 24)
    lab.note(f"listener TCP_INFO: tcpi_unacked (accept queue) {unacked}, tcpi_sacked (backlog) {sacked}")
    lab.expect(sacked == 2, f"the effective backlog is 2, not 128 (tcpi_sacked {sacked})")
    clients = []
    for i in range(4):
        c = lab.socket(f"client{i}", options={"TCP_SYNCNT": 1})
        c.set_blocking(False)
        lab.expect_errno(c.connect(listener.local), "EINPROGRESS")
        clients.append(c)
    for c in clients[:3]:
        lab.wait_state(c, "ESTABLISHED", 1.0)
    lab.expect_state_held(clients[3], "SYN_SENT", 0.2)
    info = listener.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104, label="TCP_INFO").value
    unacked, sacked = struct.unpack_from("II", info, 24)
    lab.expect(unacked == 3, f"three connections wait in the accept queue (tcpi_unacked {unacked})")
    lab.expect_counter("TcpExtListenOverflows", at_least=1)


PORT = 8080


@scenario(
    claim="net.ipv4.tcp_abort_on_overflow is read when the handshake's last ACK meets a full accept "
          "queue (listen(1) holding two connections): with 0 the kernel drops that ACK "
          "(TcpExtListenOverflows), keeps the request and retransmits its SYN-ACK about 1 s after the "
          "first; with 1 the next ACK for the same request is answered with a bare RST and the "
          "request is dropped (TcpExtEmbryonicRsts).",
    proves=["sysctl:net.ipv4.tcp_abort_on_overflow", "flag:RST", "state:SYN_RECV",
            "counter:TcpExtEmbryonicRsts", "counter:TcpExtListenOverflows"],
    needs=("netns", "tun"),
    timeout=6.0,
)
def abort_on_overflow_resets_instead_of_dropping_ack(lab):
    peer = lab.tun_peer()
    lab.note(f"tcp_abort_on_overflow in a fresh namespace: {read_sysctl('net.ipv4.tcp_abort_on_overflow')}")
    lab.sysctl("net.ipv4.tcp_abort_on_overflow", 0)
    listener = lab.listener(address=(peer.kernel_address, PORT), backlog=1)
    a = peer.connect(PORT, port=40001, complete=False)
    late = peer.connect(PORT, port=40002, complete=False)
    a.send(".")
    peer.connect(PORT, port=40003, complete=True)
    lab.wait_for(lambda: _accept_queue(listener) == 2, 1.0, "two connections in the accept queue")
    overflows = lab.counter("TcpExtListenOverflows")
    late.send(".")
    lab.sleep(0.1)
    moved = lab.counter("TcpExtListenOverflows")
    lab.expect(moved > overflows, f"the ACK was dropped as an overflow (TcpExtListenOverflows {moved})")
    late.expect("S.", timeout=2.0)
    synacks = _to_peer_on(lab, 40002, "S.")
    lab.note(f"SYN-ACKs for the dropped ACK's request at {_times(synacks)} s")
    lab.expect(len(synacks) == 2, f"the SYN-ACK was sent twice ({len(synacks)})")
    # the request's timer (reqsk_timer_handler) starts at TCP_TIMEOUT_INIT, 1 s
    lab.expect_window(lab.stamp(synacks[1]) - lab.stamp(synacks[0]), *timer_bounds(1.0),
                      "the retransmitted SYN-ACK after the first", "capture")
    lab.expect(not _to_peer_on(lab, 40002, "R"), "no RST for the dropped ACK")

    lab.sysctl("net.ipv4.tcp_abort_on_overflow", 1)
    late.send(".")
    rst = late.expect(contains="R", timeout=1.0)
    lab.note(f"the kernel answers the ACK with {rst['flags']}")
    lab.expect(rst["flags"] == "R" and rst["seq"] == late.ack,
               f"a bare RST whose seq is the ACK's ack number ({rst['flags']}, seq {rst['seq']})")
    lab.expect_counter("TcpExtEmbryonicRsts", at_least=1)
    lab.expect_counter("TcpExtListenOverflows", at_least=2)


@scenario(
    claim="With listen(0) a second concurrent handshake is already beyond the SYN queue, so its "
          "SYN-ACK is a syncookie; when its ACK meets the full accept queue the kernel drops it "
          "silently (TcpExtSyncookiesRecv, TcpExtListenOverflows) and sends no RST even with "
          "net.ipv4.tcp_abort_on_overflow=1, and no SYN-ACK is retransmitted.",
    proves=["sysctl:net.ipv4.tcp_abort_on_overflow", "sysctl:net.ipv4.tcp_syncookies",
            "counter:TcpExtSyncookiesRecv", "counter:TcpExtListenOverflows"],
    needs=("netns", "tun"),
)
def abort_on_overflow_ignores_syncookie_ack(lab):
    peer = lab.tun_peer()
    lab.sysctl("net.ipv4.tcp_abort_on_overflow", 1)
    lab.listener(address=(peer.kernel_address, PORT), backlog=0)
    first = peer.connect(PORT, port=40001, complete=False)
    cookie = peer.connect(PORT, port=40002, complete=False)
    lab.expect_counter("TcpExtSyncookiesSent", at_least=1)
    first.send(".")
    cookie.send(".")
    lab.sleep(1.2)  # past the 1 s SYN-ACK retransmission a request socket would get
    lab.expect_counter("TcpExtSyncookiesRecv", at_least=1)
    lab.expect_counter("TcpExtListenOverflows", at_least=1)
    lab.expect(not _to_peer_on(lab, 40002, "R"), "no RST for the cookie's ACK")
    synacks = _to_peer_on(lab, 40002, "S.")
    lab.expect(len(synacks) == 1, f"one SYN-ACK only: a cookie keeps no state to retransmit ({len(synacks)})")


def _accept_queue(listener) -> int:
    return struct.unpack_from("I", listener.sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 32), 24)[0]


def _to_peer_on(lab, port: int, flags: str) -> list[dict]:
    return [p for p in _to_peer(lab) if p["dport"] == port and set(flags) <= set(p["flags"])]


def _syns(lab, peer, count: int, first_port: int = 41000) -> list[Conn]:
    """`count` bare SYNs from the peer to the listener on PORT, from consecutive ports."""
    conns = []
    for i in range(count):
        conn = Conn(peer, first_port + i, PORT, 1000 * (i + 1), 0)
        conn.send("S")
        conns.append(conn)
    return conns


def _syn_recv_rows() -> int:
    from ..lab import proc_tcp
    return sum(1 for r in proc_tcp() if r["state"] == "SYN_RECV")


@scenario(
    claim="With net.ipv4.tcp_syncookies=1 (the default) and listen(1), two SYNs that are never "
          "ACKed fill the SYN queue; a third SYN is still answered with a SYN-ACK, a cookie that "
          "creates no SYN_RECV entry (TcpExtSyncookiesSent and TcpExtTCPReqQFullDoCookies count it).",
    proves=["sysctl:net.ipv4.tcp_syncookies", "state:SYN_RECV", "flag:SYN", "counter:TcpExtSyncookiesSent",
            "counter:TcpExtTCPReqQFullDoCookies"],
    needs=("netns", "tun"),
)
def syncookies_1_answers_syn_beyond_full_queue(lab):
    peer = lab.tun_peer()
    lab.note(f"tcp_syncookies in a fresh namespace: {read_sysctl('net.ipv4.tcp_syncookies')}")
    lab.listener(address=(peer.kernel_address, PORT), backlog=1)
    conns = _syns(lab, peer, 2)
    for conn in conns:
        conn.expect("S.", timeout=1.0)
    lab.wait_for(lambda: _syn_recv_rows() == 2, 1.0, "two half-open connections in SYN_RECV")
    lab.expect(lab.counter("TcpExtSyncookiesSent") == 0, "no cookie yet")
    third = _syns(lab, peer, 1, 41002)[0]
    third.expect("S.", timeout=1.0)
    lab.expect_counter("TcpExtSyncookiesSent", at_least=1)
    lab.expect_counter("TcpExtTCPReqQFullDoCookies", at_least=1)
    lab.expect(_syn_recv_rows() == 2, "the cookie SYN-ACK left no third SYN_RECV entry")


@scenario(
    claim="With net.ipv4.tcp_syncookies=0 and listen(1), once two unanswered handshakes fill the SYN "
          "queue a third SYN gets no answer at all: it is dropped, counted in "
          "TcpExtTCPReqQFullDrop and TcpExtListenDrops.",
    proves=["sysctl:net.ipv4.tcp_syncookies", "state:SYN_RECV", "counter:TcpExtTCPReqQFullDrop",
            "counter:TcpExtListenDrops"],
    needs=("netns", "tun"),
)
def syncookies_0_drops_syn_beyond_full_queue(lab):
    peer = lab.tun_peer()
    lab.sysctl("net.ipv4.tcp_syncookies", 0)
    lab.listener(address=(peer.kernel_address, PORT), backlog=1)
    for conn in _syns(lab, peer, 2):
        conn.expect("S.", timeout=1.0)
    lab.wait_for(lambda: _syn_recv_rows() == 2, 1.0, "two half-open connections in SYN_RECV")
    _syns(lab, peer, 1, 41002)
    lab.sleep(0.3)
    lab.expect(not _to_peer_on(lab, 41002, "S."), "the third SYN got no SYN-ACK within 0.3 s")
    lab.expect_counter("TcpExtTCPReqQFullDrop", at_least=1)
    lab.expect_counter("TcpExtListenDrops", at_least=1)
    lab.expect(lab.counter("TcpExtSyncookiesSent") == 0, "no cookie was sent")


@scenario(
    claim="With net.ipv4.tcp_syncookies=2 every SYN is answered with a cookie, even to an idle "
          "listen(16) listener: three SYNs get three SYN-ACKs, TcpExtSyncookiesSent rises by 3 and no "
          "SYN_RECV entry is created; the peer's ACK of a cookie still yields an accepted connection.",
    proves=["sysctl:net.ipv4.tcp_syncookies", "state:SYN_RECV", "state:ESTABLISHED"],
    needs=("netns", "tun"),
)
def syncookies_2_cookies_every_syn(lab):
    peer = lab.tun_peer()
    lab.sysctl("net.ipv4.tcp_syncookies", 2)
    listener = lab.listener(address=(peer.kernel_address, PORT), backlog=16)
    conns = _syns(lab, peer, 3)
    for conn in conns:
        conn.expect("S.", timeout=1.0)
    sent = lab.counter("TcpExtSyncookiesSent")
    lab.expect(sent == 3, f"TcpExtSyncookiesSent rose by 3 (rose by {sent})")
    lab.expect(_syn_recv_rows() == 0, "no half-open connection is kept")
    conns[0].send(".")
    lab.wait_for(lambda: listener.readable(0), 1.0, "the cookie ACK to create a connection")
    server = listener.accept("server").value
    lab.expect_state(server, "ESTABLISHED")
    lab.expect_counter("TcpExtSyncookiesRecv", at_least=1)


# -- keepalive ---------------------------------------------------------------------

@scenario(
    claim="With net.ipv4.tcp_keepalive_time=1, tcp_keepalive_intvl=1 and tcp_keepalive_probes=2 "
          "and no TCP_KEEP* option, a socket with SO_KEEPALIVE facing a silent peer sends a probe 1 s "
          "and 2 s after going idle, resets the connection at about 3 s, and recv() fails with "
          "ETIMEDOUT; an identical connection without SO_KEEPALIVE sends nothing and stays ESTABLISHED.",
    proves=["sysctl:net.ipv4.tcp_keepalive_time", "sysctl:net.ipv4.tcp_keepalive_intvl",
            "sysctl:net.ipv4.tcp_keepalive_probes", "sockopt:SO_KEEPALIVE", "errno:ETIMEDOUT",
            "flag:RST"],
    needs=("netns", "tun"),
    timeout=7.0,
)
def keepalive_sysctls_time_out_silent_peer(lab):
    peer = lab.tun_peer()
    for name, value in (("tcp_keepalive_time", 1), ("tcp_keepalive_intvl", 1), ("tcp_keepalive_probes", 2)):
        lab.note(f"{name} in a fresh namespace: {read_sysctl('net.ipv4.' + name)}")
        lab.sysctl(f"net.ipv4.{name}", value)
    kept, _ = peer.connected("kept", port=PORT)
    plain, _ = peer.connected("plain", port=PORT + 1)
    kept.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, label="SO_KEEPALIVE").value
    idle_ms = lab._ms()
    lab.note("from now on the peer answers nothing")
    lab.wait_readable(kept, 4.5, "the keepalive timer to give up")
    lab.expect_errno(kept.recv(), "ETIMEDOUT")
    lab.expect_state(kept, "CLOSE")
    expect_keepalive_schedule(lab, kept.local[1], probes=2)  # 1 s idle, 1 s apart, RST 1 s later
    quiet = [p for p in _to_peer(lab) if p["dport"] == PORT + 1 and p["t_ms"] > idle_ms]
    lab.expect(not quiet, f"the socket without SO_KEEPALIVE sent nothing ({len(quiet)} segments)")
    lab.expect_state(plain, "ESTABLISHED")


# -- ECN ----------------------------------------------------------------------------

@scenario(
    claim="net.ipv4.tcp_ecn decides both ends of the ECN handshake: with 0 the kernel's SYN is plain "
          "and it answers an ECN SYN (ECE+CWR) with a plain SYN-ACK; with 1 its SYN carries ECE and "
          "CWR and it answers with ECE; with 2 (the default) its SYN is plain but it answers an ECN "
          "SYN with ECE.",
    proves=["sysctl:net.ipv4.tcp_ecn", "flag:ECE", "flag:CWR", "flag:SYN"],
    needs=("netns", "tun"),
)
def tcp_ecn_values_set_syn_and_syn_ack_flags(lab):
    peer = lab.tun_peer()
    lab.note(f"tcp_ecn in a fresh namespace: {read_sysctl('net.ipv4.tcp_ecn')}")
    expected = {0: ("S", "S."), 1: ("SEW", "SE."), 2: ("S", "SE.")}
    for mode, (syn_flags, synack_flags) in expected.items():
        lab.sysctl("net.ipv4.tcp_ecn", mode)
        client = lab.socket(f"client-ecn{mode}")
        client.set_blocking(False)
        lab.expect_errno(client.connect((peer.address, 80 + mode)), "EINPROGRESS")
        syn = peer.accept(80 + mode, answer=False).syn
        lab.expect(syn["flags"] == syn_flags, f"tcp_ecn={mode}: the SYN is {syn_flags} (got {syn['flags']})")
        listener = lab.listener(f"listener-ecn{mode}", (peer.kernel_address, PORT + mode))
        conn = Conn(peer, 42000 + mode, PORT + mode, 7000, 0)
        conn.send("SEW")
        synack = conn.expect(timeout=1.0)
        lab.expect(synack["flags"] == synack_flags,
                   f"tcp_ecn={mode}: an ECN SYN gets {synack_flags} (got {synack['flags']})")
        client.close()
        listener.close()


# -- buffers --------------------------------------------------------------------------

@scenario(
    claim="A new TCP socket starts with SO_RCVBUF = the middle value of net.ipv4.tcp_rmem (131072) and "
          "SO_SNDBUF = the middle of tcp_wmem (16384), not net.core.rmem_default/wmem_default "
          "(212992), which a UDP socket starts from.",
    proves=["sysctl:net.ipv4.tcp_rmem", "sysctl:net.ipv4.tcp_wmem", "sysctl:net.core.rmem_default",
            "sysctl:net.core.wmem_default", "sockopt:SO_RCVBUF", "sockopt:SO_SNDBUF"],
    needs=("netns", "sysctl:net.core.rmem_default", "sysctl:net.core.wmem_default"),
)
def tcp_buffers_start_from_tcp_rmem_not_rmem_default(lab):
    rmem = [int(v) for v in read_sysctl("net.ipv4.tcp_rmem").split()]
    wmem = [int(v) for v in read_sysctl("net.ipv4.tcp_wmem").split()]
    rdef, wdef = int(read_sysctl("net.core.rmem_default")), int(read_sysctl("net.core.wmem_default"))
    lab.note(f"tcp_rmem {rmem}, tcp_wmem {wmem}, rmem_default {rdef}, wmem_default {wdef}")
    tcp = lab.socket("tcp")
    rcv = tcp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, label="SO_RCVBUF").value
    snd = tcp.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, label="SO_SNDBUF").value
    lab.expect(rcv == rmem[1] and snd == wmem[1],
               f"TCP starts at tcp_rmem[1] {rmem[1]} / tcp_wmem[1] {wmem[1]} (got {rcv} / {snd})")
    lab.expect(rcv != rdef, f"not rmem_default ({rdef})")
    udp = lab.socket("udp", socket.AF_INET, socket.SOCK_DGRAM)
    urcv = udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, label="SO_RCVBUF").value
    usnd = udp.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, label="SO_SNDBUF").value
    lab.expect(urcv == rdef and usnd == wdef, f"a UDP socket starts at rmem_default/wmem_default ({urcv}/{usnd})")
