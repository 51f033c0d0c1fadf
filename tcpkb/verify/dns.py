"""A tiny DNS responder on loopback, and a private resolver configuration for this process.

Resolver scenarios run inside their own network namespace, where 127.0.0.1:53 is theirs: the
responder answers each name the way the scenario scripts it (an address, NXDOMAIN, SERVFAIL,
REFUSED, an empty NOERROR answer, or nothing at all) and records every question it was asked.
`private_resolver` gives this process and its children their own mount namespace with
/etc/resolv.conf, /etc/nsswitch.conf and /etc/hosts bind-mounted from a private tmpfs, so
getaddrinfo() asks the responder and nothing else: no real resolver is ever contacted. Standard
library only; every socket, thread and mount goes away with the scenario's process.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
QTYPES = {1: "A", 28: "AAAA"}
STAGING = "/tmp"
MNT_DETACH = 2
NSCD_DIRS = ("/run/nscd", "/var/run/nscd")  # a running nscd would answer from its own cache

_libc = ctypes.CDLL(None, use_errno=True)


class ResolverUnavailable(Exception):
    """The private resolver configuration cannot be made here: the scenario is skipped."""


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise ResolverUnavailable(f"mount {target}: {os.strerror(err)}")


def private_resolver(resolv_conf: str, hosts_line: str = "hosts: files dns") -> None:
    """From now on this process (and what it starts) resolves through `resolv_conf` only.

    Needs root in the current user namespace; call it only inside a scenario's own network
    namespace, whose 127.0.0.1 nobody else can reach."""
    for path in ("/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/hosts"):
        if not os.path.exists(path):  # a bind mount needs a file to cover (a dangling link is none)
            raise ResolverUnavailable(f"{path} does not exist here to mount over")
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise ResolverUnavailable(f"cannot make a mount namespace: {os.strerror(ctypes.get_errno())}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the host
    files = {"/etc/resolv.conf": resolv_conf, "/etc/nsswitch.conf": hosts_line + "\n",
             "/etc/hosts": "127.0.0.1 localhost\n::1 localhost\n"}
    # The files are written to a tmpfs mounted over /tmp for a moment (in a kernel VM, / is this
    # machine's, read-only); once bound into /etc they keep it alive, and /tmp is uncovered again.
    _mount("tcpkb-resolver", STAGING, "tmpfs", 0, "size=64k,mode=0755")
    try:
        for target, text in files.items():
            source = os.path.join(STAGING, os.path.basename(target))
            with open(source, "w", encoding="ascii") as f:
                f.write(text)
            _mount(source, target, None, MS_BIND)
    finally:
        _libc.umount2(STAGING.encode(), MNT_DETACH)
    for folder in NSCD_DIRS:
        if os.path.isdir(folder):
            _mount("tcpkb-no-nscd", folder, "tmpfs", 0, "size=4k")


def parse_question(packet: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, name, qtype, end of the question) of a DNS query."""
    if len(packet) < 17:
        raise ValueError("shorter than a header and a question")
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError(f"{qdcount} questions")
    labels, at = [], 12
    while True:
        length = packet[at]
        if length == 0:
            at += 1
            break
        if length > 63 or at + 1 + length > len(packet):
            raise ValueError("a bad label")
        labels.append(packet[at + 1:at + 1 + length].decode("ascii", "replace"))
        at += 1 + length
    qtype, _qclass = struct.unpack("!HH", packet[at:at + 4])
    return ident, flags, ".".join(labels).lower(), qtype, at + 4


def answer(packet: bytes, how: str, addresses: dict[int, bytes]) -> bytes | None:
    """The response to `packet`: `how` is an RCODE name, "ADDRESS" (the record of the asked type
    from `addresses`, an empty NOERROR answer if there is none) or "SILENT" (no response)."""
    ident, flags, _name, qtype, end = parse_question(packet)
    if how == "SILENT":
        return None
    records = b""
    rcode = RCODES.get(how, 0)
    if how == "ADDRESS" and qtype in addresses:
        rdata = addresses[qtype]
        records = struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
    # QR, the query's opcode and RD, authoritative, recursion available
    reply_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
    header = struct.pack("!HHHHHH", ident, reply_flags, 1, 1 if records else 0, 0, 0)
    return header + packet[12:end] + records


class Responder:
    """127.0.0.1:53 (or `bind`:53) in this namespace, answering each name as `script` says
    ({name: how}; any other name gets NXDOMAIN), and recording the questions as (name, type)
    in `asked`."""

    def __init__(self, script: dict[str, str], addresses: dict[str, dict[int, bytes]] | None = None,
                 bind: str = "127.0.0.1"):
        self.script, self.addresses = script, addresses or {}
        self.asked: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 53))
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="dns-responder", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.sock, self._stop_r], [], [], 5.0)
            if self._stop_r in ready:
                return
            if not ready:
                continue
            packet, peer = self.sock.recvfrom(4096)
            try:
                _, _, name, qtype, _ = parse_question(packet)
            except (ValueError, IndexError, struct.error):
                continue  # not a query we can read: a real server would answer FORMERR
            self.asked.append((name, QTYPES.get(qtype, str(qtype))))
            reply = answer(packet, self.script.get(name, "NXDOMAIN"), self.addresses.get(name, {}))
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(2.0)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self.sock.close()

    def __enter__(self) -> Responder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
