"""Corrections from an outside review (issue 15), each behaviour shown on the running kernel.

shutdown() does send resets: on a listener (SHUT_RD, SHUT_RDWR) to every connection in its accept
queue, and on a connection shut down both ways to data the peer still sends. Data that reaches a
closed socket counts TcpExtTCPAbortOnData only while that socket is still a full socket. A FIN
that acknowledges ours never leads to CLOSING. SYN cookies round the peer's MSS to a table value
with or without timestamps. The ephemeral port range's floor is ip_unprivileged_port_start.
"""

from __future__ import annotations

import socket
import struct

from .. import scenario
from ...machine.netns import read_sysctl, set_sysctl
from ..lab import Skip
from ..packets import ipv4_tcp
from ..peer import Conn

TCP_INFO = 11
PORT = 8080


# -- helpers private to this module ---------------------------------------------------------

def _from(lab, sock, flag: str) -> list[dict]:
    """Segments sent on `sock`'s four-tuple (also after close()) that carry `flag`."""
    return [p for p in lab.packets() if p.get("proto") == "tcp" and sock.local and sock.remote
            and (p["src"], p["sport"]) == tuple(sock.local) and (p["dst"], p["dport"]) == tuple(sock.remote)
            and flag in p["flags"]]


def _listener_with_queue(lab):
    """listener, accepted client and server, and a second client still waiting in the accept queue."""
    listener = lab.listener(backlog=4)
    client, server = lab.connect_to(listener, "accepted", "server")
    queued = lab.socket("queued")
    queued.connect(listener.local).value
    lab.wait_for(lambda: _accept_queue(listener) == 1, 1.0, "one connection waiting in the accept queue")
    for s in (client, queued):
        s.sock.settimeout(1.0)  # bounds the blocking reads below
    return listener, client, server, queued


def _accept_queue(listener) -> int:
    """tcpi_unacked of a listener: the connections waiting to be accepted."""
    return struct.unpack_from("I", listener.sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 32), 24)[0]


def _shutdown_listener_resets_queue(lab, how: int) -> None:
    listener, client, server, queued = _listener_with_queue(lab)
    listener.shutdown(how).value
    lab.expect_state(listener, "CLOSE")
    lab.expect_packets("listener R.")
    lab.expect_errno(queued.recv(), "ECONNRESET")
    lab.expect_state(queued, "CLOSE")
    lab.expect_counter("TcpOutRsts", at_least=1)
    lab.expect_counter("TcpEstabResets", at_least=1)
    aborts = {k: lab.counter(k) for k in ("TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnData",
                                          "TcpExtTCPAbortOnLinger")}
    lab.expect(not any(aborts.values()), f"no TcpExtTCPAbortOn* counter moved ({aborts})")
    listener.set_blocking(False)
    lab.expect_errno(listener.accept("late"), "EINVAL")
    lab.expect_state(client, "ESTABLISHED")
    lab.expect_state(server, "ESTABLISHED")
    lab.expect(not _from(lab, server, "R"), "the connection already accepted got no RST")


def _closed_server(lab):
    """client, server: the server close()d with nothing unread and its FIN was acknowledged."""
    _, client, server = lab.connected_pair()
    server.close().value
    lab.wait_state(client, "CLOSE_WAIT", 1.0)
    lab.wait_for(lambda: (row := server.proc_row()) is not None and row["state"] == "FIN_WAIT2", 1.0,
                 "/proc/net/tcp to list the closed server end in FIN_WAIT2")
    return client, server


# -- 1. shutdown() sends RST ------------------------------------------------------------------

@scenario(
    claim="shutdown(SHUT_RD) on a listener closes it and resets the connection waiting in its accept "
          "queue (TcpOutRsts and TcpEstabResets count it, no TcpExtTCPAbortOn* counter does): the "
          "queued client's recv() fails with ECONNRESET, accept() then fails with EINVAL, and the "
          "connection already accepted is untouched.",
    proves=["call:shutdown", "flag:RST", "errno:ECONNRESET", "state:LISTEN", "call:accept"],
)
def shutdown_rd_on_listener_resets_accept_queue(lab):
    _shutdown_listener_resets_queue(lab, socket.SHUT_RD)


@scenario(
    claim="shutdown(SHUT_RDWR) on a listener does the same as SHUT_RD: the connection waiting in the "
          "accept queue is reset (its recv() fails with ECONNRESET) and accept() fails with EINVAL.",
    proves=["call:shutdown", "flag:RST", "errno:ECONNRESET", "call:accept"],
)
def shutdown_rdwr_on_listener_resets_accept_queue(lab):
    _shutdown_listener_resets_queue(lab, socket.SHUT_RDWR)


