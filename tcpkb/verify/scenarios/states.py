"""TCP states on loopback: every state reached with kernel-only tricks, no scripted peer.

A full accept queue drops SYNs (SYN_SENT); TCP_DEFER_ACCEPT keeps a request
socket waiting for data (SYN_RECV, NEW_SYN_RECV); a zero receive window holds
a FIN behind unsent data (FIN_WAIT1, LAST_ACK, CLOSING). Sockets that no
descriptor reaches are read from /proc/net/tcp; bound-only sockets from an
inet_diag dump over NETLINK_SOCK_DIAG.
"""

from __future__ import annotations

import socket
import struct

from .. import scenario
from ..lab import proc_state

TCP_INFO = 11
SMALL = {"SO_RCVBUF": 4096, "SO_SNDBUF": 4096}  # asked for; the kernel doubles them and applies its minimum


# -- helpers private to this module ---------------------------------------------


def _stuck_client(lab):
    """client, server with small buffers on both ends (a few KiB fill a window); the client's
    data already waits behind the server's zero window."""
    lst = lab.listener(backlog=4, options=SMALL)
    cli, srv = lab.connect_to(lst, options=SMALL)
    lab.fill_to_zero_window(cli)
    return cli, srv


# -- inet_diag over NETLINK_SOCK_DIAG ----------------------------------------------

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3


def _diag_dump(states: int, family: int = socket.AF_INET) -> list[dict]:
    """An inet_diag dump of TCP sockets whose state bit is in `states`; bounded reads."""
    # struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed inet_diag_sockid (48 bytes)
    req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, states) + bytes(48)
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req
    out: list[dict] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(msg, (0, 0))
        for _ in range(64):  # bounded: a fresh namespace holds a handful of sockets
            data = nl.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", data, off + 16)[0]
                    raise OSError(err, "sock_diag dump refused")
                # struct inet_diag_msg: family, state, timer, retrans, sockid (sport, dport big-endian …)
                state = data[off + 17]
                sport, dport = struct.unpack_from("!HH", data, off + 20)
                out.append({"state": state, "sport": sport, "dport": dport})
                if length < 16:
                    break
                off += (length + 3) & ~3
        raise OSError(0, "sock_diag dump did not end")


def _diag(lab, states: int, label: str) -> list[dict]:
    return lab.call(None, f"sock_diag dump(AF_INET, IPPROTO_TCP, idiag_states={label})",
                    lambda: _diag_dump(states)).value


# -- the scenarios ---------------------------------------------------------------------


@scenario(
    claim="A bound socket is in CLOSE until listen() moves it to LISTEN, and /proc/net/tcp then lists it "
          "with state 0A and no remote address.",
    proves=["state:LISTEN", "call:listen"],
)
def listen_moves_bound_socket_to_listen(lab):
    s = lab.socket("listener")
    s.bind(("127.0.0.1", 0)).value
    lab.expect_state(s, "CLOSE")
    s.listen(8).value
    lab.expect_state(s, "LISTEN")
    row = s.proc_row()
    lab.expect(row is not None and row["state"] == "LISTEN",
               f"/proc/net/tcp lists {s.local[0]}:{s.local[1]} as LISTEN (got {row and row['state']})")


@scenario(
    claim="After the three-way handshake both the connecting socket and the accepted socket report "
          "ESTABLISHED, while the listener stays in LISTEN.",
    proves=["state:ESTABLISHED"],
)
def handshake_leaves_both_ends_established(lab):
    lst, cli, srv = lab.connected_pair()
    lab.expect_state(cli, "ESTABLISHED")
    lab.expect_state(srv, "ESTABLISHED")
    lab.expect_state(lst, "LISTEN")
    lab.expect_packets("client S", "server S.", "client *.")


@scenario(
    claim="A new TCP socket reports CLOSE (7) in TCP_INFO, and still does after bind(); /proc/net/tcp "
          "does not list it at all.",
    proves=["state:CLOSE"],
)
def fresh_and_bound_sockets_are_close(lab):
    fresh = lab.socket("fresh")
    lab.expect_state(fresh, "CLOSE")
    bound = lab.socket("bound")
    bound.bind(("127.0.0.1", 0)).value
    lab.expect_state(bound, "CLOSE")
    lab.expect(bound.proc_row() is None,
               "/proc/net/tcp has no row for the bound-only socket")


