"""Calls that would have to wait: EAGAIN (EWOULDBLOCK) from non-blocking sockets and timeouts."""

from __future__ import annotations

import socket
import struct

from .. import scenario
from ..timing import timer_bounds


@scenario(
    claim="recv() on a non-blocking connected socket with nothing in its receive queue fails at "
          "once with EAGAIN (the same number as EWOULDBLOCK).",
    proves=["errno:EAGAIN", "call:recv"],
)
def nonblocking_recv_with_empty_queue_eagain(lab):
    _, client, _ = lab.connected_pair()
    client.set_blocking(False)
    lab.expect_errno(client.recv(), "EAGAIN")


@scenario(
    claim="send() on a non-blocking socket fails with EAGAIN once its send buffer and the peer's "
          "receive buffer are both full; on loopback with SO_SNDBUF and SO_RCVBUF set to 4096 (the "
          "kernel doubles both to 8192), 9216 bytes went in 1024-byte writes before the first EAGAIN.",
    proves=["errno:EAGAIN", "call:send", "sockopt:SO_SNDBUF", "sockopt:SO_RCVBUF"],
)
def nonblocking_send_with_full_buffers_eagain(lab):
    listener = lab.listener(options={"SO_RCVBUF": 4096})
    client, server = lab.connect_to(listener, options={"SO_SNDBUF": 4096})
    sndbuf = client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, label="SO_SNDBUF").value
    rcvbuf = server.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, label="SO_RCVBUF").value
    lab.note(f"the kernel doubled both: client SO_SNDBUF {sndbuf}, server SO_RCVBUF {rcvbuf}")
    client.set_blocking(False)
    chunk = b"x" * 1024
    total, last = 0, None
    for _ in range(4096):  # at most 4 MiB: far more than the buffers hold
        try:
            total += client.sock.send(chunk)
        except BlockingIOError as e:
            last = e
            break
    lab.note(f"the client sent {total} bytes in 1024-byte send() calls before one would block")
    lab.expect(last is not None, "a send() would have blocked within 4 MiB")
    # An ACK still in flight (a slow machine, a VM) may free a little room after that first
    # EAGAIN; traced sends fill it, and the buffers are finite, so EAGAIN comes back within a
    # few. 64 KiB is far above what one ACK can free with 8 KiB buffers.
    for _ in range(64):
        result = client.send(chunk)
        if not result.ok:
            break
        total += 1024
    lab.expect_errno(result, "EAGAIN")
    lab.expect(4096 <= total <= 256 * 1024, f"between 4 KiB and 256 KiB went first (sent {total})")


@scenario(
    claim="accept() on a non-blocking listener with no connection waiting fails at once with EAGAIN.",
    proves=["errno:EAGAIN", "call:accept"],
)
def nonblocking_accept_with_empty_queue_eagain(lab):
    listener = lab.listener()
    listener.set_blocking(False)
    lab.expect_errno(listener.accept(), "EAGAIN")


@scenario(
    claim="A blocking recv() with SO_RCVTIMEO set to 0.2 s fails with EAGAIN when the time runs "
          "out with no data, after about 0.2 s.",
    proves=["errno:EAGAIN", "sockopt:SO_RCVTIMEO", "call:recv"],
)
def rcvtimeo_expiry_on_blocking_recv_eagain(lab):
    _, client, _ = lab.connected_pair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200_000),
                      label="SO_RCVTIMEO {0 s, 200000 us}").value
    r, span = lab.timed_call(client, "recv(65536)", lambda: client.sock.recv(65536))
    lab.expect_errno(r, "EAGAIN")
    # sock_set_timeout() turns 200000 us into 50 jiffies at HZ=250 (rounded up); tcp_recvmsg()
    # sleeps that long in sk_wait_data(): the call's sleep is the timer (timing.timer_bounds).
    lab.expect_window(span.slept, *timer_bounds(0.2), "recv() slept for SO_RCVTIMEO", "blocked")
