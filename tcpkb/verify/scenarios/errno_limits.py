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
          "so does accept() on a listener with a connection waiting; the connection stays queued. With CAP_SYS_ADMIN raised again, socket() succeeds over "
          "the limit (root is exempt, alloc_empty_file()), and once fs.file-max is restored the "
          "same accept() returns the queued connection.",
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
