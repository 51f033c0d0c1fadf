"""The network namespaces of this machine, and the one `--netns NAME|PID|PATH` names.

A namespace is known by the inode of its nsfs file. Processes show theirs as
/proc/<pid>/ns/net; `ip netns add NAME` bind-mounts one at /run/netns/NAME, which
keeps it alive with no process in it. A namespace is described as
{"inode", "name", "path", "pids", "pid", "comm", "label"}: `path` is what a child
opens to setns() into it, `pids` the processes in it (for the owners of sockets).
"""

from __future__ import annotations

import os

from ..machine.proc import process_name

RUN_NETNS = "/run/netns"


class NoNamespace(Exception):
    """--netns names nothing that is a network namespace."""


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _by_process() -> dict[int, list[int]]:
    """nsfs inode -> the pids in that namespace, lowest first."""
    groups: dict[int, list[int]] = {}
    try:
        pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
    except OSError:
        return groups
    for pid in pids:
        inode = _inode(f"/proc/{pid}/ns/net")
        if inode is not None:
            groups.setdefault(inode, []).append(pid)
    return groups


def _named() -> dict[int, str]:
    """nsfs inode -> its name under /run/netns (the first name when there are several)."""
    try:
        names = sorted(os.listdir(RUN_NETNS))
    except OSError:
        return {}
    out: dict[int, str] = {}
    for name in names:
        inode = _inode(f"{RUN_NETNS}/{name}")
        if inode is not None and _is_nsfs(f"{RUN_NETNS}/{name}"):
            out.setdefault(inode, name)
    return out


def _is_nsfs(path: str) -> bool:
    """A file under /run/netns that is not mounted over (left after a crash) is an empty file."""
    try:
        return os.stat(path).st_dev != os.stat(RUN_NETNS).st_dev
    except OSError:
        return False


def describe(inode: int, path: str, name: str | None, pids: list[int]) -> dict:
    pid = pids[0] if pids else None
    comm = process_name(pid) if pid else None
    label = name or f"net:[{inode}]" + (f" pid {pid} ({comm or '?'})" if pid else "")
    return {"inode": inode, "name": name, "path": path, "pids": pids, "pid": pid, "comm": comm,
            "label": label}


def every() -> list[dict]:
    """Every network namespace a process is in or a name under /run/netns holds, by inode."""
    processes, named = _by_process(), _named()
    out = []
    for inode in sorted(set(processes) | set(named)):
        pids = processes.get(inode, [])
        name = named.get(inode)
        path = f"{RUN_NETNS}/{name}" if name else f"/proc/{pids[0]}/ns/net"
        out.append(describe(inode, path, name, pids))
    return out


def current() -> dict:
    """The namespace this process is in."""
    inode = _inode("/proc/self/ns/net") or 0
    return describe(inode, "/proc/self/ns/net", _named().get(inode), [])


def resolve(spec: str) -> dict:
    """NAME (under /run/netns), PID (/proc/PID/ns/net) or a PATH to a namespace file."""
    if "/" in spec:
        path = spec
    elif spec.isdigit():
        path = f"/proc/{spec}/ns/net"
    else:
        path = f"{RUN_NETNS}/{spec}"
    try:
        inode = os.stat(path).st_ino
    except PermissionError:
        raise NoNamespace(f"--netns {spec}: not allowed to read {path} (reading another "
                          "namespace needs root)") from None
    except OSError:
        inode = None
    if inode is None:
        where = {f"/proc/{spec}/ns/net": f"no process {spec}", f"{RUN_NETNS}/{spec}":
                 f"no namespace named {spec} in {RUN_NETNS}"}.get(path, f"no such file {path}")
        raise NoNamespace(f"--netns {spec}: {where}")
    if path.startswith(RUN_NETNS + "/") and not _is_nsfs(path):
        raise NoNamespace(f"--netns {spec}: {path} is not a mounted namespace (stale name?)")
    pids = _by_process().get(inode, [])
    return describe(inode, path, _named().get(inode), pids)
