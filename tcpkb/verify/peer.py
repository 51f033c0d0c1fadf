"""A scripted TCP peer on a TUN device inside the scenario's namespace.

The method packetdrill uses: the kernel's TCP on one side, a script on the
other that reads the kernel's segments from the TUN fd and writes back exactly
the segments the scenario wants (or none at all). The kernel side lives at
10.0.0.1 on device tcpkb0; the peer "is" 10.0.0.2. Both addresses exist only in
the namespace the scenario's process created, and vanish with it.
"""

from __future__ import annotations

import os
import random
import select
import time

from ..machine import netns
from .packets import icmp_unreachable, ipv4_tcp, parse_ip


class Conn:
    """One connection as the peer sees it: its port, the kernel's, and both sequence spaces."""

    def __init__(self, peer: Peer, port: int, kernel_port: int, seq: int, ack: int):
        self.peer, self.port, self.kernel_port = peer, port, kernel_port
        self.seq, self.ack = seq, ack  # next seq the peer sends, next byte it expects

    def send(self, flags: str, data: bytes = b"", window: int = 65535, ecn: int = 0,
             seq: int | None = None, ack: int | None = None) -> None:
        self.peer.send_raw(ipv4_tcp(self.peer.address, self.peer.kernel_address, self.port,
                                    self.kernel_port, self.seq if seq is None else seq,
                                    self.ack if ack is None else ack, flags, data, window, ecn))
        self.seq += len(data) + (1 if ("S" in flags or "F" in flags) else 0)
        self.peer.lab.note(f"peer sends {flags}{f' +{len(data)} bytes' if data else ''}")

    def expect(self, flags: str | None = None, contains: str = "", timeout: float = 2.0) -> dict:
        """The kernel's next segment on this connection that matches; it advances `ack`."""
        p = self.peer.expect(lambda p: p["sport"] == self.kernel_port and p["dport"] == self.port
                             and (flags is None or p["flags"] == flags)
                             and set(contains) <= set(p["flags"]), timeout,
                             f"{flags or '*' + contains} from the kernel on port {self.kernel_port}")
        self.ack = max(self.ack, (p["seq"] + p["len"] + (1 if ("S" in p["flags"] or "F" in p["flags"]) else 0)) & 0xFFFFFFFF)
        return p


class Peer:
    address = "10.0.0.2"
    kernel_address = "10.0.0.1"

    def __init__(self, lab, device: str = "tcpkb0"):
        self.lab = lab
        self.fd = netns.open_tun(device)
        netns.add_ipv4(device, self.kernel_address, "255.255.255.0")
        try:  # no IPv6 router solicitations in the traces
            netns.set_sysctl(f"net.ipv6.conf.{device}.disable_ipv6", 1)
        except OSError:
            pass
        netns.link_up(device)
        self.seen: list[dict] = []
        lab.note(f"TUN device {device}: kernel at {self.kernel_address}, scripted peer at {self.address}")

    def send_raw(self, packet: bytes) -> None:
        os.write(self.fd, packet)

    def read(self, timeout: float) -> tuple[dict, bytes] | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.fd], [], [], left)[0]:
                return None
            try:
                raw = os.read(self.fd, 65535)
            except BlockingIOError:
                continue
            p = parse_ip(raw)
            if p and p["proto"] == "tcp":
                return p, raw
        return None

    def expect(self, match, timeout: float, what: str) -> dict:
        """Read the kernel's segments until one matches; fail the scenario after `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.read(left)
            if got is None:
                break
            p, raw = got
            p["raw"] = raw
            self.seen.append(p)
            if match(p):
                return p
        self.lab.fail(f"the peer saw no {what} within {timeout} s")

    def accept(self, port: int, timeout: float = 2.0, answer: bool = True) -> Conn:
        """Wait for the kernel's SYN to peer:port; answer SYN-ACK unless `answer` is False."""
        syn = self.expect(lambda p: p["dport"] == port and p["flags"] in ("S", "SEW"), timeout,
                          f"SYN to port {port}")
        conn = Conn(self, port, syn["sport"], random.getrandbits(32), (syn["seq"] + 1) & 0xFFFFFFFF)
        conn.syn = syn
        if answer:
            conn.send("S.")
        return conn

    def connecting(self, name: str = "client", port: int = 80) -> tuple:
        """(traced socket, Conn): a non-blocking kernel socket `name` whose connect() to the
        peer's `port` returned EINPROGRESS; the peer has read its SYN (conn.syn) and not answered."""
        sock = self.lab.socket(name)
        sock.set_blocking(False)
        self.lab.expect_errno(sock.connect((self.address, port)), "EINPROGRESS")
        return sock, self.accept(port, answer=False)

    def connected(self, name: str = "client", port: int = 80, blocking: bool = False,
                  synack: str = "S.") -> tuple:
        """(traced socket, Conn): a kernel socket `name` connected to the peer's `port`: after
        `connecting`, the peer answers the SYN with `synack` and reads the kernel's ACK. The socket
        is ESTABLISHED, its addresses recorded; it stays non-blocking unless `blocking`."""
        sock, conn = self.connecting(name, port)
        conn.send(synack)
        conn.expect(".", timeout=1.0)
        self.lab.wait_state(sock, "ESTABLISHED", 1.0)
        sock._addresses()
        sock.set_blocking(blocking)
        return sock, conn

    def connect(self, kernel_port: int, port: int = 40000, complete: bool = True,
                timeout: float = 2.0) -> Conn:
        """Open a connection to the kernel's listener: SYN, read SYN-ACK, and ACK it if `complete`."""
        conn = Conn(self, port, kernel_port, random.getrandbits(32), 0)
        conn.send("S")
        conn.expect("S.", timeout=timeout)
        if complete:
            conn.send(".")
        return conn

    def unreachable(self, packet: dict, code: int) -> None:
        """Answer a kernel packet with ICMP destination unreachable, as a router would."""
        self.send_raw(icmp_unreachable(self.address, packet["raw"], code))
        self.lab.note(f"peer answers with ICMP destination unreachable, code {code}")

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
