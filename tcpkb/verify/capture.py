"""Packets on the wire inside the namespace: an AF_PACKET socket on every interface.

Loopback hands each packet to the capture twice, once leaving and once
arriving; only the arriving copy is kept. On a TUN device both directions are
kept: leaving is the kernel talking to the scripted peer, arriving is the peer.

Each packet's time is the kernel's (SO_TIMESTAMPNS, CLOCK_REALTIME): taken as the
packet crossed the device (dev_queue_xmit_nit() for a leaving copy, netif_rx() for an
arriving one; loopback_xmit() clears the sender's stamp first), not when the lab got
round to reading it. Those times are what scenarios measure timing windows with.
"""

from __future__ import annotations

import socket
import struct
import time

from .packets import parse_ip

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ARPHRD_NONE = 0xFFFE
SO_TIMESTAMPNS = 35


def kernel_stamp(ancdata) -> float | None:
    """The SO_TIMESTAMPNS control message of a recvmsg() as seconds since the epoch."""
    for level, kind, value in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack("qq", value[:16])
            return sec + nsec / 1e9
    return None


def wait_for_stamping(timeout: float = 1.0) -> bool:
    """Whether the kernel stamps packets as they pass, waiting up to `timeout` for it to start.

    The first socket that asks for timestamps switches stamping on through a deferred work
    item; until it has run, a packet gets its stamp when it is read instead, which would
    date it late. A datagram to ourselves on loopback tells which: stamped on the way, its
    stamp is older than the moment sendto() returned. (UDP is not recorded in traces.)"""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(timeout)
        while time.monotonic() < deadline:
            tx.sendto(b"stamp?", rx.getsockname())
            sent = time.time()
            try:
                _data, ancdata, _flags, _addr = rx.recvmsg(16, 64)
            except OSError:
                return False
            stamp = kernel_stamp(ancdata)
            if stamp is not None and stamp <= sent:
                return True
            time.sleep(0.001)
    return False


class Capture:
    def __init__(self, start: float):
        self.start = start  # time.time() of the lab's start: packet times are relative to it
        self.packets: list[dict] = []
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)
        self.stamping = wait_for_stamping()

    def drain(self) -> list[dict]:
        """Read every packet queued so far; return the new ones."""
        new = []
        for _ in range(10_000):  # bounded: a scenario never sends this many
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(65535, 64)
            except BlockingIOError:
                break
            ifname, _proto, pkttype, hatype = addr[0], addr[1], addr[2], addr[3]
            is_tun = hatype == ARPHRD_NONE
            if pkttype == PACKET_OUTGOING and not is_tun:
                continue  # loopback: keep the arriving copy only
            packet = parse_ip(data if is_tun else data[14:])
            if packet is None:
                continue
            stamp = kernel_stamp(ancdata)
            if stamp is None:  # SO_TIMESTAMPNS always answers; a missing stamp is a bug to see
                raise RuntimeError("a captured packet came without its kernel timestamp")
            packet.pop("data", None)
            packet["t_ms"] = round((stamp - self.start) * 1000, 3)
            packet["dev"] = ifname
            if is_tun:
                packet["dir"] = "to-peer" if pkttype == PACKET_OUTGOING else "from-peer"
            new.append(packet)
        self.packets += new
        return new

    def close(self) -> None:
        self.sock.close()
