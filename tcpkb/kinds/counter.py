"""counter: the kernel's SNMP and extended counters, as /proc/net/netstat and /proc/net/snmp
print them and nstat names them (TcpExtListenOverflows)."""

from __future__ import annotations

import re

from .base import (LIFETIME_FIELDS, Field, Hit, Kind, NotFound, by_name, clean, fact, lifetime_facts,
                   suggest)

# the line heads of /proc/net/netstat and /proc/net/snmp, longest first so TcpExt wins over Tcp
GROUPS = ("MPTcpExt", "UdpLite", "IcmpMsg", "TcpExt", "IpExt", "Icmp", "Tcp", "Udp", "Ip")
FILES = {"TcpExt": "/proc/net/netstat", "IpExt": "/proc/net/netstat", "MPTcpExt": "/proc/net/netstat"}
# IcmpMsg prints one counter per ICMP type seen (InType3, OutType0 …); one entry per direction
_ICMPMSG = re.compile(r"(?i)^IcmpMsg:?\s*(In|Out)Type\d{1,3}$")
# which group a field name printed by several groups most likely comes from
PREFERRED = ("TcpExt", "Tcp", "Udp", "IpExt", "Ip", "Icmp", "IcmpMsg", "UdpLite", "MPTcpExt")
_NUMBER_WORD = re.compile(r"\bN\b")
_SPLIT = re.compile(r"^(\w+?)\s*[:. ]\s*(\w+)$")


def group_of(name: str) -> str | None:
    return next((g for g in GROUPS if name.startswith(g) and len(name) > len(g)), None)


def wording_pattern(sentence: str) -> re.Pattern:
    """A `netstat -s` sentence as net-tools prints it ("N times the listen queue …") -> a regex
    that matches a printed line of it, with any number where the N is."""
    return re.compile(wording_source(sentence))


def wording_source(sentence: str) -> str:
    """wording_pattern's text, its flag inline (explain compiles it through tcpkb.patterns)."""
    return "(?i)" + r"\d+".join(re.escape(p) for p in _NUMBER_WORD.split(sentence))


def netstat_key(sentence: str) -> str:
    """The longest literal part of a netstat -s sentence, lower case: a pasted text without it
    cannot hold the sentence, so explain needs no regex for it (SQL finds the few with instr)."""
    return max(_NUMBER_WORD.split(sentence), key=len).strip().lower()


