"""The kernel's tracepoints as tracefs describes them: which exist, and the names of their enums.

Reading a format file needs root (tracefs is mode 0700). When tracefs is not mounted, it is
mounted for the read and unmounted after, so nothing is left behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_SYMBOL = re.compile(r'\{\s*(-?\d+)\s*,\s*"([A-Za-z0-9_]+)"\s*\}')


class TracefsUnavailable(Exception):
    """No tracefs here (not root, not mountable, or the event does not exist)."""


def read_format(event: str) -> str:
    """The format file of `event` ("tcp/tcp_send_reset")."""
    for root in MOUNTS:
        path = os.path.join(root, "events", event, "format")
        if os.path.isdir(os.path.join(root, "events")):
            return _read(path)
    return _read_from_own_mount(event)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise TracefsUnavailable(f"this kernel has no tracepoint {path.split('/events/')[-1][:-7]}") from None
    except OSError as e:
        raise TracefsUnavailable(f"cannot read {path}: {e.strerror}") from None


def _read_from_own_mount(event: str) -> str:
    where = tempfile.mkdtemp(prefix="tcpkb-tracefs-")
    try:
        mounted = subprocess.run(["mount", "-t", "tracefs", "nodev", where], capture_output=True,
                                 timeout=10).returncode == 0
        if not mounted:
            raise TracefsUnavailable("tracefs is not mounted and cannot be mounted here (root needed)")
        try:
            return _read(os.path.join(where, "events", event, "format"))
        finally:
            subprocess.run(["umount", where], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TracefsUnavailable(f"cannot mount tracefs: {e}") from None
    finally:
        os.rmdir(where)


def enum_values(event: str, field: str) -> dict[str, int]:
    """The symbolic names a tracepoint prints for one field (`reason` of tcp_send_reset), with
    their numbers on this kernel, read from the __print_symbolic() of its print fmt."""
    text = read_format(event)
    fmt = text.split("print fmt:", 1)[-1]
    start = fmt.find(f"REC->{field} ")
    start = fmt.find(f"REC->{field},") if start < 0 else start
    if start < 0:
        raise TracefsUnavailable(f"{event} has no symbolic field {field!r} on this kernel")
    # the symbol table for the field runs to the closing parenthesis of its __print_symbolic
    body = fmt[start:]
    depth, end = 0, len(body)
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            end = i
            break
    return {name: int(n) for n, name in _SYMBOL.findall(body[:end])}
