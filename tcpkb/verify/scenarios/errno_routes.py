"""ENETUNREACH and EHOSTUNREACH: no route, routes that refuse, and ICMP from a router."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading

from .. import scenario
from ..lab import ScenarioFailed, Skip
from .errno_timeouts import expect_user_timeout

TCP_SYNCNT = 7
TCP_USER_TIMEOUT = 18
IP_RECVERR = 11


def _tcp(lab) -> list[dict]:
    return [p for p in lab.packets() if p.get("proto") == "tcp"]


def _ip_route(lab, *args: str) -> None:
    """`ip route …` inside the scenario's namespace (the child inherits it)."""
    if shutil.which("ip") is None:
        raise Skip("the `ip` command (iproute2) is not installed")
    cmd = ["ip", "route", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=2.0, check=False)
    lab.note(f"{' '.join(cmd)} -> exit {done.returncode}{(': ' + done.stderr.strip()) if done.stderr else ''}")
    if done.returncode != 0:
        lab.fail(f"`{' '.join(cmd)}` failed")


def _connect_fails_at_once(lab, address: str, errno_name: str) -> None:
    client = lab.socket("client")
    r, span = lab.timed_call(client, f"connect({address}:80)", lambda: client.sock.connect((address, 80)))
    lab.expect_errno(r, errno_name)
    # the route lookup fails inside the call; waiting for an answer would sleep a 1 s SYN timer
    lab.expect_window(span.blocked, None, 0.01, "connect() failed without sleeping", "blocked")
    lab.expect(not _tcp(lab), "no TCP segment was sent")


@scenario(
    claim="In a namespace with only the loopback device, connect() to 10.9.9.9 fails at once with "
          "ENETUNREACH: the route lookup fails, so not even a SYN is sent.",
    proves=["errno:ENETUNREACH", "call:connect"],
)
def connect_without_route_fails_enetunreach(lab):
    _connect_fails_at_once(lab, "10.9.9.9", "ENETUNREACH")


@scenario(
    claim="With a route of type unreachable for 10.1.0.0/16, connect() to 10.1.2.3 fails at once "
          "with EHOSTUNREACH and no SYN is sent.",
    proves=["errno:EHOSTUNREACH", "call:connect"],
)
def unreachable_route_fails_ehostunreach(lab):
    _ip_route(lab, "add", "unreachable", "10.1.0.0/16")
    _connect_fails_at_once(lab, "10.1.2.3", "EHOSTUNREACH")


@scenario(
    claim="With a route of type prohibit for 10.2.0.0/16, connect() to 10.2.2.3 fails at once "
          "with EACCES and no SYN is sent.",
    proves=["errno:EACCES", "call:connect"],
)
def prohibit_route_fails_eacces(lab):
    _ip_route(lab, "add", "prohibit", "10.2.0.0/16")
    _connect_fails_at_once(lab, "10.2.2.3", "EACCES")


@scenario(
    claim="With a route of type blackhole for 10.3.0.0/16, connect() to 10.3.2.3 fails at once "
          "with EINVAL and no SYN is sent.",
    proves=["errno:EINVAL", "call:connect"],
)
def blackhole_route_fails_einval(lab):
    _ip_route(lab, "add", "blackhole", "10.3.0.0/16")
    _connect_fails_at_once(lab, "10.3.2.3", "EINVAL")


def _connect_answered_by_icmp(lab, code: int, errno_name: str) -> None:
    """A blocking connect() whose SYN the peer answers with ICMP destination unreachable."""
    peer = lab.tun_peer()
    client = lab.socket("client")
    client.bind((peer.kernel_address, 0)).value  # keeps its name on the wire after the failure
    client.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, 1, label="TCP_SYNCNT").value
    failures = []

    def router():  # runs while connect() blocks; only the peer's notes are recorded here
        try:
            conn = peer.accept(80, answer=False)
            peer.unreachable(conn.syn, code)
        except (ScenarioFailed, OSError) as e:
            failures.append(e)

    def connect():
        helper = threading.Thread(target=router, daemon=True)
        helper.start()
        try:
            client.sock.connect((peer.address, 80))  # TCP_SYNCNT=1 bounds it to about 3 s
        finally:
            helper.join(3.0)

    r, span = lab.timed_call(client, f"connect({peer.address}:80)", connect)
    if failures:
        lab.fail(f"the peer failed: {failures[0]}")
    lab.expect_errno(r, errno_name)
    icmp = [p for p in lab.packets() if p.get("proto") == "icmp" and p.get("dir") == "from-peer"]
    lab.expect(len(icmp) == 1, f"the peer's ICMP was captured ({len(icmp)})")
    lab.expect_woken_by(span, lab.stamp(icmp[0]), "the ICMP unreachable arrived")
    syns = [p for p in _tcp(lab) if p["flags"] == "S"]
    lab.expect(len(syns) == 1, f"the SYN was not retried (SYNs sent: {len(syns)})")
    lab.expect_state(client, "CLOSE")


