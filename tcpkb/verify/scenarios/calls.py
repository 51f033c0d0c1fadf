"""Calls whose effect depends on the socket's state: shutdown() on a listener or a connecting
socket, and what poll(), select() and epoll report as a connection ends or completes."""

from __future__ import annotations

import os
import select
import socket
import threading

from .. import scenario, timing
from ..lab import errno_name

POLL_NAMES = (("POLLIN", select.POLLIN), ("POLLPRI", select.POLLPRI), ("POLLOUT", select.POLLOUT),
              ("POLLERR", select.POLLERR), ("POLLHUP", select.POLLHUP), ("POLLNVAL", select.POLLNVAL),
              ("POLLRDNORM", select.POLLRDNORM), ("POLLRDBAND", select.POLLRDBAND),
              ("POLLWRNORM", select.POLLWRNORM), ("POLLWRBAND", select.POLLWRBAND),
              ("POLLRDHUP", select.POLLRDHUP))
ASKED = select.POLLIN | select.POLLPRI | select.POLLOUT | select.POLLRDHUP


def _names(mask: int) -> str:
    return "|".join(name for name, bit in POLL_NAMES if mask & bit) or "0"


def _poll(lab, sock, events: int = ASKED) -> int:
    """poll() on one socket with a zero timeout, recorded in the trace; returns revents."""
    def do():
        p = select.poll()
        p.register(sock.fileno(), events)
        return dict(p.poll(0)).get(sock.fileno(), 0)
    revents = lab.call(sock, f"poll({_names(events)}, timeout 0)", do).value
    lab.note(f"{sock.name}: revents {_names(revents)}")
    return revents


