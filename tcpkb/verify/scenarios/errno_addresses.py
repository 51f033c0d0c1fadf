"""Local addresses and ports: EADDRINUSE and EADDRNOTAVAIL."""

from __future__ import annotations

import socket
import time

from .. import scenario

SERVER = ("127.0.0.1", 5000)  # a fixed port outside the shrunken ephemeral range
RANGE = (40000, 40001)


def _client_side_time_waits(lab, count: int, listener, suffix: str = "") -> list[int]:
    """`count` connections to `listener` that the client closed first: their ports sit in TIME_WAIT.
    The connections are opened first and closed together, so the TIME_WAITs are born close in time."""
    pairs = [lab.connect_to(listener, f"client{i}{suffix}", f"server{i}{suffix}") for i in range(count)]
    for client, server in pairs:
        client.close()
        server.close()
    for client, _ in pairs:
        lab.wait_state(client, "TIME_WAIT", 1.0)
    return [client.local[1] for client, _ in pairs]


def _fin_into_time_wait(lab, server: tuple, client_port: int, before: float | None = None) -> dict:
    """The server's FIN to `client_port` (the last one before `before`, a lab time in ms): the
    segment whose arrival put the client's end in TIME_WAIT. tcp_time_wait() and
    tcp_timewait_state_process() stamp the TIME_WAIT (tw_entry_stamp) while processing it, after
    the capture stamped its arrival, so the TIME_WAIT is no older than this packet."""
    fins = [p for p in lab.packets() if p.get("proto") == "tcp" and "F" in p["flags"]
            and (p["src"], p["sport"]) == tuple(server[:2]) and p["dport"] == client_port
            and (before is None or p["t_ms"] < before)]
    if not fins:
        lab.fail(f"no FIN from {server[0]}:{server[1]} to port {client_port} was captured")
    return fins[-1]


# tcp_twsk_unique() lets connect() take a TIME_WAIT port once tcp_clock_ms() is past the
# TIME_WAIT's entry stamp plus tcp_tw_reuse_delay: both in ms of CLOCK_MONOTONIC, compared
# strictly, so the new SYN leaves more than `delay` after the FIN that made the TIME_WAIT. The
# capture's stamps are CLOCK_REALTIME, which NTP may slew by 0.05 % at most (< 1 ms here).
CLOCK_SLEW_S = 0.001
# Without the knob (before 6.14, or at its default) the delay is 1000 ms: a reuse sooner than
# that shows the knob took effect. The retry loop adds 10 ms sleeps and scheduling delays,
# which load stretches, but nowhere near the ~0.8 s between the set delay and the default.
DEFAULT_TW_REUSE_DELAY_S = 1.0


def _refused_while_young(lab, address: str, delay_s: float, attempt: int) -> tuple | None:
    """Fill the two-port range with TIME_WAITs to a listener on `address` and expect connect() to
    fail with EADDRNOTAVAIL while they are younger than `delay_s`. Returns (listener, ports); or
    None when the attempt began only after the oldest TIME_WAIT had aged past the delay (a
    loaded machine kept the lab off the CPU): that attempt cannot tell, and the caller retries."""
    suffix = f"-{attempt + 1}" if attempt else ""  # each attempt has its own server port and names
    listener = lab.listener(f"listener{suffix}", (address, SERVER[1] + 2 * attempt))
    ports = _client_side_time_waits(lab, 2, listener, suffix)
    lab.expect(sorted(ports) == list(RANGE), f"the two connections used ports {RANGE} (used {ports})")
    first = lab.socket(f"first{suffix}")
    began = time.time()  # the attempt happens no sooner than this
    r = first.connect(listener.local)
    if r.errno == "EADDRNOTAVAIL":
        lab.expect_errno(r, "EADDRNOTAVAIL")
        return listener, ports
    oldest = min(lab.stamp(_fin_into_time_wait(lab, listener.local, port)) for port in ports)
    if began - oldest < delay_s:  # the attempt was in time: the kernel should have refused
        lab.expect_errno(r, "EADDRNOTAVAIL")
    lab.note(f"connect() began {began - oldest:.3f} s after the oldest TIME_WAIT, past the "
             f"{delay_s} s delay: too late to show the refusal; trying again on another server port")
    first.close()
    return None


