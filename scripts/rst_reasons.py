"""Provoke the kernel's TCP reset reasons and print what tcp:tcp_send_reset reports.

    sudo python3 scripts/rst_reasons.py                 # every scenario
    sudo python3 scripts/rst_reasons.py abort_on_close  # some of them

The "Observed on 6.18" lines of the kb/rst notes come from these scenarios. Each one runs in
a network namespace of its own (`unshare -n`) and talks to loopback only; hand-made segments
go through a raw socket to 127.0.0.1, and nftables rules inside the namespace drop the
namespace's own resets where a scenario impersonates a peer (those resets still show up as
NO_SOCKET lines: the tracepoint fires before netfilter). The tracepoint is read from a
tracefs instance that is removed at the end. One scenario (too_many_orphans) sets the global
net.ipv4.tcp_max_orphans to 0 for the instant of one close() and restores it at once.

Needs root, a kernel of 6.12 or later for the active-reset reasons, iproute2 and nftables.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import subprocess
import sys
import time

TRACING = "/sys/kernel/tracing"
INSTANCE = f"{TRACING}/instances/rst_reasons"
LO = "127.0.0.1"
PORT = 24000  # every port used here lies in 24000-24020, below the ephemeral range
CLOSED = 24009
ENDPOINT = 24020
OUR_PORTS = set(range(PORT, ENDPOINT + 1))
SYN, RST, ACK = 2, 4, 16  # TCP flag bits
ORPHANS_FD = 7  # the parent's /proc/sys/net/ipv4/tcp_max_orphans (a global knob)
TCP_LINGER2 = 8
IPPROTO_MPTCP = 262


# -- helpers run inside the namespace ---------------------------------------------------------

def sh(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)


def counters() -> dict[str, int]:
    values = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = open(path).read().splitlines()
        for head, vals in zip(lines[0::2], lines[1::2]):
            names, nums = head.split(), vals.split()
            prefix = names[0].rstrip(":")
            values.update({prefix + n: int(v) for n, v in zip(names[1:], nums[1:])})
    return values


BORING = ("InSegs", "OutSegs", "InReceives", "InDelivers", "OutRequests", "InPkts", "OutPkts",
          "InOctets", "OutOctets", "NoECTPkts", "ActiveOpens", "PassiveOpens", "CurrEstab",
          "DelayedACK", "TCPHPHits", "TCPPureAcks", "TCPHPAcks", "TCPOrigDataSent",
          "TCPRcvCoalesce", "TCPAutoCorking", "TCPDelivered", "ZeroWindowAdv", "Transmits")


def show_counters(before: dict[str, int]) -> None:
    after = counters()
    moved = {k: after[k] - before.get(k, 0) for k in sorted(after)
             if after[k] != before.get(k, 0) and not k.endswith(BORING)}
    print("  counters:", moved)


def outcome(label: str, call) -> None:
    try:
        print(f"  {label}: returned {call()!r}")
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
        print(f"  {label}: {name}")


def listen(backlog: int = 8, proto: int = 0) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    listener.bind((LO, PORT))
    listener.listen(backlog)
    return listener


def pair(proto: int = 0) -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = listen(proto=proto)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    client.settimeout(5)
    client.connect((LO, PORT))
    server, _ = listener.accept()
    server.settimeout(5)
    return listener, client, server


def disconnect(sock: socket.socket) -> int:
    """connect(fd, AF_UNSPEC): Python's connect() cannot express it."""
    libc = ctypes.CDLL(None, use_errno=True)
    addr = struct.pack("H14s", socket.AF_UNSPEC, b"")
    if libc.connect(sock.fileno(), addr, len(addr)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def segment(sport: int, dport: int, seq: int, ack: int, flags: int, options: bytes = b"") -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         (20 + len(options)) // 4 << 4, flags, 65535, 0, 0) + options
    pseudo = socket.inet_aton(LO) * 2 + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    return header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]


