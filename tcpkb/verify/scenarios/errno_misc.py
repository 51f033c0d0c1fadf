"""Errors raised on this host, not by the peer: aborts, descriptor limits and bugs, signals.

Some of these need the C library called directly (ctypes): Python retries
EINTR itself and checks its own socket objects before the kernel sees a call.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import socket
import struct
import threading
import time

from .. import scenario
from ..lab import Skip

_libc = ctypes.CDLL(None, use_errno=True)
_libc.recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.recv.restype = ctypes.c_ssize_t
_libc.send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.send.restype = ctypes.c_ssize_t
_libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.write.restype = ctypes.c_ssize_t


def _checked(rv: int) -> int:
    """A libc return value, or the OSError its errno names."""
    if rv < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rv


def _libc_recv(fd: int, size: int = 16, flags: int = 0):
    buf = ctypes.create_string_buffer(size)
    return lambda: buf.raw[:_checked(_libc.recv(fd, buf, size, flags))]


def _libc_send(fd: int, data: bytes, flags: int = 0):
    return lambda: _checked(_libc.send(fd, data, len(data), flags))


# -- ECONNABORTED -----------------------------------------------------------

NETLINK_SOCK_DIAG, SOCK_DESTROY = 4, 21
NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 0x1, 0x4, 2
INET_DIAG_NOCOOKIE = 0xFFFFFFFF


def _sock_destroy(local: tuple, remote: tuple) -> None:
    """Ask sock_diag to destroy one IPv4 TCP socket, as `ss -K` does."""
    sockid = (struct.pack("!HH", local[1], remote[1])
              + socket.inet_aton(local[0]).ljust(16, b"\0") + socket.inet_aton(remote[0]).ljust(16, b"\0")
              + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    body = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0) + sockid
    header = struct.pack("=IHHII", 16 + len(body), SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(header + body, (0, 0))
        reply = nl.recv(4096)
    if struct.unpack_from("=H", reply, 4)[0] == NLMSG_ERROR:
        err = -struct.unpack_from("=i", reply, 16)[0]
        if err:
            raise OSError(err, os.strerror(err))


@scenario(
    claim="A socket destroyed through sock_diag (SOCK_DESTROY, what ss -K sends) while its owner is "
          "blocked in recv() sends an RST to the peer; the blocked recv() returns ECONNABORTED at once "
          "(about 0.05 s after it started, when the destroy ran), the peer's recv() gets ECONNRESET and "
          "a later send() on the destroyed socket gets EPIPE.",
    proves=["errno:ECONNABORTED", "flag:RST", "call:recv"],
)
def sock_destroy_aborts_blocked_recv(lab):
    _, client, server = lab.connected_pair()
    lab.call(client, "setsockopt(SO_RCVTIMEO, 2 s) (a safety bound)",
             lambda: client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 2, 0)))
    done = {}

    def destroy():
        done["sent"] = time.time()  # CLOCK_REALTIME, as the span and the capture stamps are
        done["result"] = lab.call(None, "SOCK_DESTROY client via NETLINK_SOCK_DIAG (ss -K)",
                                  lambda: _sock_destroy(client.local, client.remote))

    timer = threading.Timer(0.05, destroy)

    def recv():  # the timer starts inside the measured call, so the destroy comes during it
        timer.start()
        return client.sock.recv(16)
    r, span = lab.timed_call(client, "recv(16)", recv)
    timer.join(2.0)
    destroyed = done.get("result")
    if destroyed is not None and destroyed.errno == "EOPNOTSUPP":
        raise Skip("this kernel has no SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY is off)")
    lab.expect(destroyed is not None and destroyed.ok, "the destroy request was accepted")
    lab.expect_errno(r, "ECONNABORTED")
    lab.expect_packets("client *R")  # tcp_abort() resets the peer as it wakes the reader
    # tcp_abort() wakes the reader (sk_error_report) before it sends the RST, and a packet's
    # capture stamp comes later still: on a slow machine (TCG) the RST is stamped after recv()
    # returned. What woke the call is the destroy request, sent while it was blocked.
    lab.expect_woken_by(span, done["sent"], "the destroy was requested")
    lab.expect_errno(server.recv(16), "ECONNRESET")
    lab.expect_errno(client.send(b"x", socket.MSG_NOSIGNAL), "EPIPE")


@scenario(
    claim="After a non-blocking connect() is refused and the error is read with getsockopt(SO_ERROR), "
          "calling connect() again on the same socket fails with ECONNABORTED; a third connect() "
          "starts a new attempt (EINPROGRESS).",
    proves=["errno:ECONNABORTED", "sockopt:SO_ERROR", "call:connect"],
)
def connect_again_after_so_error_gets_econnaborted(lab):
    client = lab.socket("client")
    client.set_blocking(False)
    lab.expect_errno(client.connect(("127.0.0.1", 9)), "EINPROGRESS")
    lab.wait_for(lambda: select.select([], [client.sock], [], 0)[1], 1.0, "the refusal (writable)")

    def so_error():
        err = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        return 0
    lab.expect_errno(lab.call(client, "getsockopt(SO_ERROR)", so_error), "ECONNREFUSED")
    lab.expect_errno(client.connect(("127.0.0.1", 9)), "ECONNABORTED")
    lab.expect_errno(client.connect(("127.0.0.1", 9)), "EINPROGRESS")


@scenario(
    claim="Linux does not report ECONNABORTED from accept() for a connection reset while it waited "
          "in the accept queue: accept() returns it (already in CLOSE) and the first recv() on it "
          "fails with ECONNRESET.",
    proves=["errno:ECONNRESET", "state:CLOSE", "call:accept"],
)
def accept_returns_connection_reset_in_queue(lab):
    listener = lab.listener()
    client = lab.socket("client")
    client.connect(listener.local).value
    client.linger(1, 0)
    client.close()
    lab.expect_packets("client *R")
    r = listener.accept("server")
    lab.expect_ok(r)
    server = r.value
    lab.expect_state(server, "CLOSE")
    lab.expect_errno(server.recv(16), "ECONNRESET")


# -- EMFILE -----------------------------------------------------------------

@scenario(
    claim="With RLIMIT_NOFILE lowered to the process's lowest free descriptor, socket() and accept() "
          "fail with EMFILE; the handshake already completed, so the client stays ESTABLISHED and the "
          "connection stays queued: once the limit is raised, accept() returns that same connection.",
    proves=["errno:EMFILE", "state:ESTABLISHED", "call:accept", "call:socket"],
)
def accept_at_fd_limit_gets_emfile_and_keeps_connection_queued(lab):
    listener = lab.listener()
    client = lab.socket("client")
    client.connect(listener.local).value
    spare = os.open(os.devnull, os.O_RDONLY)  # the lowest free descriptor number
    os.close(spare)
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lab.call(None, f"setrlimit(RLIMIT_NOFILE, soft={spare})",
                 lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (spare, old[1])))
        lab.expect_errno(lab.call(None, "socket(AF_INET, SOCK_STREAM)",
                                  lambda: socket.socket().close()), "EMFILE")
        lab.expect_errno(listener.accept("server"), "EMFILE")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    lab.note(f"RLIMIT_NOFILE soft limit restored to {old[0]}")
    lab.expect_state(client, "ESTABLISHED")
    lab.expect(listener.readable(0), "the listener is still readable: the connection waits in its queue")
    server = listener.accept("server").value
    lab.expect(server.remote == client.local, "accept() now returns the client's connection")


# -- EINTR ------------------------------------------------------------------

@scenario(
    claim="A blocking recv() called through the C library fails with EINTR when a signal whose "
          "handler was installed by Python (no SA_RESTART) arrives 0.05 s later; Python's own "
          "socket.recv() in the same situation runs the handler and retries (PEP 475), returning "
          "the data sent afterwards.",
    proves=["errno:EINTR", "call:recv"],
)
def signal_handler_interrupts_libc_recv_with_eintr(lab):
    _, client, server = lab.connected_pair()
    main = threading.get_ident()
    handled = []
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(signum))
    # if the signal were lost, data from the server ends the wait instead
    rescue = threading.Timer(1.5, lambda: server.sock.send(b"rescue"))
    sent = []

    def kill():
        sent.append(time.time())  # the signal goes out no sooner than this
        signal.pthread_kill(main, signal.SIGUSR1)
    timers = [threading.Timer(0.05, kill), rescue]
    libc_recv = _libc_recv(client.fileno())

    def recv():  # the timer starts inside the measured call, so the signal comes during it
        timers[0].start()
        return libc_recv()
    try:
        rescue.start()
        r, span = lab.timed_call(client, "recv(16) via libc; SIGUSR1 after 0.05 s", recv)
        lab.expect_errno(r, "EINTR")
        lab.expect(len(handled) == 1, "the handler ran")
        lab.expect_woken_by(span, sent[0], "SIGUSR1 was sent")

        def signal_then_send():  # one thread, so the signal always comes before the data
            signal.pthread_kill(main, signal.SIGUSR1)
            time.sleep(0.05)
            server.sock.send(b"after")
        timers.append(threading.Timer(0.05, signal_then_send))
        timers[2].start()
        r = client.recv(16)
        lab.expect(r.ok and r.value == b"after" and len(handled) == 2,
                   "socket.recv() ran the handler, retried and returned the data sent after the signal")
    finally:
        for t in timers:
            t.cancel()
        for t in timers:
            if t.is_alive():
                t.join(2.0)
        signal.signal(signal.SIGUSR1, old)


# -- descriptor and pointer bugs ----------------------------------------------

@scenario(
    claim="After a socket's descriptor is closed, send() and recv() on the same number through the C "
          "library fail with EBADF.",
    proves=["errno:EBADF", "call:send", "call:recv"],
)
def send_on_closed_descriptor_gets_ebadf(lab):
    _, client, _ = lab.connected_pair()
    fd = client.sock.detach()
    client.closed = True
    lab.call(client, f"close({fd})", lambda: os.close(fd)).value
    lab.expect_errno(lab.call(client, f"send({fd}, 1 byte) via libc", _libc_send(fd, b"x")), "EBADF")
    lab.expect_errno(lab.call(client, f"recv({fd}, 16) via libc", _libc_recv(fd)), "EBADF")


@scenario(
    claim="send() and recv() on a pipe descriptor fail with ENOTSOCK, while write() on the same pipe "
          "succeeds.",
    proves=["errno:ENOTSOCK", "call:send", "call:recv", "call:write"],
)
def send_on_pipe_gets_enotsock(lab):
    r, w = lab.call(None, "pipe()", os.pipe).value
    try:
        lab.expect_errno(lab.call(None, f"send({w}, 1 byte) via libc", _libc_send(w, b"x")), "ENOTSOCK")
        lab.expect_errno(lab.call(None, f"recv({r}, 16) via libc", _libc_recv(r)), "ENOTSOCK")
        lab.expect_ok(lab.call(None, f"write({w}, 1 byte) via libc",
                               lambda: _checked(_libc.write(w, b"x", 1))))
    finally:
        os.close(r)
        os.close(w)


@scenario(
    claim="recv() into an unmapped address (0x8) fails with EFAULT while 5 bytes are queued, and the "
          "bytes stay queued: the next recv() into a real buffer returns all 5.",
    proves=["errno:EFAULT", "call:recv"],
)
def recv_into_bad_pointer_gets_efault(lab):
    _, client, server = lab.connected_pair()
    server.send(b"hello").value
    lab.wait_for(lambda: client.readable(0), 1.0, "the data to arrive")
    fd = client.fileno()
    lab.expect_errno(lab.call(client, "recv(buf=0x8, 5) via libc",
                              lambda: _checked(_libc.recv(fd, ctypes.c_void_p(8), 5, 0))), "EFAULT")
    r = client.recv(16)
    lab.expect(r.ok and r.value == b"hello", "the 5 bytes are still there")
