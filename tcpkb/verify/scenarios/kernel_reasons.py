"""What the kernel itself records when a connection fails: the reason it gives for a reset it
sends (tcp:tcp_send_reset), for a packet it drops (skb:kfree_skb), the errno it sets on a
socket (sock:inet_sk_error_report), and the counters that move. Each scenario checks the
errno and counters first and the reasons last: a kernel whose tracepoint cannot name a reason
(tcp_send_reset has none before 6.10) skips only what it cannot show."""

from __future__ import annotations

from .. import scenario


def _closed_port(lab) -> tuple:
    """An address in the lab's own port range where nothing listens: a socket bound there and
    then closed gives its port back."""
    probe = lab.socket("probe")
    probe.bind(("127.0.0.1", 0)).value
    address = probe.local
    probe.close().value
    return address


@scenario(
    claim="A SYN to a port where nothing listens is answered with an RST the kernel gives the "
          "reason NO_SOCKET, and the SYN is dropped with the drop reason NO_SOCKET; the client's "
          "connect() fails with ECONNREFUSED, set on the socket as error 111, and TcpOutRsts and "
          "TcpAttemptFails each count one.",
    proves=["rst:NO_SOCKET", "drop:NO_SOCKET", "errno:ECONNREFUSED", "counter:TcpOutRsts",
            "counter:TcpAttemptFails"],
)
def syn_to_a_closed_port_is_reset_for_no_socket(lab):
    address = _closed_port(lab)
    client = lab.socket("client")
    lab.expect_errno(client.connect(address), "ECONNREFUSED")
    lab.expect_counter("TcpOutRsts", at_least=1)
    lab.expect_counter("TcpAttemptFails", at_least=1)
    lab.expect_event("inet_sk_error_report", error=111, dport=address[1])
    # the reset's event names the SYN it answers: that is how the SYN's drop is known to be ours
    lab.expect_reason("tcp_send_reset", "NO_SOCKET", sport=address[1])
    lab.expect_reason("kfree_skb", "NO_SOCKET")


@scenario(
    claim="close() with unread bytes sends an RST the kernel gives the reason TCP_ABORT_ON_CLOSE, "
          "and counts TcpExtTCPAbortOnClose; the peer receives it (tcp:tcp_receive_reset), gets "
          "error 104 set on its socket, and its recv() fails with ECONNRESET; TcpEstabResets counts "
          "the established connection reset.",
    proves=["rst:TCP_ABORT_ON_CLOSE", "counter:TcpExtTCPAbortOnClose", "counter:TcpEstabResets",
            "errno:ECONNRESET"],
)
def close_with_unread_data_is_reset_for_abort_on_close(lab):
    _, client, server = lab.connected_pair()
    client.send(b"never read").value
    lab.wait_for(lambda: server.queued() == 10, 1.0, "10 bytes queued at the server")
    server.close().value
    lab.expect_errno(client.recv(), "ECONNRESET")
    lab.expect_counter("TcpExtTCPAbortOnClose", at_least=1)
    lab.expect_counter("TcpEstabResets", at_least=1)
    lab.expect_event("tcp_receive_reset", sport=client.local[1])
    lab.expect_event("inet_sk_error_report", error=104, sport=client.local[1])
    lab.expect_reason("tcp_send_reset", "TCP_ABORT_ON_CLOSE", sport=server.local[1])


@scenario(
    claim="close() with SO_LINGER set to {on, 0 seconds} on an established connection sends an RST "
          "the kernel gives the reason TCP_STATE and counts TcpExtTCPAbortOnData (the disconnect "
          "path), not TcpExtTCPAbortOnLinger; the peer's recv() fails with ECONNRESET.",
    proves=["rst:TCP_STATE", "counter:TcpExtTCPAbortOnData", "sockopt:SO_LINGER", "errno:ECONNRESET"],
)
def zero_linger_close_is_reset_for_tcp_state(lab):
    _, client, server = lab.connected_pair()
    server.linger(1, 0).value
    server.close().value
    lab.expect_errno(client.recv(), "ECONNRESET")
    lab.expect_counter("TcpExtTCPAbortOnData", at_least=1)
    lab.expect(lab.counter("TcpExtTCPAbortOnLinger") == 0, "TcpExtTCPAbortOnLinger did not move")
    lab.expect_reason("tcp_send_reset", "TCP_STATE", sport=server.local[1])