class Counter(Kind):
    name = "counter"
    plural = "Counters"
    intro = ("The kernel's own counters of what happened to packets and connections, as nstat names "
             "them (TcpExtListenOverflows) and netstat -s words them. Every counter the running kernel "
             "prints is an entry; which kernels have it is checked on each.")
    fields = {
        **Kind.fields,
        "group": Field("str", required=True, choices=GROUPS),
        "mib": Field("str_or_null"),
        "netstat": Field("str_or_null"),
        "type": Field("str", required=True, choices=("events", "gauge", "constant")),
        # counters this one also counts: each of their increments moves this one too
        # (ListenDrops with ListenOverflows), so the narrower one names the cause
        "includes": Field("str_list"),
        **LIFETIME_FIELDS,
    }
    sections = ("Meaning", "Where the kernel counts it", "What the application sees", "Causes",
                "What to do", "How to see it")
    required_sections = ("Meaning", "Where the kernel counts it", "What to do")
    command_help = "Look up a kernel counter (nstat's TcpExtListenOverflows, netstat -s's wording)."
    query_help = "TcpExtListenOverflows, ListenOverflows, TcpExt:ListenOverflows, LINUX_MIB_LISTENOVERFLOWS"
    table = "counters"
    columns = {"id": "text", "name": "text", "group": "text", "field": "text", "file": "text",
               "mib": "text", "netstat": "text", "netstat_key": "text", "type": "text", "since": "text",
               "absent_on": "text", "removed_in": "text"}
    extra_tables = {"counter_includes": ({"entry_id": "text", "counter_id": "text"}, ("entry_id", "counter_id"))}
    kernel_facts = ("exists",)
    descriptions = {
        "counter_includes": ("Counters one counter includes: the kernel increments it on every path "
                             "that increments them.", {
            "entry_id": "the wider counter", "counter_id": "a counter whose every increment it counts too"}),"counters": ("The counters of /proc/net/netstat and /proc/net/snmp, by their nstat "
                                 "name; which kernels have each is in facts_by_kernel.", {
        "group": "the line head it is printed under (TcpExt, Tcp, Ip …)",
        "field": "its name on that line", "file": "the /proc file that prints it",
        "mib": "the kernel's enum value behind it (LINUX_MIB_…)",
        "netstat": "the sentence netstat -s prints for it (N stands for the number)",
        "netstat_key": "the sentence's longest literal part, lower case: explain looks for it first",
        "type": "events (only grows), gauge (goes up and down) or constant",
        "since": "the kernel release that added it, if after 6.1",
        "absent_on": "kernels verified to lack it, where the release that added it is not known",
        "removed_in": "the release that removed it"})}

    def search_boost(self, meta: dict) -> float:
        return 1.5 if meta.get("group") in ("TcpExt", "Tcp") else 1.0

    def order(self, meta: dict):
        return (GROUPS.index(meta["group"]) if meta.get("group") in GROUPS else 99, meta.get("name", ""))

    def references(self, meta: dict):
        for c in meta.get("includes") or []:
            yield "includes", c, "counter"

    def lint(self, meta: dict) -> list[tuple[str, str, str]]:
        name, group = meta.get("name", ""), meta.get("group")
        if isinstance(group, str) and group_of(name) != group:
            return [("group", "KB016", f"the name {name!r} is not the group {group!r} and a field")]
        return []

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        rows = super().rows(note, ctx)
        m = note.meta
        row = rows["counters"][0]
        row["field"] = m["name"][len(m["group"]):]
        row["file"] = FILES.get(m["group"], "/proc/net/snmp")
        row["netstat_key"] = netstat_key(m["netstat"]) if m.get("netstat") else None
        spellings = {f"{m['group']}:{row['field']}", f"{m['group']} {row['field']}", m.get("mib")}
        rows["aliases"] = [{"entry_id": note.id, "alias": a} for a in sorted(filter(None, spellings))]
        rows["counter_includes"] = [{"entry_id": note.id, "counter_id": c} for c in m.get("includes") or []]
        return rows

    def find(self, conn, query: str) -> Hit:
        q = clean(query)
        q = _ICMPMSG.sub(lambda m: f"IcmpMsg{m.group(1).title()}Type", q)
        if m := _SPLIT.match(q):  # TcpExt:ListenOverflows, "TcpExt ListenOverflows"
            q = m.group(1) + m.group(2)
        if entry_id := by_name(conn, "counter", q) or by_name(conn, "counter", q.replace(" ", "")):
            return Hit(entry_id)
        fields = [r[0] for r in conn.execute(
            "select id from counters where upper(field) = upper(?) order by id", (q,))]
        if len(fields) == 1:
            return Hit(fields[0])
        if fields:  # InErrors is Tcp's, Udp's, UdpLite's and Icmp's: the likeliest group first
            best = sorted(fields, key=lambda i: PREFERRED.index(group_of(i.split(":")[1])))
            return Hit(best[0], notes=[f"{q} is printed by {len(fields)} groups; showing "
                                       f"{best[0].split(':')[1]}"],
                       also=[{"id": i} for i in best[1:]])
        if hit := self._by_wording(conn, q):
            return hit
        raise NotFound(f"no counter {query!r}", suggest(conn, query, "counter"))

    def _by_wording(self, conn, text: str) -> Hit | None:
        for entry_id, sentence in conn.execute("select id, netstat from counters where netstat is not null"):
            pattern = wording_pattern(sentence)
            if pattern.fullmatch(text.strip()) or pattern.fullmatch("0 " + text.strip()):
                return Hit(entry_id, notes=[f"the netstat -s sentence “{sentence}”"])
        return None

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from counters where id = ?", (entry_id,)).fetchone()
        return {k: r[k] for k in r.keys() if k not in ("id", "name")}

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("Printed as", f"{e['field']} on the {e['group']} lines of {e['file']}"),
                fact("nstat name", e["name"])]
        if e["netstat"]:
            rows.append(fact("netstat -s", e["netstat"]))
        if e["mib"]:
            rows.append(fact("Kernel enum", e["mib"]))
        rows.append(fact("Kind", {"events": "counts events: it only grows",
                                  "gauge": "a gauge: it goes up and down",
                                  "constant": "a constant of this kernel"}[e["type"]]))
        return rows + lifetime_facts(e)

    def headline(self, e: dict) -> list:
        return [(f"{e['group']} counter", None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        return [("Group", [e["group"]]), ("Title", [e["title"]])]

    def sort_key(self, e: dict):
        return (GROUPS.index(e["group"]) if e["group"] in GROUPS else 99, e["name"])


KIND = Counter()
