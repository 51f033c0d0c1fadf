"""drop: the reasons the kernel gives for freeing a packet it did not deliver (enum
skb_drop_reason), as the skb:kfree_skb tracepoint, dropwatch, pwru and retis report them."""

from __future__ import annotations

from .base import (LIFETIME_FIELDS, Field, Hit, Kind, NotFound, by_name, clean, fact, joined,
                   lifetime_facts, link, suggest, versioned_fact)

AREAS = ("socket", "tcp", "udp", "ip", "ipv6", "icmp", "netfilter", "qdisc", "device", "tunnel",
         "bridge", "unix", "xfrm", "bpf", "memory", "other")


class Drop(Kind):
    numbers_by_kernel = True  # a number is read against the running kernel first
    name = "drop"
    plural = "Drop reasons"
    intro = ("Why the kernel dropped a packet, as the skb:kfree_skb tracepoint reports it (enum "
             "skb_drop_reason). The numbers change between kernels; each is given with the kernels it "
             "was read on.")
    fields = {
        **Kind.fields,
        "area": Field("str", required=True, choices=AREAS),
        "counters": Field("str_list"),
        **LIFETIME_FIELDS,
    }
    sections = ("Meaning", "Where the kernel drops it", "What the application sees", "Causes",
                "What to do", "How to see it")
    required_sections = ("Meaning", "Where the kernel drops it", "What to do")
    command_help = "Look up a reason the kernel gave for dropping a packet (skb:kfree_skb)."
    query_help = "TCP_LISTEN_OVERFLOW, tcp_listen_overflow, SKB_DROP_REASON_NO_SOCKET, a number"
    table = "drop_reasons"
    columns = {"id": "text", "name": "text", "area": "text", "since": "text", "absent_on": "text",
               "removed_in": "text"}
    extra_tables = {"drop_counters": ({"entry_id": "text", "counter_id": "text", "position": "integer"},
                                      ("entry_id", "counter_id"))}
    kernel_facts = ("number", "exists")
    descriptions = {
        "drop_reasons": ("Reasons the kernel gives for dropping a packet, as skb:kfree_skb reports "
                         "them; numbers per kernel are in facts_by_kernel.", {
            "area": "the part of the stack that drops with it",
            "since": "the kernel release that added it, if after 6.1",
            "absent_on": "kernels verified to lack it, where the release that added it is not known",
            "removed_in": "the release that removed it"}),
        "drop_counters": ("The counters the kernel increments where it drops with a reason.", {
            "entry_id": "the drop reason", "counter_id": "a counter the same code path increments",
            "position": "order in the note, from 0"}),
    }

    def search_boost(self, meta: dict) -> float:
        return 1.5 if meta.get("area") in ("tcp", "socket") else 1.0

    def references(self, meta: dict):
        for c in meta.get("counters") or []:
            yield "counters", c, "counter"

    def lint(self, meta: dict) -> list[tuple[str, str, str]]:
        bad = [c for c in meta.get("counters") or [] if isinstance(c, str) and not c.startswith("counter:")]
        return [("counters", "KB006", f"{c!r} is not a counter id (counter:NAME)") for c in bad]

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        rows = super().rows(note, ctx)
        rows["aliases"] = [{"entry_id": note.id, "alias": "SKB_DROP_REASON_" + note.meta["name"]}]
        rows["drop_counters"] = [{"entry_id": note.id, "counter_id": c, "position": i}
                                 for i, c in enumerate(note.meta.get("counters") or [])]
        return rows

    def find(self, conn, query: str, kernel: str | None = None) -> Hit:
        q = clean(query)
        if q.lstrip("+").isdigit() and len(q) < 5:
            return self._by_number(conn, int(q), query)
        name = q.upper().replace("-", "_").replace(" ", "_")
        for candidate in (name, name.removeprefix("SKB_DROP_REASON_")):
            if entry_id := by_name(conn, "drop", candidate):
                return Hit(entry_id)
        raise NotFound(f"no drop reason {query!r}", suggest(conn, query, "drop"))

    def _by_number(self, conn, number: int, query: str) -> Hit:
        """A number means a reason only on a kernel it was read on: this one if it was, else
        the newest kernel checked, with the others named."""
        import json
        import platform

        rows = conn.execute("select entry_id, kernels from facts_by_kernel where field = 'number' "
                            "and source = 'observed' and value = ? and entry_id like 'drop:%'",
                            (json.dumps(number),)).fetchall()
        if not rows:
            raise NotFound(f"no drop reason numbered {number} on any kernel checked",
                           suggest(conn, query, "drop"))
        here = [r[0] for r in rows if platform.release() in json.loads(r[1])]
        if here:
            return Hit(here[0], notes=[f"{number} on this kernel ({platform.release()})"])
        ranked = sorted(rows, key=lambda r: max(json.loads(r[1])), reverse=True)
        return Hit(ranked[0][0], notes=[f"{number} on {', '.join(json.loads(ranked[0][1]))}"],
                   also=[{"id": r[0], "why": f"{number} on {', '.join(json.loads(r[1]))}"} for r in ranked[1:]])

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from drop_reasons where id = ?", (entry_id,)).fetchone()
        counters = [c for (c,) in conn.execute(
            "select counter_id from drop_counters where entry_id = ? order by position", (entry_id,))]
        return {"area": r["area"], "since": r["since"], "absent_on": r["absent_on"],
                "removed_in": r["removed_in"], "counters": counters}

    def facts(self, e: dict) -> list[dict]:
        rows = [f for f in (versioned_fact("Number", e, "number", always_kernels=True),) if f]
        rows.append(fact("Kernel enum", f"SKB_DROP_REASON_{e['name']}"))
        rows.append(fact("Area", e["area"]))
        if e["counters"]:
            rows.append(fact("Counters", *joined([link(c) for c in e["counters"]])))
        return rows + lifetime_facts(e)

    def headline(self, e: dict) -> list:
        return [("drop reason", None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        return [("Area", [e["area"]]), ("Title", [e["title"]])]


KIND = Drop()
