"""What connect() and the calls that need a connection say: refused, in progress, already, not connected."""

from __future__ import annotations

import select
import socket

from .. import scenario

CLOSED_PORT = 9  # nothing listens on it in the scenario's fresh namespace


@scenario(
    claim="connect() to a loopback port where nothing listens fails with ECONNREFUSED: the SYN is "
          "answered with RST+ACK.",
    proves=["errno:ECONNREFUSED", "flag:RST", "call:connect"],
)
def connect_to_closed_port_refused(lab):
    client = lab.socket("client")
    client.bind(("127.0.0.1", 0)).value  # a known local port, so the trace can name its packets
    lab.expect_errno(client.connect(("127.0.0.1", CLOSED_PORT)), "ECONNREFUSED")
    lab.expect_packets("client S", f"127.0.0.1:{CLOSED_PORT} R.")
    lab.expect_state(client, "CLOSE")


@scenario(
    claim="A non-blocking connect() whose SYN is dropped (the listener's accept queue is full) "
          "returns EINPROGRESS and leaves the socket in SYN_SENT; a second connect() while it is "
          "still in progress returns EALREADY.",
    proves=["errno:EINPROGRESS", "errno:EALREADY", "call:connect"],
)
def nonblocking_connect_in_progress_then_ealready(lab):
    listener = lab.listener(backlog=0)
    first = lab.socket("first")
    first.connect(listener.local).value
    lab.wait_for(lambda: listener.readable(0), 1.0, "the first connection to sit in the accept queue")
    lab.note("listen(0) plus one connection not yet accepted: the accept queue is full")
    client = lab.socket("client")
    client.set_blocking(False)
    lab.expect_errno(client.connect(listener.local), "EINPROGRESS")
    lab.expect_state(client, "SYN_SENT")
    lab.expect_errno(client.connect(listener.local), "EALREADY")
    lab.expect_state(client, "SYN_SENT")
    lab.expect_counter("TcpExtListenOverflows", at_least=1)


@scenario(
    claim="Once a non-blocking connect() has completed, the next connect() returns 0 (it reports the "
          "completion) and any connect() after that fails with EISCONN.",
    proves=["errno:EISCONN", "call:connect"],
)
def connect_again_after_completion_eisconn(lab):
    listener = lab.listener()
    client = lab.socket("client")
    client.set_blocking(False)
    lab.expect_errno(client.connect(listener.local), "EINPROGRESS")
    lab.wait_for(lambda: bool(select.select([], [client.sock], [], 0)[1]), 1.0,
                 "the client to become writable")
    lab.expect_state(client, "ESTABLISHED")
    lab.expect_ok(client.connect(listener.local))
    lab.expect_errno(client.connect(listener.local), "EISCONN")


@scenario(
    claim="On a TCP socket that was never connected, recv(), getpeername() and shutdown() all fail "
          "with ENOTCONN.",
    proves=["errno:ENOTCONN", "call:recv", "call:getpeername", "call:shutdown"],
)
def unconnected_socket_enotconn(lab):
    s = lab.socket("sock")
    lab.expect_errno(s.recv(), "ENOTCONN")
    lab.expect_errno(lab.call(s, "getpeername()", s.sock.getpeername), "ENOTCONN")
    lab.expect_errno(s.shutdown(socket.SHUT_RDWR), "ENOTCONN")


@scenario(
    claim="send() on a TCP socket that was never connected fails with EPIPE, not ENOTCONN, while "
          "recv() on the same socket fails with ENOTCONN.",
    proves=["errno:EPIPE", "errno:ENOTCONN", "call:send", "call:recv"],
)
def send_on_unconnected_socket_epipe(lab):
    s = lab.socket("sock")
    lab.expect_errno(s.send(b"x", socket.MSG_NOSIGNAL), "EPIPE")
    lab.expect_errno(s.recv(), "ENOTCONN")
