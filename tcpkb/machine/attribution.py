"""Whose is a tracepoint event? Following sockets and packets from the events known to be ours.

The tracepoints are global: every network namespace's events land in the same buffer, and
skb:kfree_skb names no addresses at all. An owner test (`owns(event)`) says which events are
ours by what they name — the ports of a scenario's slot, a namespace's sockets. The rest
follows: a drop is ours when the same packet (skbaddr) was last seen, on the same CPU, in an
event of ours (the reset answered before a NO_SOCKET drop), or when the socket it was dropped on
(rx_sk) is one our events named. With `by_socket`, any event naming a socket of ours (skaddr)
is ours too, until that socket reaches CLOSE. Pointers are compared as the trace prints them:
hashed, but the same pointer hashes the same within a boot.
"""

from __future__ import annotations

NULL = {"0000000000000000", "00000000", "(null)", "0"}
MEMORY = 65_536  # packets and sockets remembered; the oldest half is forgotten past this


class Attribution:
    """Feeds on events in the order the kernel recorded them; `feed()` says whether each is ours."""

    def __init__(self, owns, by_socket: bool = False):
        self.owns, self.by_socket = owns, by_socket
        self.skbs: dict[tuple, bool] = {}  # (cpu, skbaddr) -> whether the last event naming it was ours
        self.socks: dict[str, None] = {}   # skaddr of our sockets, oldest first
        self.left_out = 0                  # drops nothing tied to us

    def feed(self, e: dict) -> bool:
        skb = e.get("skbaddr")
        key = (e.get("cpu"), skb) if skb and skb not in NULL else None
        if e["event"] == "kfree_skb":
            ours = bool(key and self.skbs.get(key)) or e.get("rx_sk") in self.socks
            self.left_out += not ours
            return ours
        sk = e.get("skaddr") if e.get("skaddr") not in NULL else None
        mine = bool(self.owns(e)) or bool(self.by_socket and sk and sk in self.socks)
        if key:
            _remember(self.skbs, key, mine)
        if mine and sk:
            _remember(self.socks, sk, None)
            if self.by_socket and e.get("newstate") == "TCP_CLOSE":
                del self.socks[sk]  # its memory may become another namespace's socket
        return mine


def _remember(table: dict, key, value) -> None:
    table.pop(key, None)
    table[key] = value
    if len(table) > MEMORY:
        for old in list(table)[:MEMORY // 2]:
            del table[old]