@scenario(
    claim="shutdown(SHUT_WR) on a listener changes nothing: it stays in LISTEN, the queued connection "
          "is still accepted and no RST is sent.",
    proves=["call:shutdown", "state:LISTEN"],
)
def shutdown_wr_on_listener_changes_nothing(lab):
    listener, _, _, queued = _listener_with_queue(lab)
    lab.expect_ok(listener.shutdown(socket.SHUT_WR))
    lab.expect_state(listener, "LISTEN")
    later = listener.accept("later").value
    lab.expect_state(later, "ESTABLISHED")
    lab.expect(not [p for p in lab.packets() if "R" in p.get("flags", "")], "no RST on the wire")


@scenario(
    claim="After shutdown(SHUT_RDWR) on a connection, data the peer still sends is answered with RST "
          "and counted in TcpExtTCPAbortOnData; the peer, already in CLOSE_WAIT, reads end of stream "
          "and its next send() fails with EPIPE, while the socket that shut down gets ECONNRESET "
          "from its own recv().",
    proves=["call:shutdown", "flag:RST", "errno:ECONNRESET", "errno:EPIPE", "state:FIN_WAIT2",
            "rst:TCP_ABORT_ON_DATA", "counter:TcpExtTCPAbortOnData"],
)
def shutdown_rdwr_answers_peer_data_with_rst(lab):
    _, client, server = lab.connected_pair()
    server.shutdown(socket.SHUT_RDWR).value
    lab.wait_state(server, "FIN_WAIT2", 1.0)
    lab.wait_state(client, "CLOSE_WAIT", 1.0)
    lab.expect_ok(client.send(b"hello"))
    lab.expect_packets("client *P", "server R")
    lab.wait_state(server, "CLOSE", 1.0)
    lab.expect_counter("TcpExtTCPAbortOnData", at_least=1)
    r = client.recv()
    lab.expect(r.ok and r.value == b"", f"the peer's recv() returns end of stream, not an error (got {r})")
    lab.expect_errno(client.send(b"again", socket.MSG_NOSIGNAL), "EPIPE")
    lab.expect_errno(server.recv(), "ECONNRESET")


@scenario(
    claim="SHUT_RD alone lets the peer's data in, but once SHUT_WR follows (two calls or one "
          "SHUT_RDWR) the socket is in FIN_WAIT2 with reading shut, and the peer's next data is "
          "answered with RST (TcpExtTCPAbortOnData): SHUT_RDWR is not SHUT_RD plus SHUT_WR apart.",
    proves=["call:shutdown", "flag:RST", "claim:shutdown-rd-is-a-no-op", "counter:TcpExtTCPAbortOnData"],
    verdicts={"claim:shutdown-rd-is-a-no-op": "depends"},
)
def shutdown_rd_then_wr_turns_accepted_data_into_rst(lab):
    _, client, server = lab.connected_pair()
    server.shutdown(socket.SHUT_RD).value
    client.send(b"first").value
    lab.wait_for(lambda: server.queued() == 5, 1.0, "5 bytes queued at the server after SHUT_RD")
    lab.expect(server.recv().value == b"first", "with reading shut alone, the data is still delivered")
    lab.expect(lab.counter("TcpExtTCPAbortOnData") == 0, "no abort so far")
    server.shutdown(socket.SHUT_WR).value
    lab.wait_state(server, "FIN_WAIT2", 1.0)
    lab.wait_state(client, "CLOSE_WAIT", 1.0)
    lab.expect_ok(client.send(b"second"))
    lab.expect_packets("client *P", "server R")
    lab.expect_counter("TcpExtTCPAbortOnData", at_least=1)
    lab.wait_state(server, "CLOSE", 1.0)


# -- 2. CLOSING needs a FIN that does not acknowledge ours --------------------------------------

