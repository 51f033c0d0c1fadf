"""`tcpkb doctor --from DIR`: a reading from saved files instead of the live kernel.

Two layouts are read. An sosreport keeps, relative to its top directory (file names
from sos's own plugins, sos/report/plugins/networking.py and kernel.py in
github.com/sosreport/sos: a command's output is saved under its command line with
spaces turned into `_`):

    proc/net/tcp, proc/net/tcp6, proc/net/netstat, proc/net/snmp   (a copy of /proc/net/)
    sos_commands/networking/ss_-peaonmi                             (`ss -peaonmi`)
    sos_commands/networking/nstat_-zas                              (`nstat -zas`)
    sos_commands/networking/netstat_-s                              (`netstat -s`)
    sos_commands/kernel/sysctl_-a                                   (`sysctl -a`)

sos saves other namespaces' outputs under sos_commands/networking/namespaces/<name>/;
those belong to another namespace and are not mixed into this one.

Any other directory is a set of plain files of the same commands under names of the
user's choosing (ss-tan.txt, nstat.out …), so every file is recognised by what is in
it, not by its name: the header of /proc/net/tcp (`sl  local_address`), the paired
`Prefix: names` / `Prefix: values` lines of /proc/net/netstat and snmp, ss's column
header (`State  Recv-Q` or `Netid State`), nstat's `#kernel`, netstat -s's section
lines (`Tcp:` alone on a line), and sysctl -a's `name = value` lines. In an sosreport
the same recognition runs on the files listed above.

Where two files give the same part, the more exact one wins: /proc/net/tcp over ss
(it has every socket's inode and queues), /proc/net/netstat and snmp over nstat over
netstat -s. ss's `users:((…))` (from -p) gives the owners, matched to the sockets by
inode (ss -e prints `ino:`) or by state and addresses. Without /proc/net/tcp and without
-p or -e in the ss output, ss cannot tell an orphan (no descriptor) from an owned socket.
"""

from __future__ import annotations

import os
import re

from .sources import COUNTERS, PORT_RANGE, in_order, parse_counters

SNIFF = 4096
MAX_BYTES = 256 << 20  # a file larger than this is no dump of these commands
SOS_FILES = ("proc/net/tcp", "proc/net/tcp6", "proc/net/netstat", "proc/net/snmp",
             "sos_commands/kernel/sysctl_-a")
SOS_DIRS = ("sos_commands/networking",)
SYSCTL_LINE = re.compile(r"^[A-Za-z0-9_.\-/]+ = ")
# `netstat -s` (net-tools) prints these counters as sentences; any other counter it knows
# no sentence for it prints as `Name: value` inside its section. The sentences are the
# format strings of net-tools' netstat, as `strings /usr/bin/netstat` shows them.
NETSTAT_SENTENCES = {
    "segments retransmitted": "TcpRetransSegs",
    "times the listen queue of a socket overflowed": "TcpExtListenOverflows",
    "SYNs to LISTEN sockets dropped": "TcpExtListenDrops",
    "SYN cookies sent": "TcpExtSyncookiesSent",
    "connections reset due to early user close": "TcpExtTCPAbortOnClose",
    "connections reset due to unexpected data": "TcpExtTCPAbortOnData",
    "connections aborted due to timeout": "TcpExtTCPAbortOnTimeout",
}


class BadDump(Exception):
    """The directory holds nothing doctor can read."""


def kind_of(head: str) -> str | None:
    """What a file is, from its first few kilobytes."""
    lines = [x for x in head.splitlines() if x.strip()]
    if not lines:
        return None
    first = lines[0].split()
    if first[:2] == ["sl", "local_address"]:
        return "proc-tcp"
    if first[:2] in (["State", "Recv-Q"], ["Netid", "State"]):
        return "ss"
    if first == ["#kernel"]:
        return "nstat"
    if (len(lines) > 1 and first[0].endswith(":") and len(first) > 1
            and lines[1].split()[0] == first[0] and lines[1].split()[1].lstrip("-").isdigit()):
        return "proc-counters"
    if first[0] in ("Ip:", "Tcp:", "Icmp:") and len(first) == 1:
        return "netstat-s"
    if sum(bool(SYSCTL_LINE.match(x)) for x in lines[:50]) >= min(len(lines), 50) * 0.9:
        return "sysctl"
    return None


