"""Capture `netstat -s` and `nstat -az` with the counters they were printed from, for explain's
dev set of the kernel's own words (tests/fixtures/kernel_words/).

    sudo python3 scripts/capture_counters.py host            # this machine's namespace, as it is
    sudo python3 scripts/capture_counters.py stressed        # a fresh namespace, after stress

"stressed" makes a fresh network namespace busy on loopback only: resets (closed ports, unread
data, zero linger), a listen queue overflow, UDP to closed ports and into a full receive buffer,
and ICMP echoes. Each capture writes NAME.netstat.txt, NAME.nstat.txt and NAME.proc.json (the
/proc/net/netstat and snmp values read just after, with no traffic in between).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys

HERE = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "kernel_words")


def proc_counters() -> dict[str, int]:
    out = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = open(path).read().splitlines()
        for head, values in zip(lines[::2], lines[1::2]):
            names, nums = head.split(), values.split()
            out.update({names[0].rstrip(":") + n: int(v) for n, v in zip(names[1:], nums[1:])})
    return out


def stress() -> None:
    lo = "127.0.0.1"
    for _ in range(7):  # resets for closed ports
        probe = socket.socket()
        probe.bind((lo, 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            socket.create_connection((lo, port), timeout=1)
        except OSError:
            pass
    listener = socket.socket()
    listener.bind((lo, 0))
    listener.listen(1)
    pairs = []
    for i in range(5):  # unread data, zero linger, and a queue that overflows
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(listener.getsockname())
        except BlockingIOError:
            pass
        pairs.append(c)
    server = socket.socket()
    server.bind((lo, 0))
    server.listen(8)
    for flavour in ("unread", "linger", "unread"):
        c = socket.create_connection(server.getsockname(), timeout=1)
        s, _ = server.accept()
        c.send(b"x" * 300)
        if flavour == "linger":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            import time
            time.sleep(0.01)
        s.close()
        c.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(11):  # to a port where nothing listens: NoPorts, and ICMP unreachables
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((lo, 0))
        port = probe.getsockname()[1]
        probe.close()
        udp.sendto(b"?", (lo, port))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sink.bind((lo, 0))
    for _ in range(300):  # into a full receive buffer
        udp.sendto(b"y" * 1000, sink.getsockname())
    for c in pairs:
        c.close()


def capture(name: str) -> None:
    env = {**os.environ, "NSTAT_HISTORY": "/dev/null"}
    netstat = subprocess.run(["netstat", "-s"], capture_output=True, text=True, check=True).stdout
    nstat = subprocess.run(["nstat", "-az"], capture_output=True, text=True, check=True, env=env).stdout
    values = proc_counters()
    os.makedirs(HERE, exist_ok=True)
    for suffix, text in (("netstat.txt", netstat), ("nstat.txt", nstat)):
        with open(os.path.join(HERE, f"{name}.{suffix}"), "w") as f:
            f.write(text)
    with open(os.path.join(HERE, f"{name}.proc.json"), "w") as f:
        json.dump({"kernel": os.uname().release, "counters": values}, f, indent=1, sort_keys=True)
        f.write("\n")


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "stressed"
    if what == "stressed":
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
        from tcpkb.machine.netns import enter_new_netns

        enter_new_netns()
        stress()
    capture(what)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