@scenario(
    claim="A lost ACK cannot cause CLOSING: when the peer's bare ACK of our FIN never comes and its "
          "FIN follows, that FIN acknowledges ours (ACKs are cumulative), so the socket goes from "
          "FIN_WAIT1 straight to TIME_WAIT and never shows CLOSING.",
    proves=["claim:closing-means-simultaneous-close", "state:CLOSING", "state:TIME_WAIT"],
    needs=("netns", "tun"),
    verdicts={"claim:closing-means-simultaneous-close": "confirmed"},
)
def peer_fin_after_lost_ack_skips_closing(lab):
    client, conn = lab.tun_peer().connected("client", port=PORT, blocking=True)
    client.close().value
    fin = conn.expect("F.")
    lab.expect_state(client, "FIN_WAIT1")
    lab.note("the peer's ACK of that FIN is lost: the peer sends nothing until its own FIN")
    seen = {client.state()}
    conn.send("F.")  # acknowledges the kernel's FIN: conn.ack is its seq + 1
    lab.expect(conn.ack == fin["seq"] + 1, "the peer's FIN carries ack = our FIN's seq + 1")
    ack = conn.expect(".")
    seen.add(client.state())
    lab.expect(ack["ack"] == conn.seq, "the kernel ACKs the peer's FIN")
    lab.expect_state(client, "TIME_WAIT")
    seen |= {step["states"].get("client") for step in lab.steps}
    lab.note(f"states seen: {sorted(s for s in seen if s)}")
    lab.expect("CLOSING" not in seen, "CLOSING was never observed")


# -- 9. data after close(): a TIME_WAIT entry or a full socket ------------------------------------

@scenario(
    claim="With the default tcp_fin_timeout (60 s), a closed socket whose FIN was acknowledged is a "
          "time-wait entry in FIN_WAIT2 (/proc/net/tcp timer 3); data the peer sends then is answered "
          "with RST, but TcpExtTCPAbortOnData does not move.",
    proves=["flag:RST", "rst:TCP_TIMEWAIT_SOCKET", "state:FIN_WAIT2", "errno:EPIPE", "call:close"],
)
def data_after_close_meets_time_wait_entry_without_abort_on_data(lab):
    client, server = _closed_server(lab)
    row = server.proc_row()
    lab.note(f"closed server end: {row['state']}, /proc/net/tcp timer {row['timer']}, "
             f"{row['timer_s']:.1f} s left, inode {row.get('inode')}")
    lab.expect(row["timer"] == 3, f"it runs the time-wait timer (3): a time-wait entry (got {row['timer']})")
    lab.expect_ok(client.send(b"late", socket.MSG_NOSIGNAL))
    lab.expect_packets("client *P", "server R")
    lab.wait_for(lambda: server.proc_row() is None, 1.0, "the time-wait entry to be dropped")
    lab.expect_counter("TcpOutRsts", at_least=1)
    moved = lab.counter("TcpExtTCPAbortOnData")
    lab.expect(moved == 0, f"TcpExtTCPAbortOnData did not move (moved by {moved})")
    lab.expect_errno(client.send(b"again", socket.MSG_NOSIGNAL), "EPIPE")


@scenario(
    claim="With tcp_fin_timeout above 60 s the closed socket stays a full socket in FIN_WAIT2 "
          "(/proc/net/tcp timer 2, the keepalive timer); data the peer sends is answered with RST and "
          "this time TcpExtTCPAbortOnData rises.",
    proves=["flag:RST", "rst:TCP_ABORT_ON_DATA", "state:FIN_WAIT2", "sysctl:net.ipv4.tcp_fin_timeout",
            "call:close", "counter:TcpExtTCPAbortOnData"],
)
def data_after_close_meets_full_socket_counts_abort_on_data(lab):
    lab.sysctl("net.ipv4.tcp_fin_timeout", 120)
    client, server = _closed_server(lab)
    row = server.proc_row()
    lab.note(f"closed server end: {row['state']}, /proc/net/tcp timer {row['timer']}, "
             f"{row['timer_s']:.1f} s left")
    lab.expect(row["timer"] == 2, f"it runs the keepalive timer (2): a full socket (got {row['timer']})")
    lab.expect_ok(client.send(b"late", socket.MSG_NOSIGNAL))
    lab.expect_packets("client *P", "server R")
    lab.expect_counter("TcpExtTCPAbortOnData", at_least=1)
    lab.wait_for(lambda: server.proc_row() is None, 1.0, "the orphan to be freed")
    lab.expect_errno(client.send(b"again", socket.MSG_NOSIGNAL), "EPIPE")


# -- 4. SYN cookies round the peer's MSS, timestamps or not ---------------------------------------

WSCALE_SACK = bytes([1, 3, 3, 7, 4, 2])  # NOP, window scale 7, SACK permitted


def _timestamps(tsval: int, tsecr: int) -> bytes:
    return struct.pack("!BBII", 8, 10, tsval, tsecr)


