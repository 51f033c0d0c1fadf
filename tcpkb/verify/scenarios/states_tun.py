"""TCP states against a scripted peer on a TUN device: the peer withholds ACKs and FINs.

The kernel's socket lives at 10.0.0.1; the peer at 10.0.0.2 is a script that
answers exactly what each scenario needs (or nothing: a dead host). Closed
sockets are followed in /proc/net/tcp, as the lab does.
"""

from __future__ import annotations

import socket

from .. import scenario
from ..lab import proc_state

PORT = 8080


def _fin_sent(lab):
    """(client, conn, fin): an established client that shut down writing; the peer has read its FIN."""
    cli, conn = lab.tun_peer().connected(port=PORT)
    cli.shutdown(socket.SHUT_WR).value
    return cli, conn, conn.expect(contains="F", timeout=1.0)


def _peer_fin_acked(lab):
    """(client, conn): the peer sent its FIN and the kernel, having acknowledged it, is in CLOSE_WAIT."""
    cli, conn = lab.tun_peer().connected(port=PORT)
    conn.send("F.")
    conn.expect(".", timeout=1.0)
    lab.wait_state(cli, "CLOSE_WAIT", 1.0)
    return cli, conn


@scenario(
    claim="A connect() to a host that never answers leaves the socket in SYN_SENT after its SYN leaves.",
    proves=["state:SYN_SENT"],
    needs=("netns", "tun"),
)
def syn_to_silent_peer_stays_syn_sent(lab):
    peer = lab.tun_peer()
    cli = lab.socket("client", options={"TCP_SYNCNT": 1})
    cli.set_blocking(False)
    cli.connect((peer.address, PORT))
    peer.accept(PORT, answer=False)
    lab.note("the peer does not answer the SYN")
    lab.expect_state(cli, "SYN_SENT")
    lab.expect_state_held(cli, "SYN_SENT")


@scenario(
    claim="A peer that sends a SYN and never acknowledges the SYN-ACK leaves a half-open connection "
          "that /proc/net/tcp lists as SYN_RECV, while the listener stays in LISTEN.",
    proves=["state:SYN_RECV"],
    needs=("netns", "tun"),
)
def unacked_syn_ack_leaves_syn_recv(lab):
    peer = lab.tun_peer()
    lst = lab.listener(address=(peer.kernel_address, PORT))
    conn = peer.connect(PORT, complete=False)
    lab.note("the peer does not acknowledge the SYN-ACK")
    half = ((peer.kernel_address, PORT), (peer.address, conn.port))
    lab.wait_for(lambda: proc_state(*half) == "SYN_RECV", 1.0, "/proc/net/tcp to list the half-open connection")
    lab.expect_held(lambda: proc_state(*half) == "SYN_RECV", 0.1, "the half-open connection in SYN_RECV")
    lab.expect_state(lst, "LISTEN")


@scenario(
    claim="After shutdown(SHUT_WR) the socket sends its FIN and stays in FIN_WAIT1 while the peer does "
          "not acknowledge it.",
    proves=["state:FIN_WAIT1"],
    needs=("netns", "tun"),
)
def unacked_fin_holds_fin_wait1(lab):
    cli, _, _ = _fin_sent(lab)
    lab.note("the peer does not acknowledge the FIN")
    lab.expect_state(cli, "FIN_WAIT1")
    lab.expect_state_held(cli, "FIN_WAIT1")


@scenario(
    claim="When the peer acknowledges the FIN but sends none of its own, the socket moves from FIN_WAIT1 "
          "to FIN_WAIT2 and stays there.",
    proves=["state:FIN_WAIT2"],
    needs=("netns", "tun"),
)
def peer_acks_fin_but_sends_none_fin_wait2(lab):
    cli, conn, _ = _fin_sent(lab)
    conn.send(".")
    lab.wait_state(cli, "FIN_WAIT2", 1.0)
    lab.expect_state_held(cli, "FIN_WAIT2")


@scenario(
    claim="A closed socket whose FIN the peer acknowledged enters TIME_WAIT when the peer's FIN arrives, "
          "and acknowledges that FIN.",
    proves=["state:TIME_WAIT"],
    needs=("netns", "tun"),
)
def peer_fin_after_ack_enters_time_wait(lab):
    cli, conn = lab.tun_peer().connected(port=PORT)
    cli.close().value
    conn.expect(contains="F", timeout=1.0)
    conn.send(".")
    lab.wait_state(cli, "FIN_WAIT2", 1.0)
    conn.send("F.")
    conn.expect(".", timeout=1.0)
    lab.wait_state(cli, "TIME_WAIT", 1.0)
    # TIME_WAIT's timer is TCP_TIMEWAIT_LEN (60*HZ) from the peer's FIN
    lab.expect_timer(cli, 3, lab.fin_to(cli), 60.0, "the TIME_WAIT timer, from the peer's FIN")


