"""IPv4/IPv6 TCP and ICMP packets: parsed from a capture, built for the scripted peer.

Only what the scenarios need: the TCP header fields a ladder shows (ports,
flags, seq/ack, window, payload length), the IP ECN bits, and ICMP
unreachables. Checksums are computed, so the kernel accepts what the peer writes.
"""

from __future__ import annotations

import socket
import struct

# TCP header flag bits, in the order tcpdump prints them; AE (0x100, the low bit of the
# data-offset byte) prints as "e".
FLAG_BITS = (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), ("U", 0x20), ("E", 0x40),
             ("W", 0x80), ("e", 0x100))
ACK = 0x10
ECN_NAMES = {0: "Not-ECT", 1: "ECT(1)", 2: "ECT(0)", 3: "CE"}


def flag_letters(bits: int) -> str:
    """0x12 -> 'S.' : tcpdump's letters, '.' for ACK."""
    letters = "".join(letter for letter, bit in FLAG_BITS if bits & bit)
    return letters + "." if bits & ACK else letters or "none"


def flag_bits(letters: str) -> int:
    bits = ACK if "." in letters else 0
    for letter, bit in FLAG_BITS:
        if letter in letters:
            bits |= bit
    return bits


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse_ip(data: bytes) -> dict | None:
    """One IP packet -> a dict describing its TCP segment or ICMP message, else None."""
    if not data:
        return None
    version = data[0] >> 4
    if version == 4 and len(data) >= 20:
        ihl = (data[0] & 0x0F) * 4
        proto, ecn = data[9], data[1] & 0x03
        src, dst = socket.inet_ntop(socket.AF_INET, data[12:16]), socket.inet_ntop(socket.AF_INET, data[16:20])
        total = struct.unpack("!H", data[2:4])[0]
        payload = data[ihl:total]
    elif version == 6 and len(data) >= 40:
        proto, ecn = data[6], (struct.unpack("!I", data[0:4])[0] >> 20) & 0x03
        src, dst = socket.inet_ntop(socket.AF_INET6, data[8:24]), socket.inet_ntop(socket.AF_INET6, data[24:40])
        payload = data[40:40 + struct.unpack("!H", data[4:6])[0]]
    else:
        return None
    base = {"src": src, "dst": dst, "ecn": ECN_NAMES[ecn]}
    if proto == socket.IPPROTO_TCP and len(payload) >= 20:
        sport, dport, seq, ack, off, bits, window = struct.unpack("!HHIIBBH", payload[:16])
        hlen = (off >> 4) * 4
        bits |= (off & 0x01) << 8  # AE
        return {**base, "proto": "tcp", "sport": sport, "dport": dport, "seq": seq, "ack": ack,
                "flags": flag_letters(bits), "bits": bits, "win": window,
                "len": len(payload) - hlen, "data": payload[hlen:]}
    if proto in (socket.IPPROTO_ICMP, 58) and len(payload) >= 4:
        return {**base, "proto": "icmp", "type": payload[0], "code": payload[1]}
    return None


def ipv4_tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: str,
             data: bytes = b"", window: int = 65535, ecn: int = 0, mss: int | None = None,
             options: bytes = b"") -> bytes:
    """An IPv4 packet carrying one TCP segment, checksums filled in; `options` (raw option bytes,
    padded here with NOPs to a multiple of 4) follow the MSS option, if any."""
    options = (struct.pack("!BBH", 2, 4, mss) if mss else b"") + options
    options += b"\x01" * (-len(options) % 4)
    hlen = 20 + len(options)
    bits = flag_bits(flags)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      ((hlen // 4) << 4) | (bits >> 8), bits & 0xFF, window, 0, 0) + options + data
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    return ipv4(src, dst, socket.IPPROTO_TCP, tcp, ecn)


def ipv4(src: str, dst: str, proto: int, payload: bytes, ecn: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, ecn & 3, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def icmp_unreachable(src: str, original: bytes, code: int) -> bytes:
    """ICMP destination unreachable (type 3) quoting the offending packet, as a router sends it."""
    quoted = original[:28]
    body = struct.pack("!BBHI", 3, code, 0, 0) + quoted
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ipv4(src, socket.inet_ntoa(original[12:16]), socket.IPPROTO_ICMP, body)