def candidates(top: str) -> list[str]:
    """The files to look at: sos's known ones in an sosreport, every file otherwise."""
    if os.path.isdir(os.path.join(top, "sos_commands")):
        found = [f for f in SOS_FILES if os.path.isfile(os.path.join(top, f))]
        for d in SOS_DIRS:
            try:
                names = sorted(os.listdir(os.path.join(top, d)))
            except OSError:
                continue
            found += [f"{d}/{n}" for n in names if os.path.isfile(os.path.join(top, d, n))]
        return found
    out = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        if root[len(top):].count(os.sep) >= 3:
            dirs[:] = []
        out += sorted(os.path.relpath(os.path.join(root, f), top) for f in files)
    return out


def _read(path: str, limit: int | None = None) -> str:
    with open(path, "rb") as f:
        return f.read(limit if limit is not None else MAX_BYTES).decode("utf-8", "replace")


def classify(top: str) -> dict[str, list[str]]:
    """{kind: [relative paths]} for every candidate file whose content is recognised."""
    kinds: dict[str, list[str]] = {}
    for rel in candidates(top):
        path = os.path.join(top, rel)
        try:
            if os.path.getsize(path) > MAX_BYTES:
                continue
            kind = kind_of(_read(path, SNIFF))
        except OSError:
            continue
        if kind:
            kinds.setdefault(kind, []).append(rel)
    return kinds


# --- parsers -----------------------------------------------------------------------------------

