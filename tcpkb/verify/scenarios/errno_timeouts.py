"""ETIMEDOUT: the three timers that give up on a peer that stopped answering."""

from __future__ import annotations

import socket

from .. import scenario
from ...machine.netns import read_sysctl
from ..timing import chain_bounds, timer_bounds

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
    r, span = lab.timed_call(client, f"connect({peer.address}:80)",  # blocking: TCP_SYNCNT bounds it
                             lambda: client.sock.connect((peer.address, 80)))
    lab.expect_errno(r, "ETIMEDOUT")
    syns = _to_peer(lab, "S")
    lab.note(f"SYNs sent at {[round(p['t_ms'] / 1000, 3) for p in syns]} s")
    if linear == "0":  # classic backoff: the first SYN and one retry 1 s later
        lab.expect(len(syns) == 2, f"two SYNs on the wire (got {len(syns)})")
    else:
        lab.expect(len(syns) == 3, f"three SYNs on the wire: the first and two retries (got {len(syns)})")
    expect_syn_schedule(lab, syns, [1.0] * (len(syns) - 1))
    # connect() sleeps from its first SYN until the retransmission timer that finds the
    # deadline of one exponential retry (tcp_model_timeout(): 1 + 2 s) passed: the third 1 s
    # linear timer, or under classic backoff the 2 s one after the 1 s one
    timers = [1.0, 2.0] if linear == "0" else [1.0, 1.0, 1.0]
    lab.expect_window(span.slept, *chain_bounds(timers), "connect() slept until it gave up", "blocked")


def expect_keepalive_schedule(lab, kernel_port: int, probes: int) -> None:
    """With keepalive time, interval and count set to 1 s, 1 s and `probes`: the first probe
    leaves 1 s after the last segment the peer sent (tcp_keepalive_timer() measures idleness from
    the last receive, in jiffies), each next one 1 s after the one before, and the RST 1 s after
    the last: each a timer (timing.timer_bounds), read from the capture's stamps. Returns nothing;
    fails on the first gap out of bounds."""
    mine = [p for p in lab.packets() if p.get("proto") == "tcp" and p["sport"] == kernel_port
            and p.get("dir") == "to-peer"]
    heard = [p for p in lab.packets() if p.get("proto") == "tcp" and p["dport"] == kernel_port
             and p.get("dir") == "from-peer"]
    rst = [p for p in mine if "R" in p["flags"]]
    lab.expect(len(rst) == 1, f"one RST on the wire ({len(rst)})")
    behind = (rst[0]["seq"] - 1) & 0xFFFFFFFF  # a probe's seq is snd_nxt - 1; the RST's is snd_nxt
    sent = [p for p in mine if p["len"] == 0 and p["flags"] == "." and p["seq"] == behind]
    lab.expect(len(sent) == probes, f"{probes} probe(s) before it ({len(sent)})")
    chain = [heard[-1], *sent, rst[0]]
    names = ["the peer's last segment"] + [f"probe {i}" for i in range(1, probes + 1)] + ["the RST"]
    for (a, b), (name_a, name_b) in zip(zip(chain, chain[1:]), zip(names, names[1:])):
        lab.expect_window(lab.stamp(b) - lab.stamp(a), *timer_bounds(1.0), f"{name_b} after {name_a}", "capture")


def expect_syn_schedule(lab, syns: list[dict], gaps: list[float]) -> None:
    """Each retransmitted SYN left one retransmission timer (`gaps`: 1 s for TCP_TIMEOUT_INIT
    and the linear retries, doubling under exponential backoff) after the one before it, as
    stamped by the capture: each gap is one timer (timing.timer_bounds)."""
    for i, (before, after, gap) in enumerate(zip(syns, syns[1:], gaps), start=1):
        lab.expect_window(lab.stamp(after) - lab.stamp(before), *timer_bounds(gap),
                          f"SYN {i + 1} after SYN {i}", "capture")


@scenario(
    claim="With TCP_USER_TIMEOUT=500 ms, data the peer never acknowledges makes the kernel drop "
          "the connection 500 ms after the first retransmission (about 0.7 s after the send), "
          "without sending RST; the next recv() fails with ETIMEDOUT.",
    proves=["errno:ETIMEDOUT", "state:CLOSE", "sockopt:TCP_USER_TIMEOUT"],
    needs=("netns", "tun"),
    timeout=4.0,
)
def user_timeout_with_unacked_data(lab):
    client, _ = lab.tun_peer().connected()
    lab.note("from now on the peer answers nothing, like a host that lost power")
    client.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 500, label="TCP_USER_TIMEOUT").value
    client.send(b"are you there?").value
    died = lab.wait_readable(client, 2.0, "the connection to be dropped")
    data = expect_user_timeout(lab, died, 0.5)
    lab.expect_errno(client.recv(), "ETIMEDOUT")
    lab.expect_state(client, "CLOSE")
    lab.expect(not any("R" in p["flags"] for p in lab.packets() if p.get("proto") == "tcp"),
               "no RST is sent when the retransmission timer gives up")


def expect_user_timeout(lab, died, user_timeout: float) -> list[dict]:
    """The connection died `user_timeout` after its data's first retransmission; returns the
    copies of the data sent. The user timeout counts from the first retransmission
    (tp->retrans_stamp) and tcp_clamp_rto_to_user_timeout() shortens the last retransmission
    timer so that it fires then: one timer's rounding (timing.timer_bounds). The start is a kernel
    packet stamp; the end is known from the select() that waited on the socket (`died`): no
    earlier than its return, against the low bound, and no later than its wake-up (start plus
    the sleep schedstat accounts), against the high one."""
    data = [p for p in lab.packets() if p.get("dir") == "to-peer" and p.get("len")]
    lab.note("data sent at " + ", ".join(f"{p['t_ms'] / 1000:.3f}" for p in data) + " s")
    lab.expect(len(data) >= 2, f"the data was retransmitted before giving up ({len(data)} copies)")
    first = lab.stamp(data[1])
    lab.expect_window((died.end - first, died.woke - first), *timer_bounds(user_timeout),
                      "from the first retransmission to the connection's end", "blocked")
    return data


@scenario(
    claim="With SO_KEEPALIVE and TCP_KEEPIDLE=1, TCP_KEEPINTVL=1, TCP_KEEPCNT=1 on an idle "
          "connection, the kernel sends a zero-length probe with seq = snd_nxt - 1 1 s after the "
          "peer's last segment, and when it goes unanswered resets the connection 1 s later: "
          "recv() fails with ETIMEDOUT.",
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
    probe = conn.expect(".", timeout=2.0)
    lab.note(f"keepalive probe: seq {probe['seq']}, len {probe['len']}, snd_nxt {snd_nxt}")
    lab.expect(probe["len"] == 0 and probe["seq"] == (snd_nxt - 1) & 0xFFFFFFFF,
               "the probe is empty and one byte behind snd_nxt")
    lab.wait_readable(client, 2.0, "the keepalive timer to give up")
    lab.expect_errno(client.recv(), "ETIMEDOUT")
    rst = conn.expect(contains="R", timeout=0.5)
    lab.note(f"the kernel resets the peer: {rst['flags']} seq {rst['seq']}")
    lab.expect_state(client, "CLOSE")
    expect_keepalive_schedule(lab, conn.kernel_port, probes=1)