@scenario(
    claim="An established socket that receives a RST moves straight to CLOSE, which TCP_INFO reports "
          "on its still-open descriptor.",
    proves=["state:CLOSE", "sockopt:TCP_INFO"],
)
def rst_moves_established_socket_to_close(lab):
    _, cli, srv = lab.connected_pair()
    lab.expect_state(cli, "ESTABLISHED")
    srv.linger(1, 0).value
    srv.close().value
    lab.wait_state(cli, "CLOSE", 1.0)
    info = cli.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8, label="TCP_INFO").value
    lab.expect(info[0] == 7, f"TCP_INFO's tcpi_state byte is 7 (got {info[0]})")


@scenario(
    claim="With listen(0) and one connection waiting to be accepted, the listener drops the next SYN: "
          "a non-blocking connect() returns EINPROGRESS and the socket stays in SYN_SENT "
          "(TcpExtListenOverflows rises).",
    proves=["state:SYN_SENT", "call:listen", "counter:TcpExtListenOverflows"],
)
def full_accept_queue_keeps_client_in_syn_sent(lab):
    lst = lab.listener(backlog=0)
    first = lab.socket("first")
    first.connect(lst.local).value
    lab.expect_state(first, "ESTABLISHED")
    cli = lab.socket("client", options={"TCP_SYNCNT": 1})
    cli.set_blocking(False)
    lab.expect_errno(cli.connect(lst.local), "EINPROGRESS")
    lab.expect_state(cli, "SYN_SENT")
    lab.expect_state_held(cli, "SYN_SENT", 0.2)
    lab.expect_counter("TcpExtListenOverflows", at_least=1)
    lab.expect_packets("client S")
    answered = [p for p in lab.packets() if p.get("to") == "client" and "S" in p["flags"]]
    lab.expect(not answered, "no SYN-ACK reached the client")


@scenario(
    claim="With TCP_DEFER_ACCEPT a handshake whose final ACK carries no data stays half-open on the "
          "server: /proc/net/tcp lists it as SYN_RECV while the client already reports ESTABLISHED.",
    proves=["state:SYN_RECV", "sockopt:TCP_DEFER_ACCEPT"],
)
def defer_accept_holds_half_open_connection_in_syn_recv(lab):
    lst = lab.listener(backlog=8, options={"TCP_DEFER_ACCEPT": 1})
    cli = lab.socket("client")
    cli.connect(lst.local).value
    lab.expect_state(cli, "ESTABLISHED")
    lab.wait_for(lambda: proc_state(lst.local, cli.local) == "SYN_RECV", 1.0,
                 "/proc/net/tcp to list the server end as SYN_RECV")
    lab.expect_held(lambda: proc_state(lst.local, cli.local) == "SYN_RECV", 0.1, "server end in SYN_RECV")
    cli.send(b"hello").value
    lab.wait_for(lambda: lst.readable(0), 1.0, "the data to complete the connection")
    srv = lst.accept("server").value
    lab.expect_state(srv, "ESTABLISHED")


