"""The lab a scenario works in: traced sockets, TCP states, packets and counters.

Every socket call goes through `Lab.call`, which records the call, its result
or errno name, and the TCP state of every socket in the lab afterwards. States
come from TCP_INFO (byte 0 is tcpi_state) while a descriptor is open, and from
/proc/net/tcp once it is closed: TIME_WAIT, orphaned FIN_WAIT2/LAST_ACK and
half-open SYN_RECV connections live in kernel objects no descriptor reaches.

Expectations (`expect_errno`, `expect_state`, `expect_packets` …) are recorded
in the trace too and raise ScenarioFailed when they do not hold. Waits are
polls bounded in time; the runner's watchdog bounds the whole scenario.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import time

from ..machine.netns import read_sysctl, set_sysctl, sysctl_path
from ..machine.proc import tcp_sockets
from . import events, timing
from .capture import Capture
from .needs import in_vm, missing_sysctl, only_in_vm
from .trace_schema import SCHEMA_VERSION as TRACE_SCHEMA_VERSION

# include/net/tcp_states.h. The `state_numbers` check holds the notes to what
# TCP_INFO reports on live sockets; this table only decodes the byte.
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE"}
TCP_INFO = 11
SIOCOUTQNSD = 0x894B  # bytes in the send queue not yet sent
IPPROTO_SCTP = 132
POLL_S = 0.005
OPTION_LEVELS = {"SO_": socket.SOL_SOCKET, "TCP_": socket.IPPROTO_TCP, "IP_": socket.IPPROTO_IP,
                 "IPV6_": socket.IPPROTO_IPV6}


class ScenarioFailed(Exception):
    """An expectation did not hold: the kernel did something else."""


class Skip(Exception):
    """The scenario cannot run here (no TUN, no nft …): skipped with this reason."""


# Python names a few numbers by a libc alias; the kernel (and the notes) use these.
KERNEL_NAMES = {95: "EOPNOTSUPP", 35: "EDEADLK"}


def errno_name(number: int) -> str | None:
    return KERNEL_NAMES.get(number) or errno_mod.errorcode.get(number)


class Result:
    """What one call returned: a value, or an errno name."""

    def __init__(self, call: str, value=None, error: OSError | None = None):
        self.call = call
        self._value = value
        self.errno = errno_name(error.errno) if error is not None and error.errno else None
        self.error = None if error is None else (error.strerror or str(error))

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def value(self):
        if not self.ok:
            raise ScenarioFailed(f"{self.call} failed: {self.errno or ''} {self.error}".strip())
        return self._value

    def __repr__(self) -> str:
        return f"{self.call} -> {self._value!r}" if self.ok else f"{self.call} -> {self.errno}"


def _shown(value) -> str | int | None:
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, bytes):
        return f"{len(value)} bytes" if len(value) > 24 else repr(value)
    if isinstance(value, socket.socket):
        return f"fd {value.fileno()}"
    if isinstance(value, TracedSocket):
        return f"<{value.name}>"
    if isinstance(value, tuple):
        return ", ".join(str(_shown(v)) for v in value)
    return repr(value)


class TracedSocket:
    """A socket whose calls are recorded in the lab's trace under a name."""

    def __init__(self, lab: Lab, name: str, sock: socket.socket):
        self.lab, self.name, self.sock = lab, name, sock
        self.local: tuple | None = None
        self.remote: tuple | None = None
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def _addresses(self) -> None:
        try:
            local = self.sock.getsockname()[:2]
            if local[1]:  # port 0: not bound (yet, or any more)
                self.local = local
            self.remote = self.sock.getpeername()[:2]
        except OSError:
            pass

    def bind(self, address) -> Result:
        r = self.lab.call(self, f"bind({_addr(address)})", lambda: self.sock.bind(address))
        self._addresses()
        return r

    def listen(self, backlog: int = 16) -> Result:
        return self.lab.call(self, f"listen({backlog})", lambda: self.sock.listen(backlog))

    def connect(self, address) -> Result:
        began = self.lab._ms()
        r = self.lab.call(self, f"connect({_addr(address)})", lambda: self.sock.connect(address))
        self._addresses()
        if self.local is None or self.local[0] in ("0.0.0.0", "::"):
            # a failed connect drops its address (and may give its port back): the SYN has both
            syns = [p for p in self.lab._captured() if p.get("proto") == "tcp" and "S" in p["flags"]
                    and "." not in p["flags"] and (p["dst"], p["dport"]) == tuple(address[:2])
                    and p["t_ms"] >= began]
            if syns:
                self.local = (syns[-1]["src"], syns[-1]["sport"])
        return r

    def accept(self, name: str = "server") -> Result:
        def do():
            conn, _ = self.sock.accept()
            traced = self.lab.adopt(name, conn)
            return traced
        return self.lab.call(self, "accept()", do)

    def send(self, data: bytes, flags: int = 0) -> Result:
        return self.lab.call(self, f"send({_shown(data)}{_flags(flags)})", lambda: self.sock.send(data, flags))

    def sendto(self, data: bytes, address, flags: int = 0) -> Result:
        return self.lab.call(self, f"sendto({_shown(data)}, {_addr(address)})",
                             lambda: self.sock.sendto(data, flags, address))

    def recv(self, size: int = 65536, flags: int = 0) -> Result:
        return self.lab.call(self, f"recv({size}{_flags(flags)})", lambda: self.sock.recv(size, flags))

    def shutdown(self, how: int) -> Result:
        name = {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"}[how]
        return self.lab.call(self, f"shutdown({name})", lambda: self.sock.shutdown(how))

    def close(self) -> Result:
        self._addresses()
        r = self.lab.call(self, "close()", self._close)
        return r

    def _close(self) -> None:
        self.closed = True
        self.sock.close()

    def setsockopt(self, level: int, option: int, value, label: str | None = None) -> Result:
        label = label or f"{level}, {option}"
        return self.lab.call(self, f"setsockopt({label}, {_shown(value)})",
                             lambda: self.sock.setsockopt(level, option, value))

    def getsockopt(self, level: int, option: int, size: int | None = None, label: str | None = None) -> Result:
        label = label or f"{level}, {option}"
        if size is None:
            return self.lab.call(self, f"getsockopt({label})", lambda: self.sock.getsockopt(level, option))
        return self.lab.call(self, f"getsockopt({label})", lambda: self.sock.getsockopt(level, option, size))

    def set_blocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def linger(self, onoff: int, seconds: int) -> Result:
        return self.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", onoff, seconds),
                               label=f"SO_LINGER {{{onoff}, {seconds}}}")

    def state(self) -> str:
        """The TCP state now: TCP_INFO while open, /proc/net/tcp after close."""
        if _kind_of(self.sock) == "sctp":
            return "-"  # SOCK_STREAM, but no TCP state: TCP_INFO and /proc/net/tcp know nothing of it
        if not self.closed:
            if self.sock.type != socket.SOCK_STREAM:
                return "-"
            try:
                state = TCP_STATES.get(self.sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8)[0], "?")
            except OSError:
                return "?"
            if state != "CLOSE" or not self.remote:
                return state
            # An open socket whose connection went to TIME_WAIT reports CLOSE: the
            # TIME_WAIT lives in a separate kernel object, found by its four-tuple.
        row = proc_row(self.local, self.remote) if self.local and self.remote else None
        if row:
            return row["state"]
        return "gone" if self.closed else "CLOSE"

    def proc_row(self) -> dict | None:
        """This socket's /proc/net/tcp row, found by its four-tuple, or None when the kernel
        lists none; a socket with no remote end is looked up as a listener is listed (0.0.0.0:0)."""
        if not self.local:
            return None
        return proc_row(self.local, self.remote or ("::" if ":" in self.local[0] else "0.0.0.0", 0))

    def queued(self) -> int:
        """Bytes waiting in the receive queue (FIONREAD)."""
        buf = bytearray(4)
        fcntl.ioctl(self.fileno(), termios.FIONREAD, buf)
        return int.from_bytes(buf, "little")

    def unsent(self) -> int:
        """Bytes in the send queue the kernel has not sent yet (SIOCOUTQNSD)."""
        return struct.unpack("i", fcntl.ioctl(self.fileno(), SIOCOUTQNSD, b"\0" * 4))[0]

    def readable(self, timeout: float) -> bool:
        return bool(select.select([self.sock], [], [], timeout)[0])


