"""Socket options and send/recv flags: what each one measurably changes.

SO_LINGER {1, 0}, SO_REUSEADDR, the keepalive options, TCP_USER_TIMEOUT, TCP_SYNCNT,
SO_ERROR, MSG_NOSIGNAL, SO_RCVTIMEO, TCP_DEFER_ACCEPT, TCP_FASTOPEN and MSG_OOB are
reproduced by scenarios in other modules, which list them in their `proves`.
"""

from __future__ import annotations

import os
import socket
import struct
import threading

from .. import scenario
from ..lab import Skip
from ...machine.netns import read_sysctl
from ..timing import LOAD_MARGIN_S, timer_bounds

# A call that never sleeps in the kernel shows a few microseconds of "blocked" time (page
# faults, the clock reads themselves); 10 ms is far below any timer a sleeping call would wait.
NEVER_SLEPT_S = 0.01

SMALL = {"SO_RCVBUF": 4096, "SO_SNDBUF": 4096}
IP_BIND_ADDRESS_NO_PORT = 24


def _data_to_peer(lab, port: int) -> list[dict]:
    """Segments with payload the kernel sent to the scripted peer's `port`."""
    return [p for p in lab.packets() if p.get("proto") == "tcp" and p.get("dir") == "to-peer"
            and p["dport"] == port and p["len"] > 0]


def _data_from(lab, sock) -> list[dict]:
    """Segments with payload that `sock` sent on its loopback connection."""
    return [p for p in lab.packets() if p.get("proto") == "tcp" and p.get("from") == sock.name
            and p["len"] > 0]


# -- SO_LINGER with a timeout ------------------------------------------------------------

@scenario(
    claim="close() with SO_LINGER {1, 1} on a NON-blocking socket whose data waits behind the peer's "
          "zero window blocks for about 1 s, returns 0, and leaves the orphaned connection in "
          "FIN_WAIT1 with its data and FIN still queued; no RST is sent.",
    proves=["sockopt:SO_LINGER", "call:close", "state:FIN_WAIT1"],
)
def linger_timeout_blocks_close_even_when_nonblocking(lab):
    listener = lab.listener(backlog=4, options=SMALL)
    client, server = lab.connect_to(listener, options=SMALL)
    lab.fill_to_zero_window(client)  # leaves the socket non-blocking
    client.linger(1, 1).value
    lab.expect(client.sock.getblocking() is False, "the client's descriptor is non-blocking (O_NONBLOCK)")
    local, remote = client.local, client.remote
    fd = client.sock.detach()
    client.closed = True
    r, span = lab.timed_call(client, f"close({fd}) with SO_LINGER {{1, 1}}", lambda: os.close(fd))
    lab.expect_ok(r)
    # __tcp_close() waits in sk_stream_wait_close() for l_linger = 1 s (HZ jiffies): a
    # schedule_timeout() timer, so the sleep is that timer's length (timing.timer_bounds);
    # returning at once, or waiting for the data to drain (never: zero window), fail.
    lab.expect_window(span.slept, *timer_bounds(1.0), "close() slept for l_linger", "blocked")
    lab.expect_state(client, "FIN_WAIT1")
    lab.expect(not [p for p in lab.packets() if p.get("from") == "client" and "R" in p["flags"]],
               "the client sent no RST")
    lab.expect(not [p for p in lab.packets() if p.get("from") == "client" and "F" in p["flags"]],
               "the FIN is still queued behind the data")
    lab.note(f"the orphan {local} -> {remote} is still in {client.state()}")
    lab.read_to_eof(server, timeout=3.0)
    lab.expect_packets("client *F")


# -- SO_RCVBUF / SO_SNDBUF ------------------------------------------------------------------