@scenario(
    claim="A half-open incoming connection is a request socket with no descriptor: an inet_diag dump "
          "asking only for state 12 (NEW_SYN_RECV) finds it but reports state 3, and /proc/net/tcp shows "
          "it as 03 (SYN_RECV), never 0C.",
    proves=["state:NEW_SYN_RECV", "state:SYN_RECV"],
)
def half_open_connection_is_request_socket_shown_as_syn_recv(lab):
    lst = lab.listener(backlog=8, options={"TCP_DEFER_ACCEPT": 1})
    cli = lab.socket("client")
    cli.connect(lst.local).value
    lab.wait_for(lambda: proc_state(lst.local, cli.local) == "SYN_RECV", 1.0,
                 "/proc/net/tcp to list the half-open server end")
    with open("/proc/net/tcp") as f:
        codes = [line.split()[3] for line in f.read().splitlines()[1:]]
    lab.note(f"/proc/net/tcp state column: {' '.join(codes)}")
    lab.expect("03" in codes and "0C" not in codes, "/proc/net/tcp shows 03 for the request socket and no 0C")
    lst.set_blocking(False)
    r = lst.accept("server")
    lab.expect(not r.ok, f"accept() has no descriptor to hand out yet (got {r.errno or 'a socket'})")
    port = lst.local[1]
    only12 = [e for e in _diag(lab, 1 << 12, "1<<12 (NEW_SYN_RECV only)") if e["sport"] == port]
    lab.expect(len(only12) == 1 and only12[0]["state"] == 3,
               f"asking for state 12 alone finds the request socket, reported as state 3 (got {only12})")
    only3 = [e for e in _diag(lab, 1 << 3, "1<<3 (SYN_RECV)") if e["sport"] == port]
    lab.expect(len(only3) == 1 and only3[0]["state"] == 3,
               f"asking for state 3 finds the same request socket as state 3 (got {only3})")


@scenario(
    claim="A TCP socket that is bound but neither listening nor connected is listed by an inet_diag dump "
          "only when the state mask has bit 13 (BOUND_INACTIVE) set, and the entry carries state 7 (CLOSE), "
          "as TCP_INFO does; /proc/net/tcp does not list it.",
    proves=["state:BOUND_INACTIVE"],
    needs=("netns", "btf:TCP_BOUND_INACTIVE"),
)
def bound_only_socket_needs_bound_inactive_query(lab):
    s = lab.socket("bound")
    s.bind(("127.0.0.1", 0)).value
    lab.expect_state(s, "CLOSE")
    port = s.local[1]

    def mine(entries):
        return [e for e in entries if e["sport"] == port]

    found = mine(_diag(lab, 1 << 13, "1<<13 (BOUND_INACTIVE)"))
    lab.expect(len(found) == 1, f"the bit-13 dump lists the bound socket on port {port} (got {found})")
    lab.note(f"inet_diag reports the bound-only socket with idiag_state {found[0]['state']}")
    lab.expect(found[0]["state"] == 7, f"its idiag_state is 7 (CLOSE), not 13 (got {found[0]['state']})")
    others = mine(_diag(lab, 0x1FFF, "0x1fff (states 0-12)"))
    lab.expect(not others, f"a dump of every other state does not list it (got {others})")
    lab.expect(s.proc_row() is None, "/proc/net/tcp has no row for it")
    s.listen(4).value
    listed = mine(_diag(lab, 1 << 13, "1<<13 (BOUND_INACTIVE)"))
    lab.expect(not listed, f"once listening it leaves the bit-13 dump (got {listed})")


@scenario(
    claim="shutdown(SHUT_WR) while data waits behind the peer's zero window puts the socket in FIN_WAIT1 "
          "with its FIN unsent; only when the peer reads does the FIN go out and the socket reach FIN_WAIT2.",
    proves=["state:FIN_WAIT1", "call:shutdown"],
)
def fin_behind_unsent_data_holds_fin_wait1(lab):
    cli, srv = _stuck_client(lab)
    cli.shutdown(socket.SHUT_WR).value
    lab.expect_state(cli, "FIN_WAIT1")
    lab.expect_state_held(cli, "FIN_WAIT1")
    fins = [p for p in lab.packets() if p.get("from") == "client" and "F" in p["flags"]]
    lab.expect(not fins, "no FIN from the client on the wire yet")
    lab.read_to_eof(srv)
    lab.wait_state(cli, "FIN_WAIT2", 1.0)


@scenario(
    claim="A socket in CLOSE_WAIT whose own data waits behind the peer's zero window enters LAST_ACK on "
          "shutdown(SHUT_WR) and stays there, its FIN queued behind the data, until the peer reads.",
    proves=["state:LAST_ACK"],
)
def fin_behind_unsent_data_holds_last_ack(lab):
    cli, srv = _stuck_client(lab)
    srv.shutdown(socket.SHUT_WR).value
    lab.wait_state(cli, "CLOSE_WAIT", 1.0)
    cli.shutdown(socket.SHUT_WR).value
    lab.expect_state(cli, "LAST_ACK")
    lab.expect_state_held(cli, "LAST_ACK")
    lab.read_to_eof(srv)
    lab.wait_state(cli, "CLOSE", 1.0)


