"""The kernel's tracepoints as tracefs describes them: which exist, and the names of their enums.

Reading a format file needs root (tracefs is mode 0700). When tracefs is not mounted, it is
mounted for the read and unmounted after, so nothing is left behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time

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


# --- recording events in an instance of our own --------------------------------------------

EVENTS = ("tcp/tcp_send_reset", "tcp/tcp_receive_reset", "sock/inet_sk_error_report",
          "skb/kfree_skb", "tcp/tcp_retransmit_skb", "sock/inet_sock_set_state",
          "tcp/tcp_probe")  # tcp_probe only ties sockets and packets to ports (verify/events.py)
PREFIX = "tcpkb-"
_LINE = re.compile(r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+"
                   r"(?P<ts>\d+\.\d+): (?P<event>\w+): (?P<body>.*)$")
_FIELD = re.compile(r"(\w+)(?:=|: )(\S+)")
_ENDPOINT = re.compile(r"^\[?([0-9a-fA-F.:]+?)\]?:(\d+)$")


def tracing_root() -> str:
    """Where tracefs is mounted; mounted at its standard place when it is not (root only)."""
    for root in MOUNTS:
        if os.path.isdir(os.path.join(root, "events")):
            return root
    try:
        done = subprocess.run(["mount", "-t", "tracefs", "nodev", MOUNTS[0]], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        done = False
    if not done or not os.path.isdir(os.path.join(MOUNTS[0], "events")):
        raise TracefsUnavailable("tracefs is not mounted and cannot be mounted here (root needed)")
    return MOUNTS[0]


def sweep_stale(root: str) -> list[str]:
    """Remove instances left by tcpkb processes that no longer exist (a parent killed with
    SIGKILL cannot clean up after itself; the next run does)."""
    removed = []
    base = os.path.join(root, "instances")
    for name in os.listdir(base) if os.path.isdir(base) else ():
        pid = name[len(PREFIX):].split("-")[0]
        if name.startswith(PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            if _remove_instance(os.path.join(base, name)):
                removed.append(name)
    return removed


def _write(path: str, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
        return True
    except OSError:
        return False


def _remove_instance(path: str) -> bool:
    _write(os.path.join(path, "events", "enable"), "0")
    for _ in range(50):  # rmdir fails with EBUSY while a reader still has a file open
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Tracer:
    """Records tracepoints into a tracefs instance of its own, named tcpkb-<pid>-<tag>: the
    global buffer and other users' instances are never touched, and `close()` removes it.

    `filters` maps an event to a tracefs filter expression, applied in the kernel. `guard`
    forks a small keeper that removes the instance when this process dies in any way, SIGKILL
    included (the keeper sees its pipe close); without it the next Tracer's sweep does."""

    def __init__(self, tag: str, events: tuple[str, ...] = EVENTS, buffer_kb: int = 4096,
                 filters: dict[str, str] | None = None, guard: bool = False):
        root = tracing_root()
        sweep_stale(root)
        self.path = os.path.join(root, "instances", f"{PREFIX}{os.getpid()}-{tag}")
        self._keeper = _start_keeper(self.path) if guard else None
        try:
            os.mkdir(self.path)
        except OSError as e:
            self._stop_keeper()
            raise TracefsUnavailable(f"cannot create a tracefs instance: {e.strerror}") from None
        _write(os.path.join(self.path, "buffer_size_kb"), str(buffer_kb))
        _write(os.path.join(self.path, "trace_clock"), "mono")  # time.monotonic()'s clock
        for event, expression in (filters or {}).items():
            _write(os.path.join(self.path, "events", event, "filter"), expression)
        self.enabled = [e for e in events if _write(os.path.join(self.path, "events", e, "enable"), "1")]
        self.missing = [e for e in events if e not in self.enabled]
        # trace_pipe, opened once and read without blocking: each open of the `trace` file waits
        # for an RCU grace period and pauses recording, which a busy VM turns into seconds
        self._pipe = os.open(os.path.join(self.path, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        self._partial, self._events = b"", []

    def take(self, max_bytes: int = 1 << 20) -> list[dict]:
        """Events recorded since the last take(), parsed, in order: what `max_bytes` of the buffer
        holds, so a live reader prints as it goes while the kernel keeps writing."""
        new = []
        for _ in range(max(1, max_bytes >> 16)):  # 64 KiB at a time
            try:
                chunk = os.read(self._pipe, 1 << 16)
            except OSError:  # BlockingIOError: nothing more for now
                break
            if not chunk:
                break
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            new += [e for e in (parse_line(x.decode("utf-8", "replace")) for x in lines) if e]
        return new

    def read(self) -> list[dict]:
        """Every event recorded so far, parsed, in order."""
        for _ in range(625):  # bounded: 625 takes of 1 MiB
            more = self.take()
            if not more:
                break
            self._events += more
        return list(self._events)

    def wait(self, timeout: float) -> None:
        """Until the buffer has something to read, or `timeout` seconds."""
        import select

        try:
            select.select([self._pipe], [], [], timeout)
        except InterruptedError:
            pass

    def close(self) -> None:
        try:
            os.close(self._pipe)
        except OSError:
            pass
        _remove_instance(self.path)
        self._stop_keeper()

    def _stop_keeper(self) -> None:
        if self._keeper:
            pid, write_end = self._keeper
            self._keeper = None
            os.close(write_end)  # the keeper reads EOF, finds the instance gone, and exits
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _start_keeper(path: str) -> tuple[int, int]:
    """Fork a process that waits for this one to end (its pipe's write end closes, however this
    process dies) and then removes the instance at `path`. Forked before the instance exists,
    so it holds none of the instance's files open."""
    import signal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            # hold nothing of the parent's open: a pipe it writes to must see EOF when it ends
            os.closerange(0, read_end)
            os.closerange(read_end + 1, os.sysconf("SC_OPEN_MAX"))
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_IGN)  # Ctrl-C reaches the whole group: outlive it
            while True:
                try:
                    if not os.read(read_end, 64):
                        break
                except InterruptedError:
                    continue
            if os.path.isdir(path):
                _remove_instance(path)
        finally:
            os._exit(0)
    os.close(read_end)
    return pid, write_end


def parse_line(line: str) -> dict | None:
    """One line of a trace buffer -> {event, t, cpu, pid, task, and the event's fields}:
    endpoints split into addresses and ports, `reason: X` read like `reason=X`."""
    m = _LINE.match(line)
    if not m:
        return None
    out: dict = {"event": m["event"], "t": float(m["ts"]), "cpu": int(m["cpu"]),
                 "pid": int(m["pid"]), "task": m["task"].strip(),
                 # the irq-info column's third letter: s/h/H/z/Z when the event ran in an
                 # interrupt, where pid and task are merely whoever the CPU happened to be running
                 "interrupt": len(m["flags"]) >= 3 and m["flags"][2] in "shHzZ"}
    for key, value in _FIELD.findall(m["body"]):
        if key in ("src", "dest") and (ep := _ENDPOINT.match(value)):
            side = "s" if key == "src" else "d"
            out[f"{side}addr"], out[f"{side}port"] = ep[1], int(ep[2])
        elif key in ("sport", "dport", "error", "protocol") and value.lstrip("-").isdigit():
            out[key] = int(value)
        elif key not in out:
            out[key] = value
    return out
