"""A workload for tests/test_watch.py and scripts/bench_watch.py, run as its own process in a
fresh network namespace: it makes the kernel reset, drop and time out connections on command.

    python -m tests.watch_workload WORK [WORK ...]

It enters a new namespace, prints {"pid": ...} on a line, waits for a line on stdin, does each
WORK, prints {"done": {...facts}} (the ports it used), and stays until stdin closes, so the
namespace and its processes can still be looked up while watch reads the events. WORKs:
closed-port, unread-close, zero-linger, close-wait, listen-overflow, keepalive-timeout,
retransmit, rst-loop:RATE:SECONDS.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import time

from tcpkb.machine import netns


def closed_port() -> dict:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = socket.socket()
    client.bind(("127.0.0.1", 0))
    mine = client.getsockname()[1]
    try:
        client.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        pass
    client.close()
    return {"closed_port": port, "client_port": mine}


def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname(), timeout=2)
    server, _ = listener.accept()
    return listener, client, server


def _reset_by_close(prepare) -> dict:
    """A connected pair whose server end is closed after `prepare(client, server)`: the client's
    recv() meets the reset."""
    listener, client, server = _pair()
    facts = {"server_port": server.getsockname()[1], "client_port": client.getsockname()[1]}
    prepare(client, server)
    server.close()
    try:
        client.recv(16)
    except ConnectionResetError:
        pass
    client.close()
    listener.close()
    return facts


def _unread(client: socket.socket, server: socket.socket) -> None:
    client.sendall(b"never read")
    for _ in range(100):  # until the bytes sit in the server's receive queue
        if select.select([server], [], [], 0.01)[0]:
            break


def unread_close() -> dict:
    return _reset_by_close(_unread)


def zero_linger() -> dict:
    return _reset_by_close(lambda client, server: server.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)))


class _Quiet:
    """The little of a lab that tcpkb.verify.peer.Peer asks for."""

    def note(self, text: str) -> None:
        pass

    def fail(self, text: str) -> None:
        raise RuntimeError(text)


def _peer():
    from tcpkb.verify.peer import Peer

    return Peer(_Quiet())


LISTEN_PORT = 8080


def listen_overflow(peer) -> dict:
    """listen(1) holding two connections; the handshake's last ACK of a third request finds the
    accept queue full and is dropped (the way the lab's sysctls scenario does it)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((peer.kernel_address, LISTEN_PORT))
    listener.listen(1)
    first = peer.connect(LISTEN_PORT, port=40001, complete=False)
    late = peer.connect(LISTEN_PORT, port=40002, complete=False)
    first.send(".")
    peer.connect(LISTEN_PORT, port=40003, complete=True)
    time.sleep(0.1)
    late.send(".")  # the ACK that overflows
    time.sleep(0.1)
    peer.keep = listener  # closed with the namespace, after watch has seen it
    return {"listen_port": LISTEN_PORT, "peer_ports": [40001, 40002, 40003]}


def _connected_to(peer, port: int):
    """(kernel socket, the peer's Conn): a connection from the kernel to the TUN peer's `port`,
    the handshake done by the peer's script."""
    sock = socket.socket()
    sock.setblocking(False)
    try:
        sock.connect((peer.address, port))
    except BlockingIOError:
        pass
    conn = peer.accept(port)
    conn.expect(".", timeout=1.0)
    return sock, conn


def keepalive_timeout(peer) -> dict:
    """A connection to the TUN peer with keepalive after 1 s, probes 1 s apart, one probe; the
    peer answers nothing, so the kernel gives up about 2 s later and resets it."""
    sock, _ = _connected_to(peer, 80)
    for option, value in ((socket.SO_KEEPALIVE, 1),):
        sock.setsockopt(socket.SOL_SOCKET, option, value)
    for option, value in ((socket.TCP_KEEPIDLE, 1), (socket.TCP_KEEPINTVL, 1), (socket.TCP_KEEPCNT, 1)):
        sock.setsockopt(socket.IPPROTO_TCP, option, value)
    port = sock.getsockname()[1]
    start = time.monotonic()
    error = 0
    while time.monotonic() - start < 8 and not error:
        time.sleep(0.1)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # read once: it clears it
    sock.close()
    return {"keepalive_port": port, "error": error, "after_s": round(time.monotonic() - start, 2)}


def close_wait() -> dict:
    """The client closes; the server end, never closed, waits in CLOSE_WAIT."""
    listener, client, server = _pair()
    facts = {"server_port": server.getsockname()[1]}
    client.close()
    for _ in range(100):  # until the FIN has arrived: the server reads end of stream
        if select.select([server], [], [], 0.01)[0]:
            break
    server.recv(16)
    server.close()
    listener.close()
    return facts


def retransmit(peer) -> dict:
    """Data sent to the TUN peer, which never acknowledges it: the kernel sends it again."""
    sock, conn = _connected_to(peer, 81)
    sock.send(b"unacknowledged")
    conn.expect(contains="P", timeout=1.0)
    conn.expect(contains="P", timeout=3.0)  # the same data again, after the retransmission timeout
    facts = {"retransmit_port": sock.getsockname()[1]}
    sock.close()
    return facts


def rst_loop(rate: float, seconds: float) -> dict:
    """connect() to a closed port `rate` times a second for `seconds`: each is answered with RST."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    start = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - start) < seconds:
        if sent < elapsed * rate:
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
            except ConnectionRefusedError:
                pass
            s.close()
            sent += 1
        else:
            time.sleep(min(0.001, sent / rate - elapsed))
    cpu = os.times()
    return {"resets": sent, "seconds": time.monotonic() - start, "cpu": cpu.user + cpu.system}


def run(work: str, peer_holder: list) -> dict:
    if work.startswith("rst-loop:"):
        _, rate, seconds = work.split(":")
        return rst_loop(float(rate), float(seconds))
    simple = {"closed-port": closed_port, "unread-close": unread_close, "zero-linger": zero_linger,
              "close-wait": close_wait}
    if work in simple:
        return simple[work]()
    if not peer_holder:
        peer_holder.append(_peer())
    return {"listen-overflow": listen_overflow, "keepalive-timeout": keepalive_timeout,
            "retransmit": retransmit}[work](peer_holder[0])


def main(works: list[str]) -> None:
    netns.die_with_parent()
    netns.enter_new_netns()
    print(json.dumps({"pid": os.getpid()}), flush=True)
    if not sys.stdin.readline():
        return
    peers: list = []
    facts = {work: run(work, peers) for work in works}
    print(json.dumps({"done": facts}), flush=True)
    sys.stdin.read()  # until the test closes it


if __name__ == "__main__":
    main(sys.argv[1:])