def send_raw(seg: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as raw:
        raw.sendto(seg, (LO, 0))


def sniffer() -> socket.socket:
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    raw.settimeout(2)
    return raw


def wait_for(raw: socket.socket, sport: int | None, dport: int, want: int) -> tuple[int, int, bytes]:
    """The next segment to `dport` (from `sport`) with all `want` flags: (sport, seq, tcp bytes)."""
    while True:
        packet = raw.recv(2048)
        tcp = packet[(packet[0] & 15) * 4:]
        src, dst, seq, _ack, _off, flags = struct.unpack("!HHIIBB", tcp[:14])
        if dst == dport and (sport is None or src == sport) and flags & want == want:
            return src, seq, tcp


def nft_rule(hook: str, rule: str) -> None:
    """Add one rule to a filter chain on `hook` in this namespace's table inet lab."""
    r = sh("nft add table inet lab && "
           f"nft add chain inet lab {hook} '{{ type filter hook {hook} priority 0; }}' && "
           f"nft add rule inet lab {hook} {rule}")
    if r.returncode:
        raise RuntimeError(r.stderr)


def drop_own_resets(port: int) -> None:
    """Drop the resets this namespace sends from `port`, a peer the scenario impersonates."""
    nft_rule("output", f"tcp sport {port} tcp flags rst drop")


# -- scenarios ----------------------------------------------------------------------------------

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


@scenario
def no_socket():
    """connect() to a port nobody listens on."""
    c = socket.socket()
    c.settimeout(3)
    outcome(f"connect(127.0.0.1:{CLOSED})", lambda: c.connect((LO, CLOSED)))


@scenario
def no_socket_v6():
    """The same over IPv6."""
    c = socket.socket(socket.AF_INET6)
    c.settimeout(3)
    outcome(f"connect([::1]:{CLOSED})", lambda: c.connect(("::1", CLOSED)))


@scenario
def ack_to_listener():
    """A bare ACK that matches no handshake reaches a listener."""
    listener = listen()
    send_raw(segment(24001, PORT, 1000, 5000, ACK))
    time.sleep(0.2)
    listener.close()


@scenario
def abort_on_close():
    """The server closes with 100 unread bytes."""
    _, client, server = pair()
    client.sendall(b"x" * 100)
    time.sleep(0.1)
    server.close()
    time.sleep(0.1)
    outcome("client recv", lambda: client.recv(10))
    outcome("client send", lambda: client.send(b"y"))


@scenario
def linger_zero():
    """close() with SO_LINGER {1, 0} on an established socket."""
    _, client, server = pair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    time.sleep(0.1)
    outcome("server recv", lambda: server.recv(10))


def _close_with_linger2(linger_seconds: int | None) -> None:
    _, client, server = pair()
    client.setsockopt(socket.IPPROTO_TCP, TCP_LINGER2, -1)
    if linger_seconds is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, linger_seconds))
    client.close()
    time.sleep(0.1)
    outcome("server recv", lambda: server.recv(10))


@scenario
def linger2_after_fin_acked():
    """TCP_LINGER2 -1 and SO_LINGER {1, 2}: close() returns in FIN_WAIT2."""
    _close_with_linger2(2)


@scenario
def linger2_before_fin_acked():
    """TCP_LINGER2 -1 only: the FIN's ACK finds an orphan."""
    _close_with_linger2(None)


@scenario
def data_after_close():
    """The client writes twice after the server closed (default tcp_fin_timeout)."""
    _, client, server = pair()
    server.close()
    time.sleep(0.1)
    outcome("client send #1", lambda: client.send(b"hello"))
    time.sleep(0.1)
    outcome("client send #2", lambda: client.send(b"hello"))


@scenario
def data_after_close_fin_timeout_120():
    """As data_after_close, with tcp_fin_timeout 120: the orphan stays a full socket."""
    sh("sysctl -qw net.ipv4.tcp_fin_timeout=120")
    _, client, server = pair()
    server.close()
    time.sleep(0.1)
    outcome("client send", lambda: client.send(b"hello"))
    time.sleep(0.1)


@scenario
def data_after_shutdown():
    """The server shuts down both directions but keeps the descriptor; the client writes."""
    _, client, server = pair()
    server.shutdown(socket.SHUT_RDWR)
    time.sleep(0.1)
    outcome("client send", lambda: client.send(b"hello"))
    time.sleep(0.1)
    outcome("server recv", lambda: server.recv(10))


@scenario
def keepalive():
    """Keepalive 1 s / 1 s / 2 probes while the server's packets are dropped."""
    _, client, server = pair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    nft_rule("output", f"tcp sport {PORT} drop")
    client.settimeout(8)
    started = time.monotonic()
    outcome("client recv", lambda: client.recv(10))
    print(f"  after {time.monotonic() - started:.1f} s")


@scenario
def disconnect_established():
    """connect(AF_UNSPEC) on an established socket."""
    _, client, server = pair()
    outcome("client connect(AF_UNSPEC)", lambda: disconnect(client))
    time.sleep(0.1)
    outcome("server recv", lambda: server.recv(10))