@scenario(
    claim="SO_RCVBUF and SO_SNDBUF are doubled: setsockopt(4096) reads back 8192; a request above "
          "net.core.rmem_max (wmem_max) is capped at twice that maximum, and tiny requests are "
          "raised to a floor of 2304 bytes for SO_RCVBUF and 4608 for SO_SNDBUF.",
    proves=["sockopt:SO_RCVBUF", "sockopt:SO_SNDBUF", "sysctl:net.core.rmem_max",
            "sysctl:net.core.wmem_max", "call:setsockopt", "call:getsockopt"],
    needs=("netns", "sysctl:net.core.rmem_max", "sysctl:net.core.wmem_max"),
)
def rcvbuf_and_sndbuf_are_doubled_and_capped(lab):
    rmax, wmax = int(read_sysctl("net.core.rmem_max")), int(read_sysctl("net.core.wmem_max"))
    lab.note(f"net.core.rmem_max {rmax}, wmem_max {wmax} (read-only in a namespace: the host's values)")
    s = lab.socket("sock")
    cases = ((4096, 8192, 8192), (1, 2304, 4608), (max(rmax, wmax) * 4, 2 * rmax, 2 * wmax))
    for asked, rcv_expected, snd_expected in cases:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, asked, label="SO_RCVBUF").value
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, asked, label="SO_SNDBUF").value
        rcv = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, label="SO_RCVBUF").value
        snd = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, label="SO_SNDBUF").value
        lab.expect(rcv == rcv_expected and snd == snd_expected,
                   f"asking {asked}: SO_RCVBUF {rcv_expected}, SO_SNDBUF {snd_expected} (got {rcv}, {snd})")


# -- SO_REUSEPORT ---------------------------------------------------------------------------

@scenario(
    claim="Two listeners bound to the same port with SO_REUSEPORT share incoming connections: of 40 "
          "connections each listener accepted some, and together exactly 40.",
    proves=["sockopt:SO_REUSEPORT", "call:bind", "call:accept"],
)
def reuseport_listeners_share_connections(lab):
    a = lab.listener("a", ("127.0.0.1", 5000), backlog=64, options={"SO_REUSEPORT": 1})
    b = lab.listener("b", ("127.0.0.1", 5000), backlog=64, options={"SO_REUSEPORT": 1})
    clients = []
    for i in range(40):
        c = socket.socket()
        c.connect(("127.0.0.1", 5000))
        clients.append(c)
    lab.note("40 clients connected to 127.0.0.1:5000 (untraced)")
    counts = {}
    for listener in (a, b):
        listener.set_blocking(False)
        n = 0
        while n < 64:
            try:
                conn, _ = listener.sock.accept()
            except BlockingIOError:
                break
            conn.close()
            n += 1
        counts[listener.name] = n
    for c in clients:
        c.close()
    lab.note(f"accepted: {counts}")
    lab.expect(counts["a"] + counts["b"] == 40, f"all 40 were accepted ({counts})")
    lab.expect(counts["a"] > 0 and counts["b"] > 0, f"both listeners got connections ({counts})")


# -- Nagle and TCP_NODELAY, TCP_CORK ------------------------------------------------------------

