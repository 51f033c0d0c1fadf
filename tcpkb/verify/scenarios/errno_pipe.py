"""Writing to a connection that can no longer carry data: EPIPE and SIGPIPE."""

from __future__ import annotations

import errno
import signal
import socket

from .. import scenario


def _peer_gone(lab):
    """client, server: the server has closed; the client got the FIN and is in CLOSE_WAIT."""
    _, client, server = lab.connected_pair()
    server.close()
    lab.wait_state(client, "CLOSE_WAIT", 1.0)
    return client, server


def _reset_by_peer(lab):
    """client, server: the server closed, the client's first write after that drew a RST."""
    client, server = _peer_gone(lab)
    lab.expect_ok(client.send(b"first", socket.MSG_NOSIGNAL))
    lab.expect_packets("server *F", "client *P", "server R")
    lab.wait_state(client, "CLOSE", 1.0)
    return client, server


@scenario(
    claim="A process with SIGPIPE at its default action that send()s on a connection the peer has "
          "reset is killed by SIGPIPE (signal 13); the same send() with MSG_NOSIGNAL returns EPIPE.",
    proves=["signal:SIGPIPE", "errno:EPIPE", "call:send", "sockopt:MSG_NOSIGNAL"],
)
def send_on_reset_connection_kills_with_sigpipe(lab):
    client, _ = _reset_by_peer(lab)

    def child():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        client.sock.send(b"second")

    lab.note("a forked child restores SIGPIPE to SIG_DFL and calls send() without MSG_NOSIGNAL")
    how = lab.fork(child, timeout=2.0)
    lab.expect(how.get("signal") == "SIGPIPE" and how.get("signal_number") == 13,
               f"the child was killed by SIGPIPE, signal 13 (got {how})")
    lab.expect_errno(client.send(b"third", socket.MSG_NOSIGNAL), "EPIPE")


@scenario(
    claim="MSG_NOSIGNAL keeps SIGPIPE away even when its action is the default: a child process "
          "that sends on a reset connection with it is not killed and gets EPIPE.",
    proves=["errno:EPIPE", "sockopt:MSG_NOSIGNAL", "call:send"],
)
def msg_nosignal_send_gets_epipe_without_signal(lab):
    client, _ = _reset_by_peer(lab)

    def child():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            client.sock.send(b"second", socket.MSG_NOSIGNAL)
        except OSError as e:
            import os
            os._exit(e.errno)

    lab.note("a forked child restores SIGPIPE to SIG_DFL and calls send() with MSG_NOSIGNAL; "
             "it exits with the errno number it got")
    how = lab.fork(child, timeout=2.0)
    lab.expect(how.get("exit_code") == errno.EPIPE,
               f"the child was not signalled and exited with EPIPE ({errno.EPIPE}) (got {how})")


@scenario(
    claim="After shutdown(SHUT_WR) a socket's own send() fails with EPIPE, while it can still "
          "receive what the peer sends.",
    proves=["errno:EPIPE", "call:shutdown", "call:send"],
)
def send_after_own_shutdown_wr_epipe(lab):
    _, client, server = lab.connected_pair()
    client.shutdown(socket.SHUT_WR).value
    lab.expect_packets("client *F")
    lab.expect_errno(client.send(b"late", socket.MSG_NOSIGNAL), "EPIPE")
    server.send(b"reply").value
    lab.wait_for(lambda: client.readable(0), 1.0, "the reply to reach the client")
    r = client.recv()
    lab.expect(r.ok and r.value == b"reply", "the client still receives the server's data")
