"""A fresh network namespace per run, and the few ioctls and sysctls used inside it.

A forked child calls unshare(CLONE_NEWNET) and owns a namespace with nothing
in it but a loopback device, which it brings up. When the child exits the
kernel destroys the namespace with every socket, TUN device and nftables rule
in it, so nothing a scenario creates can outlive its run. As root the child
unshares the network namespace alone; without root it first unshares a user
namespace (where the distribution allows it), which gives it the same
powers over its own network and none over the host's.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import fcntl
import os
import socket
import struct

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
SIOCSIFADDR, SIOCSIFNETMASK = 0x8916, 0x891C
IFF_UP = 0x1
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000

_libc = ctypes.CDLL(None, use_errno=True)
_inside = False  # True once this process is in a namespace it created


class IsolationError(Exception):
    """The namespace could not be made: the run is skipped, not failed."""


def die_with_parent(sig: int = 9) -> None:
    """If the runner is killed outright, its children go with it (sent `sig`; 0 undoes it)."""
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def enter_new_netns(own_hash_table: bool = True) -> str:
    """Move this process into a new network namespace with lo up. Returns how.

    own_hash_table=False leaves the namespace exactly as the kernel makes it, for reading the
    defaults it computes from the hash table (tcp_max_tw_buckets, tcp_max_syn_backlog).
    """
    global _inside
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWNET) != 0:
        first = ctypes.get_errno()
        if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            raise IsolationError("cannot create a network namespace "
                                 f"({errno_mod.errorcode.get(first, first)}): run as root, "
                                 "or allow unprivileged user namespaces")
        # A process that changed uid is not dumpable, and its /proc files are root's.
        _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        except OSError as e:
            raise IsolationError(f"cannot map this user into a user namespace: {e.strerror}") from None
        how = "user+net namespace"
    else:
        how = "net namespace"
    _inside = True
    # The namespace shares the host's large established-hash table, which
    # /proc/net/tcp walks in full (milliseconds per read). A namespace made from
    # inside this one gets a small table of its own.
    if not own_hash_table:
        link_up("lo")
        return how
    try:
        _write("/proc/sys/net/ipv4/tcp_child_ehash_entries", "256")
        if _libc.unshare(CLONE_NEWNET) == 0:
            how += ", own TCP hash table"
    except OSError:
        pass
    link_up("lo")
    return how


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\0")


def link_up(name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("H", fcntl.ioctl(s, SIOCGIFFLAGS, _ifreq(name))[16:18])[0]
        fcntl.ioctl(s, SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags | IFF_UP)))


def add_ipv4(name: str, address: str, netmask: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for request, value in ((SIOCSIFADDR, address), (SIOCSIFNETMASK, netmask)):
            sockaddr = struct.pack("=H2s4s", socket.AF_INET, b"", socket.inet_aton(value))
            fcntl.ioctl(s, request, _ifreq(name, sockaddr))


def open_tun(name: str) -> int:
    """Create TUN device `name` in this namespace; return its fd (raw IP packets, no header)."""
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise IsolationError("no usable /dev/net/tun (needs root and the tun module)")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as e:
        os.close(fd)
        raise IsolationError(f"cannot create a TUN device: {e.strerror}") from None
    return fd


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def read_sysctl(name: str) -> str:
    with open(sysctl_path(name)) as f:
        return " ".join(f.read().split())


def set_sysctl(name: str, value) -> None:
    """Set a per-namespace sysctl, only ever inside a namespace this process created."""
    if not _inside:
        raise RuntimeError(f"refusing to set {name} outside a scenario's own namespace")
    _write(sysctl_path(name), str(value))


def in_new_namespace(fn, timeout: float = 10.0, own_hash_table: bool = True):
    """Run fn() in a forked child inside a fresh network namespace; return what it returns (JSON-able).

    For checks that read the host and a namespace side by side. Raises
    IsolationError when no namespace can be made or the child fails.
    """
    return in_child(lambda: enter_new_netns(own_hash_table), fn, timeout)


def in_namespace_at(path: str, fn, timeout: float = 10.0):
    """Run fn() in a forked child that has joined the network namespace at `path`
    (/run/netns/NAME, /proc/PID/ns/net, or any bind mount of one); return its JSON-able result.

    Only the child calls setns(), so this process never leaves its own namespace.
    """
    def enter() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                why = " (setns() needs CAP_SYS_ADMIN: run as root)" if err == errno_mod.EPERM else ""
                raise IsolationError(f"cannot enter the network namespace {path}: {os.strerror(err)}{why}")
        finally:
            os.close(fd)

    return in_child(enter, fn, timeout)


def in_child(enter, fn, timeout: float):
    """enter() then fn() in a forked child; its JSON comes back over a pipe.

    The wait is bounded as a whole (`timeout` seconds from the fork), and the child is
    killed and reaped on every path: result, error, timeout, or an exception here.
    """
    import json
    import select
    import signal
    import time

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            die_with_parent()
            enter()
            os.write(write_end, json.dumps(fn()).encode())
            status = 0
        except BaseException as e:  # the parent reports it; a child must never return
            os.write(write_end, json.dumps({"__error__": f"{type(e).__name__}: {e}"}).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0 and select.select([read_end], [], [], left)[0]:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    try:
        result = json.loads(b"".join(chunks))
    except ValueError:
        raise IsolationError("the namespace child returned nothing in time") from None
    if isinstance(result, dict) and "__error__" in result:
        raise IsolationError(result["__error__"])
    return result


def namespace_path(spec: str) -> str:
    """NAME (as `ip netns add` makes under /run/netns), PID (/proc/PID/ns/net) or a PATH bound to
    a network namespace -> the path to open. Raises ValueError with a one-line reason."""
    if spec.isdigit():
        path = f"/proc/{spec}/ns/net"
        if not os.path.exists(path):
            raise ValueError(f"no process {spec} (or its namespace cannot be seen)")
    elif "/" in spec:
        path = spec
    else:
        path = os.path.join("/run/netns", spec)
    try:
        st = os.stat(path)
    except OSError as e:
        raise ValueError(f"no network namespace at {path}: {e.strerror}") from None
    if st.st_dev != os.stat("/proc/self/ns/net").st_dev:
        raise ValueError(f"{path} is not a network namespace (nsfs) file")
    return path


def enter_netns(path: str) -> int:
    """Move this thread into the network namespace at `path` (setns); returns its inode, which
    is how /proc/PID/ns/net names it for every process inside."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise IsolationError(f"cannot enter the namespace {path}: {os.strerror(err)}")
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)