@scenario(
    claim="With Nagle on (the default), two small send()s to a peer that has not acknowledged the "
          "first put only one data segment on the wire; the second leaves as soon as the ACK comes. "
          "With TCP_NODELAY both leave at once, two segments.",
    proves=["sockopt:TCP_NODELAY", "call:send"],
    needs=("netns", "tun"),
)
def nagle_holds_second_small_write_until_ack(lab):
    peer = lab.tun_peer()
    nagle, nagle_conn = peer.connected("nagle", port=8080, blocking=True)
    nodelay, _ = peer.connected("nodelay", port=8081, blocking=True)
    nodelay.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1, label="TCP_NODELAY").value
    spans = {}
    for sock in (nagle, nodelay):
        for data in (b"first", b"second"):
            r, spans[sock.name, data] = lab.timed_call(sock, f"send({data!r})", lambda d=data: sock.sock.send(d))
            r.value
    lab.sleep(0.1)
    # The peer acknowledges nothing yet, so the retransmission timer may resend the first
    # segment if the lab sleeps long; only each byte range's first copy counts.
    both = _first_copies(_data_to_peer(lab, 8081))
    lab.expect([p["len"] for p in both] == [5, 6], f"TCP_NODELAY: two segments, 5 and 6 bytes "
               f"({[p['len'] for p in both]})")
    second = spans["nodelay", b"second"]
    lab.expect(second.start <= lab.stamp(both[1]) <= second.end, "the 6 bytes left during their send()")
    lab.expect(nagle.unsent() == 6, f"Nagle: the 6 bytes of the second write wait unsent ({nagle.unsent()})")
    first = nagle_conn.expect(contains="P", timeout=0.5)
    nagle_conn.send(".")
    released = peer.expect(lambda p: p["sport"] == nagle_conn.kernel_port and p["len"] == 6
                           and p["seq"] == (first["seq"] + 5) & 0xFFFFFFFF, 0.5, "the 6 held bytes")
    lab.note(f"the held bytes left as seq {released['seq']}, right after the first 5")
    copies = _first_copies(_data_to_peer(lab, 8080))
    ack = [p for p in lab.packets() if p.get("dir") == "from-peer" and p["dport"] == nagle_conn.kernel_port
           and p["flags"] == "." and p["len"] == 0][-1]
    lab.expect([p["len"] for p in copies] == [5, 6] and copies[0]["t_ms"] < ack["t_ms"] < copies[1]["t_ms"],
               "Nagle: one 5-byte segment, and the 6 bytes only after the peer's ACK")
    # tcp_ack() sends what Nagle held (tcp_data_snd_check()) while it processes the ACK, in the
    # same softirq (the order is checked above). A timer would take 200 ms at least
    # (TCP_RTO_MIN); 0.1 s is the load margin.
    lab.expect_window(lab.stamp(copies[1]) - lab.stamp(ack), None, LOAD_MARGIN_S,
                      "from the peer's ACK to the held segment", "capture")


def _first_copies(segments: list[dict]) -> list[dict]:
    """Segments in order, without retransmissions (a segment whose first byte was already sent)."""
    seen, out = set(), []
    for p in segments:
        if p["seq"] not in seen:
            seen.add(p["seq"])
            out.append(p)
    return out


@scenario(
    claim="With TCP_CORK set, three 2-byte writes put nothing on the wire at first; clearing TCP_CORK "
          "sends them as one 6-byte segment, and corked data left alone goes out as one segment "
          "after about 200 ms.",
    proves=["sockopt:TCP_CORK", "call:send"],
)
def cork_holds_small_writes_until_uncork_or_200_ms(lab):
    listener = lab.listener()
    corked, server = lab.connect_to(listener, "corked", "corked-server")
    waited, waited_server = lab.connect_to(listener, "waited", "waited-server")
    for sock in (corked, waited):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1, label="TCP_CORK").value
    _corked_writes(lab, corked)
    r, uncork = lab.timed_call(corked, "setsockopt(TCP_CORK, 0)",
                               lambda: corked.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0))
    r.value
    lab.wait_for(lambda: server.queued() == 6, 1.0, "the uncorked bytes to arrive")
    sent = _data_from(lab, corked)
    lab.expect([p["len"] for p in sent] == [6], f"uncorking sent one 6-byte segment ({[p['len'] for p in sent]})")
    lab.expect(uncork.start <= lab.stamp(sent[0]) <= uncork.end,
               "it left during the setsockopt() that cleared TCP_CORK, and nothing before it")

    writes = _corked_writes(lab, waited)
    first = writes[0]
    lab.wait_for(lambda: waited_server.queued() == 6, 1.0, "the still-corked bytes to leave on their own")
    sent = _data_from(lab, waited)
    left = lab.stamp(sent[0])
    # The timer sends whatever is held when it fires: all six bytes, as the writes take well under
    # a millisecond each; but a loaded VM once stalled 400 ms between two writes, and the timer
    # then sent the first two alone. So the first segment holds every byte written before it left,
    # as the kernel's timestamps order them (a write spanning its departure may or may not count).
    lengths = [p["len"] for p in sent]
    least = 2 * sum(1 for w in writes if w.end <= left)
    most = 2 * sum(1 for w in writes if w.start <= left)
    lab.expect(sum(lengths) == 6 and least <= lengths[0] <= most,
               f"one segment of the {least}-{most} bytes written before it left ({lengths})"
               if least < 6 else f"one 6-byte segment ({lengths})")
    # The first corked write arms the zero-window probe timer (tcp_check_probe_timer()) for
    # tcp_probe0_base() = max(icsk_rto, TCP_RTO_MIN); on loopback the RTO is TCP_RTO_MIN (200 ms,
    # HZ/5) plus a negligible srtt, and the timer's expiry sends the held bytes. Low: half of
    # that, far above an immediate send and the 40 ms delayed-ACK minimum; high: the 200 ms timer
    # with its jiffy rounding and load margin (timing.timer_bounds), far below the 1 s initial RTO.
    left = lab.stamp(sent[0])
    lab.expect_window((left - first.end, left - first.start), 0.1, timer_bounds(0.2)[1],
                      "from the first corked write to the segment", "capture+call")