@scenario(
    claim="Data sent to a connection whose other end closed and became a TIME_WAIT socket (an "
          "orphan whose FIN was acknowledged, with the default tcp_fin_timeout) is answered with an "
          "RST the kernel gives the reason TCP_TIMEWAIT_SOCKET.",
    proves=["rst:TCP_TIMEWAIT_SOCKET", "state:TIME_WAIT", "state:FIN_WAIT2"],
)
def data_to_a_time_wait_socket_is_reset_for_timewait_socket(lab):
    from .corrections import _closed_server

    client, server = _closed_server(lab)
    lab.wait_for(lambda: (row := server.proc_row()) is not None and row["timer"] == 3, 1.0,
                 "the closed server end to become a time-wait entry (/proc/net/tcp timer 3)")
    client.send(b"too late").value
    lab.expect_reason("tcp_send_reset", "TCP_TIMEWAIT_SOCKET", sport=server.local[1])


@scenario(
    claim="With the accept queue full (listen backlog 1, two connections waiting unaccepted), the "
          "next client's SYN is discarded without an answer: TcpExtListenOverflows and "
          "TcpExtListenDrops each count it, no SYN-ACK is sent, and the client stays in SYN_SENT.",
    proves=["counter:TcpExtListenOverflows", "counter:TcpExtListenDrops", "state:SYN_SENT",
            "sysctl:net.core.somaxconn"],
)
def full_accept_queue_discards_the_syn_and_counts_overflows(lab):
    listener = lab.listener(backlog=1)
    for name in ("first", "second"):
        lab.socket(name).connect(listener.local).value
    third = lab.socket("third")
    third.set_blocking(False)
    lab.expect_errno(third.connect(listener.local), "EINPROGRESS")
    lab.wait_for(lambda: lab.counter("TcpExtListenOverflows") >= 1, 1.0, "the listen queue to overflow")
    lab.expect_counter("TcpExtListenDrops", at_least=1)
    lab.expect_state(third, "SYN_SENT")
    lab.expect(not [p for p in lab.packets() if p.get("to") == "third" and "S" in p["flags"]],
               "no SYN-ACK was sent to the third client")


@scenario(
    claim="One ordinary connection that exchanges data moves the basic counters: TcpActiveOpens on "
          "the connecting side and TcpPassiveOpens on the accepting side count one each, TcpCurrEstab "
          "counts both ends while they are established and neither once both are closed, TcpInSegs "
          "and TcpOutSegs count its segments, TcpExtTCPOrigDataSent the data segments, and IpInReceives, "
          "IpInDelivers, IpOutRequests and IpExtInOctets/IpExtOutOctets the packets and bytes.",
    proves=["counter:TcpActiveOpens", "counter:TcpPassiveOpens", "counter:TcpCurrEstab",
            "counter:TcpInSegs", "counter:TcpOutSegs", "counter:TcpExtTCPOrigDataSent",
            "counter:IpInReceives", "counter:IpInDelivers", "counter:IpOutRequests",
            "counter:IpExtInOctets", "counter:IpExtOutOctets", "state:ESTABLISHED"],
)
def an_ordinary_connection_moves_the_basic_counters(lab):
    _, client, server = lab.connected_pair()
    lab.expect_counter("TcpActiveOpens", at_least=1)
    lab.expect_counter("TcpPassiveOpens", at_least=1)
    lab.expect(lab.counter("TcpCurrEstab") == 2, f"TcpCurrEstab counts both ends ({lab.counter('TcpCurrEstab')})")
    client.send(b"x" * 1000).value
    lab.wait_for(lambda: server.queued() == 1000, 1.0, "1000 bytes at the server")
    lab.expect(server.recv().value == b"x" * 1000, "the server reads all 1000 bytes")
    lab.expect_counter("TcpExtTCPOrigDataSent", at_least=1)
    for name in ("TcpInSegs", "TcpOutSegs", "IpInReceives", "IpInDelivers", "IpOutRequests"):
        lab.expect_counter(name, at_least=4)  # three for the handshake, one with the data
    for name in ("IpExtInOctets", "IpExtOutOctets"):
        lab.expect_counter(name, at_least=1000)
    client.close().value
    server.close().value
    lab.wait_for(lambda: lab.counter("TcpCurrEstab") == 0, 1.0, "TcpCurrEstab to come back to 0")