def _tcp_options(raw: bytes) -> dict:
    """The options of the TCP header in an IPv4 packet: {'mss': 1460, 'wscale': 7, 'sack': True,
    'tsval': n} for those present."""
    ihl = (raw[0] & 0x0F) * 4
    hlen = (raw[ihl + 12] >> 4) * 4
    opts, i, out = raw[ihl + 20:ihl + hlen], 0, {}
    while i < len(opts) and opts[i] != 0:
        if opts[i] == 1:
            i += 1
            continue
        kind, size = opts[i], opts[i + 1]
        if kind == 2:
            out["mss"] = struct.unpack("!H", opts[i + 2:i + 4])[0]
        elif kind == 3:
            out["wscale"] = opts[i + 2]
        elif kind == 4:
            out["sack"] = True
        elif kind == 8:
            out["tsval"] = struct.unpack("!I", opts[i + 2:i + 6])[0]
        i += max(size, 2)
    return out


def _handshake(lab, syncookies: int, mss: int, timestamps: bool = False, port: int = 40000):
    """(server, conn, options of the SYN-ACK): the peer's SYN offers `mss`, window scale and SACK,
    and timestamps if asked; with tcp_syncookies = `syncookies` the kernel answers, the peer ACKs
    (echoing the SYN-ACK's timestamp) and the listener accepts."""
    lab.sysctl("net.ipv4.tcp_syncookies", syncookies)
    peer = lab.tun_peer()
    listener = lab.listener(address=(peer.kernel_address, PORT), backlog=4)
    conn = Conn(peer, port, PORT, 1000, 0)
    extra = WSCALE_SACK + (_timestamps(1, 0) if timestamps else b"")
    peer.send_raw(ipv4_tcp(peer.address, peer.kernel_address, port, PORT, conn.seq, 0, "S", mss=mss,
                           options=extra))
    conn.seq += 1
    lab.note(f"peer sends S: MSS {mss}, window scale 7, SACK permitted, "
             f"{'timestamps' if timestamps else 'no timestamps'}")
    synack = conn.expect("S.", timeout=1.0)
    options = _tcp_options(synack["raw"])
    lab.note(f"the SYN-ACK's options: {options}")
    echo = _timestamps(2, options["tsval"]) if "tsval" in options else b""
    peer.send_raw(ipv4_tcp(peer.address, peer.kernel_address, port, PORT, conn.seq, conn.ack, ".",
                           options=echo))
    lab.note("peer sends ." + (" echoing the SYN-ACK's timestamp" if echo else ""))
    lab.wait_for(lambda: listener.readable(0), 1.0, "the ACK to complete the connection")
    return listener.accept("server").value, conn, options


def _largest_segment(lab, server, conn, total: int = 4000) -> int:
    """The largest payload among the segments the kernel sends for `total` bytes (all of them fit
    in the initial congestion window, so the peer need not ACK), checked against TCP_MAXSEG."""
    maxseg = struct.unpack("i", server.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 4,
                                                  label="TCP_MAXSEG").value)[0]
    server.send(b"x" * total).value
    sizes = []
    while sum(sizes) < total:
        p = conn.peer.expect(lambda p: p["sport"] == PORT and p["dport"] == conn.port and p["len"] > 0,
                             1.0, "a data segment")
        sizes.append(p["len"])
    lab.note(f"TCP_MAXSEG {maxseg}; data segments {sizes}")
    lab.expect(max(sizes) == maxseg, f"the largest data segment is TCP_MAXSEG ({max(sizes)} vs {maxseg})")
    return max(sizes)


@scenario(
    claim="A SYN cookie keeps the peer's MSS only as a value of the kernel's msstab (536, 1300, 1440, "
          "1460 for IPv4): a peer offering 1400 without timestamps gets 1300-byte segments, and the "
          "cookie SYN-ACK carries neither window scale nor SACK although the SYN offered both.",
    proves=["sysctl:net.ipv4.tcp_syncookies", "sockopt:TCP_MAXSEG"],
    needs=("netns", "tun"),
)
def syncookie_without_timestamps_rounds_mss_and_drops_options(lab):
    server, conn, options = _handshake(lab, syncookies=2, mss=1400)
    lab.expect_counter("TcpExtSyncookiesRecv", at_least=1)
    lab.expect("wscale" not in options and "sack" not in options,
               f"the cookie SYN-ACK offers no window scale and no SACK ({options})")
    largest = _largest_segment(lab, server, conn)
    lab.expect(largest == 1300, f"the kernel sends 1300-byte segments, not 1400 (got {largest})")