@scenario(
    claim="An ICMP host unreachable (type 3, code 1) answering the SYN makes a blocking connect() "
          "fail with EHOSTUNREACH within milliseconds, without retrying the SYN.",
    proves=["errno:EHOSTUNREACH", "call:connect"],
    needs=("netns", "tun"),
)
def icmp_host_unreachable_fails_connect(lab):
    _connect_answered_by_icmp(lab, 1, "EHOSTUNREACH")


@scenario(
    claim="An ICMP net unreachable (type 3, code 0) answering the SYN makes a blocking connect() "
          "fail with ENETUNREACH within milliseconds.",
    proves=["errno:ENETUNREACH", "call:connect"],
    needs=("netns", "tun"),
)
def icmp_net_unreachable_fails_connect(lab):
    _connect_answered_by_icmp(lab, 0, "ENETUNREACH")


@scenario(
    claim="An ICMP port unreachable (type 3, code 3) answering a TCP SYN makes connect() fail with "
          "ECONNREFUSED within milliseconds, as a RST would.",
    proves=["errno:ECONNREFUSED", "call:connect"],
    needs=("netns", "tun"),
)
def icmp_port_unreachable_fails_connect(lab):
    _connect_answered_by_icmp(lab, 3, "ECONNREFUSED")


@scenario(
    claim="An ICMP communication administratively prohibited (type 3, code 13), as a filtering "
          "router sends, makes connect() fail with EHOSTUNREACH within milliseconds.",
    proves=["errno:EHOSTUNREACH", "call:connect"],
    needs=("netns", "tun"),
)
def icmp_admin_prohibited_fails_connect(lab):
    _connect_answered_by_icmp(lab, 13, "EHOSTUNREACH")


@scenario(
    claim="An ICMP destination host unknown (type 3, code 7) answering the SYN makes a blocking "
          "connect() fail with EHOSTDOWN within milliseconds, without retrying the SYN: "
          "icmp_err_convert[] maps code 7 to EHOSTDOWN and tcp_v4_err() ends a SYN_SENT "
          "connection on any destination-unreachable code.",
    proves=["errno:EHOSTDOWN", "call:connect"],
    needs=("netns", "tun"),
)
def icmp_host_unknown_fails_connect_ehostdown(lab):
    _connect_answered_by_icmp(lab, 7, "EHOSTDOWN")


def _established_sending(lab, peer, recverr: bool):
    """A connection to the TUN peer with 6 unacknowledged bytes; returns (client, data segment)."""
    client, conn = peer.connected()
    if recverr:
        client.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1, label="IP_RECVERR").value
    client.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 500, label="TCP_USER_TIMEOUT").value
    client.send(b"hello?").value
    return client, conn.expect(contains="P", timeout=1.0)


@scenario(
    claim="On an established connection an ICMP host unreachable is only a soft error: the "
          "connection stays ESTABLISHED and keeps retransmitting, and when TCP_USER_TIMEOUT "
          "(500 ms) expires, 500 ms after the first retransmission, recv() fails with EHOSTUNREACH "
          "instead of ETIMEDOUT.",
    proves=["errno:EHOSTUNREACH", "state:ESTABLISHED"],
    needs=("netns", "tun"),
    timeout=4.0,
)
def icmp_unreachable_on_established_reported_at_timeout(lab):
    peer = lab.tun_peer()
    client, data = _established_sending(lab, peer, recverr=False)
    peer.unreachable(data, 1)
    lab.sleep(0.05)
    lab.expect_errno(client.recv(), "EAGAIN")
    lab.expect_state(client, "ESTABLISHED")
    died = lab.wait_readable(client, 2.0, "the connection to be dropped")
    expect_user_timeout(lab, died, 0.5)  # the soft error changes the errno, not the timer
    lab.expect_errno(client.recv(), "EHOSTUNREACH")
    lab.expect_state(client, "CLOSE")


@scenario(
    claim="With IP_RECVERR set, an ICMP host unreachable on an established connection is reported "
          "at once: the next recv() fails with EHOSTUNREACH while the connection stays "
          "ESTABLISHED.",
    proves=["errno:EHOSTUNREACH", "state:ESTABLISHED"],
    needs=("netns", "tun"),
)
def ip_recverr_reports_icmp_unreachable_at_once(lab):
    _recverr_reports_at_once(lab, 1, "EHOSTUNREACH")


@scenario(
    claim="With IP_RECVERR set, an ICMP destination host unknown (type 3, code 7) on an "
          "established connection is reported at once: the next recv() fails with EHOSTDOWN while "
          "the connection stays ESTABLISHED.",
    proves=["errno:EHOSTDOWN", "call:recv", "state:ESTABLISHED"],
    needs=("netns", "tun"),
)
def ip_recverr_reports_icmp_host_unknown_ehostdown(lab):
    _recverr_reports_at_once(lab, 7, "EHOSTDOWN")


def _recverr_reports_at_once(lab, code: int, errno_name: str) -> None:
    peer = lab.tun_peer()
    client, data = _established_sending(lab, peer, recverr=True)
    peer.unreachable(data, code)
    lab.wait_for(lambda: client.readable(0), 0.5, "the error to be reported")
    lab.expect_errno(client.recv(), errno_name)
    lab.expect_state(client, "ESTABLISHED")
    lab.expect_errno(client.recv(), "EAGAIN")