def _tw_refused_then_reused(lab, address: str, delay_s: float) -> tuple:
    """(listener, ports, reuser, gap): TIME_WAITs that refuse connect() while young, then a connect()
    retried every 10 ms until it takes one of their ports; `gap` is the kernel-stamped time from the
    FIN that put that port in TIME_WAIT to the new connection's SYN."""
    for attempt in range(3):
        found = _refused_while_young(lab, address, delay_s, attempt)
        if found:
            break
    else:
        lab.fail("three times the lab came too late to see connect() refused (machine too loaded)")
    listener, ports = found
    lab.note("retrying connect() every 10 ms with fresh sockets (not traced) until one succeeds")
    reuser, _ = _connect_retrying(lab, "reuser", listener.local, 1.5)
    lab.expect(reuser is not None, "a connect() took a TIME_WAIT port within 1.5 s")
    lab.expect(reuser.local[1] in ports, f"the new connection took port {reuser.local[1]}, one in TIME_WAIT")
    syn = [p for p in lab.packets() if p.get("proto") == "tcp" and p["flags"] == "S"
           and (p["sport"], p["dst"], p["dport"]) == (reuser.local[1], *listener.local)][-1]
    fin = _fin_into_time_wait(lab, listener.local, reuser.local[1], before=syn["t_ms"])
    return listener, ports, reuser, lab.stamp(syn) - lab.stamp(fin)