def _corked_writes(lab, sock) -> list:
    """Three 2-byte send()s on a corked socket; their Spans (the first arms the timer)."""
    spans = []
    for data in (b"ab", b"cd", b"ef"):
        r, span = lab.timed_call(sock, f"send({data!r})", lambda d=data: sock.sock.send(d))
        r.value
        spans.append(span)
    return spans


# -- recv flags ---------------------------------------------------------------------------------

@scenario(
    claim="recv() with MSG_PEEK returns queued bytes without consuming them (the next recv() gets the "
          "same bytes); MSG_WAITALL makes a blocking recv(10) wait across two 5-byte sends 0.2 s apart "
          "and return all 10 bytes (on a non-blocking socket it returns what is queued); MSG_DONTWAIT "
          "makes recv() on an empty blocking socket fail with EAGAIN at once.",
    proves=["sockopt:MSG_PEEK", "sockopt:MSG_WAITALL", "sockopt:MSG_DONTWAIT", "errno:EAGAIN",
            "call:recv"],
)
def recv_flags_peek_waitall_dontwait(lab):
    _, client, server = lab.connected_pair()
    r, span = lab.timed_call(client, "recv(16, MSG_DONTWAIT)", lambda: client.sock.recv(16, socket.MSG_DONTWAIT))
    lab.expect_errno(r, "EAGAIN")
    lab.expect_window(span.blocked, None, NEVER_SLEPT_S, "MSG_DONTWAIT returned without sleeping", "blocked")
    lab.expect(client.sock.getblocking(), "the socket itself is still blocking")

    server.send(b"hello").value
    lab.wait_for(lambda: client.queued() == 5, 1.0, "5 bytes queued at the client")
    lab.expect(client.recv(16, socket.MSG_PEEK).value == b"hello", "MSG_PEEK returns the bytes")
    lab.expect(client.queued() == 5, "and leaves them queued")
    lab.expect(client.recv(16).value == b"hello", "a plain recv() then returns the same bytes")

    timer = threading.Timer(0.2, lambda: server.sock.send(b"67890"))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 2, 0),
                      label="SO_RCVTIMEO {2 s, 0} (a bound, should MSG_WAITALL wait for ever)").value
    server.send(b"12345").value

    def recv():  # the timer starts inside the measured call, so the second send comes during it
        timer.start()
        return client.sock.recv(10, socket.MSG_WAITALL)
    try:
        r, span = lab.timed_call(client, "recv(10, MSG_WAITALL)", recv)
    finally:
        if timer.is_alive():
            timer.join(2.0)
    lab.expect(r.ok and r.value == b"1234567890", f"MSG_WAITALL returned all 10 bytes ({r})")
    second = _data_from(lab, server)[-1]
    lab.expect_woken_by(span, lab.stamp(second), "the second 5 bytes arrived, 0.2 s after the first")

    server.send(b"abcde").value
    lab.wait_for(lambda: client.queued() == 5, 1.0, "5 more bytes queued at the client")
    client.set_blocking(False)
    r = client.recv(10, socket.MSG_WAITALL)
    lab.expect(r.ok and r.value == b"abcde",
               f"on a non-blocking socket MSG_WAITALL returns the 5 queued bytes ({r})")


