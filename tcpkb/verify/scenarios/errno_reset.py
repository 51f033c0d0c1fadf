"""How a connection is reset: ECONNRESET and the RST that causes it."""

from __future__ import annotations

import socket

from .. import scenario


@scenario(
    claim="close() on a socket with unread data in its receive queue sends RST instead of FIN; "
          "the peer's next recv() fails with ECONNRESET.",
    proves=["errno:ECONNRESET", "flag:RST", "call:close"],
)
def close_with_unread_data_sends_rst(lab):
    _, client, server = lab.connected_pair()
    client.send(b"never read").value
    lab.wait_for(lambda: server.readable(0), 1.0, "the data to reach the server")
    server.close()
    lab.expect_packets("server *R")
    lab.expect_errno(client.recv(), "ECONNRESET")


@scenario(
    claim="After a RST has arrived, the first send() fails with ECONNRESET (the pending error) "
          "and every later send() fails with EPIPE.",
    proves=["errno:ECONNRESET", "errno:EPIPE", "call:send"],
)
def send_after_rst_fails_econnreset_then_epipe(lab):
    _, client, server = lab.connected_pair()
    server.linger(1, 0).value
    server.close()
    lab.expect_packets("server *R")
    lab.wait_state(client, "CLOSE", 1.0)
    lab.expect_errno(client.send(b"x", socket.MSG_NOSIGNAL), "ECONNRESET")
    lab.expect_errno(client.send(b"x", socket.MSG_NOSIGNAL), "EPIPE")