def _connect_retrying(lab, name: str, address: tuple, within: float) -> tuple:
    """(traced socket or None, seconds): connect() with fresh, untraced sockets every 10 ms until
    one succeeds or `within` seconds pass; only the successful socket joins the lab."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        raw = socket.socket()
        if raw.connect_ex(address) == 0:
            return lab.adopt(name, raw), time.monotonic() - began
        raw.close()
        time.sleep(0.01)
    return None, time.monotonic() - began


@scenario(
    claim="bind() to the address and port a listening socket holds fails with EADDRINUSE.",
    proves=["errno:EADDRINUSE", "call:bind"],
)
def bind_to_listening_port_eaddrinuse(lab):
    listener = lab.listener()
    other = lab.socket("other")
    lab.expect_errno(other.bind(listener.local), "EADDRINUSE")


@scenario(
    claim="When the server closed first and its port is held only by a TIME_WAIT connection, a new "
          "listener's bind() to that port fails with EADDRINUSE without SO_REUSEADDR and succeeds "
          "with it (the old listener had SO_REUSEADDR too).",
    proves=["errno:EADDRINUSE", "sockopt:SO_REUSEADDR", "call:bind"],
)
def reuseaddr_binds_over_time_wait(lab):
    address = lab.port_in_time_wait(reuseaddr=True)
    plain = lab.socket("plain")
    lab.expect_errno(plain.bind(address), "EADDRINUSE")
    plain.close()
    fresh = lab.socket("fresh", options={"SO_REUSEADDR": 1})
    lab.expect_ok(fresh.bind(address))
    lab.expect_ok(fresh.listen())
    lab.expect_state(fresh, "LISTEN")


@scenario(
    claim="SO_REUSEADDR on the new socket alone does not get past a TIME_WAIT connection: if the "
          "listener that accepted it lacked SO_REUSEADDR, bind() to the port still fails with "
          "EADDRINUSE.",
    proves=["errno:EADDRINUSE", "sockopt:SO_REUSEADDR", "call:bind"],
)
def reuseaddr_over_time_wait_needs_it_on_old_socket(lab):
    address = lab.port_in_time_wait(reuseaddr=False)
    fresh = lab.socket("fresh", options={"SO_REUSEADDR": 1})
    lab.expect_errno(fresh.bind(address), "EADDRINUSE")


@scenario(
    claim="SO_REUSEADDR does not let a second socket bind to the port of an active listener "
          "(EADDRINUSE, even with the option on both); SO_REUSEPORT on both does.",
    proves=["errno:EADDRINUSE", "sockopt:SO_REUSEADDR", "sockopt:SO_REUSEPORT", "call:bind"],
)
def reuseaddr_does_not_allow_two_listeners(lab):
    lab.listener("first", SERVER, reuseaddr=True)
    second = lab.socket("second", options={"SO_REUSEADDR": 1})
    lab.expect_errno(second.bind(SERVER), "EADDRINUSE")
    lab.listener("a", ("127.0.0.1", 5001), options={"SO_REUSEPORT": 1})
    b = lab.socket("b", options={"SO_REUSEPORT": 1})
    lab.expect_ok(b.bind(("127.0.0.1", 5001)))
    lab.expect_ok(b.listen())
    lab.expect_state(b, "LISTEN")


@scenario(
    claim="With ip_local_port_range shrunk to two ports and tcp_tw_reuse=0, once both ports hold a "
          "client-side TIME_WAIT to the same server, the next connect() to it fails with "
          "EADDRNOTAVAIL.",
    proves=["errno:EADDRNOTAVAIL", "sysctl:net.ipv4.ip_local_port_range",
            "sysctl:net.ipv4.tcp_tw_reuse", "state:TIME_WAIT", "call:connect"],
)
def connect_with_ports_in_time_wait_eaddrnotavail(lab):
    lab.sysctl("net.ipv4.ip_local_port_range", f"{RANGE[0]} {RANGE[1]}")
    lab.sysctl("net.ipv4.tcp_tw_reuse", 0)
    listener = lab.listener(address=SERVER)
    ports = _client_side_time_waits(lab, 2, listener)
    lab.expect(sorted(ports) == list(RANGE), f"the two connections used ports {RANGE} (used {ports})")
    client = lab.socket("client")
    lab.expect_errno(client.connect(listener.local), "EADDRNOTAVAIL")


@scenario(
    claim="With tcp_tw_reuse=2 (the default: loopback only) connect() takes over a client-side "
          "TIME_WAIT port, but only once the TIME_WAIT is older than tcp_tw_reuse_delay: with the "
          "delay at 200 ms and both ports of the range in TIME_WAIT, connect() fails with "
          "EADDRNOTAVAIL at first and succeeds on a port of the range after about 0.2 s.",
    proves=["errno:EADDRNOTAVAIL", "sysctl:net.ipv4.tcp_tw_reuse", "sysctl:net.ipv4.tcp_tw_reuse_delay",
            "sysctl:net.ipv4.ip_local_port_range", "state:TIME_WAIT", "call:connect"],
)
def tw_reuse_takes_time_wait_port_after_delay(lab):
    lab.sysctl("net.ipv4.ip_local_port_range", f"{RANGE[0]} {RANGE[1]}")
    lab.sysctl("net.ipv4.tcp_tw_reuse", 2)
    lab.sysctl("net.ipv4.tcp_tw_reuse_delay", 200)
    _, _, _, gap = _tw_refused_then_reused(lab, "127.0.0.1", 0.2)
    lab.expect_window(gap, 0.2 - CLOCK_SLEW_S, DEFAULT_TW_REUSE_DELAY_S,
                      "from the FIN that made the TIME_WAIT to the SYN that reused its port", "capture")
    lab.expect_counter("TcpExtTWRecycled", at_least=1)


@scenario(
    claim="bind() to an IPv4 address that is on no interface of the namespace (10.77.0.1) fails "
          "with EADDRNOTAVAIL.",
    proves=["errno:EADDRNOTAVAIL", "call:bind"],
)
def bind_to_foreign_address_eaddrnotavail(lab):
    s = lab.socket("sock")
    lab.expect_errno(s.bind(("10.77.0.1", 0)), "EADDRNOTAVAIL")
