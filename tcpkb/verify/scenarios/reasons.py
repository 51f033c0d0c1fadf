"""Checks of the reasons the kernel names through its tracepoints: each entry against the running
kernel's tracepoint format, with the number it has on this kernel."""

from __future__ import annotations

import platform

from ... import kernels
from ...kinds.base import exists_on
from ...machine.tracefs import TracefsUnavailable, enum_values
from .. import check
from ..lab import Skip, counter_names
from .checks import _entries, _verdict

# enum ends the tracepoint lists beside the reasons; never a reason the kernel gives
NOT_REASONS = {"MAX"}


@check(kind="rst", claim="Each RST reason entry is a value the running kernel's tcp:tcp_send_reset "
             "tracepoint can report (from the release the note names on), and its number here is "
             "the tracepoint's; the kernel has no reason the knowledge base lacks.")
def rst_reasons_match_the_tracepoint(lab, db: str) -> list[dict]:
    release = platform.release()
    try:
        live = enum_values("tcp/tcp_send_reset", "reason")
    except TracefsUnavailable as e:
        if kernels.in_range("<6.10", release):  # before 6.10 the tracepoint gives no reason at all
            live = {}
        else:
            raise Skip(str(e)) from None
    out = []
    for e in _entries(db, "rst"):
        expected = {"exists": kernels.exists_on(e["since"], None, release)}
        observed = {"exists": e["name"] in live}
        if e["name"] in live:
            observed["number"] = live[e["name"]]
        out.append(_verdict(e["id"], expected, observed, []))
    missing = sorted(set(live) - NOT_REASONS - {e["name"] for e in _entries(db, "rst")})
    if missing:
        lab.fail(f"the kernel reports reasons the knowledge base lacks: {', '.join(missing)}")
    return out


@check(kind="drop", claim="Each drop reason entry is a value the running kernel's skb:kfree_skb "
              "tracepoint can report (on the kernels the note says it exists on), and its number here "
              "is the tracepoint's; the kernel has no drop reason the knowledge base lacks.")
def drop_reasons_match_the_tracepoint(lab, db: str) -> list[dict]:
    try:
        live = enum_values("skb/kfree_skb", "reason")
    except TracefsUnavailable as e:
        raise Skip(str(e)) from None
    return _match_enum(lab, db, "drop", live)


@check(kind="counter", needs=("netns",), claim="Each counter entry is printed by the running kernel in "
                 "/proc/net/netstat or /proc/net/snmp of a fresh namespace (on the kernels the note "
                 "says it exists on), and the kernel prints no counter the knowledge base lacks.")
def counters_match_the_kernel(lab, db: str) -> list[dict]:
    _ping_loopback()  # IcmpMsg prints a counter only for the ICMP types it has seen
    live = {_family(name): 0 for name in counter_names()}
    return _match_enum(lab, db, "counter", live, numbered=False)


def _match_enum(lab, db: str, kind: str, live: dict, numbered: bool = True) -> list[dict]:
    release = platform.release()
    out = []
    entries = _entries(db, kind)
    for e in entries:
        observed = {"exists": e["name"] in live}
        if numbered and e["name"] in live:
            observed["number"] = live[e["name"]]
        out.append(_verdict(e["id"], {"exists": exists_on(e, release)}, observed, []))
    missing = sorted(set(live) - NOT_REASONS - {e["name"] for e in entries})
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        lab.fail(f"the kernel has {len(missing)} {kind} names the knowledge base lacks: "
                 f"{', '.join(missing[:10])}{more}")
    return out


def _family(name: str) -> str:
    """IcmpMsgInType3 -> IcmpMsgInType: one entry stands for every ICMP type."""
    return name.rstrip("0123456789") if name.startswith("IcmpMsg") else name


def _ping_loopback() -> None:
    """One ICMP echo to 127.0.0.1 inside the lab's namespace, so IcmpMsg lines exist."""
    import socket
    import struct

    body = struct.pack("!BBHHH", 8, 0, 0, 0x7cb, 1) + b"tcpkb"
    total = sum(struct.unpack(f"!{len(body) // 2}H", body[:len(body) // 2 * 2])) + (body[-1] << 8)
    total = (total >> 16) + (total & 0xFFFF)
    checksum = ~(total + (total >> 16)) & 0xFFFF
    packet = body[:2] + struct.pack("!H", checksum) + body[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(1.0)
        s.sendto(packet, ("127.0.0.1", 0))
        try:
            s.recv(256)
        except OSError:
            pass