@scenario
def disconnect_with_data():
    """LAST_ACK with data still unsent, then connect(AF_UNSPEC)."""
    _, client, server = pair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.shutdown(socket.SHUT_WR)
    time.sleep(0.1)
    server.setblocking(False)
    queued = 0
    try:
        while True:
            queued += server.send(b"z" * 65536)
    except BlockingIOError:
        pass
    server.shutdown(socket.SHUT_WR)
    time.sleep(0.1)
    last_ack = sh(f"ss -Htn state last-ack sport = :{PORT}").stdout.strip()
    print(f"  server queued {queued} bytes; in LAST_ACK: {last_ack}")
    outcome("server connect(AF_UNSPEC)", lambda: disconnect(server))


@scenario
def ss_kill():
    """ss -K on the client's socket."""
    _, client, server = pair()
    sh(f"ss -K -tn dst {LO}:{PORT}")
    time.sleep(0.1)
    outcome("client recv", lambda: client.recv(10))
    outcome("server recv", lambda: server.recv(10))


@scenario
def close_listener_with_queue():
    """A listener closes with one connection never accepted."""
    listener = listen()
    client = socket.socket()
    client.settimeout(2)
    client.connect((LO, PORT))
    listener.close()
    time.sleep(0.1)
    outcome("client recv", lambda: client.recv(10))


@scenario
def too_many_orphans():
    """close() while the global tcp_max_orphans is 0 (restored right after)."""
    _, client, server = pair()
    old = os.pread(ORPHANS_FD, 64, 0).strip()
    try:
        os.pwrite(ORPHANS_FD, b"0\n", 0)
        server.close()
    finally:
        os.pwrite(ORPHANS_FD, old + b"\n", 0)
    time.sleep(0.1)
    outcome("client recv", lambda: client.recv(10))


def _half_open(port: int) -> int:
    """Send a SYN from `port` (no socket of ours behind it) and return the SYN-ACK's ISN."""
    drop_own_resets(port)
    raw = sniffer()
    send_raw(segment(port, PORT, 1000, 0, SYN))
    return wait_for(raw, PORT, port, SYN | ACK)[1]


@scenario
def abort_on_overflow():
    """tcp_abort_on_overflow=1: a handshake completes while listen(1) holds two connections."""
    sh("sysctl -qw net.ipv4.tcp_abort_on_overflow=1")
    listener = listen(1)
    isn = _half_open(24002)
    waiting = [socket.create_connection((LO, PORT), timeout=2) for _ in range(2)]
    send_raw(segment(24002, PORT, 1001, isn + 1, ACK))
    time.sleep(0.2)
    for _ in waiting:  # accept them, so closing the listener resets nothing
        listener.accept()[0].close()


@scenario
def syn_in_window():
    """A second SYN inside a pending request's window."""
    listener = listen()
    _half_open(24003)
    send_raw(segment(24003, PORT, 1001, 0, SYN))
    time.sleep(0.2)
    listener.close()


@scenario
def bad_final_ack():
    """The handshake's last ACK acknowledges the wrong sequence number."""
    listener = listen()
    isn = _half_open(24005)
    send_raw(segment(24005, PORT, 1001, isn + 1000, ACK))
    time.sleep(0.2)
    listener.close()


def _connecting(port: int) -> tuple[socket.socket, int, int, bytes]:
    drop_own_resets(port)
    raw = sniffer()
    client = socket.socket()
    client.setblocking(False)
    try:
        client.connect((LO, port))
    except BlockingIOError:
        pass
    sport, isn, tcp = wait_for(raw, None, port, SYN)
    return client, sport, isn, tcp


@scenario
def synack_bad_ack():
    """A SYN-ACK acknowledging the client's ISN + 1000."""
    client, sport, isn, _ = _connecting(24010)
    send_raw(segment(24010, sport, 777, isn + 1000, SYN | ACK))
    time.sleep(0.2)


@scenario
def synack_stale_timestamp():
    """A SYN-ACK echoing a timestamp from before the SYN."""
    client, sport, isn, tcp = _connecting(24012)
    options = tcp[20:(tcp[12] >> 4) * 4]
    at = options.index(bytes([8, 10]))
    tsval = struct.unpack("!I", options[at + 2:at + 6])[0]
    echo = bytes([1, 1, 8, 10]) + struct.pack("!II", 4242, (tsval - 100000) & 0xFFFFFFFF)
    send_raw(segment(24012, sport, 777, isn + 1, SYN | ACK, echo))
    time.sleep(0.2)


