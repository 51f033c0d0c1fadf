"""Packets on the wire inside the namespace: an AF_PACKET socket on every interface.

Loopback hands each packet to the capture twice, once leaving and once
arriving; only the arriving copy is kept. On a TUN device both directions are
kept: leaving is the kernel talking to the scripted peer, arriving is the peer.
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


class Capture:
    def __init__(self, start: float):
        self.start = start  # time.time() of the lab's start: packet times are relative to it
        self.packets: list[dict] = []
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)

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
            stamp = time.time()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    stamp = sec + nsec / 1e9
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