# -- IPV6_V6ONLY, IP_BIND_ADDRESS_NO_PORT ------------------------------------------------------

def _ipv6_loopback(lab) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        raise Skip(f"no IPv6 loopback in this namespace ({e.strerror})") from None


@scenario(
    claim="An AF_INET6 socket starts with IPV6_V6ONLY = net.ipv6.bindv6only (0); with 0 a listener on "
          "[::]:P also holds 0.0.0.0:P, so bind(0.0.0.0:P) fails with EADDRINUSE and an IPv4 client "
          "reaches the IPv6 listener; with IPV6_V6ONLY=1 both binds succeed, and after "
          "net.ipv6.bindv6only=1 new AF_INET6 sockets start with IPV6_V6ONLY=1.",
    proves=["sockopt:IPV6_V6ONLY", "sysctl:net.ipv6.bindv6only", "errno:EADDRINUSE", "call:bind"],
)
def v6only_decides_whether_ipv6_wildcard_takes_ipv4_port(lab):
    _ipv6_loopback(lab)
    lab.note(f"net.ipv6.bindv6only = {read_sysctl('net.ipv6.bindv6only')}")
    dual = lab.socket("dual", socket.AF_INET6)
    v6only = dual.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, label="IPV6_V6ONLY").value
    lab.expect(v6only == 0, f"IPV6_V6ONLY starts at 0 (got {v6only})")
    dual.bind(("::", 5000)).value
    dual.listen().value
    v4 = lab.socket("v4")
    lab.expect_errno(v4.bind(("0.0.0.0", 5000)), "EADDRINUSE")
    client = lab.socket("client")
    lab.expect_ok(client.connect(("127.0.0.1", 5000)))
    server = dual.accept("server").value
    lab.note(f"the IPv6 listener accepted {server.remote[0]}")
    lab.expect(server.remote[0] == "::ffff:127.0.0.1", "an IPv4-mapped peer address")

    only = lab.socket("v6only", socket.AF_INET6, options={"IPV6_V6ONLY": 1})
    only.bind(("::", 5001)).value
    only.listen().value
    v4b = lab.socket("v4b")
    lab.expect_ok(v4b.bind(("0.0.0.0", 5001)))
    lab.expect_ok(v4b.listen())

    lab.sysctl("net.ipv6.bindv6only", 1)
    later = lab.socket("later", socket.AF_INET6)
    v6only = later.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, label="IPV6_V6ONLY").value
    lab.expect(v6only == 1, f"with net.ipv6.bindv6only=1 a new socket starts at 1 (got {v6only})")


@scenario(
    claim="bind(127.0.0.1:0) with IP_BIND_ADDRESS_NO_PORT leaves the port unchosen (getsockname "
          "reports port 0) until connect() picks one; without the option bind() chooses a port at once.",
    proves=["sockopt:IP_BIND_ADDRESS_NO_PORT", "call:bind", "call:getsockname", "call:connect"],
)
def bind_address_no_port_defers_port_choice_to_connect(lab):
    listener = lab.listener()
    plain = lab.socket("plain")
    plain.bind(("127.0.0.1", 0)).value
    port = lab.call(plain, "getsockname()", plain.sock.getsockname).value[1]
    lab.expect(port != 0, f"without the option bind() picked port {port}")
    deferred = lab.socket("deferred", options={"IP_BIND_ADDRESS_NO_PORT": 1})
    deferred.bind(("127.0.0.1", 0)).value
    name = lab.call(deferred, "getsockname()", deferred.sock.getsockname).value
    lab.expect(name == ("127.0.0.1", 0), f"with it the address is set and the port is still 0 ({name})")
    deferred.connect(listener.local).value
    name = lab.call(deferred, "getsockname()", deferred.sock.getsockname).value
    lab.expect(name[0] == "127.0.0.1" and name[1] != 0, f"connect() chose port {name[1]}")