def parse_nstat(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 2 and p[0] in COUNTERS and p[1].isdigit():
            out[p[0]] = int(p[1])
    return out


def parse_netstat_s(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    section = ""
    for line in text.splitlines():
        if line and not line[0].isspace():
            section = line.strip().rstrip(":")
            continue
        words = line.strip()
        if m := re.match(r"^(\d+) (.+)$", words):
            name = NETSTAT_SENTENCES.get(m.group(2))
            if name and name.startswith(section):
                out[name] = int(m.group(1))
        elif m := re.match(r"^(\w+): (\d+)$", words):
            if (name := section + m.group(1)) in COUNTERS:
                out[name] = int(m.group(2))
    return out


def parse_sysctl(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" = ")
        if sep and SYSCTL_LINE.match(line):
            out[name.strip()] = " ".join(value.split())
    return out


def _endpoint(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        return None  # a wildcard peer, `*`
    host = host.strip("[]").split("%")[0]
    return ("0.0.0.0" if host == "*" else host), int(port)


def parse_ss(text: str, ss_states: dict[str, int]) -> list[dict]:
    """TCP rows of `ss -tan[p][e]…` or `ss -…a…` output (all protocols, with a Netid column).

    Continuation lines (-i, -m print them indented) are skipped. A row has `users` (pid, comm)
    when -p was given, `inode` when -e was.
    """
    lines = text.splitlines()
    if not lines:
        return []
    netid = lines[0].split()[0] == "Netid"
    rows = []
    for line in lines[1:]:
        if not line or line[0].isspace():
            continue
        p = line.split()
        if netid:
            if p[0] != "tcp":
                continue
            p = p[1:]
        if len(p) < 5 or p[0] not in ss_states or not (p[1].isdigit() and p[2].isdigit()):
            continue
        local, remote = _endpoint(p[3]), _endpoint(p[4])
        if local is None:
            continue
        rest = " ".join(p[5:])
        user = re.search(r'users:\(\("((?:[^"\\]|\\.)*)",pid=(\d+)', rest)
        ino = re.search(r"\bino:(\d+)", rest)
        rows.append({"local": local, "remote": remote or ("0.0.0.0", 0), "st": ss_states[p[0]],
                     "rx_queue": int(p[1]), "tx_queue": int(p[2]),
                     "inode": int(ino.group(1)) if ino else None,
                     "user": {"pid": int(user.group(2)), "comm": user.group(1)} if user else None,
                     "with_users": "users:(" in text})
    return rows


# --- one reading from the files --------------------------------------------------------------

def _match_key(r: dict) -> tuple:
    def norm(host: str) -> str:
        return {"*": "0.0.0.0", "::": "0.0.0.0"}.get(host, host)
    return (r["st"], norm(r["local"][0]), r["local"][1], norm(r["remote"][0]), r["remote"][1])


def _sockets(top: str, kinds: dict, ss_states: dict[str, int], origin: dict) -> tuple[list, dict]:
    """Rows and owners: /proc/net/tcp when saved (owners from ss -p), else ss alone."""
    from ..machine.proc import parse_tcp

    ss_files = sorted(kinds.get("ss", []), key=lambda f: "users:(" not in _read(os.path.join(top, f)))
    ss_rows = parse_ss(_read(os.path.join(top, ss_files[0])), ss_states) if ss_files else []
    if kinds.get("proc-tcp"):
        rows = [r for f in kinds["proc-tcp"] for r in parse_tcp(_read(os.path.join(top, f)))]
        origin["sockets"] = kinds["proc-tcp"]
        owners: dict[int, dict] = {}
        by_ino = {r["inode"]: r["user"] for r in ss_rows if r["inode"] and r["user"]}
        by_key = {_match_key(r): r["user"] for r in ss_rows if r["user"]}
        for r in rows:
            if r["inode"] and (who := by_ino.get(r["inode"]) or by_key.get(_match_key(r))):
                owners[r["inode"]] = who
        if owners:
            origin["owners"] = ss_files[:1]
        return rows, owners
    if not ss_rows:
        return [], {}
    origin["sockets"] = origin["owners"] = ss_files[:1]
    owners, rows = {}, []
    for n, r in enumerate(ss_rows, 1):
        # ss knows no inode without -e: a stand-in keeps owned rows apart from orphans (0)
        inode = r["inode"] if r["inode"] is not None else (
            0 if r["with_users"] and not r["user"] else -n)
        if r["user"]:
            owners[inode] = r["user"]
        rows.append({k: r[k] for k in ("local", "remote", "st", "rx_queue", "tx_queue")} | {"inode": inode})
    return rows, owners


def _counters(top: str, kinds: dict, origin: dict) -> dict[str, int]:
    found: dict[str, int] = {}
    used = []
    for kind, parse in (("proc-counters", parse_counters), ("nstat", parse_nstat),
                        ("netstat-s", parse_netstat_s)):
        for f in kinds.get(kind, []):
            got = {k: v for k, v in parse(_read(os.path.join(top, f))).items() if k not in found}
            if got:
                found.update(got)
                used.append(f)
    origin["counters"] = used
    return in_order(found)


def _sysctls(top: str, kinds: dict, knobs: list[str], origin: dict) -> dict[str, list]:
    values: dict[str, str] = {}
    for f in kinds.get("sysctl", []):
        values = parse_sysctl(_read(os.path.join(top, f))) | values
    origin["sysctls"] = kinds.get("sysctl", [])[:1] if values else []
    return {n: [values[n], None] if n in values else [None, "not in the dump"]
            for n in dict.fromkeys([*knobs, PORT_RANGE])}


def read_dump(top: str, knobs: list[str], ss_states: dict[str, int]) -> dict:
    """The reading (see doctor.sources) a directory of saved outputs gives."""
    if not os.path.isdir(top):
        raise BadDump(f"--from {top}: not a directory")
    kinds = classify(top)
    if not (kinds.get("proc-tcp") or kinds.get("ss") or kinds.get("proc-counters")
            or kinds.get("nstat") or kinds.get("netstat-s")):
        raise BadDump(f"--from {top}: no saved /proc/net/tcp, ss, nstat, netstat -s or "
                      "/proc/net/netstat output found in it")
    origin: dict[str, list[str]] = {}
    rows, owners = _sockets(top, kinds, ss_states, origin)
    return {"rows": rows, "owners": owners, "counters": _counters(top, kinds, origin),
            "sysctls": _sysctls(top, kinds, knobs, origin), "origin": origin, "files": kinds}