@scenario(
    claim="When the peer's FIN arrives without acknowledging the socket's own FIN (simultaneous close), "
          "the socket goes from FIN_WAIT1 to CLOSING, acknowledges the peer's FIN, and stays in CLOSING "
          "while its FIN is unacknowledged.",
    proves=["state:CLOSING"],
    needs=("netns", "tun"),
)
def simultaneous_close_enters_closing(lab):
    cli, conn, fin = _fin_sent(lab)
    lab.expect_state(cli, "FIN_WAIT1")
    lab.note("the peer sends its own FIN, acknowledging everything before the kernel's FIN but not the FIN")
    conn.send("F.", ack=fin["seq"])
    conn.expect(".", timeout=1.0)
    lab.wait_state(cli, "CLOSING", 1.0)
    lab.expect_state_held(cli, "CLOSING")


@scenario(
    claim="After the peer's FIN the socket is in CLOSE_WAIT; close() then sends the kernel's FIN and "
          "the orphaned connection waits in LAST_ACK while the peer does not acknowledge it.",
    proves=["state:LAST_ACK"],
    needs=("netns", "tun"),
)
def unacked_fin_after_peer_fin_holds_last_ack(lab):
    cli, conn = _peer_fin_acked(lab)
    cli.close().value
    conn.expect(contains="F", timeout=1.0)
    lab.note("the peer does not acknowledge the FIN")
    lab.expect_state(cli, "LAST_ACK")
    lab.expect_state_held(cli, "LAST_ACK")


@scenario(
    claim="A FIN from the peer moves the socket to CLOSE_WAIT: the kernel acknowledges it, recv() "
          "returns end of stream, and no FIN is sent until the application closes.",
    proves=["state:CLOSE_WAIT"],
    needs=("netns", "tun"),
)
def peer_fin_leaves_kernel_in_close_wait(lab):
    cli, _ = _peer_fin_acked(lab)
    r = cli.recv(100)
    lab.expect(r.ok and r.value == b"", f"recv() returns end of stream (got {r})")
    lab.expect_state_held(cli, "CLOSE_WAIT")
    fins = [p for p in lab.packets() if p.get("from") == "client" and "F" in p["flags"]]
    lab.expect(not fins, "the kernel sent no FIN of its own")


@scenario(
    claim="A connecting socket in SYN_SENT that receives a bare SYN (simultaneous open) answers SYN-ACK "
          "and moves to SYN_RECV, which TCP_INFO reports on its descriptor while the peer withholds its ACK.",
    proves=["state:SYN_RECV"],
    needs=("netns", "tun"),
)
def simultaneous_open_puts_connecting_socket_in_syn_recv(lab):
    cli, conn = lab.tun_peer().connecting(port=PORT)
    lab.expect_state(cli, "SYN_SENT")
    lab.note("the peer answers with a SYN of its own, carrying no ACK")
    conn.send("S")
    conn.expect("S.", timeout=1.0)
    lab.wait_state(cli, "SYN_RECV", 1.0)
    lab.expect_state_held(cli, "SYN_RECV")


@scenario(
    claim="With TCP Fast Open and no cookie required, a SYN carrying data makes the listener create a "
          "full child socket at once: accept() returns it in SYN_RECV, as TCP_INFO shows, with the data "
          "readable before the handshake's final ACK.",
    proves=["state:SYN_RECV", "sysctl:net.ipv4.tcp_fastopen", "sockopt:TCP_FASTOPEN"],
    needs=("netns", "tun"),
)
def fast_open_child_is_accepted_in_syn_recv(lab):
    from ..peer import Conn
    lab.sysctl("net.ipv4.tcp_fastopen", 0x202)  # server enabled, no cookie required
    peer = lab.tun_peer()
    lst = lab.listener(address=(peer.kernel_address, PORT), backlog=4, options={"TCP_FASTOPEN": 4})
    conn = Conn(peer, 40000, PORT, 1000, 0)
    conn.send("S", data=b"hello")
    synack = conn.expect("S.", timeout=1.0)
    lab.expect(synack["ack"] == 1006, f"the SYN-ACK acknowledges the SYN and its 5 bytes (ack {synack['ack']})")
    lst.set_blocking(False)
    srv = lst.accept("server").value
    lab.expect_state(srv, "SYN_RECV")
    srv.set_blocking(False)
    r = srv.recv(100)
    lab.expect(r.ok and r.value == b"hello", f"the SYN's data is readable (got {r})")
    lab.expect_state_held(srv, "SYN_RECV")
