"""Claims from the notes tcpkb replaces, each checked against the running kernel.

Every scenario here proves a `claim:<slug>` entry in kb/claim/ and declares the
verdict that note carries; the note quotes the numbers these traces record.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time

from .. import scenario
from ..lab import libc_write

NOSIG = socket.MSG_NOSIGNAL


# -- helpers -------------------------------------------------------------------

def _segments(lab, sock, flag: str) -> list[dict]:
    """TCP segments `sock` sent on its connection that carry `flag` ("" for all of them)."""
    return [p for p in lab.packets() if p.get("proto") == "tcp" and sock.local and sock.remote
            and (p["src"], p["sport"]) == tuple(sock.local) and (p["dst"], p["dport"]) == tuple(sock.remote)
            and flag in p["flags"]]


def _close_with_unread(lab, client, server, data: bytes, what: str) -> None:
    """`client` sends `data`; once it is queued at `server` (`what`), `server` closes it unread: RST."""
    client.send(data).value
    lab.wait_for(lambda: server.queued() == len(data), 1.0, what)
    server.close().value
    lab.expect_packets(f"{server.name} *R")


def _closed_peer(lab):
    """A connection whose client called close() with nothing unread: (client, server in CLOSE_WAIT)."""
    _, client, server = lab.connected_pair()
    client.close().value
    lab.wait_state(server, "CLOSE_WAIT", 1.0)
    lab.expect(server.recv().value == b"", "the server reads EOF: the peer's FIN has arrived")
    return client, server


# -- 1. close() with unread data ---------------------------------------------------

@scenario(
    claim="close() with unread bytes in the receive queue sends RST (never a FIN) and counts "
          "TcpExtTCPAbortOnClose; the peer's recv() fails with ECONNRESET, while a close() after "
          "reading everything sends FIN.",
    proves=["claim:close-with-unread-data-sends-rst", "flag:RST", "errno:ECONNRESET", "call:close",
            "counter:TcpExtTCPAbortOnClose"],
    verdicts={"claim:close-with-unread-data-sends-rst": "confirmed"},
)
def close_with_unread_data_sends_rst_never_fin(lab):
    listener, client, server = lab.connected_pair()
    _close_with_unread(lab, client, server, b"never read", "10 unread bytes in the server's queue")
    lab.expect(not _segments(lab, server, "F"), "the server sent no FIN at all")
    lab.expect(server.proc_row() is None, "the server's side is freed at once: no TIME_WAIT entry")
    lab.expect_counter("TcpExtTCPAbortOnClose", at_least=1)
    lab.expect_errno(client.recv(), "ECONNRESET")
    # The same close() after the data was read: an ordinary FIN.
    client2, server2 = lab.connect_to(listener, "client2", "client2-server")
    client2.send(b"read first").value
    lab.wait_for(lambda: server2.readable(0), 1.0, "the data to reach server2")
    lab.expect(server2.recv().value == b"read first", "server2 reads all 10 bytes")
    server2.close().value
    lab.expect_packets("client2-server *F")
    lab.expect(not _segments(lab, server2, "R"), "server2 sent no RST")
    lab.expect(client2.recv().value == b"", "client2 reads EOF")


# -- 2. shutdown(SHUT_RD) ----------------------------------------------------------

@scenario(
    claim="shutdown(SHUT_RD) puts nothing on the wire and discards nothing: queued bytes and bytes "
          "that arrive later are still ACKed and returned by recv(), but a recv() on an empty queue "
          "returns 0 at once instead of waiting.",
    proves=["claim:shutdown-rd-is-a-no-op", "call:shutdown", "call:recv", "call:poll"],
    verdicts={"claim:shutdown-rd-is-a-no-op": "depends"},
)
def shutdown_rd_sends_nothing_and_reads_return_eof(lab):
    _, client, server = lab.connected_pair()
    client.send(b"before").value
    lab.wait_for(lambda: server.queued() == 6, 1.0, "6 bytes queued at the server")
    lab.expect_packets("client *P", "server .")  # the data is ACKed before the shutdown
    before = len(_segments(lab, server, ""))
    server.shutdown(socket.SHUT_RD).value
    lab.sleep(0.05)
    lab.expect(len(_segments(lab, server, "")) == before, "shutdown(SHUT_RD) sent no segment")
    server.sock.settimeout(1.0)  # a bound on the blocking reads below, should they wait
    lab.expect(server.recv().value == b"before", "the 6 bytes queued before SHUT_RD are still returned")
    r, span = lab.timed_call(server, "recv(65536)", lambda: server.sock.recv(65536))
    lab.expect(r.value == b"", "recv() on the empty queue returns 0 (EOF)")
    # a read that waited would sleep until data or the 1 s timeout set above
    lab.expect_window(span.blocked, None, 0.01, "the blocking recv() did not sleep", "blocked")
    client.send(b"after").value
    lab.expect_packets("client *P", "server .", "client *P", "server .")
    lab.wait_for(lambda: server.queued() == 5, 1.0, "the 5 later bytes to be queued at the server")
    lab.expect(server.recv().value == b"after", "bytes arriving after SHUT_RD are queued and returned")
    poller = select.poll()
    poller.register(server.fileno(), select.POLLIN | select.POLLRDHUP)
    events = dict(poller.poll(0)).get(server.fileno(), 0)
    lab.note(f"poll() on the drained socket: revents {events:#x}")
    lab.expect(events & select.POLLIN and events & select.POLLRDHUP,
               "poll() reports POLLIN|POLLRDHUP at once although nothing is queued")
    server.send(b"reply").value
    lab.expect(client.recv().value == b"reply", "the server can still send")
    lab.expect_state(server, "ESTABLISHED")
    lab.expect_state(client, "ESTABLISHED")
    lab.expect(not _segments(lab, server, "F") and not _segments(lab, server, "R"),
               "the peer never saw a FIN or RST")


# -- 3. FIN_WAIT2 timeout ------------------------------------------------------------

@scenario(
    claim="With net.ipv4.tcp_fin_timeout = 1 an orphaned FIN_WAIT2 connection (descriptor closed) "
          "is freed about 1 s after its FIN is acknowledged, while a FIN_WAIT2 socket whose "
          "descriptor is still open after shutdown(SHUT_WR) has no timer and outlives it.",
    proves=["claim:fin-wait-2-has-no-timeout", "state:FIN_WAIT2", "sysctl:net.ipv4.tcp_fin_timeout",
            "call:close", "call:shutdown"],
    verdicts={"claim:fin-wait-2-has-no-timeout": "depends"},
    timeout=6.0,
)
def fin_wait2_times_out_only_when_orphaned(lab):
    with open("/proc/sys/net/ipv4/tcp_fin_timeout") as f:
        lab.note(f"tcp_fin_timeout in a fresh namespace: {f.read().strip()} s")
    lab.sysctl("net.ipv4.tcp_fin_timeout", 1)
    listener, orphan, _ = lab.connected_pair()
    kept, _ = lab.connect_to(listener, "kept", "kept-server")
    orphan.close().value
    kept.shutdown(socket.SHUT_WR).value
    lab.wait_state(orphan, "FIN_WAIT2", 1.0)
    lab.wait_state(kept, "FIN_WAIT2", 1.0)
    # The ACK of an orphan's FIN hands it to a timewait socket in FIN_WAIT2 whose time-wait
    # timer (3) runs tcp_fin_time(): tcp_fin_timeout, or 3.5 RTOs (0.7 s on loopback) if longer.
    _, due, due_by = lab.expect_timer(orphan, 3, lab.ack_of_fin(orphan), 1.0,
                                      "the orphan's FIN_WAIT2 timer, from the ACK of its FIN")
    row = kept.proc_row()
    lab.note(f"open FIN_WAIT2: /proc/net/tcp timer {row['timer']}")
    lab.expect(row["timer"] == 0, "the socket with an open descriptor has no timer running")
    lab.expect_freed_by_timer(orphan, due, due_by, 1.0)
    lab.sleep(0.3)
    lab.expect_state(kept, "FIN_WAIT2")
    lab.expect(kept.proc_row()["timer"] == 0, "0.3 s after the orphan was freed the open socket is still "
                                              "in FIN_WAIT2 with no timer")


# -- 4. first write after the peer closed ----------------------------------------------

@scenario(
    claim="After the peer close()s, the first send() succeeds and draws an RST from the peer; on "
          "loopback that RST arrives within the first call, so the second send() with MSG_NOSIGNAL "
          "fails with EPIPE (not ECONNRESET), as does every send after it.",
    proves=["claim:second-write-after-peer-close-gets-epipe", "errno:EPIPE", "flag:RST",
            "state:CLOSE_WAIT", "call:send", "sockopt:MSG_NOSIGNAL"],
    verdicts={"claim:second-write-after-peer-close-gets-epipe": "depends"},
)
def second_write_after_peer_close_fails_with_epipe(lab):
    _, server = _closed_peer(lab)
    lab.expect_state(server, "CLOSE_WAIT")
    lab.expect_ok(server.send(b"first", NOSIG))
    lab.expect_packets("server *P", "client *R")
    lab.expect_state(server, "CLOSE")
    lab.expect_errno(server.send(b"second", NOSIG), "EPIPE")
    lab.expect_errno(server.send(b"third", NOSIG), "EPIPE")


@scenario(
    claim="After the peer close()s, the first write succeeds and the second one, made with SIGPIPE "
          "at its default action, kills the process with SIGPIPE (signal 13).",
    proves=["claim:second-write-after-peer-close-gets-epipe", "signal:SIGPIPE", "call:send"],
    verdicts={"claim:second-write-after-peer-close-gets-epipe": "depends"},
)
def second_write_after_peer_close_raises_sigpipe(lab):
    _, server = _closed_peer(lab)
    lab.expect_ok(server.send(b"first"))
    lab.expect_packets("client *R")

    def child():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        server.sock.send(b"second")

    how = lab.fork(child, timeout=2.0)
    lab.expect(how.get("signal") == "SIGPIPE" and how.get("signal_number") == 13,
               f"the second write killed the child with SIGPIPE (got {how})")


@scenario(
    claim="When the peer only calls shutdown(SHUT_WR), its FIN looks the same, but every later "
          "send() succeeds and is delivered: no RST comes back, so there is no EPIPE.",
    proves=["claim:second-write-after-peer-close-gets-epipe", "state:CLOSE_WAIT", "state:FIN_WAIT2",
            "call:shutdown", "call:send"],
    verdicts={"claim:second-write-after-peer-close-gets-epipe": "depends"},
)
def writes_after_peer_shutdown_wr_keep_succeeding(lab):
    _, client, server = lab.connected_pair()
    client.shutdown(socket.SHUT_WR).value
    lab.wait_state(server, "CLOSE_WAIT", 1.0)
    lab.wait_state(client, "FIN_WAIT2", 1.0)
    lab.expect(server.recv().value == b"", "the server reads EOF")
    lab.expect_ok(server.send(b"first", NOSIG))
    lab.expect_ok(server.send(b"second", NOSIG))
    lab.expect_ok(server.send(b"third", NOSIG))
    lab.wait_for(lambda: client.queued() == 16, 1.0, "all 16 bytes to reach the half-closed client")
    lab.expect(client.recv().value == b"firstsecondthird", "the client receives all three writes")
    lab.expect(not _segments(lab, client, "R"), "the client sent no RST")
    lab.expect_state(server, "CLOSE_WAIT")


# -- 5. SO_LINGER {1, 0} ----------------------------------------------------------------

@scenario(
    claim="close() with SO_LINGER {1, 0} sends RST instead of FIN and frees the connection at once "
          "(no TIME_WAIT row, TcpExtTCPAbortOnData counts it), while a plain close() by the first "
          "closer leaves TIME_WAIT.",
    proves=["claim:so-linger-zero-skips-time-wait", "flag:RST", "errno:ECONNRESET", "state:TIME_WAIT",
            "sockopt:SO_LINGER", "call:close", "counter:TcpExtTCPAbortOnData"],
    verdicts={"claim:so-linger-zero-skips-time-wait": "confirmed"},
)
def linger_zero_close_leaves_no_time_wait(lab):
    listener, client, server = lab.connected_pair()
    client.linger(1, 0).value
    client.close().value
    lab.expect_packets("client *R")
    lab.expect(not _segments(lab, client, "F"), "the client sent no FIN")
    lab.expect(client.proc_row() is None, "the kernel holds no entry for the connection, not even TIME_WAIT")
    lab.expect_counter("TcpExtTCPAbortOnData", at_least=1)
    lab.expect_errno(server.recv(), "ECONNRESET")
    client2, server2 = lab.connect_to(listener, "client2", "client2-server")
    client2.close().value
    lab.wait_state(server2, "CLOSE_WAIT", 1.0)
    server2.close().value
    lab.wait_state(client2, "TIME_WAIT", 1.0)


# -- 6. close() of one descriptor vs shutdown() ----------------------------------------------

@scenario(
    claim="With the socket dup()ed, close() of one descriptor sends nothing and leaves the "
          "connection ESTABLISHED; the FIN leaves only when the last descriptor is closed, while "
          "shutdown(SHUT_WR) sends it at once although another descriptor is still open.",
    proves=["claim:shutdown-sends-fin-close-waits-for-last-reference", "flag:FIN", "state:FIN_WAIT2",
            "call:close", "call:shutdown"],
    verdicts={"claim:shutdown-sends-fin-close-waits-for-last-reference": "confirmed"},
)
def closing_one_dup_sends_no_fin_but_shutdown_does(lab):
    listener, client, server = lab.connected_pair()
    copy = os.dup(client.fileno())
    lab.call(client, f"close(fd {copy}) (a dup of the client's descriptor)", lambda: os.close(copy)).value
    lab.sleep(0.05)
    lab.expect(not _segments(lab, client, "F"), "closing one of two descriptors sent no FIN in 50 ms")
    lab.expect_state(client, "ESTABLISHED")
    lab.expect(not server.readable(0), "the server sees no EOF")
    client.close().value
    lab.expect_packets("client *F")
    lab.expect(server.recv().value == b"", "closing the last descriptor sends the FIN: the server reads EOF")

    client2, server2 = lab.connect_to(listener, "client2", "client2-server")
    copy2 = os.dup(client2.fileno())
    try:
        client2.shutdown(socket.SHUT_WR).value
        lab.expect_packets("client2 *F")
        lab.wait_state(client2, "FIN_WAIT2", 1.0)
        lab.expect(server2.recv().value == b"", "shutdown(SHUT_WR) with a second descriptor open: EOF at once")
    finally:
        os.close(copy2)


# -- 7. SO_REUSEADDR over TIME_WAIT ---------------------------------------------------------

def _rebind(lab, name: str, port: int, reuseaddr: bool):
    s = lab.socket(name, options={"SO_REUSEADDR": 1} if reuseaddr else None)
    return s, s.bind(("127.0.0.1", port))


@scenario(
    claim="A new listener with SO_REUSEADDR can bind a port held by a TIME_WAIT connection only if "
          "the old listener had SO_REUSEADDR too (the accepted connection inherits the flag); "
          "otherwise bind() fails with EADDRINUSE, and without the flag on the new socket it always does.",
    proves=["claim:so-reuseaddr-rebinds-time-wait-port", "errno:EADDRINUSE", "state:TIME_WAIT",
            "sockopt:SO_REUSEADDR", "call:bind"],
    verdicts={"claim:so-reuseaddr-rebinds-time-wait-port": "depends"},
)
def reuseaddr_rebind_over_time_wait_depends_on_old_socket(lab):
    port = lab.port_in_time_wait(reuseaddr=False, suffix="-a")[1]
    s, r = _rebind(lab, "restart-a", port, reuseaddr=True)
    lab.expect_errno(r, "EADDRINUSE")
    s.close()
    port = lab.port_in_time_wait(reuseaddr=True, suffix="-b")[1]
    s, r = _rebind(lab, "plain-b", port, reuseaddr=False)
    lab.expect_errno(r, "EADDRINUSE")
    s.close()
    s, r = _rebind(lab, "restart-b", port, reuseaddr=True)
    lab.expect_ok(r)
    lab.expect_ok(s.listen())


# -- 8. FIN+ACK in FIN_WAIT1 ---------------------------------------------------------------

@scenario(
    claim="A FIN_WAIT1 socket that receives one segment carrying the peer's FIN and the ACK of its "
          "own FIN answers with an ACK and is in TIME_WAIT at once, never showing FIN_WAIT2; a bare "
          "ACK followed by a FIN passes through FIN_WAIT2.",
    proves=["claim:fin-ack-in-fin-wait-1-skips-fin-wait-2", "state:FIN_WAIT1", "state:TIME_WAIT",
            "state:FIN_WAIT2"],
    needs=("netns", "tun"),
    verdicts={"claim:fin-ack-in-fin-wait-1-skips-fin-wait-2": "confirmed"},
)
def fin_ack_in_fin_wait1_goes_straight_to_time_wait(lab):
    peer = lab.tun_peer()
    client, conn = peer.connected("client", port=8080, blocking=True)
    client.close().value
    lab.expect_state(client, "FIN_WAIT1")
    fin = conn.expect("F.")
    lab.expect_state(client, "FIN_WAIT1")
    first = len(lab.steps)
    conn.send("F.")  # our FIN, and the ACK of the kernel's FIN (conn.ack = its seq + 1)
    seen = set()
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        seen.add(client.state())
    ack = conn.expect(".")
    lab.expect(ack["ack"] == conn.seq, "the kernel ACKs the peer's FIN")
    lab.expect_state(client, "TIME_WAIT")
    seen |= {step["states"].get("client") for step in lab.steps[first:]}
    lab.note(f"states polled for 50 ms after the FIN+ACK: {sorted(s for s in seen if s)}")
    lab.expect("FIN_WAIT2" not in seen, "FIN_WAIT2 was never observed")
    lab.note(f"kernel FIN seq {fin['seq']}; TIME_WAIT timer {client.proc_row()['timer_s']:.2f} s")

    client2, conn2 = peer.connected("client2", port=8081, blocking=True)
    client2.close().value
    conn2.expect("F.")
    conn2.send(".")
    lab.wait_state(client2, "FIN_WAIT2", 1.0)
    conn2.send("F.")
    conn2.expect(".")
    lab.wait_state(client2, "TIME_WAIT", 1.0)


# -- 9. TIME_WAIT duration -------------------------------------------------------------------

@scenario(
    claim="TIME_WAIT's timer starts at 60 s (TCP_TIMEWAIT_LEN) even with net.ipv4.tcp_fin_timeout "
          "set to 1: its length is a constant, not 2 x MSL and not a sysctl.",
    proves=["claim:time-wait-lasts-2msl", "state:TIME_WAIT", "sysctl:net.ipv4.tcp_fin_timeout"],
    verdicts={"claim:time-wait-lasts-2msl": "refuted"},
)
def time_wait_timer_is_60_s_whatever_fin_timeout(lab):
    lab.sysctl("net.ipv4.tcp_fin_timeout", 1)
    _, client, server = lab.connected_pair()
    client.close().value
    lab.wait_state(server, "CLOSE_WAIT", 1.0)
    server.close().value
    lab.wait_state(client, "TIME_WAIT", 1.0)
    # The server's FIN moves the client to TIME_WAIT, whose timer is TCP_TIMEWAIT_LEN (60*HZ).
    first, due, due_by = lab.expect_timer(client, 3, lab.fin_to(client), 60.0,
                                          "the TIME_WAIT timer, from the server's FIN")
    lab.note(f"TIME_WAIT row: timer {first['timer']}, {first['timer_s']:.2f} s left")
    lab.sleep(0.15)
    second, due2, due2_by = lab.timer_deadline(client)
    lab.note(f"0.15 s later (or more, on a loaded machine): {second['timer_s']:.2f} s left")
    lab.expect(second["timer_s"] < first["timer_s"] and due2 < due_by and due < due2_by,
               "the timer counts down to the same expiry, 60 s after the FIN: tcp_fin_timeout = 1 did "
               "not shorten it")


# -- 10. tcp_tw_recycle -------------------------------------------------------------------------

@scenario(
    claim="A fresh network namespace has no net.ipv4.tcp_tw_recycle (opening it fails with ENOENT; "
          "it was removed in Linux 4.12), while net.ipv4.tcp_tw_reuse exists with its default 2.",
    proves=["claim:tcp-tw-recycle-fixes-time-wait", "sysctl:net.ipv4.tcp_tw_recycle",
            "sysctl:net.ipv4.tcp_tw_reuse"],
    verdicts={"claim:tcp-tw-recycle-fixes-time-wait": "refuted"},
)
def tcp_tw_recycle_sysctl_no_longer_exists(lab):
    def read(path):
        return lambda: open(path).read().strip()
    lab.note(f"kernel {os.uname().release}")
    r = lab.call(None, "open(/proc/sys/net/ipv4/tcp_tw_recycle)", read("/proc/sys/net/ipv4/tcp_tw_recycle"))
    lab.expect_errno(r, "ENOENT")
    reuse = lab.call(None, "open(/proc/sys/net/ipv4/tcp_tw_reuse)", read("/proc/sys/net/ipv4/tcp_tw_reuse"))
    lab.expect(reuse.ok and reuse.value == "2", f"tcp_tw_reuse exists and is 2 (got {reuse})")
    delay = lab.call(None, "open(/proc/sys/net/ipv4/tcp_tw_reuse_delay)",
                     read("/proc/sys/net/ipv4/tcp_tw_reuse_delay"))
    if delay.ok:
        lab.note(f"tcp_tw_reuse_delay = {delay.value} ms")


# -- 11. write after ECONNRESET -----------------------------------------------------------------

@scenario(
    claim="Once a recv() has reported ECONNRESET, the next send() fails with EPIPE (and recv() "
          "returns 0); if a send() is the first call after the RST, that send() gets ECONNRESET and "
          "the one after it EPIPE.",
    proves=["claim:write-after-econnreset-gives-epipe", "errno:ECONNRESET", "errno:EPIPE", "call:send",
            "call:recv"],
    verdicts={"claim:write-after-econnreset-gives-epipe": "confirmed"},
)
def send_after_reported_econnreset_gets_epipe(lab):
    listener, client, server = lab.connected_pair()
    _close_with_unread(lab, client, server, b"x", "the byte to be queued at the server")
    lab.expect_state(client, "CLOSE")
    lab.expect_errno(client.recv(), "ECONNRESET")
    lab.expect_errno(client.send(b"a", NOSIG), "EPIPE")
    lab.expect_errno(client.send(b"b", NOSIG), "EPIPE")
    lab.expect(client.recv().value == b"", "recv() now returns 0")

    client2, server2 = lab.connect_to(listener, "client2", "client2-server")
    _close_with_unread(lab, client2, server2, b"x", "the byte to be queued at server2")
    lab.expect_errno(client2.send(b"a", NOSIG), "ECONNRESET")
    lab.expect_errno(client2.send(b"b", NOSIG), "EPIPE")


# -- 12. errno after SIGPIPE is ignored ---------------------------------------------------------

@scenario(
    claim="With SIGPIPE ignored, a write() on a connection the peer has reset returns -1 with errno "
          "EPIPE (32); SIGPIPE is signal 13 and is never an errno value, and with SIGPIPE at its "
          "default the same write kills the process instead.",
    proves=["claim:errno-is-sigpipe-when-sigpipe-ignored", "errno:EPIPE", "signal:SIGPIPE", "call:write"],
    verdicts={"claim:errno-is-sigpipe-when-sigpipe-ignored": "refuted"},
)
def ignored_sigpipe_leaves_errno_epipe_not_sigpipe(lab):
    _, server = _closed_peer(lab)
    lab.expect_ok(server.send(b"first", NOSIG))
    lab.expect_packets("client *R")
    fd = server.fileno()
    lab.expect(signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN, "SIGPIPE is ignored in this process")
    lab.expect_errno(lab.call(server, "write(fd, \"x\", 1) via libc, SIGPIPE ignored", lambda: libc_write(fd, b"x")),
                     "EPIPE")

    def ignoring():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        try:
            libc_write(fd, b"x")
        except OSError as e:
            os._exit(e.errno)
        os._exit(0)

    how = lab.fork(ignoring, timeout=2.0)
    lab.note(f"child with SIGPIPE ignored exited with its errno: {how}; "
             f"EPIPE = {errno.EPIPE}, SIGPIPE = {int(signal.SIGPIPE)}")
    lab.expect(how.get("exit_code") == errno.EPIPE == 32, "errno is 32, EPIPE")
    lab.expect(how.get("exit_code") != int(signal.SIGPIPE), "errno is not 13, the number of SIGPIPE")

    def default():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        libc_write(fd, b"x")

    how = lab.fork(default, timeout=2.0)
    lab.expect(how.get("signal_number") == 13, f"with SIGPIPE at its default the write kills the child (got {how})")


# -- 13. CLOSING ----------------------------------------------------------------------------------

@scenario(
    claim="A FIN_WAIT1 socket that receives the peer's FIN before the ACK of its own FIN (the two "
          "FINs crossed) ACKs it and enters CLOSING; the late ACK then moves it to TIME_WAIT.",
    proves=["claim:closing-means-simultaneous-close", "state:CLOSING", "state:TIME_WAIT"],
    needs=("netns", "tun"),
    verdicts={"claim:closing-means-simultaneous-close": "confirmed"},
)
def crossing_fins_move_fin_wait1_to_closing(lab):
    peer = lab.tun_peer()
    client, conn = peer.connected("client", port=8080, blocking=True)
    client.close().value
    fin = conn.expect("F.")
    lab.expect_state(client, "FIN_WAIT1")
    conn.send("F.", ack=fin["seq"])  # the peer's FIN, sent before it saw ours
    ack = conn.expect(".")
    lab.expect(ack["ack"] == conn.seq and ack["seq"] == fin["seq"] + 1,
               "the kernel ACKs the peer's FIN; its own FIN is still unacknowledged")
    lab.expect_state(client, "CLOSING")
    row = client.proc_row()
    lab.note(f"CLOSING row: timer {row['timer']} ({row['timer_s']:.2f} s), retransmitting the FIN")
    conn.send(".")  # now the ACK of the kernel's FIN arrives
    lab.wait_state(client, "TIME_WAIT", 1.0)
    lab.expect_packets("client *F", "peer *F", "client .", "peer .")
