"""Errors of kernel limits: the system-wide file table (ENFILE) and socket option memory
(ENOBUFS, ENOMEM).

fs.file-max is one number for the whole machine, which no namespace isolates: the ENFILE
scenario lowers it, so it declares "vm:fs.file-max" and runs only in the VM runner's guest
(`tcpkb verify --kernel`), where every other process is root and exempt from the limit. The
option-memory ones stay within one socket's allowance (net.core.optmem_max) and run anywhere.
"""

from __future__ import annotations

import ctypes
import os
import resource
import socket
import struct

from .. import scenario

_libc = ctypes.CDLL(None, use_errno=True)
CAP_SYS_ADMIN = 21
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _effective(cap: int, on: bool) -> None:
    """Raise or lower one capability in this thread's effective set; it stays permitted, so it
    can be raised again (capset(2))."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    word, bit = divmod(cap, 32)
    if on:
        data[word].effective |= 1 << bit
    else:
        data[word].effective &= ~(1 << bit)
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _files_allocated() -> int:
    with open("/proc/sys/fs/file-nr") as f:
        return int(f.read().split()[0])


# -- ENFILE -----------------------------------------------------------------

FILE_MAX = 16  # below what any running system has open: only the estimate's slack is left

def _fill_file_table(lab, spares: list, limit: int) -> None:
    """Open sockets (untraced) until socket() fails; the failure must be ENFILE, not EMFILE."""
    def fill():
        while len(spares) < limit:
            try:
                spares.append(socket.socket())
            except OSError as e:
                return f"{len(spares)} sockets opened, then {os.strerror(e.errno)}"
        raise OSError(0, f"{limit} sockets opened and none refused")
    r = lab.call(None, f"socket() x N, up to {limit}, until one fails", fill)
    lab.expect(r.ok and "Too many open files in system" in r.value,
               f"filling the file table stopped at ENFILE ({r.value if r.ok else r.errno})")


@scenario(
    claim="With fs.file-max lowered to 16, below what the machine already has open, and "
          "CAP_SYS_ADMIN dropped from the effective set, socket() fails with ENFILE (after at most "
          "a few dozen sockets that the kernel's per-CPU estimate of the count lets through), and "
          "so does accept() on a listener with a connection waiting; the connection stays queued. "
          "With CAP_SYS_ADMIN raised again, socket() succeeds over the limit (root is exempt, "
          "alloc_empty_file()), and once fs.file-max is restored the "
          "same accept() returns the queued connection. The kernel logs \"VFS: file-max limit 16 "
          "reached\".",
    proves=["errno:ENFILE", "call:socket", "call:accept"],
    needs=("netns", "vm:fs.file-max"),
    timeout=10.0,
)
def file_table_full_fails_socket_and_accept_enfile(lab):
    listener = lab.listener(backlog=4)
    client = lab.socket("client")
    client.connect(listener.local).value  # completed by the kernel, waiting to be accepted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # so that EMFILE cannot come first
    spares: list[socket.socket] = []
    try:
        lab.note(f"files allocated (fs.file-nr, a per-CPU estimate): {_files_allocated()}")
        lab.machine_sysctl("fs.file-max", FILE_MAX)
        _effective(CAP_SYS_ADMIN, False)
        lab.note("CAP_SYS_ADMIN dropped from the effective set")
        _fill_file_table(lab, spares, min(hard - 64, 1024))
        lab.expect_errno(lab.call(None, "extra = socket(AF_INET, SOCK_STREAM)", socket.socket), "ENFILE")
        lab.expect_errno(listener.accept(), "ENFILE")
        _effective(CAP_SYS_ADMIN, True)
        lab.note("CAP_SYS_ADMIN raised again")
        root = lab.call(None, "privileged = socket(AF_INET, SOCK_STREAM)", socket.socket)
        lab.expect_ok(root)
        root.value.close()
    finally:
        _effective(CAP_SYS_ADMIN, True)
        lab.restore_machine()
        for s in spares:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    server = listener.accept().value
    lab.expect(server.remote == client.local, "the connection accept() refused was still queued")
    logged = [line for line in _kernel_log() if f"VFS: file-max limit {FILE_MAX} reached" in line]
    lab.expect(bool(logged), f"the kernel logged the limit ({logged[0] if logged else 'no such line'})")


def _kernel_log() -> list[str]:
    """Every message in the kernel's ring buffer now (/dev/kmsg, read until it has no more)."""
    lines = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                return lines
            except BrokenPipeError:  # a record was overwritten while reading: go on
                continue
            lines.append(record.decode(errors="replace").partition(";")[2].strip())
    finally:
        os.close(fd)