def _kind_of(sock: socket.socket) -> str:
    """'tcp', 'udp', 'sctp', 'unix' or 'other': what kind of socket a step acted on."""
    try:
        family, type_, proto = sock.family, sock.type, sock.proto
    except OSError:
        return "other"
    if family == socket.AF_UNIX:
        return "unix"
    if family in (socket.AF_INET, socket.AF_INET6) and proto == IPPROTO_SCTP:
        return "sctp"
    if family in (socket.AF_INET, socket.AF_INET6):
        return {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}.get(type_, "other")
    return "other"


def _addr(address) -> str:
    if isinstance(address, tuple):
        host, port = address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return repr(address)


def _flags(flags: int) -> str:
    names = [n for n in ("MSG_OOB", "MSG_PEEK", "MSG_DONTWAIT", "MSG_WAITALL", "MSG_NOSIGNAL")
             if flags & getattr(socket, n)]
    return (", " + "|".join(names)) if names else ""


def proc_tcp() -> list[dict]:
    """Every row of /proc/net/tcp and tcp6 in this namespace, with its state's name."""
    rows = tcp_sockets()
    for row in rows:
        row["state"] = TCP_STATES.get(row["st"], f"{row['st']:02X}")
    return rows


def proc_row(local, remote) -> dict | None:
    """The /proc/net/tcp (or tcp6) row of the four-tuple local -> remote, or None."""
    for row in proc_tcp():
        if row["local"] == tuple(local) and row["remote"] == tuple(remote):
            return row
    return None


