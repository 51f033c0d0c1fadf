"""Errnos Linux TCP never returns, shown on the socket family that does return them.

ESHUTDOWN is named nowhere in net/ipv4, net/ipv6, net/core or net/socket.c: a TCP send after
shutdown(SHUT_WR) fails with EPIPE. SCTP's state table answers a send on an association that is
shutting down with it, so an SCTP one-to-one socket (SOCK_STREAM, IPPROTO_SCTP) shows it. SCTP is
a module: where the kernel has none (EPROTONOSUPPORT) the scenario is skipped.
"""

from __future__ import annotations

import socket
import struct

from .. import scenario
from ..lab import IPPROTO_SCTP, Skip

SOL_SCTP, SCTP_STATUS = 132, 14
# enum sctp_sstat_state in include/uapi/linux/sctp.h
SCTP_STATES = {0: "EMPTY", 1: "CLOSED", 2: "COOKIE_WAIT", 3: "COOKIE_ECHOED", 4: "ESTABLISHED",
               5: "SHUTDOWN_PENDING", 6: "SHUTDOWN_SENT", 7: "SHUTDOWN_RECEIVED",
               8: "SHUTDOWN_ACK_SENT"}


def _sctp_available() -> None:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP).close()
    except OSError as e:
        raise Skip(f"this kernel offers no SCTP sockets ({e.strerror})") from None


def _association_state(sock) -> str:
    """The association's state on a one-to-one SCTP socket (getsockopt SCTP_STATUS)."""
    status = sock.sock.getsockopt(SOL_SCTP, SCTP_STATUS, 256)
    return SCTP_STATES.get(struct.unpack_from("=i", status, 4)[0], "?")


@scenario(
    claim="On an SCTP one-to-one socket (SOCK_STREAM, IPPROTO_SCTP), shutdown(SHUT_WR) while "
          "data still waits behind the peer's full receive window leaves the association in "
          "SHUTDOWN_PENDING, and a send() then fails with ESHUTDOWN (sctp_sf_error_shutdown() in "
          "SCTP's state table); the same send() on a TCP socket after shutdown(SHUT_WR) fails "
          "with EPIPE.",
    proves=["errno:ESHUTDOWN"],
    timeout=8.0,
)
def sctp_send_after_shutdown_fails_eshutdown(lab):
    _sctp_available()
    listener = lab.socket("listener", proto=IPPROTO_SCTP, options={"SO_RCVBUF": 4096})
    listener.bind(("127.0.0.1", 0)).value
    listener.listen(1).value
    client = lab.socket("client", proto=IPPROTO_SCTP)
    client.connect(listener.local).value
    listener.accept("server").value  # and never read: the client's data waits behind its window

    def send_behind_window():
        sent = 0
        for _ in range(32):  # 32 KiB: far past the peer's window, far below our send buffer
            sent += client.sock.send(b"x" * 1024, socket.MSG_DONTWAIT)
        return f"{sent} bytes queued"
    lab.call(client, "send(1 KiB, MSG_DONTWAIT) x 32", send_behind_window).value
    client.shutdown(socket.SHUT_WR).value
    state = _association_state(client)
    lab.expect(state == "SHUTDOWN_PENDING", f"the association is SHUTDOWN_PENDING (got {state})")
    lab.expect_errno(client.send(b"y", socket.MSG_DONTWAIT), "ESHUTDOWN")
    tcp, _ = lab.connect_to(lab.listener("tcp_listener"), "tcp_client", "tcp_server")
    tcp.shutdown(socket.SHUT_WR).value
    lab.expect_errno(tcp.send(b"y", socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL), "EPIPE")
