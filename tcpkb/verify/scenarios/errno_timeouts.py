"""ETIMEDOUT: the three timers that give up on a peer that stopped answering."""

from __future__ import annotations

import itertools
import socket
import time

from .. import scenario
from ...machine.netns import read_sysctl

TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 4, 5, 6
TCP_USER_TIMEOUT = 18


def _to_peer(lab, flags: str) -> list[dict]:
    return [p for p in lab.packets()
            if p.get("proto") == "tcp" and p.get("dir") == "to-peer" and p["flags"] == flags]


@scenario(
    claim="With TCP_SYNCNT=1 and no answer, a blocking connect() fails with ETIMEDOUT after about "
          "3 s, the deadline of one exponential retry (1 s + 2 s); since "
          "net.ipv4.tcp_syn_linear_timeouts=4 spaces the early retries 1 s apart, three SYNs go "
          "out in that time (at 0, 1 and 2 s), not two.",
    proves=["errno:ETIMEDOUT", "flag:SYN", "sockopt:TCP_SYNCNT",
            "sysctl:net.ipv4.tcp_syn_linear_timeouts", "call:connect"],
    needs=("netns", "tun", "sysctl:net.ipv4.tcp_syn_linear_timeouts"),
    timeout=6.0,
)
def syn_retries_exhausted_connect_times_out(lab):
    peer = lab.tun_peer()
    linear = read_sysctl("net.ipv4.tcp_syn_linear_timeouts")
    lab.note(f"net.ipv4.tcp_syn_linear_timeouts = {linear} (this namespace's default)")
    client = lab.socket("client", options={"TCP_SYNCNT": 1})
    began = time.monotonic()
    r = client.connect((peer.address, 80))  # blocking: TCP_SYNCNT bounds it
    waited = time.monotonic() - began
    lab.expect_errno(r, "ETIMEDOUT")
    lab.expect(2.6 < waited < 3.8, f"connect() gave up after about 3 s ({waited:.2f} s)")
    syns = _to_peer(lab, "S")
    times = [round(p["t_ms"] / 1000, 2) for p in syns]
    lab.note(f"SYNs sent at {times} s")
    if linear == "0":  # classic backoff: the first SYN and one retry 1 s later
        lab.expect(len(syns) == 2, f"two SYNs on the wire (got {len(syns)})")
    else:
        lab.expect(len(syns) == 3, f"three SYNs on the wire: the first and two retries (got {len(syns)})")
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    lab.expect(all(0.8 < g < 1.4 for g in gaps), f"the retries left about 1 s apart ({gaps})")


@scenario(
    claim="With TCP_USER_TIMEOUT=500 ms, data the peer never acknowledges makes the kernel drop "
          "the connection about 0.7 s after the send (the 500 ms run from the first retransmission, "
          "0.2 s after the send), without sending RST; the next recv() fails with ETIMEDOUT.",
    proves=["errno:ETIMEDOUT", "state:CLOSE", "sockopt:TCP_USER_TIMEOUT"],
    needs=("netns", "tun"),
    timeout=4.0,
)
def user_timeout_with_unacked_data(lab):
    client, _ = lab.tun_peer().connected()
    lab.note("from now on the peer answers nothing, like a host that lost power")
    client.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 500, label="TCP_USER_TIMEOUT").value
    client.send(b"are you there?").value
    began = time.monotonic()
    lab.wait_for(lambda: client.readable(0), 2.0, "the connection to be dropped")
    waited = time.monotonic() - began
    lab.expect(0.55 < waited < 1.1, f"the kernel gave up about 0.7 s after the send ({waited:.2f} s)")
    data = [p for p in lab.packets() if p.get("dir") == "to-peer" and p.get("len")]
    lab.note("data sent at " + ", ".join(f"{p['t_ms'] / 1000:.2f}" for p in data) + " s")
    lab.expect_errno(client.recv(), "ETIMEDOUT")
    lab.expect_state(client, "CLOSE")
    lab.expect(len(data) >= 2, f"the data was retransmitted before giving up ({len(data)} copies)")
    lab.expect(not any("R" in p["flags"] for p in lab.packets() if p.get("proto") == "tcp"),
               "no RST is sent when the retransmission timer gives up")


@scenario(
    claim="With SO_KEEPALIVE and TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=1 on an idle "
          "connection, the kernel sends a zero-length probe with seq = snd_nxt - 1 after 1 s, and "
          "when it goes unanswered resets the connection about 1 s later: recv() fails with "
          "ETIMEDOUT.",
    proves=["errno:ETIMEDOUT", "flag:ACK", "flag:RST", "sockopt:SO_KEEPALIVE", "sockopt:TCP_KEEPIDLE",
            "sockopt:TCP_KEEPINTVL", "sockopt:TCP_KEEPCNT"],
    needs=("netns", "tun"),
    timeout=5.0,
)
def keepalive_probes_unanswered(lab):
    client, conn = lab.tun_peer().connected()
    lab.note("from now on the peer answers nothing, like a host that lost power")
    snd_nxt = conn.ack  # the peer has everything the kernel sent: its ack is the kernel's snd_nxt
    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, label="SO_KEEPALIVE").value
    for option, name in ((TCP_KEEPIDLE, "TCP_KEEPIDLE"), (TCP_KEEPINTVL, "TCP_KEEPINTVL"),
                         (TCP_KEEPCNT, "TCP_KEEPCNT")):
        client.setsockopt(socket.IPPROTO_TCP, option, 1, label=name).value
    began = time.monotonic()
    probe = conn.expect(".", timeout=2.0)
    lab.note(f"keepalive probe after {time.monotonic() - began:.2f} s: seq {probe['seq']}, "
             f"len {probe['len']}, snd_nxt {snd_nxt}")
    lab.expect(probe["len"] == 0 and probe["seq"] == (snd_nxt - 1) & 0xFFFFFFFF,
               "the probe is empty and one byte behind snd_nxt")
    lab.wait_for(lambda: client.readable(0), 2.0, "the keepalive timer to give up")
    waited = time.monotonic() - began
    lab.expect(1.6 < waited < 2.8, f"the connection died about 2 s after going idle ({waited:.2f} s)")
    lab.expect_errno(client.recv(), "ETIMEDOUT")
    rst = conn.expect(contains="R", timeout=0.5)
    lab.note(f"the kernel resets the peer: {rst['flags']} seq {rst['seq']}")
    lab.expect_state(client, "CLOSE")

