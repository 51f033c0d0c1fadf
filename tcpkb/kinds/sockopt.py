"""sockopt: socket options (SO_*, TCP_*, IP*) and the MSG_* flags of send and recv."""

from __future__ import annotations

from .base import (LINUX_ABIS, Field, Hit, Kind, NotFound, abi_numbers, by_name, clean,
                   differing_abis, fact, lifetime_facts, link, meta_abi_numbers, suggest, versioned_fact)

LEVELS = ("SOL_SOCKET", "IPPROTO_TCP", "IPPROTO_IP", "IPPROTO_IPV6", "flags")


class Sockopt(Kind):
    name = "sockopt"
    plural = "Socket options"
    intro = ("Socket options for setsockopt and getsockopt, by level and number, and the MSG_* flags "
             "of send and recv (level “flags”).")
    fields = {
        **Kind.fields,
        "level": Field("str", required=True, choices=LEVELS),
        "number": Field("int", required=True),
        "numbers": Field("numbers", keys=LINUX_ABIS),
        "value": Field("str", required=True),
        "access": Field("str", required=True, choices=("get", "set", "get and set", "per call")),
        "default": Field("value_or_null", versioned=True),
        "default_from": Field("str_or_null"),
        "since": Field("release"),
        "absent_on": Field("range"),
    }
    sections = ("Meaning", "Pitfalls", "How to see it")
    required_sections = ("Meaning", "Pitfalls")
    command_help = "Look up a socket option or a send/recv flag."
    query_help = "SO_LINGER, so_linger, linger, TCP_NODELAY, MSG_NOSIGNAL"
    table = "sockopts"
    kernel_facts = ("default", "exists")
    columns = {"id": "text", "name": "text", "level": "text", "number": "integer", "value": "text",
               "access": "text", "default": "text", "default_from": "text", "since": "text",
               "absent_on": "text"}
    extra_tables = {"sockopt_numbers": ({"entry_id": "text", "platform": "text", "number": "integer"}, ())}
    descriptions = {
        "sockopts": ("Socket options and send/recv flags: level, number, value type, default.", {
            "level": "setsockopt's level; flags for the MSG_* flags",
            "number": "the number on the generic ABIs", "value": "the value's type",
            "access": "get, set, get and set, or per call",
            "default": "what getsockopt gives on a fresh TCP socket",
            "default_from": "the sysctl that supplies the default",
            "since": "the kernel release that added it, if after 6.1",
            "absent_on": "kernels verified to lack it, as a range, where the release that added it is not known"}),
        "sockopt_numbers": ("Every socket option's number on Linux and each Linux ABI.", {
            "platform": "linux, alpha, mips, sparc, parisc or powerpc", "number": "its number there"}),
    }

    def search_boost(self, meta: dict) -> float:
        return 2.0

    def references(self, meta: dict):
        if isinstance(meta.get("default_from"), str):
            yield "default_from", meta["default_from"], "default_from"

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        from .. import kernels

        rows = super().rows(note, ctx)
        rows["sockopts"][0]["default"] = kernels.pick(note.meta.get("default"), None)
        rows["sockopt_numbers"] = [{"entry_id": note.id, "platform": p, "number": n}
                                   for p, n in meta_abi_numbers(note.meta).items() if n is not None]
        return rows

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from sockopts where id = ?", (entry_id,)).fetchone()
        return {k: r[k] for k in ("level", "number", "value", "access", "default", "default_from", "since",
                                         "absent_on")} \
            | {"numbers": abi_numbers(conn, "sockopt_numbers", entry_id)}

    def find(self, conn, query: str) -> Hit:
        """An option or flag by name (SO_LINGER, so_linger, linger) or alias."""
        name = clean(query).upper().replace("-", "_")
        for candidate in (name, "SO_" + name, "TCP_" + name, "MSG_" + name):
            if entry_id := by_name(conn, "sockopt", candidate):
                return Hit(entry_id)
        raise NotFound(f"no socket option or flag {query!r}", suggest(conn, query, "sockopt"))

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("Level", "send/recv flag" if e["level"] == "flags" else e["level"]),
                fact("Number", e["number"])]
        if other := differing_abis(e["numbers"], e["number"]):
            rows.append(fact("Other Linux ABIs", other))
        rows += [fact("Value", e["value"]), fact("Access", e["access"])]
        default = versioned_fact("Default", e, "default")
        if e["default_from"]:  # the knob that supplies it, a link in every face
            source = link(e["default_from"], e["default_from"].split(":", 1)[1])
            default = default or fact("Default")
            default["value"] += [" (from ", source, ")"] if default["value"] else ["from ", source]
        if default:
            rows.append(default)
        return rows + lifetime_facts(e)

    def headline(self, e: dict) -> list:
        where = "send/recv flag" if e["level"] == "flags" else e["level"]
        return [(f"{where} {e['number']}", None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        default = [e["default"]] if e["default"] is not None else []
        if e["default_from"]:
            default += [" from " if default else "from ", link(e["default_from"])]
        return [("Level", ["MSG" if e["level"] == "flags" else e["level"]]), ("Number", [str(e["number"])]),
                ("Default", default), ("Title", [e["title"]])]

    def sort_key(self, e: dict):
        return (e["level"], e["number"], e["name"])


KIND = Sockopt()