# -- TCP_LINGER2 ---------------------------------------------------------------------------------

@scenario(
    claim="TCP_LINGER2 = 1 overrides tcp_fin_timeout (60 s) for one socket: after close() its orphaned "
          "FIN_WAIT2 runs a 1 s timer and is freed about 1 s later.",
    proves=["sockopt:TCP_LINGER2", "sysctl:net.ipv4.tcp_fin_timeout", "state:FIN_WAIT2"],
)
def linger2_positive_overrides_fin_timeout(lab):
    lab.note(f"tcp_fin_timeout = {read_sysctl('net.ipv4.tcp_fin_timeout')}")
    _, client, _ = lab.connected_pair()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, 1, label="TCP_LINGER2").value
    client.close().value
    lab.wait_state(client, "FIN_WAIT2", 1.0)
    # tcp_fin_time(): TCP_LINGER2 replaces tcp_fin_timeout (60 s here) unless 3.5 RTOs (0.7 s on
    # loopback) are longer; the ACK of the FIN starts the orphan's FIN_WAIT2 time-wait timer (3).
    _, due, due_by = lab.expect_timer(client, 3, lab.ack_of_fin(client), 1.0,
                                      "the orphan's FIN_WAIT2 timer, from the ACK of its FIN")
    lab.expect_freed_by_timer(client, due, due_by, 1.0)


@scenario(
    claim="A negative TCP_LINGER2 gives an orphan no FIN_WAIT2 at all: after a plain close() the ACK "
          "of its FIN is answered with a bare RST (counted in TcpExtTCPAbortOnData), and a socket "
          "already in FIN_WAIT2 after shutdown(SHUT_WR) sends RST+ACK when close()d "
          "(TcpExtTCPAbortOnLinger).",
    proves=["sockopt:TCP_LINGER2", "state:FIN_WAIT2", "flag:RST", "call:close", "call:shutdown",
            "counter:TcpExtTCPAbortOnData", "counter:TcpExtTCPAbortOnLinger"],
)
def linger2_negative_resets_instead_of_fin_wait2(lab):
    listener, plain, plain_srv = lab.connected_pair()
    plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1, label="TCP_LINGER2").value
    value = plain.getsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, label="TCP_LINGER2").value
    lab.expect(value == -1, f"getsockopt reads back -1 ({value})")
    plain.close().value
    lab.expect_packets("client F.", "server .", "client R")
    lab.wait_state(plain_srv, "CLOSE", 1.0)
    lab.expect(plain.proc_row() is None, "the orphan is gone: no FIN_WAIT2 row")
    lab.expect_counter("TcpExtTCPAbortOnData", at_least=1)
    lab.expect(lab.counter("TcpExtTCPAbortOnLinger") == 0, "TcpExtTCPAbortOnLinger did not move")

    half, _ = lab.connect_to(listener, "half", "half-server")
    half.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1, label="TCP_LINGER2").value
    half.shutdown(socket.SHUT_WR).value
    lab.wait_state(half, "FIN_WAIT2", 1.0)
    half.close().value
    lab.expect_packets("half F.", "half-server .", "half R.")
    lab.expect(half.proc_row() is None, "no FIN_WAIT2 row is left")
    lab.expect_counter("TcpExtTCPAbortOnLinger", at_least=1)
