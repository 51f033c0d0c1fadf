"""Errnos Linux TCP never returns, shown on the socket family that does return them.

ESHUTDOWN is named nowhere in net/ipv4, net/ipv6, net/core or net/socket.c: a TCP send after
shutdown(SHUT_WR) fails with EPIPE. SCTP's state table answers a send on an association that is
shutting down with it, so an SCTP one-to-one socket (SOCK_STREAM, IPPROTO_SCTP) shows it. SCTP is
a module: where the kernel has none (EPROTONOSUPPORT) the scenario is skipped.

ENETRESET is named nowhere there either. AX.25 gives it to a connection an administrator kills
(SIOCAX25CTLCON, AX25_KILL). AX.25 lives only in the initial network namespace and needs a port:
a KISS device (mkiss) on a pseudo-terminal, which appears among the machine's own interfaces. So
that scenario runs only in the VM runner's guest ("vm:" need), outside any namespace of its own.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import socket
import struct
import threading

from .. import scenario
from ..lab import IPPROTO_SCTP, Skip

SOL_SCTP, SCTP_STATUS = 132, 14
# enum sctp_sstat_state in include/uapi/linux/sctp.h
SCTP_STATES = {0: "EMPTY", 1: "CLOSED", 2: "COOKIE_WAIT", 3: "COOKIE_ECHOED", 4: "ESTABLISHED",
               5: "SHUTDOWN_PENDING", 6: "SHUTDOWN_SENT", 7: "SHUTDOWN_RECEIVED",
               8: "SHUTDOWN_ACK_SENT"}


def _sctp_available() -> None:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP).close()
    except OSError as e:
        raise Skip(f"this kernel offers no SCTP sockets ({e.strerror})") from None


def _association_state(sock) -> str:
    """The association's state on a one-to-one SCTP socket (getsockopt SCTP_STATUS)."""
    status = sock.sock.getsockopt(SOL_SCTP, SCTP_STATUS, 256)
    return SCTP_STATES.get(struct.unpack_from("=i", status, 4)[0], "?")


@scenario(
    claim="On an SCTP one-to-one socket (SOCK_STREAM, IPPROTO_SCTP), shutdown(SHUT_WR) while "
          "data still waits behind the peer's full receive window leaves the association in "
          "SHUTDOWN_PENDING, and a send() then fails with ESHUTDOWN (sctp_sf_error_shutdown() in "
          "SCTP's state table); the same send() on a TCP socket after shutdown(SHUT_WR) fails "
          "with EPIPE.",
    proves=["errno:ESHUTDOWN"],
    timeout=8.0,
)
def sctp_send_after_shutdown_fails_eshutdown(lab):
    _sctp_available()
    listener = lab.socket("listener", proto=IPPROTO_SCTP, options={"SO_RCVBUF": 4096})
    listener.bind(("127.0.0.1", 0)).value
    listener.listen(1).value
    client = lab.socket("client", proto=IPPROTO_SCTP)
    client.connect(listener.local).value
    listener.accept("server").value  # and never read: the client's data waits behind its window

    def send_behind_window():
        sent = 0
        for _ in range(32):  # 32 KiB: far past the peer's window, far below our send buffer
            sent += client.sock.send(b"x" * 1024, socket.MSG_DONTWAIT)
        return f"{sent} bytes queued"
    lab.call(client, "send(1 KiB, MSG_DONTWAIT) x 32", send_behind_window).value
    client.shutdown(socket.SHUT_WR).value
    state = _association_state(client)
    lab.expect(state == "SHUTDOWN_PENDING", f"the association is SHUTDOWN_PENDING (got {state})")
    lab.expect_errno(client.send(b"y", socket.MSG_DONTWAIT), "ESHUTDOWN")
    tcp, _ = lab.connect_to(lab.listener("tcp_listener"), "tcp_client", "tcp_server")
    tcp.shutdown(socket.SHUT_WR).value
    lab.expect_errno(tcp.send(b"y", socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL), "EPIPE")


# -- ENETRESET on AX.25 -------------------------------------------------------

AF_AX25, ARPHRD_AX25, N_AX25 = 3, 3, 5
TIOCSETD, SIOCGIFNAME, SIOCSIFHWADDR = 0x5423, 0x8910, 0x8924
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SIOCAX25CTLCON, AX25_KILL = 0x89E0 + 8, 99
_libc = ctypes.CDLL(None, use_errno=True)


def _call(callsign: str) -> bytes:
    """An ax25_address: six letters shifted left by one, then the SSID byte (SSID 0)."""
    return bytes(ord(c) << 1 for c in callsign.upper().ljust(6)) + b"\0"