def _so_error(lab, sock) -> str | None:
    """getsockopt(SO_ERROR): the pending error's name (and the read clears it), or None."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR, label="SO_ERROR").value
    return errno_name(err) if err else None


# -- shutdown() -----------------------------------------------------------------------

@scenario(
    claim="shutdown(SHUT_WR) on a listener returns 0 and changes nothing (it stays in LISTEN and "
          "accepts); shutdown(SHUT_RD) closes it: an accept() blocked in another thread wakes with "
          "EINVAL, a connection still waiting in its queue is reset (RST+ACK), one already accepted "
          "stays ESTABLISHED, and new connects get ECONNREFUSED.",
    proves=["call:shutdown", "call:accept", "errno:EINVAL", "errno:ECONNREFUSED", "errno:ECONNRESET",
            "state:LISTEN", "state:CLOSE"],
)
def shutdown_on_listener_read_side_closes_it(lab):
    listener = lab.listener(backlog=4)
    lab.expect_ok(listener.shutdown(socket.SHUT_WR))
    lab.expect_state(listener, "LISTEN")
    first, _ = lab.connect_to(listener, "first", "first-server")
    lab.expect_state(first, "ESTABLISHED")

    queued = lab.socket("queued")
    queued.connect(listener.local).value
    lab.wait_for(lambda: listener.readable(0), 1.0, "the connection to wait in the accept queue")
    drained = lab.listener("empty", backlog=4)
    woke = {}

    def blocked_accept():
        got, span = timing.measure(drained.sock.accept)
        if isinstance(got, OSError):
            woke["result"] = os.strerror(got.errno) if got.errno else str(got)
            woke["errno"] = got.errno
        else:
            woke["result"] = "a connection"
        woke["slept"] = span.blocked  # this thread's sleep in accept(), from its schedstat

    thread = threading.Thread(target=blocked_accept, daemon=True)
    thread.start()
    lab.sleep(0.1)
    lab.expect(thread.is_alive(), "a thread is blocked in accept() on the empty listener")
    drained.shutdown(socket.SHUT_RD).value
    thread.join(1.0)
    lab.expect(not thread.is_alive(), "the blocked accept() returned")
    got = errno_name(woke.get("errno", 0)) if woke.get("errno") else woke.get("result")
    lab.note(f"the blocked accept() returned {got} after sleeping {woke.get('slept', 0):.3f} s")
    lab.expect(got == "EINVAL", f"it failed with EINVAL (got {got})")
    lab.expect_state(drained, "CLOSE")

    listener.shutdown(socket.SHUT_RD).value
    lab.expect_state(listener, "CLOSE")
    lab.expect_packets("listener *R")
    lab.expect_errno(queued.recv(), "ECONNRESET")
    lab.expect_state(first, "ESTABLISHED")
    late = lab.socket("late")
    lab.expect_errno(late.connect(listener.local), "ECONNREFUSED")


@scenario(
    claim="shutdown() on a socket still in SYN_SENT (its peer silent) returns 0 for SHUT_RD and "
          "SHUT_WR alike and abandons the attempt: the socket is in CLOSE at once, no SYN is "
          "retransmitted and no RST is sent, and SO_ERROR then reports ECONNRESET.",
    proves=["call:shutdown", "state:SYN_SENT", "state:CLOSE", "errno:ECONNRESET", "sockopt:SO_ERROR"],
    needs=("netns", "tun"),
)
def shutdown_in_syn_sent_abandons_connect(lab):
    peer = lab.tun_peer()
    socks = []
    for how, name in ((socket.SHUT_RD, "rd"), (socket.SHUT_WR, "wr")):
        sock, _ = peer.connecting(name, port=80 if how == socket.SHUT_RD else 81)
        lab.expect_state(sock, "SYN_SENT")
        lab.expect_ok(sock.shutdown(how))
        lab.expect_state(sock, "CLOSE")
        socks.append(sock)
    lab.sleep(1.3)  # the first SYN retransmission is due 1 s after the SYN
    syns = [p for p in lab.packets() if p.get("dir") == "to-peer" and "S" in p["flags"]]
    lab.expect(len(syns) == 2, f"only the two original SYNs went out in 1.3 s ({len(syns)})")
    lab.expect(not [p for p in lab.packets() if p.get("dir") == "to-peer" and "R" in p["flags"]],
               "no RST was sent")
    for sock in socks:
        err = _so_error(lab, sock)
        lab.expect(err == "ECONNRESET", f"{sock.name}: SO_ERROR is ECONNRESET (got {err})")


# -- poll(), select(), epoll ---------------------------------------------------------------

@scenario(
    claim="poll() asking for POLLIN|POLLPRI|POLLOUT|POLLRDHUP on a connection reset by its peer "
          "returns POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP; the recv() that follows fails with "
          "ECONNRESET and clears the error, after which poll() returns the same set without POLLERR.",
    proves=["call:poll", "errno:ECONNRESET", "flag:RST", "state:CLOSE"],
)
def poll_on_reset_connection_reports_err_and_hup(lab):
    _, client, server = lab.connected_pair()
    server.linger(1, 0).value
    server.close().value
    lab.wait_state(client, "CLOSE", 1.0)
    revents = _poll(lab, client)
    want = select.POLLIN | select.POLLOUT | select.POLLERR | select.POLLHUP | select.POLLRDHUP
    lab.expect(revents == want, f"POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP ({_names(revents)})")
    lab.expect_errno(client.recv(), "ECONNRESET")
    after = _poll(lab, client)
    lab.expect(after == want & ~select.POLLERR, f"the error was consumed: no POLLERR ({_names(after)})")


@scenario(
    claim="After the peer's FIN (shutdown(SHUT_WR)), poll() asking for POLLIN|POLLPRI|POLLOUT|POLLRDHUP "
          "returns POLLIN|POLLOUT|POLLRDHUP (no POLLHUP, no POLLERR), select() reports the socket "
          "readable and epoll_wait() EPOLLIN|EPOLLRDHUP; recv() then returns 0 bytes (end of stream).",
    proves=["call:poll", "call:select", "call:epoll_wait", "call:epoll_ctl", "call:recv",
            "state:CLOSE_WAIT", "flag:FIN"],
)
def poll_after_peer_fin_reports_in_and_rdhup(lab):
    _, client, server = lab.connected_pair()
    server.shutdown(socket.SHUT_WR).value
    lab.wait_state(client, "CLOSE_WAIT", 1.0)
    revents = _poll(lab, client)
    lab.expect(revents == select.POLLIN | select.POLLOUT | select.POLLRDHUP,
               f"POLLIN|POLLOUT|POLLRDHUP, no POLLHUP or POLLERR ({_names(revents)})")
    readable = lab.call(client, "select([client], [], [], 0)",
                        lambda: select.select([client.sock], [], [], 0)[0]).value
    lab.expect(bool(readable), "select() reports the socket readable")

    def epoll_events():
        ep = select.epoll()
        try:
            ep.register(client.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
            return dict(ep.poll(0)).get(client.fileno(), 0)
        finally:
            ep.close()
    events = lab.call(client, "epoll_ctl(ADD, EPOLLIN|EPOLLRDHUP); epoll_wait(timeout 0)", epoll_events).value
    lab.note(f"epoll_wait events {events:#x}")
    lab.expect(events == select.EPOLLIN | select.EPOLLRDHUP, f"EPOLLIN|EPOLLRDHUP ({events:#x})")
    r = client.recv()
    lab.expect(r.ok and r.value == b"", f"recv() returns 0 bytes ({r})")


@scenario(
    claim="poll() asking for POLLIN|POLLPRI|POLLOUT|POLLRDHUP returns nothing while a non-blocking "
          "connect() waits for its SYN-ACK, and POLLOUT alone once the SYN-ACK arrives; a connect() "
          "the peer refuses with RST returns POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP, as a reset "
          "connection does, and SO_ERROR ECONNREFUSED.",
    proves=["call:poll", "call:connect", "sockopt:SO_ERROR", "errno:EINPROGRESS", "errno:ECONNREFUSED",
            "state:SYN_SENT", "state:ESTABLISHED"],
    needs=("netns", "tun"),
)
def nonblocking_connect_completion_is_pollout(lab):
    peer = lab.tun_peer()
    ok, ok_conn = peer.connecting("accepted", port=80)
    refused, refused_conn = peer.connecting("refused", port=81)
    lab.expect(_poll(lab, ok) == 0, "no event while the SYN is unanswered")
    ok_conn.send("S.")
    ok_conn.expect(".", timeout=1.0)
    lab.wait_state(ok, "ESTABLISHED", 1.0)
    revents = _poll(lab, ok)
    lab.expect(revents == select.POLLOUT, f"POLLOUT alone ({_names(revents)})")
    lab.expect(_so_error(lab, ok) is None, "SO_ERROR is 0")

    refused_conn.send("R.")
    lab.wait_state(refused, "CLOSE", 1.0)
    revents = _poll(lab, refused)
    want = select.POLLIN | select.POLLOUT | select.POLLERR | select.POLLHUP | select.POLLRDHUP
    lab.expect(revents == want, f"POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP ({_names(revents)})")
    err = _so_error(lab, refused)
    lab.expect(err == "ECONNREFUSED", f"SO_ERROR is ECONNREFUSED (got {err})")