def proc_state(local, remote) -> str:
    """The state /proc/net/tcp lists for local -> remote, or "gone" when it lists none."""
    row = proc_row(local, remote)
    return row["state"] if row else "gone"


_libc = None


def libc_write(fd: int, data: bytes) -> int:
    """write(2) through the C library, so no Python layer sits between the kernel and errno;
    raises OSError with the errno on failure (Python's own EBADF, EINTR retries and SIGPIPE
    handling never get involved)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        _libc.write.restype = ctypes.c_ssize_t
    n = _libc.write(fd, data, len(data))
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return n


def counter_names() -> list[str]:
    """Every counter the kernel prints in this namespace, as nstat names them."""
    return list(counters())


def counters() -> dict[str, int]:
    """/proc/net/netstat and snmp as {'TcpExtListenOverflows': n, 'TcpActiveOpens': n, …}."""
    out: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        with open(path) as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            prefix, *keys = names.split()
            _, *vals = values.split()
            for k, v in zip(keys, vals):
                if v.lstrip("-").isdigit():
                    out[prefix.rstrip(":") + k] = int(v)
    return out


class Lab:
    def __init__(self, scenario: str, isolated: bool = True, traced: bool = False):
        self.scenario = scenario
        self.isolated = isolated
        self.start = time.time()
        self.steps: list[dict] = []
        self.sockets: list[TracedSocket] = []
        self.sysctls: dict[str, str] = {}
        self.machine_wide: dict[str, str] = {}  # name -> the value to put back (machine_sysctl)
        self.peer = None
        self.children: list[int] = []
        self.capture = Capture(self.start) if isolated else None
        self._counters = counters() if isolated else {}
        self.tracer, self.ports, self.untraced = None, None, None
        if isolated and traced:
            self._start_tracing()

    # -- recording -------------------------------------------------------

    def _start_tracing(self) -> None:
        """The kernel's tracepoints, in an instance of the lab's own, for ports only it uses."""
        from ..machine.tracefs import Tracer, TracefsUnavailable

        try:
            self.ports = events.PortSlot()
            set_sysctl("net.ipv4.ip_local_port_range", f"{self.ports.low} {self.ports.high}")
            self.tracer = Tracer(f"{os.getpid()}")
            self._mono_to_real = time.time() - time.monotonic()
        except (OSError, TracefsUnavailable) as e:
            self.untraced = f"no tracepoints: {e}"
            if self.ports:
                self.ports.release()
                self.ports = None

    def events(self, event: str | None = None) -> list[dict]:
        """The tracepoint events that are this lab's so far, in order (see verify/events.py)."""
        if self.tracer is None:
            return []
        ours, self._left_out = events.attribute(self.tracer.read(), self.ports)
        out = [events.shown(e, self.at_ms(e["t"] + self._mono_to_real)) for e in ours]
        return [e for e in out if event is None or e["event"] == event]

    def expect_event(self, event: str, timeout: float = 1.0, **fields) -> dict:
        """Wait (bounded) for the kernel to report `event` with these fields for this lab."""
        if self.tracer is None:
            raise Skip(self.untraced or "tracepoints need the lab's own namespace")
        if event.split("/")[-1] in {m.split("/")[-1] for m in self.tracer.missing}:
            raise Skip(f"this kernel has no tracepoint {event}")
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [e for e in self.events(event)
                        if all(str(e.get(k)) == str(v) for k, v in fields.items())]
            return bool(found)

        deadline = time.monotonic() + timeout
        while not seen() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        what = f"{event} " + " ".join(f"{k}={v}" for k, v in fields.items())
        got = ", ".join(f"{e['event']} {e.get('reason', '')}".strip() for e in self.events()
                        if e["event"] != "inet_sock_set_state")
        self.expect(bool(found), f"the kernel reports {what} (traced: {got or 'nothing'})")
        return found[0]

    def _ms(self) -> float:
        return self.at_ms(time.time())

    def at_ms(self, realtime: float) -> float:
        """A CLOCK_REALTIME instant (time.time(), a capture stamp) in ms since the lab started."""
        return round((realtime - self.start) * 1000, 3)

    def stamp(self, packet: dict) -> float:
        """The kernel's CLOCK_REALTIME stamp of a captured packet, in seconds."""
        if self.capture is None or not self.capture.stamping:
            self.fail("no kernel packet timestamps here: this window cannot be measured")
        return self.start + packet["t_ms"] / 1000

    def _snapshot(self) -> dict:
        states = {s.name: s.state() for s in self.sockets if s.sock.type == socket.SOCK_STREAM
                  or not s.closed}
        return {k: v for k, v in states.items() if v != "-"}

    def record(self, step: dict) -> dict:
        step = {"t_ms": self._ms(), **step, "states": self._snapshot()}
        if self.capture:
            self.capture.drain()
        self.steps.append(step)
        return step

    def call(self, sock: TracedSocket | None, text: str, fn) -> Result:
        return self._call(sock, text, fn, None)

    def timed_call(self, sock: TracedSocket | None, text: str, fn) -> tuple[Result, timing.Span]:
        """`call`, bracketed by the capture's clock and the scheduler's accounting (timing.Span):
        the step also records when the call began and how long it slept in the kernel."""
        span = {}

        def measured():
            value, span["span"] = timing.measure(fn)
            if isinstance(value, OSError):
                raise value
            return value
        result = self._call(sock, text, measured, span)
        return result, span["span"]

    def _call(self, sock: TracedSocket | None, text: str, fn, span: dict | None) -> Result:
        try:
            result = Result(text, value=fn())
        except OSError as e:
            result = Result(text, error=e)
        step = {"actor": sock.name if sock else "lab", "call": text}
        if span:
            step["began_ms"] = self.at_ms(span["span"].start)
            step["blocked_ms"] = round(span["span"].blocked * 1000, 3)
            step["cpu_ms"] = {"ran": round(span["span"].ran * 1000, 3),
                              "queued": round(span["span"].queued * 1000, 3)}
        if sock is not None:  # lets tests tell a TCP socket's errno from a UDP or Unix one's
            step["socket"] = _kind_of(sock.sock)
        if result.ok:
            step["result"] = _shown(result._value)
        else:
            step["errno"] = result.errno
            step["error"] = result.error
        self.record(step)
        return result

    def note(self, text: str) -> None:
        """A step with no socket call: what a peer or the scenario did."""
        self.record({"actor": "lab", "note": text})

    # -- sockets ---------------------------------------------------------

    def socket(self, name: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
               proto: int = 0, options: dict | None = None) -> TracedSocket:
        """A new traced socket. `options` ({"SO_RCVBUF": 4096, "TCP_SYNCNT": 1} …), named as in
        the socket module, are set in order right after socket(), each at its prefix's level."""
        kind = {socket.SOCK_STREAM: "SOCK_STREAM", socket.SOCK_DGRAM: "SOCK_DGRAM"}.get(type, str(type))
        fam = {socket.AF_INET: "AF_INET", socket.AF_INET6: "AF_INET6"}.get(family, str(family))
        protocol = {0: "", IPPROTO_SCTP: ", IPPROTO_SCTP"}.get(proto, f", {proto}")
        r = self.call(None, f"{name} = socket({fam}, {kind}{protocol})", lambda: socket.socket(family, type, proto))
        traced = self.adopt(name, r.value)
        for option, value in (options or {}).items():
            level = OPTION_LEVELS[option.split("_")[0] + "_"]
            traced.setsockopt(level, getattr(socket, option), value, label=option).value
        return traced

    def adopt(self, name: str, sock: socket.socket) -> TracedSocket:
        traced = TracedSocket(self, name, sock)
        traced._addresses()
        self.sockets.append(traced)
        return traced

    def listener(self, name: str = "listener", address=("127.0.0.1", 0), backlog: int = 16,
                 reuseaddr: bool = False, options: dict | None = None) -> TracedSocket:
        """A socket bound to `address` and listening; SO_REUSEADDR first if `reuseaddr`, then `options`."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        first = {"SO_REUSEADDR": 1} if reuseaddr else {}
        s = self.socket(name, family, options={**first, **(options or {})})
        s.bind(address).value
        s.listen(backlog).value
        return s

    def connected_pair(self, backlog: int = 16) -> tuple[TracedSocket, TracedSocket, TracedSocket]:
        """listener, client, server: an established loopback connection."""
        lst = self.listener(backlog=backlog)
        cli, srv = self.connect_to(lst)
        return lst, cli, srv

    def connect_to(self, listener: TracedSocket, client: str = "client", server: str = "server",
                   options: dict | None = None) -> tuple[TracedSocket, TracedSocket]:
        """client, server: one more connection to `listener`, connected and accepted; the client
        socket gets `options` (as `socket` sets them) before it connects."""
        cli = self.socket(client, options=options)
        cli.connect(listener.local).value
        srv = listener.accept(server).value
        return cli, srv

    def port_in_time_wait(self, reuseaddr: bool = False, suffix: str = "") -> tuple:
        """A loopback listener address whose port only a TIME_WAIT connection holds now: the
        accepted socket closed first, then the client, then the listener (opened with
        SO_REUSEADDR if `reuseaddr`). The sockets are named listener, client, server + `suffix`."""
        listener = self.listener(f"listener{suffix}", reuseaddr=reuseaddr)
        client, server = self.connect_to(listener, f"client{suffix}", f"server{suffix}")
        server.close().value
        self.wait_state(client, "CLOSE_WAIT", 1.0)
        client.close().value
        self.wait_state(server, "TIME_WAIT", 1.0)
        listener.close().value
        return listener.local

    def fill_to_zero_window(self, sock: TracedSocket) -> None:
        """Send from `sock` without blocking until EAGAIN, and again until nothing more goes out,
        so that its data waits behind the peer's zero window; expects unsent bytes to be left."""
        chunk = b"x" * 65536

        def fill():
            total, rounds = 0, 0
            sock.sock.setblocking(False)
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                rounds += 1
                progressed = False
                while True:
                    try:
                        total += sock.sock.send(chunk)
                        progressed = True
                    except BlockingIOError:
                        break
                if not progressed and sock.unsent() > 0:
                    return f"{total} bytes accepted in {rounds} rounds, then EAGAIN"
                time.sleep(0.01)
            raise OSError(0, f"send queue never settled ({total} bytes sent)")
        self.call(sock, "send(64 KiB, non-blocking) until EAGAIN", fill).value
        unsent = sock.unsent()
        self.expect(unsent > 0, f"{sock.name} holds {unsent} unsent bytes behind the peer's zero window")

    def read_to_eof(self, sock: TracedSocket, timeout: float = 2.0) -> None:
        """Read from `sock` without blocking until end of stream (the peer's FIN), within `timeout`."""
        def drain():
            total = 0
            sock.sock.setblocking(False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    data = sock.sock.recv(65536)
                except BlockingIOError:
                    time.sleep(0.002)
                    continue
                if not data:
                    return f"{total} bytes, then end of stream"
                total += len(data)
            raise OSError(0, f"no end of stream within {timeout} s ({total} bytes read)")
        self.call(sock, "recv() until end of stream", drain).value

    # -- the namespace ---------------------------------------------------

    def sysctl(self, name: str, value) -> None:
        if not self.isolated:
            raise Skip(f"needs its own network namespace to set {name}")
        if not os.path.exists(sysctl_path(name)):  # a knob this kernel lacks is a finding
            raise Skip(missing_sysctl(name))
        set_sysctl(name, value)
        self.sysctls[name] = read_sysctl(name)
        self.note(f"sysctl {name} = {self.sysctls[name]}")

    def machine_sysctl(self, name: str, value) -> None:
        """Set a knob no namespace isolates (fs.file-max …): only in the VM runner's guest, and put
        back by restore_machine(), which finish() calls too. The scenario declares "vm:<name>"."""
        if not in_vm():
            raise Skip(only_in_vm(name))
        if not os.path.exists(sysctl_path(name)):
            raise Skip(missing_sysctl(name))
        self.machine_wide.setdefault(name, read_sysctl(name))
        with open(sysctl_path(name), "w") as f:
            f.write(str(value))
        self.sysctls[name] = read_sysctl(name)
        self.note(f"sysctl {name} = {self.sysctls[name]} (machine-wide, was {self.machine_wide[name]})")

    def restore_machine(self) -> None:
        """Put back every machine-wide knob machine_sysctl() changed, newest first."""
        for name in reversed(list(self.machine_wide)):
            with open(sysctl_path(name), "w") as f:
                f.write(self.machine_wide[name])
            self.note(f"sysctl {name} restored to {read_sysctl(name)}")
            del self.machine_wide[name]

    def counter(self, name: str) -> int:
        """How much a /proc/net/netstat or snmp counter moved since the lab started."""
        return counters().get(name, 0) - self._counters.get(name, 0)

    def tun_peer(self, **kw):
        from .peer import Peer
        if not self.isolated:
            raise Skip("the scripted peer needs its own network namespace")
        self.peer = Peer(self, **kw)
        return self.peer

    def fork(self, child, timeout: float = 2.0) -> dict:
        """Run `child()` in a forked process; return how it ended (bounded, always reaped)."""
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child()
            except BaseException:
                code = 70
            os._exit(code)
        self.children.append(pid)
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(POLL_S)
        else:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        self.children.remove(pid)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            how = {"signal": signal.Signals(sig).name, "signal_number": sig}
        else:
            how = {"exit_code": os.WEXITSTATUS(status)}
        self.record({"actor": "lab", "note": "child process ended", "result": how})
        return how

    # -- waiting ---------------------------------------------------------

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, 10.0))

    def wait_for(self, predicate, timeout: float, what: str) -> float:
        """Poll until predicate() is true; return seconds waited or fail after `timeout`."""
        began = time.monotonic()
        while True:
            if predicate():
                waited = time.monotonic() - began
                self.record({"actor": "lab", "note": f"waited {waited:.3f} s for {what}"})
                return waited
            if time.monotonic() - began > timeout:
                self.fail(f"gave up after {timeout} s waiting for {what}")
            time.sleep(POLL_S)

    def wait_state(self, sock: TracedSocket, state: str, timeout: float = 2.0) -> float:
        return self.wait_for(lambda: sock.state() == state, timeout, f"{sock.name} to reach {state}")

    def expect_held(self, check, seconds: float, what: str) -> None:
        """`check()` stays true for `seconds` (a state the kernel does not leave on its own)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not check():
                self.fail(f"{what} did not hold for {seconds} s")
            time.sleep(0.01)
        self.expect(True, f"{what} held for {seconds} s")

    def expect_state_held(self, sock: TracedSocket, state: str, seconds: float = 0.1) -> None:
        """`sock` stays in `state` for `seconds`."""
        self.expect_held(lambda: sock.state() == state, seconds, f"{sock.name} in {state}")

    # -- expectations ----------------------------------------------------

    def fail(self, message: str):
        self.record({"actor": "lab", "expect": message, "ok": False})
        raise ScenarioFailed(message)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.fail(message)
        self.record({"actor": "lab", "expect": message, "ok": True})

    def expect_errno(self, result: Result, name: str) -> None:
        self.expect(result.errno == name, f"{result.call} fails with {name} (got {result.errno or 'success'})")

    def expect_ok(self, result: Result) -> None:
        self.expect(result.ok, f"{result.call} succeeds (got {result.errno or 'success'})")

    def expect_state(self, sock: TracedSocket, state: str) -> None:
        now = sock.state()
        self.expect(now == state, f"{sock.name} is {state} (got {now})")

    def expect_counter(self, name: str, at_least: int = 1) -> int:
        moved = self.counter(name)
        self.expect(moved >= at_least, f"{name} rose by at least {at_least} (rose by {moved})")
        return moved

    def expect_window(self, measured, low: float | None, high: float | None, what: str, clock: str) -> None:
        """`low` < `measured` < `high`, in seconds (None: no bound that side). `measured` is a
        number, or a pair (checked against `low`, checked against `high`) when the window is
        known only within limits: for a window between a call and a packet stamp, the estimates
        that leave the bracket's doubt against the bound; for a call's sleep, its wall time
        (which load only lengthens) against `low` and the sleep schedstat accounts (which load
        does not lengthen) against `high`. `clock` names how it was measured: "capture" (two
        kernel packet stamps), "capture+call" (a stamp and a call's bracket), "blocked" (a call's
        wall and sleep times) or "timer" (a /proc/net/tcp timer's deadline)."""
        for_low, for_high = measured if isinstance(measured, tuple) else (measured, measured)
        ok = (low is None or low < for_low) and (high is None or for_high < high)
        shown = (f"{for_low:.3f} s" if for_low == for_high
                 else f"{for_low:.3f} s against the low bound, {for_high:.3f} s against the high")
        bounds = " and ".join(b for b in (low is not None and f"above {low:.3f} s",
                                           high is not None and f"below {high:.3f} s") if b)
        message = f"{what}: {shown}, {bounds} ({clock} clock)"
        self.record({"actor": "lab", "expect": message, "ok": ok,
                     "window": {"measured_s": [round(for_low, 4), round(for_high, 4)],
                                "low_s": None if low is None else round(low, 4),
                                "high_s": None if high is None else round(high, 4), "clock": clock}})
        if not ok:
            raise ScenarioFailed(message)

    def wait_readable(self, sock: TracedSocket, timeout: float, what: str) -> timing.Span:
        """One blocking select() until `sock` is readable (data, EOF or an error), bracketed
        (timing.Span: its `woke` is when the kernel woke it); fails after `timeout`."""
        r, span = self.timed_call(sock, f"select() for readable, {timeout} s at most",
                                  lambda: bool(select.select([sock.sock], [], [], timeout)[0]))
        if not r.value:
            self.fail(f"gave up after {timeout} s waiting for {what}")
        return span

    def expect_woken_by(self, span: timing.Span, at: float, what: str) -> None:
        """The call of `span` was still in progress at `at` (CLOCK_REALTIME: a packet's stamp, or the
        moment another thread acted) and slept no longer than until then, give or take
        LOAD_MARGIN_S: it was `at` that woke it, not a timer or the end of a bound."""
        self.expect(span.start < at < span.end,
                    f"the call was still blocked when {what} ({self.at_ms(at):.1f} ms, call "
                    f"{self.at_ms(span.start):.1f}-{self.at_ms(span.end):.1f} ms)")
        self.expect_window(span.blocked, None, at - span.start + timing.LOAD_MARGIN_S,
                           f"slept until {what}", "blocked")

    def timer_deadline(self, sock: TracedSocket) -> tuple[dict, float, float]:
        """(row, earliest, latest): `sock`'s /proc/net/tcp row and the CLOCK_REALTIME span in which
        its timer's expiry lies. The row is read within a 2 ms bracket; its `when` column is the
        jiffies left, in 10 ms clock ticks rounded down, and the read fell somewhere inside the
        current jiffy: so the expiry is up to a jiffy before, or 10 ms after, read + when."""
        row, start, end = timing.tight_read(sock.proc_row)
        if row is None:
            self.fail(f"/proc/net/tcp lists no row for {sock.name}")
        return row, start + row["timer_s"] - timing.jiffy(), end + row["timer_s"] + 0.01

    def expect_timer(self, sock: TracedSocket, kind: int, armed_by: dict, nominal: float,
                     what: str) -> tuple[dict, float, float]:
        """`sock` runs /proc/net/tcp timer `kind`, set to fire `nominal` seconds after the kernel
        processed the captured packet `armed_by` (bounds: timing.timer_read_bounds). The kernel's
        schedule is read, not waited for, so load cannot stretch it. Returns timer_deadline()."""
        row, earliest, latest = self.timer_deadline(sock)
        self.expect(row["timer"] == kind, f"{sock.name} runs timer {kind} (/proc/net/tcp: {row['timer']})")
        armed = self.stamp(armed_by)
        low, high = timing.timer_read_bounds(nominal)
        self.expect_window((earliest - armed, latest - armed), low, high, what, "timer")
        return row, earliest, latest

    def expect_freed_by_timer(self, sock: TracedSocket, earliest: float, latest: float, nominal: float,
                              timeout: float = 3.0) -> None:
        """`sock`'s row leaves /proc/net/tcp when its timer (due between `earliest` and `latest`)
        fires: not listed after the due time plus the wheel's rounding and LOAD_MARGIN_S, and not
        gone before `earliest`."""
        seen, gone = self.wait_gone(sock, timeout)
        late = latest + timing.wheel_slack(nominal) + timing.LOAD_MARGIN_S
        if seen is not None:  # gone at the first look: nothing was listed late
            self.expect(seen < late, f"{sock.name} was listed no later than its timer was due "
                                     f"(last seen {self.at_ms(seen):.0f} ms, due by {self.at_ms(latest):.0f} ms)")
        self.expect(gone > earliest, f"{sock.name} was gone no sooner than its timer was due "
                                     f"(gone by {self.at_ms(gone):.0f} ms, due from {self.at_ms(earliest):.0f} ms)")

    def wait_gone(self, sock: TracedSocket, timeout: float) -> tuple[float | None, float]:
        """Poll until /proc/net/tcp lists no row for `sock`, or fail after `timeout`. Returns
        (seen, gone) in CLOCK_REALTIME: the start of the last read that still listed it (it was
        freed later; None if the first read did not) and the end of the first that did not (it
        was freed sooner). Slow polling only moves `seen` earlier and `gone` later, so load
        cannot make a check on them fail."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            start = time.time()
            if sock.proc_row() is None:
                gone = time.time()
                self.record({"actor": "lab", "note": f"{sock.name} no longer in /proc/net/tcp"})
                return seen, gone
            seen = start
            time.sleep(POLL_S)
        self.fail(f"{sock.name} was still in /proc/net/tcp after {timeout} s")

    def ack_of_fin(self, sock: TracedSocket) -> dict:
        """The captured segment that acknowledged `sock`'s first FIN (it left FIN_WAIT1 on it)."""
        fins = self._segments(lambda p: "F" in p["flags"] and (p["src"], p["sport"]) == tuple(sock.local))
        if not fins:
            self.fail(f"no FIN from {sock.name} was captured")
        want = (fins[0]["seq"] + fins[0]["len"] + 1) & 0xFFFFFFFF
        acks = self._segments(lambda p: "." in p["flags"] and p["ack"] == want
                              and (p["dst"], p["dport"]) == tuple(sock.local))
        if not acks:
            self.fail(f"no ACK of {sock.name}'s FIN was captured")
        return acks[0]

    def fin_to(self, sock: TracedSocket) -> dict:
        """The last captured FIN that arrived for `sock` (its peer's FIN)."""
        fins = self._segments(lambda p: "F" in p["flags"] and (p["dst"], p["dport"]) == tuple(sock.local))
        if not fins:
            self.fail(f"no FIN to {sock.name} was captured")
        return fins[-1]

    def _segments(self, match) -> list[dict]:
        return [p for p in self.packets() if p.get("proto") == "tcp" and match(p)]

    def packets(self) -> list[dict]:
        """Every packet captured so far, each labelled `from`/`to` with the lab's names."""
        return self._labelled()

    def _captured(self) -> list[dict]:
        if self.capture is None:
            return []
        self.capture.drain()
        return self.capture.packets

    def expect_packets(self, *patterns: str, timeout: float = 1.0) -> list[dict]:
        """Each pattern is 'WHO FLAGS' ('client S', 'server R.'); '*' before FLAGS means
        'has these flags among others'. They must appear in this order, not necessarily
        next to each other (loopback may merge an ACK into a FIN)."""
        if self.capture is None:
            raise Skip("packet capture needs its own network namespace")
        matched: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            matched = self._match(patterns)
            if len(matched) == len(patterns) or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        got = " ".join(f"{p['from']}:{p['flags']}" for p in self._labelled() if p.get("proto") == "tcp")
        self.expect(len(matched) == len(patterns),
                    f"packets in order: {', '.join(patterns)} (wire: {got or 'nothing'})")
        return matched

    def _match(self, patterns) -> list[dict]:
        packets = self._labelled()
        matched, i = [], 0
        for pattern in patterns:
            who, flags = pattern.split()
            contains = flags.startswith("*")
            flags = flags.lstrip("*")
            while i < len(packets):
                p = packets[i]
                i += 1
                if p.get("proto") != "tcp" or p["from"] != who:
                    continue
                if (set(flags) <= set(p["flags"])) if contains else p["flags"] == flags:
                    matched.append(p)
                    break
            else:
                break
        return matched

    def _who(self, address: tuple, other: tuple) -> str:
        """The lab's name for the socket at `address` talking to `other`."""
        for s in self.sockets:  # a connected socket is named by its four-tuple
            if s.local and s.remote and tuple(s.local) == address and tuple(s.remote) == other:
                return s.name
        # then a listener or a socket that is only bound; when several share the address
        # (SO_REUSEPORT) the packet does not say which one, and the label must not guess
        bound = [s.name for s in self.sockets if s.local and not s.remote and tuple(s.local) == address]
        return bound[0] if len(bound) == 1 else _addr(address)

    def _labelled(self) -> list[dict]:
        peer_ip = self.peer.address if self.peer else None
        out = []
        for p in self._captured():
            if p.get("proto") == "tcp":
                src, dst = (p["src"], p["sport"]), (p["dst"], p["dport"])
                p["from"] = "peer" if p["src"] == peer_ip else self._who(src, dst)
                p["to"] = "peer" if p["dst"] == peer_ip else self._who(dst, src)
            else:
                p["from"], p["to"] = p["src"], p["dst"]
            out.append(p)
        return out

    def expect_reason(self, event: str, reason: str, **fields) -> dict:
        """expect_event with its reason; a kernel whose tracepoint cannot report that reason
        (before 6.10 tcp_send_reset reports none) skips the rest of the scenario."""
        from ..machine.tracefs import TracefsUnavailable, enum_values

        try:
            known = enum_values({"tcp_send_reset": "tcp/tcp_send_reset",
                                 "kfree_skb": "skb/kfree_skb"}[event], "reason")
        except TracefsUnavailable as e:
            raise Skip(str(e)) from None
        if reason not in known:
            raise Skip(f"this kernel's {event} tracepoint cannot report {reason}")
        return self.expect_event(event, reason=reason, **fields)

    # -- the end ---------------------------------------------------------

    def _finish_tracing(self) -> dict:
        if self.tracer is None:
            return {"events_note": self.untraced} if self.untraced else {}
        try:
            recorded = self.events()
            return {"events": recorded, "events_left_out": self._left_out,
                    "ports": [self.ports.low, self.ports.high]}
        finally:
            self.tracer.close()
            self.ports.release()
            self.tracer = None

    def finish(self) -> dict:
        """Put machine-wide knobs back, close what is left, reap children, and return the trace."""
        self.restore_machine()
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        packets = self._labelled() if self.capture else []
        for s in self.sockets:
            if not s.closed:
                s.sock.close()
        if self.peer:
            self.peer.close()
        if self.capture:
            self.capture.close()
        kernel_events = self._finish_tracing()
        moved = {}
        if self.isolated:
            now = counters()
            moved = {k: now[k] - self._counters.get(k, 0) for k in sorted(now)
                     if now[k] != self._counters.get(k, 0)}
        return {"schema": TRACE_SCHEMA_VERSION, "steps": self.steps, "packets": packets, "counters": moved,
                **kernel_events,
                "sysctls": self.sysctls,
                "sockets": {s.name: {"local": _addr(s.local) if s.local else None,
                                     "remote": _addr(s.remote) if s.remote else None}
                            for s in self.sockets}}