def _crossed_syn(port: int, ack: int) -> None:
    """Put a client in SYN_RECV by crossing its SYN, send it an ACK for `ack` + its ISN."""
    client, sport, isn, _ = _connecting(port)
    send_raw(segment(port, sport, 5000, 0, SYN))  # simultaneous open: the client goes to SYN_RECV
    time.sleep(0.1)
    send_raw(segment(port, sport, 5001, isn + ack, ACK))
    time.sleep(0.2)
    # an in-window RST ends the half-open client quietly, so no SYN-ACK outlives the scenario
    sh("nft delete table inet lab")
    send_raw(segment(port, sport, 5001, 0, RST))
    time.sleep(0.1)
    client.close()


@scenario
def syn_recv_ack_unsent():
    """SYN_RECV (crossed SYNs), then an ACK for data never sent."""
    _crossed_syn(24013, 1001)


@scenario
def syn_recv_ack_too_old():
    """SYN_RECV (crossed SYNs), then an ACK far below snd_una."""
    _crossed_syn(24014, -1000)


@scenario
def nft_reject():
    """A connect() refused by an nftables 'reject with tcp reset' rule: no tracepoint event."""
    listener = listen()
    nft_rule("input", f"tcp dport {PORT} reject with tcp reset")
    client = socket.socket()
    client.settimeout(2)
    outcome("connect", lambda: client.connect((LO, PORT)))
    listener.close()


@scenario
def mptcp_close_unread():
    """An MPTCP server closes with unread data (fast close)."""
    _, client, server = pair(IPPROTO_MPTCP)
    client.sendall(b"x" * 100)
    time.sleep(0.1)
    server.close()
    time.sleep(0.2)
    outcome("client recv", lambda: client.recv(10))


@scenario
def mptcp_join_unknown_token():
    """An MP_JOIN SYN naming a token no connection has."""
    drop_own_resets(24004)
    listener = listen(proto=IPPROTO_MPTCP)
    mp_join = bytes([30, 12, 0x10, 1]) + struct.pack("!II", 0xDEADBEEF, 0x12345678)
    send_raw(segment(24004, PORT, 1000, 0, SYN, mp_join))
    time.sleep(0.2)
    listener.close()


@scenario
def mptcp_endpoint_port():
    """Plain TCP to the extra port of a 'signal' endpoint."""
    sh(f"ip mptcp endpoint add {LO} port {ENDPOINT} signal")
    client = socket.socket()
    client.settimeout(2)
    outcome(f"connect(127.0.0.1:{ENDPOINT})", lambda: client.connect((LO, ENDPOINT)))


# -- the parent: tracefs and one namespace per scenario -----------------------------------------

def child(name: str) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(f"== {name}: {SCENARIOS[name].__doc__}")
    before = counters()
    SCENARIOS[name]()
    show_counters(before)


def events() -> list[str]:
    """This run's tcp_send_reset lines: the tracepoint is global, so keep only our ports."""
    found = []
    for line in open(f"{INSTANCE}/trace").read().splitlines():
        if "tcp_send_reset: " not in line:
            continue
        event = line.split("tcp_send_reset: ", 1)[1]
        ends = [word.split("=", 1)[1] for word in event.split()
                if word.startswith(("src=", "dest="))]
        local = [end for end in ends if end.startswith(("127.0.0.1:", "[::1]:", "0.0.0.0:"))]
        if any(int(end.rsplit(":", 1)[1]) in OUR_PORTS for end in local):
            found.append(event)
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1])
        return 0
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print("unknown scenarios:", ", ".join(unknown), "\nknown:", ", ".join(SCENARIOS))
        return 2
    if not os.path.isdir(f"{TRACING}/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACING], check=True)
    print("kernel", os.uname().release)
    os.makedirs(INSTANCE, exist_ok=True)
    orphans = os.open("/proc/sys/net/ipv4/tcp_max_orphans", os.O_RDWR)
    os.dup2(orphans, ORPHANS_FD)
    try:
        with open(f"{INSTANCE}/events/tcp/tcp_send_reset/enable", "w") as f:
            f.write("1")
        for name in names:
            with open(f"{INSTANCE}/trace", "w") as f:
                f.write("")
            subprocess.run(["unshare", "-n", sys.executable, __file__, "--child", name],
                           pass_fds=(ORPHANS_FD,), timeout=30, check=False)
            for line in events():
                print("  tcp_send_reset:", line)
    finally:
        with open(f"{INSTANCE}/events/tcp/tcp_send_reset/enable", "w") as f:
            f.write("0")
        os.rmdir(INSTANCE)
        os.close(ORPHANS_FD)
        os.close(orphans)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