@scenario(
    claim="With timestamps a SYN cookie keeps window scale and SACK, but the MSS is rounded all the "
          "same: a peer offering 1400 gets segments of 1300 minus the 12-byte timestamp option, "
          "1288 bytes.",
    proves=["sysctl:net.ipv4.tcp_syncookies", "sysctl:net.ipv4.tcp_timestamps"],
    needs=("netns", "tun"),
)
def syncookie_with_timestamps_still_rounds_mss(lab):
    server, conn, options = _handshake(lab, syncookies=2, mss=1400, timestamps=True)
    lab.expect_counter("TcpExtSyncookiesRecv", at_least=1)
    lab.expect(options.get("wscale") is not None and options.get("sack") and "tsval" in options,
               f"the cookie SYN-ACK offers window scale, SACK and timestamps ({options})")
    largest = _largest_segment(lab, server, conn)
    lab.expect(largest == 1288, f"the kernel sends 1288-byte segments (1300 - 12) (got {largest})")


@scenario(
    claim="A SYN cookie can also raise the MSS: every offer below 1300 is stored as 536, so a peer "
          "offering 500 gets 536-byte segments, more than it asked for.",
    proves=["sysctl:net.ipv4.tcp_syncookies"],
    needs=("netns", "tun"),
)
def syncookie_raises_mss_below_536_to_536(lab):
    server, conn, _ = _handshake(lab, syncookies=2, mss=500)
    largest = _largest_segment(lab, server, conn)
    lab.expect(largest == 536, f"the kernel sends 536-byte segments to a peer that offered 500 (got {largest})")


@scenario(
    claim="Answered without a cookie, the same SYN keeps its MSS of 1400 and gets window scale and "
          "SACK in the SYN-ACK although it carries no timestamps.",
    proves=["sysctl:net.ipv4.tcp_syncookies", "sockopt:TCP_MAXSEG"],
    needs=("netns", "tun"),
)
def syn_without_cookie_keeps_mss_and_options(lab):
    server, conn, options = _handshake(lab, syncookies=0, mss=1400)
    lab.expect(lab.counter("TcpExtSyncookiesSent") == 0, "no cookie was sent")
    lab.expect(options.get("wscale") is not None and options.get("sack"),
               f"the SYN-ACK offers window scale and SACK ({options})")
    largest = _largest_segment(lab, server, conn)
    lab.expect(largest == 1400, f"the kernel sends 1400-byte segments (got {largest})")


# -- 5. the ephemeral port range starts no lower than ip_unprivileged_port_start -------------------

RANGE, UNPRIV = "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start"


def _write(lab, name: str, value: str):
    """Write a sysctl of the scenario's own namespace, recording the result or the errno."""
    if not lab.isolated:
        raise Skip(f"needs its own network namespace to write {name}")
    r = lab.call(None, f"write {name} = {value}", lambda: set_sysctl(name, value))
    lab.note(f"{name} now reads {read_sysctl(name)}")
    return r


@scenario(
    claim="The first port of ip_local_port_range may not be below ip_unprivileged_port_start, not a "
          "fixed 1024: at the default 1024 a range starting at 1023 is refused with EINVAL, after "
          "ip_unprivileged_port_start is lowered to 0 a range starting at 1 is accepted, and the "
          "reverse check refuses an ip_unprivileged_port_start above the range's first port.",
    proves=["sysctl:net.ipv4.ip_local_port_range", "sysctl:net.ipv4.ip_unprivileged_port_start"],
)
def local_port_range_floor_is_unprivileged_port_start(lab):
    lab.expect(read_sysctl(UNPRIV) == "1024", f"{UNPRIV} starts at 1024 ({read_sysctl(UNPRIV)})")
    lab.expect_errno(_write(lab, RANGE, "1023 60999"), "EINVAL")
    lab.expect_ok(_write(lab, RANGE, "1024 60999"))
    lab.expect_ok(_write(lab, UNPRIV, "500"))
    lab.expect_errno(_write(lab, RANGE, "499 60999"), "EINVAL")
    lab.expect_ok(_write(lab, RANGE, "500 60999"))
    lab.expect_errno(_write(lab, UNPRIV, "501"), "EINVAL")
    lab.expect_ok(_write(lab, UNPRIV, "0"))
    lab.expect_ok(_write(lab, RANGE, "1 60999"))
    lab.expect_errno(_write(lab, RANGE, "0 60999"), "EINVAL")
    lab.expect(read_sysctl(RANGE) == "1 60999", f"the range is now 1 60999 ({read_sysctl(RANGE)})")
