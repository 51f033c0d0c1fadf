"""What a scenario needs from the running kernel besides a namespace: knobs and kernel features.

A scenario lists them in `needs` beside "netns" and "tun":

    "sysctl:net.ipv4.tcp_syn_linear_timeouts"   the knob exists where the scenario runs
    "btf:TCP_BOUND_INACTIVE"                     the running kernel's BTF names it
    "vm:fs.file-max"                             the scenario changes this machine-wide setting,
                                                 so it runs only inside the VM runner's guest

A kernel that lacks one is a finding about that kernel, not a fault of the scenario: the run is
skipped with a reason that says what is missing and where. The lab's sysctl writer says the same
for a knob a scenario writes without declaring it. A "vm:" scenario on any other machine is
skipped too: a setting no namespace isolates would reach every process of the host.
"""

from __future__ import annotations

import os
import platform

from ..machine.netns import sysctl_path

BTF = "/sys/kernel/btf/vmlinux"
# On the kernel command line of the VM runner's guest (vm.qemu_command) and nowhere else: the
# command line is set by whoever boots the kernel, so no process of a host can make it appear.
GUEST_FLAG = "tcpkb.guest=1"
CMDLINE = "/proc/cmdline"
# The knobs of the runner's own (initial) namespace, listed before any scenario forks: a child
# inside a fresh namespace can no longer see them, but must tell "absent on this kernel" from
# "machine-wide on this kernel".
_host_sysctls: frozenset[str] | None = None


def snapshot_host_sysctls(root: str = "/proc/sys/net") -> None:
    global _host_sysctls
    names = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("conf", "neigh")]  # per device: not knobs we need
        rel = os.path.relpath(folder, "/proc/sys").replace(os.sep, ".")
        names.update(f"{rel}.{f}" for f in files)
    _host_sysctls = frozenset(names)


def missing_sysctl(name: str) -> str:
    """Why a knob that `sysctl_path(name)` does not show is missing, in words."""
    kernel = platform.release()
    if _host_sysctls is not None and name in _host_sysctls:
        return f"needs {name} in a network namespace; on {kernel} it is machine-wide (initial namespace only)"
    return f"needs {name}, absent on {kernel}"


def btf_names(name: str) -> bool | None:
    """Does the running kernel's BTF carry `name` (a type, enum value or function)? None: no BTF."""
    try:
        with open(BTF, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return b"\0" + name.encode() + b"\0" in data


def in_vm() -> bool:
    """Is this the guest `tcpkb verify --kernel` booted (its kernel command line says so)?"""
    try:
        with open(CMDLINE) as f:
            return GUEST_FLAG in f.read().split()
    except OSError:
        return False


def only_in_vm(setting: str) -> str:
    return f"changes {setting} for the whole machine: runs only in a VM (tcpkb verify --kernel)"


def unmet(needs: frozenset | tuple) -> str | None:
    """The first declared need this kernel does not meet, as a skip reason (None: all met).
    Called where the scenario will run: inside its namespace when it has one."""
    for need in sorted(needs):
        kind, _, name = need.partition(":")
        if kind == "sysctl" and not os.path.exists(sysctl_path(name)):
            return missing_sysctl(name)
        # a kernel without BTF cannot say: the scenario runs and its own checks decide
        if kind == "btf" and btf_names(name) is False:
            return f"needs {name}, which {platform.release()} does not define (absent from its BTF)"
        if kind == "vm" and not in_vm():
            return only_in_vm(name)
    return None
