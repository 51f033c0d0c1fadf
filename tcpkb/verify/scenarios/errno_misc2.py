"""Calls that do not fit the socket: wrong state, family, type, protocol, option, size,
destination, permission or interface."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time

from ...machine import netns
from .. import scenario
from ..lab import Skip
from ..timing import timer_bounds

_libc = ctypes.CDLL(None, use_errno=True)


def _checked(rv: int) -> int:
    if rv < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rv


def _new_socket(lab, text: str, *args) -> None:
    """socket(*args) recorded; a socket that unexpectedly opens is closed at once."""
    return lab.call(None, text, lambda: socket.socket(*args).close())


# -- wrong state for the call -------------------------------------------------

@scenario(
    claim="accept() on a TCP socket that was never put into listen(), bound or not, fails with EINVAL.",
    proves=["errno:EINVAL", "call:accept"],
)
def accept_on_socket_not_listening_gets_einval(lab):
    sock = lab.socket("sock")
    lab.expect_errno(sock.accept(), "EINVAL")
    sock.bind(("127.0.0.1", 0)).value
    lab.expect_errno(sock.accept(), "EINVAL")


@scenario(
    claim="listen() on an ESTABLISHED TCP socket fails with EINVAL and leaves the connection ESTABLISHED.",
    proves=["errno:EINVAL", "state:ESTABLISHED", "call:listen"],
)
def listen_on_connected_socket_gets_einval(lab):
    _, client, _ = lab.connected_pair()
    lab.expect_errno(client.listen(), "EINVAL")
    lab.expect_state(client, "ESTABLISHED")


@scenario(
    claim="A UDP socket answers listen(), accept() and send() with MSG_OOB with EOPNOTSUPP (errno 95, "
          "which glibc also names ENOTSUP).",
    proves=["errno:EOPNOTSUPP", "call:listen", "call:accept", "call:send"],
)
def udp_socket_refuses_listen_accept_and_oob_with_eopnotsupp(lab):
    udp = lab.socket("udp", socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0)).value
    lab.expect_errno(udp.listen(), "EOPNOTSUPP")
    lab.expect_errno(udp.accept(), "EOPNOTSUPP")
    lab.expect_errno(udp.sendto(b"x", udp.local, socket.MSG_OOB), "EOPNOTSUPP")


# -- family, type and protocol --------------------------------------------------

@scenario(
    claim="connect() of an AF_INET TCP socket to a sockaddr_in6 ([::1]:80, 28 bytes) fails with "
          "EAFNOSUPPORT and sends nothing.",
    proves=["errno:EAFNOSUPPORT", "call:connect"],
)
def connect_ipv4_socket_to_ipv6_address_gets_eafnosupport(lab):
    client = lab.socket("client")
    sin6 = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 80, 0) + socket.inet_pton(
        socket.AF_INET6, "::1") + struct.pack("=I", 0)
    fd = client.fileno()
    r = lab.call(client, "connect(sockaddr_in6 [::1]:80, 28) via libc",
                 lambda: _checked(_libc.connect(fd, sin6, len(sin6))))
    lab.expect_errno(r, "EAFNOSUPPORT")
    lab.expect_state(client, "CLOSE")
    lab.expect(not [p for p in lab.packets() if p.get("proto") == "tcp"], "no packet was sent")


@scenario(
    claim="socket() with a family this kernel does not have fails with EAFNOSUPPORT: AF_IPX (4, removed "
          "from Linux in 4.18) and a number past AF_MAX (200).",
    proves=["errno:EAFNOSUPPORT", "call:socket"],
)
def socket_with_missing_family_gets_eafnosupport(lab):
    lab.expect_errno(_new_socket(lab, "socket(AF_IPX, SOCK_DGRAM, 0)", 4, socket.SOCK_DGRAM), "EAFNOSUPPORT")
    lab.expect_errno(_new_socket(lab, "socket(200, SOCK_STREAM, 0)", 200, socket.SOCK_STREAM), "EAFNOSUPPORT")


@scenario(
    claim="socket(AF_INET, SOCK_STREAM, IPPROTO_UDP) and socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP) fail "
          "with EPROTONOSUPPORT: the type exists but has no such protocol.",
    proves=["errno:EPROTONOSUPPORT", "call:socket"],
)
def socket_stream_with_udp_protocol_gets_eprotonosupport(lab):
    lab.expect_errno(_new_socket(lab, "socket(AF_INET, SOCK_STREAM, IPPROTO_UDP)", socket.AF_INET,
                                 socket.SOCK_STREAM, socket.IPPROTO_UDP), "EPROTONOSUPPORT")
    lab.expect_errno(_new_socket(lab, "socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP)", socket.AF_INET,
                                 socket.SOCK_DGRAM, socket.IPPROTO_TCP), "EPROTONOSUPPORT")


@scenario(
    claim="socket(AF_INET, SOCK_RDM, 0) fails with ESOCKTNOSUPPORT, as does SOCK_SEQPACKET on a kernel "
          "without SCTP: no IPv4 protocol is registered for the type.",
    proves=["errno:ESOCKTNOSUPPORT", "call:socket"],
)
def socket_inet_rdm_gets_esocktnosupport(lab):
    lab.expect_errno(_new_socket(lab, "socket(AF_INET, SOCK_RDM, 0)", socket.AF_INET, socket.SOCK_RDM),
                     "ESOCKTNOSUPPORT")
    r = _new_socket(lab, "socket(AF_INET, SOCK_SEQPACKET, 0)", socket.AF_INET, socket.SOCK_SEQPACKET)
    # read after the call: socket() itself asks for the SCTP module (request_module), so on a
    # kernel that ships it (Debian's, in a VM) the call registers SCTP and succeeds
    with open("/proc/net/protocols") as f:
        has_sctp = any(line.split()[:1] == ["SCTP"] for line in f)
    if has_sctp:
        lab.note("SCTP is registered here, so SOCK_SEQPACKET exists for AF_INET")
    else:
        lab.expect_errno(r, "ESOCKTNOSUPPORT")


@scenario(
    claim="An AF_UNIX stream connect() to a path bound by a datagram socket, and a datagram sendto() to a "
          "path bound by a stream listener, fail with EPROTOTYPE; with abstract names the same "
          "mismatch gives ECONNREFUSED, because the lookup only finds a socket of the caller's type.",
    proves=["errno:EPROTOTYPE", "errno:ECONNREFUSED"],
)
def unix_socket_type_mismatch_gets_eprototype(lab):
    where = tempfile.mkdtemp(prefix="tcpkb-")
    socks = []

    def unix(kind):
        s = socket.socket(socket.AF_UNIX, kind)
        socks.append(s)
        return s
    try:
        dgram, stream, listener = unix(socket.SOCK_DGRAM), unix(socket.SOCK_STREAM), unix(socket.SOCK_STREAM)
        dpath, spath = os.path.join(where, "dgram.sock"), os.path.join(where, "stream.sock")
        lab.call(None, f"dgram.bind({dpath})", lambda: dgram.bind(dpath)).value
        lab.call(None, f"listener.bind({spath}); listen()",
                 lambda: (listener.bind(spath), listener.listen())).value
        lab.expect_errno(lab.call(None, f"stream.connect({dpath})", lambda: stream.connect(dpath)),
                         "EPROTOTYPE")
        lab.expect_errno(lab.call(None, f"dgram.sendto(b'x', {spath})", lambda: dgram.sendto(b"x", spath)),
                         "EPROTOTYPE")
        abstract = unix(socket.SOCK_DGRAM)
        lab.call(None, "dgram2.bind(abstract '\\0tcpkb-dgram')", lambda: abstract.bind("\0tcpkb-dgram")).value
        lab.expect_errno(lab.call(None, "stream.connect(abstract '\\0tcpkb-dgram')",
                                  lambda: stream.connect("\0tcpkb-dgram")), "ECONNREFUSED")
    finally:
        for s in socks:
            s.close()
        shutil.rmtree(where, ignore_errors=True)


@scenario(
    claim="connect() of an AF_UNIX stream socket to a path with no file fails with ENOENT; once a socket "
          "file exists at the path but nobody listens on it, the same connect() gives ECONNREFUSED.",
    proves=["errno:ENOENT", "errno:ECONNREFUSED"],
)
def unix_connect_to_missing_path_gets_enoent(lab):
    where = tempfile.mkdtemp(prefix="tcpkb-")
    path = os.path.join(where, "server.sock")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lab.expect_errno(lab.call(None, f"client.connect({path})", lambda: client.connect(path)), "ENOENT")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lab.call(None, f"stale.bind({path}); stale.close()", lambda: (stale.bind(path), stale.close())).value
        lab.expect(os.path.exists(path), "the socket file stays behind after close()")
        lab.expect_errno(lab.call(None, f"client.connect({path})", lambda: client.connect(path)), "ECONNREFUSED")
    finally:
        client.close()
        shutil.rmtree(where, ignore_errors=True)


# -- options, sizes, destinations -------------------------------------------------

@scenario(
    claim="getsockopt() with an option number unknown at its level (999 at SOL_SOCKET and at "
          "IPPROTO_TCP), and IPV6_V6ONLY set on an AF_INET socket, fail with ENOPROTOOPT.",
    proves=["errno:ENOPROTOOPT", "call:getsockopt", "call:setsockopt", "sockopt:IPV6_V6ONLY"],
)
def unknown_socket_option_gets_enoprotoopt(lab):
    sock = lab.socket("sock")
    lab.expect_errno(sock.getsockopt(socket.SOL_SOCKET, 999, label="SOL_SOCKET, 999"), "ENOPROTOOPT")
    lab.expect_errno(sock.getsockopt(socket.IPPROTO_TCP, 999, label="IPPROTO_TCP, 999"), "ENOPROTOOPT")
    lab.expect_errno(sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1, label="IPV6_V6ONLY"),
                     "ENOPROTOOPT")


@scenario(
    claim="send() and write() on a bound UDP socket that was never connected fail with EDESTADDRREQ.",
    proves=["errno:EDESTADDRREQ", "call:send", "call:write"],
)
def udp_send_without_destination_gets_edestaddrreq(lab):
    udp = lab.socket("udp", socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0)).value
    lab.expect_errno(udp.send(b"x"), "EDESTADDRREQ")
    fd = udp.fileno()
    lab.expect_errno(lab.call(udp, "write(1 byte)", lambda: os.write(fd, b"x")), "EDESTADDRREQ")


@scenario(
    claim="An IPv4 UDP datagram of 65,508 payload bytes fails with EMSGSIZE; 65,507 bytes (65,535 minus "
          "20 for IP and 8 for UDP) is sent and received whole.",
    proves=["errno:EMSGSIZE", "call:send"],
)
def udp_datagram_over_65507_bytes_gets_emsgsize(lab):
    receiver = lab.socket("receiver", socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0)).value
    sender = lab.socket("sender", socket.AF_INET, socket.SOCK_DGRAM)
    lab.expect_errno(sender.sendto(b"x" * 65508, receiver.local), "EMSGSIZE")
    lab.expect_ok(sender.sendto(b"x" * 65507, receiver.local))
    lab.wait_for(lambda: receiver.readable(0), 1.0, "the datagram")
    r = receiver.recv(70000)
    lab.expect(r.ok and len(r.value) == 65507, "the receiver got one datagram of 65,507 bytes")


@scenario(
    claim="Inside a namespace with only lo up, a UDP sendto() or connect() to the broadcast address "
          "127.255.255.255 without SO_BROADCAST fails with EACCES, and with SO_BROADCAST the datagram "
          "is delivered; 255.255.255.255 gets ENETUNREACH either way, as no route covers it.",
    proves=["errno:EACCES", "errno:ENETUNREACH", "call:send", "call:connect"],
)
def udp_broadcast_without_so_broadcast_gets_eacces(lab):
    receiver = lab.socket("receiver", socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("0.0.0.0", 0)).value
    port = receiver.local[1]
    sender = lab.socket("sender", socket.AF_INET, socket.SOCK_DGRAM)
    lab.expect_errno(sender.sendto(b"x", ("127.255.255.255", port)), "EACCES")
    lab.expect_errno(sender.connect(("127.255.255.255", port)), "EACCES")
    lab.expect_errno(sender.sendto(b"x", ("255.255.255.255", port)), "ENETUNREACH")
    lab.expect(not receiver.readable(0.02), "nothing arrived")
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1, label="SO_BROADCAST").value
    lab.expect_ok(sender.sendto(b"hello", ("127.255.255.255", port)))
    lab.expect_errno(sender.sendto(b"x", ("255.255.255.255", port)), "ENETUNREACH")
    lab.wait_for(lambda: receiver.readable(0), 1.0, "the broadcast datagram")
    lab.expect(receiver.recv(16).value == b"hello", "the receiver got the broadcast")


# -- firewall and interface ----------------------------------------------------------

DROP_PORT_9 = """table ip tcpkb {
  chain out {
    type filter hook output priority 0; policy accept;
    udp dport 9 drop
    tcp dport 9 drop
  }
}
"""


def _nft_drop_port_9(lab) -> None:
    nft = shutil.which("nft")
    if nft is None:
        raise Skip("nft is not installed")
    if not lab.isolated:
        raise Skip("needs its own network namespace for an nftables rule")
    p = subprocess.run([nft, "-f", "-"], input=DROP_PORT_9, capture_output=True, text=True, timeout=3,
                       check=False)
    if p.returncode != 0:
        raise Skip(f"nft could not load a rule: {p.stderr.strip().splitlines()[0] if p.stderr else p.returncode}")
    lab.note("nft: output chain drops udp and tcp to port 9 (this namespace only)")


@scenario(
    claim="With an nftables output rule dropping UDP to port 9, sendto() and a connected send() to "
          "127.0.0.1:9 fail at once with EPERM and the receiver on port 9 gets nothing.",
    proves=["errno:EPERM", "call:send"],
)
def nft_output_drop_makes_udp_send_fail_with_eperm(lab):
    receiver = lab.socket("receiver", socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 9)).value
    _nft_drop_port_9(lab)
    sender = lab.socket("sender", socket.AF_INET, socket.SOCK_DGRAM)
    lab.expect_errno(sender.sendto(b"x", ("127.0.0.1", 9)), "EPERM")
    sender.connect(("127.0.0.1", 9)).value
    lab.expect_errno(sender.send(b"x"), "EPERM")
    lab.expect(not receiver.readable(0.05), "nothing reached the receiver")


@scenario(
    claim="TCP hides a netfilter drop: with an nftables output rule dropping TCP to port 9, connect() "
          "does not get EPERM; the SYN never reaches the wire and, with TCP_USER_TIMEOUT 300 ms, "
          "the attempt ends with ETIMEDOUT at the first retransmission timer, about 1 s later.",
    proves=["errno:ETIMEDOUT", "state:SYN_SENT", "sockopt:TCP_USER_TIMEOUT", "sockopt:SO_ERROR",
            "call:connect"],
    timeout=5.0,
)
def nft_output_drop_makes_tcp_connect_time_out_not_eperm(lab):
    _nft_drop_port_9(lab)
    client = lab.socket("client")
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 300, label="TCP_USER_TIMEOUT").value
    client.set_blocking(False)
    r, started = lab.timed_call(client, "connect(127.0.0.1:9)", lambda: client.sock.connect(("127.0.0.1", 9)))
    lab.expect_errno(r, "EINPROGRESS")
    lab.expect_state(client, "SYN_SENT")
    _, ended = lab.timed_call(client, "select() for writable, 3 s at most",
                              lambda: select.select([], [client.sock], [], 3.0)[1])

    def so_error():
        err = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        return 0
    lab.expect_errno(lab.call(client, "getsockopt(SO_ERROR)", so_error), "ETIMEDOUT")
    # connect() arms the retransmission timer for TCP_TIMEOUT_INIT (1 s); when it fires the
    # 300 ms user timeout has passed and tcp_write_timeout() gives up instead of retrying.
    # Against the low bound: connect()'s start to select()'s return (load only lengthens it);
    # against the high: connect()'s end to select()'s wake-up (its start plus its sleep).
    lab.expect_window((ended.end - started.start, ended.woke - started.end),
                      *timer_bounds(1.0), "from connect() to the attempt's end", "blocked")
    lab.expect(not [p for p in lab.packets() if p.get("proto") == "tcp" and p["dport"] == 9],
               "no SYN to port 9 was seen on the wire")


def _down_tun(lab, name: str) -> int:
    if not lab.isolated:
        raise Skip("needs its own network namespace for a TUN device")
    tun = netns.open_tun(name)
    lab.note(f"TUN device {name} created and left down")
    return tun


# an IPv4 packet of protocol 253 (reserved for experiments), 10.9.9.1 to 10.9.9.2, 8 zero bytes
_IP = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 253, 0,
                  socket.inet_aton("10.9.9.1"), socket.inet_aton("10.9.9.2")) + bytes(8)


def _tun_received(tun: int, packet: bytes, timeout: float) -> bool:
    """Whether `packet` comes out of the TUN device (IPv6 link chatter may come first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([tun], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                if os.read(tun, 2048) == packet:
                    return True
            except BlockingIOError:
                pass
    return False


@scenario(
    claim="sendto() on a packet socket naming an interface that is down fails with ENETDOWN and "
          "succeeds once the interface is up; a UDP socket bound to the same down interface "
          "(SO_BINDTODEVICE) gets ENETUNREACH instead, because a down interface has no routes.",
    proves=["errno:ENETDOWN", "errno:ENETUNREACH", "sockopt:SO_BINDTODEVICE"],
    needs=("netns", "tun"),
)
def packet_socket_send_on_down_interface_gets_enetdown(lab):
    name = "tcpkbdown"
    tun = _down_tun(lab, name)
    try:
        raw = lab.socket("packet", socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        lab.expect_errno(raw.sendto(_IP, (name, 0x0800)), "ENETDOWN")
        udp = lab.socket("udp", socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode(), label="SO_BINDTODEVICE").value
        lab.expect_errno(udp.sendto(b"x", ("10.9.9.2", 9)), "ENETUNREACH")
        lab.call(None, f"set {name} up", lambda: netns.link_up(name)).value
        lab.expect_ok(raw.sendto(_IP, (name, 0x0800)))
        lab.expect(_tun_received(tun, _IP, 1.0), "the packet came out of the TUN device")
    finally:
        os.close(tun)


@scenario(
    claim="bind() of a packet socket to an interface that is down succeeds but leaves ENETDOWN pending "
          "as a socket error (SO_ERROR 100); send() fails with ENETDOWN while the interface is down, and "
          "the first send() after it comes up still fails with that stale ENETDOWN; the second goes out.",
    proves=["errno:ENETDOWN", "sockopt:SO_ERROR"],
    needs=("netns", "tun"),
)
def packet_socket_bound_to_down_interface_keeps_stale_enetdown(lab):
    name = "tcpkbdown"
    tun = _down_tun(lab, name)
    try:
        raw = lab.socket("packet", socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        lab.expect_ok(raw.bind((name, 0x0800)))
        other = lab.socket("other", socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        lab.expect_ok(other.bind((name, 0x0800)))
        r = other.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR, label="SO_ERROR")
        lab.expect(r.ok and r.value == errno.ENETDOWN,
                   f"a socket bound while the interface is down holds SO_ERROR ENETDOWN "
                   f"({r.value if r.ok else r.errno})")
        lab.expect_errno(raw.send(_IP), "ENETDOWN")
        lab.call(None, f"set {name} up", lambda: netns.link_up(name)).value
        lab.expect_errno(raw.send(_IP), "ENETDOWN")
        lab.expect_ok(raw.send(_IP))
        lab.expect(_tun_received(tun, _IP, 1.0), "the packet came out of the TUN device")
    finally:
        os.close(tun)
