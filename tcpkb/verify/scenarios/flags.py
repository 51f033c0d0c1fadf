"""Each TCP flag on the wire: which segment carries it and what makes the kernel set it."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import struct

from .. import scenario
from ...machine.netns import read_sysctl, set_sysctl
from ..packets import checksum, ipv4_tcp
from ..peer import Conn

TCP_NODELAY = socket.TCP_NODELAY


@scenario(
    claim="connect() sends a segment with only SYN set, the listener answers with SYN and ACK, "
          "and the client's third segment carries ACK alone.",
    proves=["flag:SYN", "flag:ACK", "state:ESTABLISHED"],
)
def handshake_is_syn_then_syn_ack_then_ack(lab):
    _, client, server = lab.connected_pair()
    lab.expect_packets("client S", "server S.", "client .")
    lab.expect_state(client, "ESTABLISHED")
    lab.expect_state(server, "ESTABLISHED")


@scenario(
    claim="Each send() of a few bytes leaves as one segment with PSH and ACK set (P.).",
    proves=["flag:PSH"],
)
def send_sets_psh_on_the_data_segment(lab):
    _, client, server = lab.connected_pair()
    client.setsockopt(socket.IPPROTO_TCP, TCP_NODELAY, 1, label="TCP_NODELAY")
    client.send(b"one").value
    lab.wait_for(lambda: server.readable(0), 1.0, "the first write to arrive")
    client.send(b"two").value
    matched = lab.expect_packets("client P.", "client P.")
    lab.expect(all(p["len"] == 3 for p in matched), "each P. segment carries one 3-byte write")


@scenario(
    claim="shutdown(SHUT_WR) sends a segment with FIN and ACK; the peer acknowledges it and the "
          "closer moves to FIN_WAIT2.",
    proves=["flag:FIN", "state:FIN_WAIT2", "call:shutdown"],
)
def shutdown_write_sends_fin(lab):
    _, client, server = lab.connected_pair()
    client.shutdown(socket.SHUT_WR).value
    lab.expect_packets("client F.", "server .")
    lab.wait_state(client, "FIN_WAIT2", 1.0)
    lab.expect(server.recv().value == b"", "the peer reads end of file")


@scenario(
    claim="A SYN to a port where a socket is bound but not listening is answered with RST and "
          "ACK (R.), acknowledging the SYN, and connect() fails with ECONNREFUSED.",
    proves=["flag:RST", "flag:ACK", "errno:ECONNREFUSED"],
)
def syn_to_closed_port_gets_rst_ack(lab):
    bound = lab.socket("bound")
    bound.bind(("127.0.0.1", 0)).value
    client = lab.socket("client")
    client.bind(("127.0.0.1", 0)).value  # keeps its name on the wire after the failed connect
    r = client.connect(bound.local)
    lab.expect_errno(r, "ECONNREFUSED")
    syn, rst = lab.expect_packets("client S", "bound R.")
    lab.expect(rst["ack"] == (syn["seq"] + 1) & 0xFFFFFFFF, "the RST acknowledges the SYN (ack = ISN + 1)")
    lab.expect(rst["seq"] == 0, f"the RST's own sequence number is 0 (got {rst['seq']})")


@scenario(
    claim="close() with SO_LINGER {1, 0} on an established socket aborts it with a segment that "
          "has both RST and ACK set (R.), not a bare RST; the peer's recv() fails with ECONNRESET.",
    proves=["flag:RST", "errno:ECONNRESET", "sockopt:SO_LINGER", "call:close"],
)
def linger_zero_abort_sends_rst_with_ack(lab):
    _, client, server = lab.connected_pair()
    client.linger(1, 0).value
    client.close().value
    lab.expect_packets("client R.")
    lab.expect(not any(p.get("flags") == "R" for p in lab.packets()), "no bare RST (without ACK) was sent")
    lab.expect_errno(server.recv(), "ECONNRESET")


@scenario(
    claim="A segment with ACK set arriving for a port that has no socket is answered with a bare "
          "RST (R, no ACK) whose sequence number is the acknowledgment number of that segment.",
    proves=["flag:RST"],
    needs=("netns", "tun"),
)
def stray_ack_gets_bare_rst(lab):
    peer = lab.tun_peer()
    conn = Conn(peer, port=40000, kernel_port=9, seq=1000, ack=123456789)
    conn.send(".")
    rst = conn.expect(timeout=1.0)
    lab.expect(rst["flags"] == "R", f"the kernel answers with a bare RST (got {rst['flags']})")
    lab.expect(rst["seq"] == 123456789, f"the RST's seq is the ACK's ack number (got {rst['seq']})")


def _oob_arrived(sock) -> bool:
    return bool(select.select([], [], [sock.sock], 0)[2])


@scenario(
    claim="send() with MSG_OOB sends a segment with URG set; the receiver gets the last byte of "
          "that write with recv(MSG_OOB) and the rest in the normal stream.",
    proves=["flag:URG", "sockopt:MSG_OOB", "call:send", "call:recv"],
)
def msg_oob_sets_urg(lab):
    _, client, server = lab.connected_pair()
    client.send(b"ab!", socket.MSG_OOB).value
    lab.expect_packets("client *U")
    lab.wait_for(lambda: _oob_arrived(server), 1.0, "select() to report an exceptional condition")
    lab.expect(server.recv(1, socket.MSG_OOB).value == b"!", "recv(MSG_OOB) returns the urgent byte")
    lab.expect(server.recv(16).value == b"ab", "the normal stream holds the bytes before it")


@scenario(
    claim="When urgent data arrives, the kernel sends SIGURG to the process set as the socket's "
          "owner with fcntl(F_SETOWN).",
    proves=["signal:SIGURG", "flag:URG", "sockopt:MSG_OOB"],
)
def urgent_data_sends_sigurg_to_owner(lab):
    _, client, server = lab.connected_pair()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGURG})
    pid = os.getpid()
    lab.call(server, "fcntl(F_SETOWN, getpid())", lambda: fcntl.fcntl(server.fileno(), fcntl.F_SETOWN, pid))
    client.send(b"!", socket.MSG_OOB).value

    def wait():
        info = signal.sigtimedwait({signal.SIGURG}, 1.0)
        return None if info is None else signal.Signals(info.si_signo).name
    got = lab.call(server, "sigtimedwait({SIGURG}, 1 s)", wait).value
    lab.expect(got == "SIGURG", f"SIGURG is delivered to the owner (got {got})")
    lab.expect_packets("client *U")


@scenario(
    claim="With net.ipv4.tcp_ecn=1, connect() sends a SYN with ECE and CWR (SEW); a SYN-ACK with "
          "ECE (S.E) from the peer completes the handshake with ECN on.",
    proves=["flag:ECE", "flag:CWR", "flag:SYN", "sysctl:net.ipv4.tcp_ecn"],
    needs=("netns", "tun"),
)
def ecn_setup_syn_carries_ece_and_cwr(lab):
    peer = lab.tun_peer()
    lab.sysctl("net.ipv4.tcp_ecn", 1)
    client, conn = peer.connecting()
    lab.expect(conn.syn["flags"] == "SEW", f"the SYN carries ECE and CWR (got {conn.syn['flags']})")
    conn.send("S.E")
    ack = conn.expect(timeout=1.0)
    lab.expect(ack["flags"] == ".", f"the kernel completes the handshake with a plain ACK (got {ack['flags']})")
    lab.wait_state(client, "ESTABLISHED", 1.0)


@scenario(
    claim="On an ECN connection, data marked CE in the IP header makes the kernel set ECE on its "
          "ACK and keep it on its own ECT(0) data; after the peer answers with an ACK carrying ECE, "
          "the kernel's next new data segment carries CWR as well (PEW.).",
    proves=["flag:ECE", "flag:CWR", "sysctl:net.ipv4.tcp_ecn"],
    needs=("netns", "tun"),
)
def congestion_mark_echoed_with_ece_answered_with_cwr(lab):
    peer = lab.tun_peer()
    lab.sysctl("net.ipv4.tcp_ecn", 1)
    client, conn = peer.connected(synack="S.E")
    client.setsockopt(socket.IPPROTO_TCP, TCP_NODELAY, 1, label="TCP_NODELAY")

    conn.send("P.", data=b"marked", ecn=3)  # CE: congestion experienced
    ack = conn.expect(contains=".", timeout=1.0)
    lab.expect("E" in ack["flags"], f"the kernel's ACK of CE-marked data carries ECE (got {ack['flags']})")

    client.send(b"first").value
    data = conn.expect(contains="P", timeout=1.0)
    lab.note(f"kernel data segment: {data['flags']}, IP ECN field {data['ecn']}")
    lab.expect("E" in data["flags"] and "W" not in data["flags"] and data["ecn"] == "ECT(0)",
               f"its data keeps echoing ECE, is sent ECT(0), no CWR yet ({data['flags']}, {data['ecn']})")
    conn.send(".E")  # the peer echoes congestion back to the kernel
    client.send(b"second").value
    data = conn.expect(contains="P", timeout=1.0)
    lab.expect("W" in data["flags"], f"the next new data segment carries CWR (got {data['flags']})")



def _accecn_syn(peer, sport: int, dport: int, isn: int) -> bytes:
    """A SYN with AE, CWR and ECE: the Accurate ECN request (the codec has no letter for AE)."""
    packet = ipv4_tcp(peer.address, peer.kernel_address, sport, dport, isn, 0, "SEW")
    ip, tcp = packet[:20], bytearray(packet[20:])
    tcp[12] |= 0x01  # AE is the low bit of the byte that holds the data offset
    tcp[16:18] = b"\0\0"
    pseudo = ip[12:20] + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp[16:18] = struct.pack("!H", checksum(pseudo + bytes(tcp)))
    return ip + bytes(tcp)


def _tcp_flag_bits(raw: bytes) -> int:
    """All twelve flag bits of a captured IPv4 TCP segment, AE (0x100) included."""
    tcp = (raw[0] & 0x0F) * 4
    return ((raw[tcp + 12] & 0x0F) << 8) | raw[tcp + 13]


@scenario(
    claim="Kernel 6.18 does not negotiate Accurate ECN: it rejects net.ipv4.tcp_ecn=3 with EINVAL, "
          "and its listener answers a SYN with AE, CWR and ECE by a classic ECN SYN-ACK (ECE set, "
          "AE and CWR clear).",
    proves=["flag:AE", "flag:ECE", "sysctl:net.ipv4.tcp_ecn"],
    needs=("netns", "tun"),
)
def accecn_syn_gets_classic_ecn_syn_ack(lab):
    peer = lab.tun_peer()
    r = lab.call(None, "sysctl net.ipv4.tcp_ecn=3 (AccECN)", lambda: set_sysctl("net.ipv4.tcp_ecn", 3))
    lab.expect_errno(r, "EINVAL")
    lab.note(f"net.ipv4.tcp_ecn stays {read_sysctl('net.ipv4.tcp_ecn')}")
    listener = lab.listener("listener", ("10.0.0.1", 0))
    port = listener.local[1]
    peer.send_raw(_accecn_syn(peer, 40000, port, 5000))
    lab.note("peer sends SYN with AE, CWR and ECE (flag bits 0x1c2)")
    conn = Conn(peer, 40000, port, 5001, 0)
    synack = conn.expect(timeout=1.0)
    bits = _tcp_flag_bits(synack["raw"])
    lab.note(f"kernel answers {synack['flags']}, flag bits 0x{bits:03x}")
    lab.expect(bits == 0x052, f"the SYN-ACK has SYN, ACK and ECE only: classic ECN, no AE (0x{bits:03x})")