@scenario(
    claim="A datagram to a UDP port where nothing listens is counted in UdpNoPorts and answered with "
          "an ICMP port unreachable (IcmpOutDestUnreachs and IcmpMsgOutType3 on the way out, "
          "IcmpInDestUnreachs and IcmpMsgInType3 on the way in); a connected UDP socket gets error 111 "
          "set and its next recv() fails with ECONNREFUSED.",
    proves=["counter:UdpNoPorts", "counter:UdpOutDatagrams", "counter:IcmpOutDestUnreachs",
            "counter:IcmpInDestUnreachs", "counter:IcmpMsgOutType", "counter:IcmpMsgInType",
            "counter:IcmpOutMsgs", "counter:IcmpInMsgs", "errno:ECONNREFUSED"],
)
def udp_to_a_closed_port_is_refused_by_icmp(lab):
    import socket

    probe = lab.socket("probe", type=socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0)).value
    address = probe.local
    probe.close().value
    sender = lab.socket("sender", type=socket.SOCK_DGRAM)
    sender.connect(address).value
    sender.send(b"anyone?").value
    lab.wait_for(lambda: lab.counter("IcmpInDestUnreachs") >= 1, 1.0, "the ICMP port unreachable")
    for name in ("UdpNoPorts", "UdpOutDatagrams", "IcmpOutDestUnreachs", "IcmpMsgOutType3",
                 "IcmpInDestUnreachs", "IcmpMsgInType3", "IcmpOutMsgs", "IcmpInMsgs"):
        lab.expect_counter(name, at_least=1)
    sender.set_blocking(False)
    lab.expect_errno(sender.recv(), "ECONNREFUSED")
    lab.expect_event("inet_sk_error_report", error=111, sport=sender.local[1])


@scenario(
    claim="Datagrams that arrive at a UDP socket whose receive buffer is full are dropped and counted "
          "in UdpRcvbufErrors and UdpInErrors, while the sender's sendto() succeeds for every one; "
          "UdpInDatagrams counts a datagram only when the application reads it.",
    proves=["counter:UdpRcvbufErrors", "counter:UdpInErrors", "counter:UdpInDatagrams",
            "sockopt:SO_RCVBUF"],
)
def udp_into_a_full_receive_buffer_is_dropped_and_counted(lab):
    import socket

    sink = lab.socket("sink", type=socket.SOCK_DGRAM, options={"SO_RCVBUF": 1024})
    sink.bind(("127.0.0.1", 0)).value
    sender = lab.socket("sender", type=socket.SOCK_DGRAM)
    for _ in range(20):
        sender.sendto(b"y" * 1000, sink.local).value
    lab.expect_counter("UdpRcvbufErrors", at_least=10)
    lab.expect_counter("UdpInErrors", at_least=10)
    lab.expect(lab.counter("UdpInDatagrams") == 0, "nothing read yet: UdpInDatagrams has not moved")
    sink.recv().value
    lab.expect_counter("UdpInDatagrams", at_least=1)


