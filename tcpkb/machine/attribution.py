"""Whose is a tracepoint event? Following sockets and packets from the events known to be ours.

The tracepoints are global: every network namespace's events land in the same buffer, and
skb:kfree_skb names no addresses at all. An owner test (`owns(event)`) says which events are
ours, or someone else's, by what they name — the ports of a scenario's slot, a namespace's
sockets, the process that caused them — or cannot tell. When it cannot, the rest follows: a
drop is ours when the same packet (skbaddr) was last seen, on the same CPU, in an event of ours
(the reset answered before a NO_SOCKET drop), or when the socket it was dropped on (rx_sk) is
one our events named. Pointers are compared as the trace prints them: hashed, but the same
pointer hashes the same within a boot. A socket's memory is reused once it is freed, so a
pointer is forgotten when an event of someone else's names it; inet_sock_set_state does not
print its socket, so a closed socket cannot be forgotten sooner.
"""

from __future__ import annotations

NULL = {"0000000000000000", "00000000", "(null)", "0"}
MEMORY = 65_536  # packets and sockets remembered; the oldest half is forgotten past this


class Attribution:
    """Feeds on events in the order the kernel recorded them; `feed()` says whether each is ours.

    `owns(event)` answers True (ours), False (someone else's, whatever it names) or None (it
    cannot tell: then the packet and the socket the event names decide)."""

    def __init__(self, owns):
        self.owns = owns
        self.skbs: dict[tuple, bool] = {}  # (cpu, skbaddr) -> whether the last event naming it was ours
        self.socks: dict[str, None] = {}   # skaddr of our sockets, oldest first
        self.left_out = 0                  # drops nothing tied to us

    def feed(self, e: dict) -> bool:
        skb = e.get("skbaddr")
        key = (e.get("cpu"), skb) if skb and skb not in NULL else None
        verdict = self.owns(e)
        if e["event"] == "kfree_skb":
            ours = verdict if verdict is not None else \
                bool(key and self.skbs.get(key)) or e.get("rx_sk") in self.socks
            self.left_out += not ours
            return ours
        sk = e.get("skaddr") if e.get("skaddr") not in NULL else None
        mine = bool(verdict)
        if key:
            _remember(self.skbs, key, mine)
        if sk and mine:
            _remember(self.socks, sk, None)
        elif sk and verdict is False:
            self.socks.pop(sk, None)  # its memory went to someone else's socket
        return mine


def _remember(table: dict, key, value) -> None:
    table.pop(key, None)
    table[key] = value
    if len(table) > MEMORY:
        for old in list(table)[:MEMORY // 2]:
            del table[old]
