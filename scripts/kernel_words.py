"""A worksheet of the kernel's own words, from kernel source trees and net-tools.

For every counter (/proc/net/netstat and snmp) and every drop reason (enum skb_drop_reason), it
lists what the sources say: the MIB enum behind a counter, the `netstat -s` wording net-tools
prints for it, the header's comment on a drop reason, and which source trees have it. Note
writers start from it; the checks in `tcpkb verify` read the running kernel, and this script is
how its lists were cross-checked against the headers of the other kernels.

    python scripts/kernel_words.py --tree 6.1=/path/linux-source-6.1 --tree 6.12=... \
        --net-tools /path/net-tools/statistics.c > worksheet.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

_MIB_ITEM = re.compile(r'SNMP_MIB_ITEM\("(\w+)",\s*(\w+)\)')
# which /proc file line each list of net/ipv4/proc.c and net/mptcp/mib.c prints under
LISTS = {"snmp4_ipstats_list": "Ip", "snmp4_ipextstats_list": "IpExt", "snmp4_tcp_list": "Tcp",
         "snmp4_udp_list": "Udp", "snmp4_net_list": "TcpExt", "mptcp_snmp_list": "MPTcpExt"}
ICMP_FIXED = ("InMsgs", "InErrors", "InCsumErrors", "OutMsgs", "OutErrors", "OutRateLimitGlobal",
              "OutRateLimitHost")
_NETSTAT_TABLE = re.compile(r"static const struct entry (\w+)\[\]\s*=\s*\{(.*?)\n\};", re.S)
_NETSTAT_ENTRY = re.compile(r'\{\s*"(\w+)",\s*N_\("((?:[^"\\]|\\.)*)"\)')
NETSTAT_GROUPS = {"Iptab": "Ip", "Icmptab": "Icmp", "Tcptab": "Tcp", "Udptab": "Udp",
                  "Tcpexttab": "TcpExt", "Ipexttab": "IpExt"}


def counters(tree: str) -> dict[str, dict]:
    """nstat name -> {group, field, mib} as the tree's proc.c and mib.c print them."""
    out: dict[str, dict] = {}
    for rel in ("net/ipv4/proc.c", "net/mptcp/mib.c"):
        text = open(os.path.join(tree, rel), encoding="utf-8").read()
        for name, group in LISTS.items():
            m = re.search(rf"{name}\[\]\s*=\s*\{{(.*?)\}};", text, re.S)
            if not m:
                continue
            for field, mib in _MIB_ITEM.findall(m.group(1)):
                out[group + field] = {"group": group, "field": field, "mib": mib}
                if group == "Udp":  # UdpLite prints the same list
                    out["UdpLite" + field] = {"group": "UdpLite", "field": field, "mib": mib}
    text = open(os.path.join(tree, "net/ipv4/proc.c"), encoding="utf-8").read()
    for field in ICMP_FIXED:  # icmp_put() prints these heads with seq_puts()
        if re.search(r'seq_puts\(seq, "[^"]*\b' + field + r'\b', text):
            out["Icmp" + field] = {"group": "Icmp", "field": field, "mib": None}
    for m in re.finditer(r'\{ "(\w+)", ICMP_\w+ \}', text):
        for way in ("In", "Out"):
            out[f"Icmp{way}{m.group(1)}"] = {"group": "Icmp", "field": way + m.group(1), "mib": None}
    if '"Forwarding"' in text or "Forwarding" in text:
        out["IpForwarding"] = {"group": "Ip", "field": "Forwarding", "mib": None}
        out["IpDefaultTTL"] = {"group": "Ip", "field": "DefaultTTL", "mib": None}
    return out


def drop_reasons(tree: str) -> dict[str, str]:
    """reason -> the header's comment on it."""
    for rel in ("include/net/dropreason-core.h", "include/net/dropreason.h"):
        path = os.path.join(tree, rel)
        if os.path.exists(path):
            text = open(path, encoding="utf-8").read()
            names = re.findall(r"^\s*FNe?\((\w+)\)", text, re.M)
            docs = dict(re.findall(r"@SKB_DROP_REASON_(\w+):\s*(.*?)\*/", text, re.S))
            return {n: " ".join(docs.get(n, "").replace("\n\t *", " ").split()) for n in names
                    if n != "MAX"}
    return {}


def netstat_wording(path: str) -> dict[str, str]:
    """nstat name -> the sentence `netstat -s` prints for it."""
    out = {}
    for table, body in _NETSTAT_TABLE.findall(open(path, encoding="utf-8").read()):
        if table in NETSTAT_GROUPS:
            for field, text in _NETSTAT_ENTRY.findall(body):
                out[NETSTAT_GROUPS[table] + field] = text.replace('\\"', '"')
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=[], metavar="SERIES=PATH")
    p.add_argument("--net-tools", metavar="statistics.c")
    args = p.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree)
    wording = netstat_wording(args.net_tools) if args.net_tools else {}
    sheet: dict = {"counters": {}, "drops": {}}
    for series, tree in trees.items():
        for name, c in counters(tree).items():
            row = sheet["counters"].setdefault(name, {**c, "netstat": wording.get(name), "in": []})
            row["in"].append(series)
        for name, doc in drop_reasons(tree).items():
            row = sheet["drops"].setdefault(name, {"doc": doc, "in": []})
            row["doc"] = doc or row["doc"]
            row["in"].append(series)
    json.dump(sheet, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