def _sockaddr_ax25(callsign: str) -> bytes:
    return struct.pack("=H7s3xi", AF_AX25, _call(callsign), 0)


def _libc_checked(rv: int) -> int:
    if rv < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rv


def _kiss_port(lab, callsign: str) -> tuple[int, int, str]:
    """A pseudo-terminal turned into an AX.25 port (mkiss) named `callsign`, up: (master, slave, ifname)."""
    master, slave = os.openpty()
    try:
        try:
            fcntl.ioctl(slave, TIOCSETD, struct.pack("i", N_AX25))
        except OSError as e:
            raise Skip(f"this kernel has no KISS line discipline for AX.25 (mkiss: {e.strerror})") from None
        name = fcntl.ioctl(slave, SIOCGIFNAME, b"\0" * 16).split(b"\0")[0].decode()
        fcntl.ioctl(slave, SIOCSIFHWADDR, _call(callsign))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            flags = struct.unpack_from("h", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16s24x", name.encode())), 16)[0]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", name.encode(), flags | IFF_UP))
    except (OSError, Skip):
        os.close(slave)
        os.close(master)
        raise
    lab.note(f"AX.25 port {name} ({callsign}) on a pseudo-terminal, up")
    return master, slave, name


def _is_sabm(kiss: bytes) -> bool:
    """A KISS data frame (FEND, a command byte whose low nibble 0 means data; mkiss may set 0x80
    for its checksum) carrying an AX.25 frame to PEER whose control byte, poll bit aside, is SABM
    (0x2F)."""
    frame = kiss.strip(b"\xc0")
    return len(frame) > 15 and frame[0] & 0x0F == 0 and frame[1:7] == _call("PEER")[:6] and frame[15] & 0xEF == 0x2F


def _kill(local: str, remote: str) -> None:
    """SIOCAX25CTLCON AX25_KILL for the connection local -> remote on port `local`."""
    ctl = struct.pack("=7s7s7s3xIQB56s7x", _call(local), _call(local), _call(remote), AX25_KILL, 0, 0, b"")
    with socket.socket(AF_AX25, socket.SOCK_SEQPACKET) as s:
        fcntl.ioctl(s, SIOCAX25CTLCON, ctl)


@scenario(
    claim="On an AX.25 socket (AF_AX25, SOCK_SEQPACKET) a blocking connect() whose SABM is still "
          "unanswered fails with ENETRESET when the connection is killed with SIOCAX25CTLCON "
          "AX25_KILL: ax25_ctl_ioctl() ends it with ax25_disconnect(ax25, ENETRESET). TCP never "
          "returns ENETRESET.",
    proves=["errno:ENETRESET"],
    needs=("vm:the initial network namespace (an AX.25 port)",),
    timeout=8.0,
)
def ax25_killed_connection_fails_connect_enetreset(lab):
    master, slave, _ = _kiss_port(lab, "TCPKB")  # loads mkiss and with it ax25 (no net-pf-3 alias)
    try:
        try:
            client = lab.adopt("client", socket.socket(AF_AX25, socket.SOCK_SEQPACKET))
        except OSError as e:
            raise Skip(f"this kernel offers no AX.25 sockets ({e.strerror})") from None
        addr = _sockaddr_ax25("TCPKB")
        lab.call(None, "bind(AX.25 TCPKB)", lambda: _libc_checked(_libc.bind(client.fileno(), addr, len(addr)))).value
        killed, frames = [], []

        def kill_when_sabm_sent():  # the SABM reaches the pseudo-terminal: the connect is waiting
            if select.select([master], [], [], 2.0)[0]:
                frames.append(os.read(master, 512))
                try:
                    _kill("TCPKB", "PEER")
                    killed.append("killed")
                except OSError as e:
                    killed.append(e.strerror)

        helper = threading.Thread(target=kill_when_sabm_sent, daemon=True)
        helper.start()
        peer = _sockaddr_ax25("PEER")
        r = lab.call(None, "connect(AX.25 PEER)", lambda: _libc_checked(_libc.connect(client.fileno(), peer, len(peer))))
        helper.join(3.0)
        lab.expect(bool(frames) and _is_sabm(frames[0]),
                   f"the port sent a SABM to PEER first ({frames[0].hex() if frames else 'nothing'})")
        lab.expect(killed == ["killed"], f"SIOCAX25CTLCON AX25_KILL while connect() waited ({killed})")
        lab.expect_errno(r, "ENETRESET")
    finally:
        os.close(slave)  # the line discipline goes, and the port with it
        os.close(master)