# -- option memory: net.core.optmem_max ---------------------------------------

TCP_MD5SIG = 14


def _optmem_max() -> int | None:
    """net.core.optmem_max as a socket of this namespace is charged against it, or None where the
    knob is machine-wide and only the initial namespace lists it (6.1; per namespace on 6.12)."""
    try:
        with open("/proc/sys/net/core/optmem_max") as f:
            return int(f.read())
    except OSError:
        return None


def _md5sig(address: str, key: bytes = b"k" * 16) -> bytes:
    """struct tcp_md5sig for an IPv4 peer: sockaddr_storage, flags, prefixlen, keylen, ifindex, key."""
    peer = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + socket.inet_aton(address)
    return peer.ljust(128, b"\0") + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(80, b"\0")


@scenario(
    claim="Each TCP_MD5SIG key a socket holds is charged to its option memory: adding keys for "
          "one peer address after another, setsockopt(TCP_MD5SIG) fails with ENOMEM once the keys "
          "reach net.core.optmem_max (the key's sock_kmalloc() fails), and succeeds again "
          "for a new key once one is deleted.",
    proves=["errno:ENOMEM", "call:setsockopt"],
    timeout=10.0,
)
def md5_keys_beyond_optmem_max_fail_enomem(lab):
    listener = lab.socket("listener")
    limit = _optmem_max()
    lab.note(f"net.core.optmem_max here: {limit if limit is not None else 'not per namespace'}")
    added = []

    def add_until_refused():
        for i in range(20000):
            address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            try:
                listener.sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, _md5sig(address))
            except OSError as e:
                if not added:
                    raise
                return f"{len(added)} keys added, then {os.strerror(e.errno)}"
            added.append(address)
        raise OSError(0, "20000 keys added and none refused")
    lab.call(listener, "setsockopt(TCP_MD5SIG) for one address after another", add_until_refused).value
    refused = f"10.99.{len(added) >> 8 & 255}.{len(added) & 255}"
    full = listener.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, _md5sig(refused),
                               label=f"TCP_MD5SIG {refused}")
    lab.expect_errno(full, "ENOMEM")
    listener.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, _md5sig(added[-1], b""),
                        label=f"TCP_MD5SIG {added[-1]}, no key (delete)").value
    lab.expect_ok(listener.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, _md5sig(refused),
                                      label=f"TCP_MD5SIG {refused}"))


@scenario(
    claim="sendmsg() on a connected TCP socket with ancillary data larger than "
          "net.core.optmem_max fails with ENOBUFS before any byte is sent: the kernel cannot "
          "charge a control buffer that size to the socket (sock_kmalloc() in ____sys_sendmsg()). "
          "The same message with a 4 KiB control buffer is accepted (TCP ignores SCM_RIGHTS) "
          "and its byte delivered.",
    proves=["errno:ENOBUFS", "call:send"],
)
def sendmsg_control_beyond_optmem_max_fails_enobufs(lab):
    _, client, server = lab.connected_pair()
    limit = _optmem_max()
    lab.note(f"net.core.optmem_max here: {limit if limit is not None else 'not per namespace'}")
    size = 1 << 20  # past the defaults (20480 on 6.1, 131072 on 6.12) and any sane setting
    if limit is not None:
        lab.expect(size > limit, f"a {size}-byte control buffer exceeds optmem_max ({limit})")

    def sendmsg(length: int):
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"\0" * (length - 16))]
        return lab.call(client, f"sendmsg(1 byte, {length}-byte control message)",
                        lambda: client.sock.sendmsg([b"x"], ancillary))
    lab.expect_errno(sendmsg(size), "ENOBUFS")
    lab.expect(server.readable(0.1) is False, "nothing reached the peer")
    lab.expect(sendmsg(4096).value == 1, "the small control buffer was accepted")
    lab.expect(server.recv().value == b"x", "the peer got the byte of the second sendmsg()")
