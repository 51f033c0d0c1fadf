"""rst: the reasons the kernel gives for a reset it sends (tcp:tcp_send_reset, Linux 6.10 on)."""

from __future__ import annotations

from .base import Field, Hit, Kind, NotFound, by_name, clean, fact, suggest, versioned_fact


class Rst(Kind):
    name = "rst"
    plural = "RST reasons"
    intro = ("Why the kernel sent a reset, as the tcp:tcp_send_reset tracepoint reports it "
             "(enum sk_rst_reason). The numbers change between kernels; each is given with the "
             "kernels it was read on.")
    fields = {
        **Kind.fields,
        "since": Field("release", required=True),
        "counter": Field("str_or_null"),
    }
    sections = ("Meaning", "Where the kernel sends it", "What the peer sees", "Causes", "What to do",
                "How to see it")
    required_sections = ("Meaning", "Where the kernel sends it", "What the peer sees", "How to see it")
    command_help = "Look up a reason the kernel gave for a reset (tcp:tcp_send_reset)."
    query_help = "TCP_ABORT_ON_CLOSE, abort_on_close, SK_RST_REASON_NO_SOCKET"
    table = "rst_reasons"
    columns = {"id": "text", "name": "text", "since": "text", "counter": "text"}
    kernel_facts = ("number", "exists")
    descriptions = {"rst_reasons": ("Reasons for a reset the kernel sends, as tcp:tcp_send_reset "
                                    "reports them; numbers per kernel are in facts_by_kernel.", {
        "since": "the first release whose tracepoint reports it",
        "counter": "the nstat counter the same code path increments, if any"})}

    def search_boost(self, meta: dict) -> float:
        return 1.5

    def find(self, conn, query: str) -> Hit:
        name = clean(query).upper().replace("-", "_").replace(" ", "_")
        for candidate in (name, name.removeprefix("SK_RST_REASON_"), "TCP_" + name):
            if entry_id := by_name(conn, "rst", candidate):
                return Hit(entry_id)
        raise NotFound(f"no RST reason {query!r}", suggest(conn, query, "rst"))

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select since, counter from rst_reasons where id = ?", (entry_id,)).fetchone()
        return {"since": r["since"], "counter": r["counter"]}

    def facts(self, e: dict) -> list[dict]:
        rows = [f for f in (versioned_fact("Number", e, "number", always_kernels=True),) if f]
        rows.append(fact("Reported since", f"Linux {e['since']}"))
        if e["counter"]:
            rows.append(fact("Counter", e["counter"]))
        return rows

    def headline(self, e: dict) -> list:
        return [("RST reason", None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        return [("Since", [e["since"]]), ("Title", [e["title"]])]


KIND = Rst()