@scenario(
    claim="With tcp_fin_timeout above 60 s a closed socket stays a full socket in FIN_WAIT2; data "
          "the peer then sends is answered with an RST the kernel gives the reason TCP_ABORT_ON_DATA, "
          "the data is dropped with the drop reason TCP_ABORT_ON_DATA, and TcpExtTCPAbortOnData "
          "counts it.",
    proves=["rst:TCP_ABORT_ON_DATA", "drop:TCP_ABORT_ON_DATA", "counter:TcpExtTCPAbortOnData",
            "sysctl:net.ipv4.tcp_fin_timeout"],
)
def data_after_close_is_reset_and_dropped_for_abort_on_data(lab):
    import socket

    from .corrections import _closed_server

    lab.sysctl("net.ipv4.tcp_fin_timeout", 120)
    client, server = _closed_server(lab)
    lab.expect_ok(client.send(b"late", socket.MSG_NOSIGNAL))
    lab.expect_packets("client *P", "server R")
    lab.expect_counter("TcpExtTCPAbortOnData", at_least=1)
    lab.expect_reason("tcp_send_reset", "TCP_ABORT_ON_DATA", sport=server.local[1])
    lab.expect_reason("kfree_skb", "TCP_ABORT_ON_DATA")


@scenario(
    claim="A socket in FIN_WAIT2 with TCP_LINGER2 set to -1 that is then close()d is reset at once "
          "with an RST the kernel gives the reason TCP_ABORT_ON_LINGER, counted in "
          "TcpExtTCPAbortOnLinger.",
    proves=["rst:TCP_ABORT_ON_LINGER", "counter:TcpExtTCPAbortOnLinger", "sockopt:TCP_LINGER2",
            "state:FIN_WAIT2"],
)
def close_in_fin_wait2_with_negative_linger2_is_reset_for_abort_on_linger(lab):
    import socket

    _, half, _server = lab.connected_pair()
    half.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1, label="TCP_LINGER2").value
    half.shutdown(socket.SHUT_WR).value
    lab.wait_state(half, "FIN_WAIT2", 1.0)
    port = half.local[1]
    half.close().value
    lab.expect_counter("TcpExtTCPAbortOnLinger", at_least=1)
    lab.expect_reason("tcp_send_reset", "TCP_ABORT_ON_LINGER", sport=port)


@scenario(
    claim="When keepalive probes to a peer that stopped answering go unanswered, the kernel resets "
          "the connection with an RST it gives the reason TCP_KEEPALIVE_TIMEOUT, counts "
          "TcpExtTCPAbortOnTimeout, and the socket's next recv() fails with ETIMEDOUT (error 110 set "
          "on it).",
    proves=["rst:TCP_KEEPALIVE_TIMEOUT", "counter:TcpExtTCPAbortOnTimeout", "counter:TcpExtTCPKeepAlive",
            "errno:ETIMEDOUT", "sockopt:SO_KEEPALIVE"],
    needs=("netns", "tun"),
    timeout=6.0,
)
def silent_peer_is_reset_for_keepalive_timeout(lab):
    import socket

    client, _conn = lab.tun_peer().connected()
    lab.note("from now on the peer answers nothing")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, label="SO_KEEPALIVE").value
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"):
        client.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), 1, label=name).value
    lab.wait_readable(client, 4.0, "the keepalive timer to give up")
    lab.expect_errno(client.recv(), "ETIMEDOUT")
    lab.expect_counter("TcpExtTCPKeepAlive", at_least=1)
    lab.expect_counter("TcpExtTCPAbortOnTimeout", at_least=1)
    lab.expect_event("inet_sk_error_report", error=110, sport=client.local[1])
    lab.expect_reason("tcp_send_reset", "TCP_KEEPALIVE_TIMEOUT", sport=client.local[1])
