"""How a connection is reset: ECONNRESET and the RST that causes it."""

from __future__ import annotations

import socket

from .. import scenario


@scenario(
    claim="close() on a socket with unread data in its receive queue sends RST instead of FIN; "
          "the peer's next recv() fails with ECONNRESET.",
    proves=["errno:ECONNRESET", "flag:RST"],
)
def close_with_unread_data_sends_rst(lab):
    _, client, server = lab.connected_pair()
    client.send(b"never read").value
    lab.wait_for(lambda: server.readable(0), 1.0, "the data to reach the server")
    server.close()
    lab.expect_packets("server *R")
    lab.expect_errno(client.recv(), "ECONNRESET")