@scenario(
    claim="When both ends shut down with data stuck behind zero windows, the end that reads first gets "
          "the peer's FIN while its own FIN is still queued and enters CLOSING; it stays there until its "
          "FIN is acknowledged, then goes to TIME_WAIT.",
    proves=["state:CLOSING"],
)
def fin_arriving_before_own_fin_is_sent_gives_closing(lab):
    cli, srv = _stuck_client(lab)
    lab.fill_to_zero_window(srv)
    cli.shutdown(socket.SHUT_WR).value
    srv.shutdown(socket.SHUT_WR).value
    lab.expect_state(cli, "FIN_WAIT1")
    lab.expect_state(srv, "FIN_WAIT1")
    lab.read_to_eof(cli)
    lab.wait_state(cli, "CLOSING", 1.0)
    lab.wait_state(srv, "FIN_WAIT2", 1.0)
    lab.expect_state_held(cli, "CLOSING")
    lab.read_to_eof(srv)
    lab.wait_for(lambda: proc_state(cli.local, cli.remote) == "TIME_WAIT", 1.0,
                 "/proc/net/tcp to list the client end in TIME_WAIT")


@scenario(
    claim="After shutdown(SHUT_WR) the peer acknowledges the FIN and sends none of its own, so the "
          "socket waits in FIN_WAIT2 while the peer sits in CLOSE_WAIT.",
    proves=["state:FIN_WAIT2"],
)
def acked_fin_without_peer_fin_leaves_fin_wait2(lab):
    _, cli, srv = lab.connected_pair()
    cli.shutdown(socket.SHUT_WR).value
    lab.wait_state(cli, "FIN_WAIT2", 1.0)
    lab.expect_state(srv, "CLOSE_WAIT")
    lab.expect_state_held(cli, "FIN_WAIT2")


@scenario(
    claim="When the peer closes, the socket moves to CLOSE_WAIT, recv() returns end of stream, and it "
          "stays there until the application closes it.",
    proves=["state:CLOSE_WAIT"],
)
def peer_close_leaves_socket_in_close_wait(lab):
    _, cli, srv = lab.connected_pair()
    cli.close().value
    lab.wait_state(srv, "CLOSE_WAIT", 1.0)
    r = srv.recv(100)
    lab.expect(r.ok and r.value == b"", f"recv() returns end of stream (got {r})")
    lab.expect_state_held(srv, "CLOSE_WAIT")


@scenario(
    claim="The side that closes first ends in TIME_WAIT with a /proc/net/tcp timer of about 60 s even "
          "with net.ipv4.tcp_fin_timeout=5, which only shortens the orphaned FIN_WAIT2 before it "
          "(about 5 s).",
    proves=["state:TIME_WAIT", "sysctl:net.ipv4.tcp_fin_timeout"],
)
def active_closer_enters_time_wait_for_60_s(lab):
    # 5 s, far from TIME_WAIT's 60 s, and the server's FIN must arrive before it runs out: between
    # the two closes a TCG VM on a loaded host took 1.2 s, which outlived a timeout of 1 s
    lab.sysctl("net.ipv4.tcp_fin_timeout", 5)
    _, cli, srv = lab.connected_pair()
    cli.close().value
    lab.wait_state(cli, "FIN_WAIT2", 1.0)
    # the ACK of the orphan's FIN starts a tcp_fin_timeout timer; the server's FIN then replaces
    # it with TIME_WAIT's TCP_TIMEWAIT_LEN (60 s): both read as deadlines from /proc/net/tcp
    lab.expect_timer(cli, 3, lab.ack_of_fin(cli), 5.0, "the orphaned FIN_WAIT2 timer, from the ACK of its FIN")
    srv.close().value
    lab.wait_state(cli, "TIME_WAIT", 1.0)
    lab.expect_timer(cli, 3, lab.fin_to(cli), 60.0, "the TIME_WAIT timer, from the server's FIN "
                     f"(tcp_fin_timeout = {lab.sysctls['net.ipv4.tcp_fin_timeout']})")
