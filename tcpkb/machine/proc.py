"""/proc/net/tcp and tcp6 and the MIB counters, decoded: the readers used by `tcpkb doctor`,
`tcpkb watch` and the scenarios' lab."""

from __future__ import annotations

import socket


def tcp_sockets() -> list[dict]:
    """Every row of /proc/net/tcp and tcp6 in this namespace: addresses, state number (`st`),
    queues, timer (kind and seconds left), uid and inode. Unreadable files are skipped."""
    rows = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows += parse_tcp(f.read())
        except OSError:
            continue
    return rows


def parse_tcp(text: str) -> list[dict]:
    """The rows of one /proc/net/tcp or tcp6 text (its header line skipped)."""
    rows = []
    for line in text.splitlines()[1:]:
        p = line.split()
        if len(p) < 10:
            continue
        tx, rx = p[4].split(":")
        timer, when = p[5].split(":")
        rows.append({"local": address(p[1]), "remote": address(p[2]), "st": int(p[3], 16),
                     "tx_queue": int(tx, 16), "rx_queue": int(rx, 16),
                     "timer": int(timer, 16), "timer_s": int(when, 16) / 100,
                     "uid": int(p[7]), "inode": int(p[9])})
    return rows


def address(text: str) -> tuple[str, int]:
    """'0100007F:1F90' -> ('127.0.0.1', 8080); IPv6 is four little-endian 32-bit words."""
    hexaddr, hexport = text.split(":")
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        host = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return host, int(hexport, 16)


def process_name(pid: int) -> str | None:
    """/proc/<pid>/comm: the name the kernel keeps for a process (what ss -p shows); None if gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def parse_mib(text: str) -> dict[str, int]:
    """/proc/net/netstat or snmp text (pairs of lines, names then values) -> counters named as
    nstat names them (TcpExtListenOverflows, TcpOutRsts); a line that is not a pair is skipped."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        prefix, *keys = names.split() or [""]
        for key, value in zip(keys, values.split()[1:]):
            if value.lstrip("-").isdigit():
                out[prefix.rstrip(":") + key] = int(value)
    return out


def mib_counters() -> dict[str, int]:
    """Every counter of /proc/net/netstat and snmp in this namespace; an unreadable file is skipped."""
    out: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            with open(path) as f:
                out.update(parse_mib(f.read()))
        except OSError:
            continue
    return out
