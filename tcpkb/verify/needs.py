"""What a scenario needs from the running kernel besides a namespace: knobs and kernel features.

A scenario lists them in `needs` beside "netns" and "tun":

    "sysctl:net.ipv4.tcp_syn_linear_timeouts"   the knob exists where the scenario runs
    "btf:TCP_BOUND_INACTIVE"                     the running kernel's BTF names it

A kernel that lacks one is a finding about that kernel, not a fault of the scenario: the run is
skipped with a reason that says what is missing and where. The lab's sysctl writer says the same
for a knob a scenario writes without declaring it.
"""

from __future__ import annotations

import os
import platform

from ..machine.netns import sysctl_path

BTF = "/sys/kernel/btf/vmlinux"
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
    return None
