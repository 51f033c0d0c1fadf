"""The kernel's own account of a scenario: tracepoint events, attributed to the lab exactly.

Scenarios run in parallel, each in a namespace of its own, and on loopback every namespace
has the same 127.0.0.1: an address says nothing about whose event it is. Ports do. Each
traced lab takes a slot of ports that no other tcpkb lab holds (a lock file per slot) and
makes it its namespace's ephemeral range, below the default 32768-60999 every other
namespace uses; its sockets, listeners included, bind there. An event is the lab's when
one of its ports lies in the slot.

skb:kfree_skb has no ports. A drop is the lab's when the same packet (skbaddr) was last seen,
on the same CPU, in an event that is the lab's — the reset answered before a NO_SOCKET drop,
say — or when the socket it was dropped on (rx_sk) is one the lab's events named. tcp:tcp_probe,
which fires for each segment an established socket receives, is recorded for that alone: it
names the socket and the packet with their ports, and is not kept in the trace. Pointers are
compared as the trace prints them (hashed, but the same pointer hashes the same within a boot).
Any other drop is not attributed, and the trace counts how many were left out. The following
itself is machine/attribution.py's, shared with `tcpkb watch --netns`.
"""

from __future__ import annotations

import fcntl
import os
import tempfile

from ..machine.attribution import Attribution

FIRST_PORT, SLOT_SIZE = 10240, 512
SLOTS = (32768 - FIRST_PORT) // SLOT_SIZE
KEEP = ("event", "t_ms", "cpu", "task", "saddr", "sport", "daddr", "dport", "reason", "state",
        "oldstate", "newstate", "error", "location", "protocol")


class PortSlot:
    """A block of ports held by this lab alone while the lock file stays open."""

    def __init__(self):
        where = "/run/tcpkb-ports" if os.access("/run", os.W_OK) else os.path.join(
            tempfile.gettempdir(), "tcpkb-ports")
        os.makedirs(where, exist_ok=True)
        start = os.getpid() % SLOTS  # spread the search; any free slot will do
        for i in range(SLOTS):
            slot = (start + i) % SLOTS
            fd = os.open(os.path.join(where, f"{slot}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.fd, self.low = fd, FIRST_PORT + slot * SLOT_SIZE
            self.high = self.low + SLOT_SIZE - 1
            return
        raise OSError("every port slot is held by another lab")

    def __contains__(self, port) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def release(self) -> None:
        os.close(self.fd)  # the lock goes with it, and with the process if it dies first


def attribute(events: list[dict], ports) -> tuple[list[dict], int]:
    """The lab's events among everything the instance recorded, and how many drops were left
    out because nothing tied them to the lab."""
    follow = Attribution(lambda e: True if e.get("sport") in ports or e.get("dport") in ports else None)
    ours: list[dict] = []
    for e in events:
        if not follow.feed(e) or e["event"] == "tcp_probe":
            continue
        if e["event"] == "inet_sk_error_report" and not e.get("error"):
            continue  # sk_error_report() also runs with no error set (a disconnect)
        ours.append(e)
    return ours, follow.left_out


def shown(e: dict, t_ms: float) -> dict:
    """An event as a trace keeps it: its time in the lab's milliseconds and its meaningful fields."""
    out = {k: e[k] for k in KEEP if k in e}
    out["t_ms"] = t_ms
    for k in ("state", "oldstate", "newstate"):
        if isinstance(out.get(k), str):
            out[k] = out[k].removeprefix("TCP_")
    return out
