"""Local addresses and ports: EADDRINUSE and EADDRNOTAVAIL."""

from __future__ import annotations

import socket
import time

from .. import scenario

SERVER = ("127.0.0.1", 5000)  # a fixed port outside the shrunken ephemeral range
RANGE = (40000, 40001)


def _client_side_time_waits(lab, count: int, listener) -> list[int]:
    """`count` connections to `listener` that the client closed first: their ports sit in TIME_WAIT."""
    ports = []
    for i in range(count):
        client, server = lab.connect_to(listener, f"client{i}", f"server{i}")
        client.close()
        server.close()
        lab.wait_state(client, "TIME_WAIT", 1.0)
        ports.append(client.local[1])
    return ports


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
    listener = lab.listener(address=SERVER)
    ports = _client_side_time_waits(lab, 2, listener)
    began = time.monotonic()
    client = lab.socket("client")
    lab.expect_errno(client.connect(listener.local), "EADDRNOTAVAIL")
    client.close()

    lab.note("retrying connect() every 10 ms with fresh sockets (not traced) until one succeeds")
    reuser = None
    while reuser is None and time.monotonic() - began < 1.5:
        raw = socket.socket()
        if raw.connect_ex(listener.local) == 0:
            reuser = lab.adopt("reuser", raw)
        else:
            raw.close()
            time.sleep(0.01)
    took = time.monotonic() - began
    lab.expect(reuser is not None, f"a connect() succeeded within 1.5 s (waited {took:.3f} s)")
    lab.note(f"connect() succeeded after {took:.3f} s from local port {reuser.local[1]}")
    lab.expect(reuser.local[1] in ports, f"the new connection took port {reuser.local[1]}, one in TIME_WAIT")
    lab.expect(0.15 < took < 1.0, f"the reuse came 0.15-1.0 s after the TIME_WAIT (took {took:.3f} s)")
    lab.expect_counter("TcpExtTWRecycled", at_least=1)


@scenario(
    claim="bind() to an IPv4 address that is on no interface of the namespace (10.77.0.1) fails "
          "with EADDRNOTAVAIL.",
    proves=["errno:EADDRNOTAVAIL", "call:bind"],
)
def bind_to_foreign_address_eaddrnotavail(lab):
    s = lab.socket("sock")
    lab.expect_errno(s.bind(("10.77.0.1", 0)), "EADDRNOTAVAIL")
