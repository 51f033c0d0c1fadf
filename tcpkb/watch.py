"""`tcpkb watch`: socket errors, resets, drops, retransmits and state changes as they happen,
one line each, explained by the knowledge base.

The kernel's tracepoints (sock:inet_sk_error_report, tcp:tcp_send_reset, tcp:tcp_receive_reset,
skb:kfree_skb, tcp:tcp_retransmit_skb, sock:inet_sock_set_state) are recorded in a tracefs
instance of watch's own (machine/tracefs.py), never the global buffer, and read through its
trace_pipe. The instance goes on every exit: normal end, Ctrl-C, SIGTERM (sent to watch too
when whoever started it is killed outright), and SIGKILL of watch itself (a keeper process
removes it; failing that, the next run sweeps it).

Each event names the entry to read next: errno:<name> for the error set on a socket,
rst:<reason> for a reset the kernel sent, drop:<reason> for a drop, state:<state> for a state
change, flag:RST for a reset received and counter:TcpRetransSegs for a retransmit. The words
shown are those entries' summaries, read from the database.

--netns: the tracepoints are global, so events are sorted by what they name (see
NamespaceOwner). Without tracing (not root, no tracefs) watch polls /proc/net/tcp for state
changes and the counters for the trouble they count, and says what it cannot see.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone

from .machine import tracefs
from .machine.attribution import Attribution
from .present import terminal as output

# tracepoint -> the word watch shows and filters by (--event takes either)
KINDS = {"inet_sk_error_report": "error", "tcp_send_reset": "reset-sent",
         "tcp_receive_reset": "reset-received", "kfree_skb": "drop",
         "tcp_retransmit_skb": "retransmit", "inet_sock_set_state": "state"}
EVENTS = ("sock/inet_sk_error_report", "tcp/tcp_send_reset", "tcp/tcp_receive_reset",
          "skb/kfree_skb", "tcp/tcp_retransmit_skb", "sock/inet_sock_set_state")
# In the kernel, before the events reach the buffer: IP packets only (kfree_skb counts every
# protocol's drops) and TCP sockets only (inet_sock_set_state serves SCTP and MPTCP too).
FILTERS = {"skb/kfree_skb": "protocol == 2048 || protocol == 34525",
           "sock/inet_sock_set_state": "protocol == 6"}
RETRANSMIT = "counter:TcpRetransSegs"  # the entry a retransmit points to
POLL_INTERVAL = 0.5
TABLE_EVERY = 1.0  # --netns: how often the namespace's socket table is read again
PIDS_FOR = 2.0  # --netns: how long a process's namespace is remembered (s)
HOLD = 0.05  # --netns: the newest events wait this long (s) for the ones that explain them


class Stop(Exception):
    """SIGTERM or SIGHUP: end as after Ctrl-C."""


# --- the knowledge base, read once ------------------------------------------------------------

class Knowledge:
    """The entries watch names, with their titles and summaries, loaded before watching starts."""

    def __init__(self, conn):
        self.entries = {r[0]: {"title": r[1], "summary": r[2]} for r in conn.execute(
            "select id, title, summary from entries where kind in ('rst', 'drop', 'errno', 'state', "
            "'flag', 'counter')")}
        self.errno = {r[0]: r[1] for r in conn.execute(
            "select number, entry_id from errno_numbers where platform = 'linux'")}
        self.state_by_number = {r[0]: r[1] for r in conn.execute("select number, id from states")}
        # the counters the kernel moves where it drops a packet or sends a reset (the drop and
        # reset notes name them), and the one a retransmit moves: trouble, not traffic
        self.trouble = {r[0].removeprefix("counter:") for r in conn.execute(
            "select counter_id from drop_counters union select counter from rst_reasons "
            "where counter is not null")} | {RETRANSMIT.removeprefix("counter:")}

    def entry_for(self, kind: str, name: str | None, fallback: str) -> str:
        """kind:name when the knowledge base has it, else the fallback entry."""
        wanted = f"{kind}:{name}" if name else None
        return wanted if wanted in self.entries else fallback

    def explain(self, record: dict) -> dict:
        found = self.entries.get(record["entry"])
        record["title"] = found["title"] if found else None
        record["explanation"] = found["summary"] if found else None
        return record


# --- one event -> one record --------------------------------------------------------------------

def _endpoints(e: dict) -> tuple[str | None, str | None]:
    key = _tuple(e)
    if key:
        return _endpoint(key[0], key[1]), _endpoint(key[2], key[3])
    return None, None


def _tuple(e: dict) -> tuple | None:
    """(saddr, sport, daddr, dport) of an event, IPv4 or IPv6; kept in the event once made."""
    if "tuple" not in e:
        six = e.get("family") == "AF_INET6"
        key = (e.get("saddrv6" if six else "saddr"), e.get("sport"), e.get("daddrv6" if six else "daddr"),
               e.get("dport"))
        e["tuple"] = None if None in key else key
    return e["tuple"]


def _endpoint(address, port) -> str | None:
    if address is None or port is None:
        return None
    return f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"


def describe(e: dict, kb: Knowledge, wall_offset: float) -> dict | None:
    """A tracepoint event as watch shows it: {time, event, what, src, dst, process, reason,
    entry, title, explanation, ...}; None for an event that reports nothing (an error report
    without an error)."""
    kind = KINDS.get(e["event"])
    if kind is None or (kind == "error" and not e.get("error")):
        return None
    src, dst = _endpoints(e)
    process = None if e.get("interrupt") or not e.get("pid") else {"pid": e["pid"], "comm": e["task"]}
    record = {"time": _iso(e["t"] + wall_offset), "event": e["event"], "what": kind, "src": src,
              "dst": dst, "process": process, "interrupt": bool(e.get("interrupt")), "reason": None}
    if kind == "error":
        number = abs(e["error"])
        record["entry"] = kb.errno.get(number)
        record["error"] = number
        record["reason"] = record["entry"].split(":", 1)[1] if record["entry"] else str(number)
        if record["entry"] is None:
            return None  # not an errno number the knowledge base knows: nothing to explain
    elif kind == "reset-sent":
        record["reason"] = e.get("reason")  # absent before Linux 6.10
        record["entry"] = kb.entry_for("rst", record["reason"], "flag:RST")
        record["state"] = _state_name(e.get("state"))
    elif kind == "reset-received":
        record["entry"] = "flag:RST"
    elif kind == "drop":
        record["reason"] = e.get("reason")
        record["entry"] = kb.entry_for("drop", record["reason"], "drop:NOT_SPECIFIED")
        record["location"] = e.get("location")
    elif kind == "retransmit":
        record["entry"] = RETRANSMIT
        record["state"] = _state_name(e.get("state"))
    else:
        record["from"], record["to"] = _state_name(e.get("oldstate")), _state_name(e.get("newstate"))
        record["reason"] = record["to"]
        record["entry"] = kb.entry_for("state", record["to"], "state:CLOSE")
    return kb.explain(record)


def _state_name(value) -> str | None:
    return value.removeprefix("TCP_") if isinstance(value, str) else None


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- filters -------------------------------------------------------------------------------------

class Filters:
    """--port, --host, --event and --reason: an event passes when it matches every one given."""

    def __init__(self, ports=(), hosts=(), events=(), reasons=()):
        self.ports = set(ports)
        self.hosts = {ipaddress.ip_address(h) for h in hosts}
        self.kinds = {KINDS.get(e, e) for e in events}
        self.reasons = {r.upper() for r in reasons}

    def passes(self, record: dict) -> bool:
        if self.kinds and record["what"] not in self.kinds:
            return False
        if self.reasons:
            said = {str(record.get("reason") or "").upper(), record["entry"].split(":", 1)[1].upper()}
            if not (said | {f"TCP_{x}" for x in said}) & self.reasons:  # TCP_CLOSE_WAIT as the kernel spells it
                return False
        if not (self.ports or self.hosts):
            return True
        ends = [_split(x) for x in (record.get("src"), record.get("dst")) if x]
        if self.ports and not any(port in self.ports for _, port in ends):
            return False
        if self.hosts and not any(_same_host(host, self.hosts) for host, _ in ends):
            return False
        return True


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def _same_host(text: str, hosts: set) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address in hosts or (mapped is not None and mapped in hosts)


def check_options(ports, hosts, events, reasons, duration) -> str | None:
    """A one-line reason the options cannot work, or None."""
    for port in ports:
        if not 0 < port < 65536:
            return f"--port takes a port number from 1 to 65535, not {port}"
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return f"--host takes an IPv4 or IPv6 address, not {host!r}"
    for event in events:
        if event not in KINDS and event not in KINDS.values() and event != "counter":  # counter: polled
            return (f"--event takes one of {', '.join(KINDS.values())} (or a tracepoint's name: "
                    f"{', '.join(KINDS)}), not {event!r}")
    for reason in reasons:
        if not reason.replace("_", "").isalnum():
            return f"--reason takes a reason, errno or state name (TCP_ABORT_ON_CLOSE), not {reason!r}"
    if duration is not None and duration <= 0:
        return "--duration takes a number of seconds above 0"
    return None


# --- one namespace's events out of the global stream ---------------------------------------------

class NamespaceOwner:
    """Is an event the watched namespace's? The owner test machine/attribution.py follows.

    An event recorded in a process's own context (a system call: connect, close, listen) is the
    namespace's when that process is in it (/proc/PID/ns/net). One recorded in an interrupt (a
    packet arriving, a timer firing) names whatever task the CPU was running, so it is the
    namespace's only when it names a connection already known there: its addresses and ports
    seen in an event of the namespace or in its socket table (/proc/net/tcp, read from inside
    it), or a listener of the namespace; a drop, which names no addresses, when the packet or
    the socket it names was named by an earlier event of the namespace.

    The limits: two namespaces using the same addresses and ports (127.0.0.1:8080 in both) cannot
    be told apart in an interrupt; nor can a process's event once the process has exited
    before watch read it, when its addresses are not known either. A packet written into a TUN
    device is received in the writing process's context, so it counts for that process's
    namespace, which is the device's unless the descriptor was passed across.
    """

    def __init__(self, inode: int):
        self.inode = inode
        self.pids: dict[int, bool | None] = {}
        self.tuples: dict[tuple, None] = {}
        self.listeners: set[tuple] = set()
        self._table_at = self._pids_at = 0.0

    def __call__(self, e: dict) -> bool | None:
        """True or False; None when neither the process nor the addresses tell (attribution.py
        then follows the packet and the socket the event names)."""
        key = _tuple(e)
        verdict = None if e.get("interrupt") or not e.get("pid") else self._process(e["pid"])
        if verdict is None and key and (self._known(key) or (self._read_table() and self._known(key))):
            verdict = True
        if verdict and key:
            _remember(self.tuples, key)
        return verdict

    def sorted_out(self, batch: list[dict], final: bool = False) -> tuple[list[dict], list[dict]]:
        """(events to decide now, events to hold for the next batch). The addresses of this
        namespace's processes' events are learned first, whole batch: a reset that answers a
        connect() often comes before the event that names the connect's own port. The last
        HOLD seconds wait for the next batch, where the rest of their story will be."""
        for e in batch:
            if not e.get("interrupt") and e.get("pid") and (key := _tuple(e)) and key[1] and key[3] \
                    and self._process(e["pid"]):
                _remember(self.tuples, key)
        if final:
            return batch, []
        recent = time.monotonic() - HOLD
        cut = len(batch)
        while cut and batch[cut - 1]["t"] > recent:
            cut -= 1
        return batch[:cut], batch[cut:]

    def _process(self, pid: int) -> bool | None:
        now = time.monotonic()
        if now - self._pids_at > PIDS_FOR or len(self.pids) > 4096:
            self.pids.clear()  # a pid is reused once its process has gone
            self._pids_at = now
        if pid not in self.pids:
            self.pids[pid] = _in_namespace(pid, self.inode)
        return self.pids[pid]

    def _known(self, key: tuple) -> bool:
        saddr, sport, daddr, dport = key
        return (key in self.tuples or (daddr, dport, saddr, sport) in self.tuples
                or any(p in self.listeners for p in ((saddr, sport), (daddr, dport), ("*", sport), ("*", dport))))

    def _read_table(self) -> bool:
        """Read the namespace's sockets again (at most every TABLE_EVERY s); True when read."""
        from .machine.proc import tcp_sockets

        now = time.monotonic()
        if now - self._table_at < TABLE_EVERY:
            return False
        self._table_at = now
        self.listeners.clear()
        for row in tcp_sockets():  # this process is inside the namespace: its /proc/net is
            (laddr, lport), (raddr, rport) = row["local"], row["remote"]
            if row["st"] == 10:  # LISTEN, bound to one address or to all
                wildcard = ipaddress.ip_address(laddr).is_unspecified
                self.listeners.add(("*" if wildcard else laddr, lport))
            else:
                _remember(self.tuples, (laddr, lport, raddr, rport))
        return True


def _remember(table: dict, key) -> None:
    table.pop(key, None)
    table[key] = None
    if len(table) > 65_536:
        for old in list(table)[:32_768]:
            del table[old]


def _in_namespace(pid: int, inode: int) -> bool | None:
    """True or False for a user process; None for a kernel thread or one already gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            flags = int(f.read().rsplit(")", 1)[1].split()[6])
        if flags & 0x00200000:  # PF_KTHREAD: kernel threads all sit in the initial namespace
            return None
        return os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except (OSError, ValueError, IndexError):
        return None


# --- printing --------------------------------------------------------------------------------------

class Printer:
    """One line per record (text or JSON), and the counts for --summary."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.counts: dict[tuple, int] = {}
        self.left_out = 0

    def show(self, record: dict) -> None:
        key = (record["what"], record["entry"])
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.as_json:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            output.echo(_line(record))

    def summary(self, kb: Knowledge, seconds: float) -> None:
        rows = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if self.as_json:
            print(json.dumps({"summary": {"seconds": round(seconds, 3), "events": sum(self.counts.values()),
                                          "left_out": self.left_out,
                                          "by_entry": [{"what": w, "entry": e, "count": n,
                                                        "title": kb.entries.get(e, {}).get("title")}
                                                       for (w, e), n in rows]}}))
            return
        total = sum(self.counts.values())
        output.echo(output.bold(f"{total} event(s) in {seconds:.1f} s"))
        for (what, entry), n in rows:
            output.echo(f"  {n:6d}  {what:<14} {output.accent(entry)}  {kb.entries.get(entry, {}).get('title') or ''}")
        if self.left_out:
            output.echo(output.dim(f"  {self.left_out} event(s) of other namespaces left out"))


def _line(r: dict) -> str:
    clock = r["time"][11:26]
    where = f"{r['src'] or '-'} > {r['dst'] or '-'}" if r["src"] or r["dst"] else "-"
    who = f"{r['process']['comm']}[{r['process']['pid']}]" if r["process"] else \
        "(interrupt)" if r.get("interrupt") else "-"
    what = r["what"]
    if r.get("to"):
        what += f" {r['from']}>{r['to']}" if r.get("from") else f" {r['to']} (new)"
    elif r.get("what") == "counter":
        what += f" {r['reason']} +{r['delta']}"
    elif r.get("reason"):
        what += f" {r['reason']}"
    return (f"{output.dim(clock)}  {where}  {who}  {output.bold(what)}  "
            f"{r['explanation'] or ''}  {output.accent(r['entry'])}")


# --- watching --------------------------------------------------------------------------------------

def _trace(tracer, kb: Knowledge, filters: Filters, printer: Printer, deadline: float | None,
           owner: NamespaceOwner | None) -> None:
    wall_offset = time.time() - time.monotonic()  # the instance records time.monotonic()'s clock
    follow = Attribution(owner) if owner else None
    last_seen: dict[tuple, tuple] = {}  # (cpu, skbaddr) -> the 4-tuple of the event that last named it
    held: list[dict] = []
    while True:
        over = deadline is not None and time.monotonic() >= deadline
        try:
            if not over:
                tracer.wait(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
        except (KeyboardInterrupt, Stop):
            over = True  # show what was recorded before the stop, then end
        batch, held = held + tracer.take(8 << 20 if over else 1 << 20), []
        if owner:
            batch, held = owner.sorted_out(batch, final=over)
        for e in batch:
            if follow and not follow.feed(e):
                printer.left_out += 1
                continue
            record = describe(e, kb, wall_offset)
            _fill_drop_tuple(e, record, last_seen)
            if record and filters.passes(record):
                printer.show(record)
        sys.stdout.flush()
        if over:
            return


def _fill_drop_tuple(e: dict, record: dict | None, last_seen: dict) -> None:
    """A drop names no addresses: give it those of the event that last named the same packet on
    the same CPU (the reset sent in answer to it goes the other way)."""
    skb = e.get("skbaddr")
    if not skb or skb in ("0000000000000000", "00000000"):
        return
    key = (e["cpu"], skb)
    if e["event"] != "kfree_skb":
        src, dst = _endpoints(e)
        if src and dst:
            last_seen[key] = (dst, src) if e["event"] == "tcp_send_reset" else (src, dst)
            if len(last_seen) > 65_536:
                last_seen.clear()
    elif record is not None and key in last_seen:
        record["src"], record["dst"] = last_seen.pop(key)


def _poll(kb: Knowledge, filters: Filters, printer: Printer, deadline: float | None) -> None:
    """Without tracing: state changes between two reads of /proc/net/tcp (a socket gone from it
    is CLOSE), and the trouble counters that moved, every POLL_INTERVAL seconds."""
    from .machine.proc import mib_counters, tcp_sockets

    def table() -> dict:
        return {(r["local"], r["remote"]): r["st"] for r in tcp_sockets()}

    before, counted = table(), mib_counters()
    while deadline is None or time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL if deadline is None else max(0.0, min(POLL_INTERVAL, deadline - time.monotonic())))
        now, counts, stamp = table(), mib_counters(), _iso(time.time())
        for ends in now.keys() | before.keys():
            if before.get(ends) != now.get(ends):
                _polled(kb, filters, printer, _state_change(kb, stamp, ends, before.get(ends), now.get(ends)))
        for name, value in counts.items():
            if name in kb.trouble and value > counted.get(name, value):
                _polled(kb, filters, printer, {"time": stamp, "event": "counter", "what": "counter",
                                               "src": None, "dst": None, "process": None,
                                               "reason": name, "delta": value - counted[name],
                                               "entry": f"counter:{name}"})
        before, counted = now, counts
        sys.stdout.flush()


def _state_change(kb: Knowledge, stamp: str, ends: tuple, old: int | None, new: int | None) -> dict:
    """A socket's row between two reads: new (old None), changed, or gone (new None: CLOSE)."""
    entry = kb.state_by_number.get(new, "state:CLOSE")
    return {"time": stamp, "event": "/proc/net/tcp", "what": "state", "src": _endpoint(*ends[0]),
            "dst": _endpoint(*ends[1]), "process": None,
            "from": kb.state_by_number[old].split(":")[1] if old in kb.state_by_number else None,
            "to": entry.split(":")[1], "entry": entry}


def _polled(kb: Knowledge, filters: Filters, printer: Printer, record: dict) -> None:
    record.setdefault("reason", record.get("to"))
    kb.explain(record)
    if filters.passes(record):
        printer.show(record)


# --- the command -----------------------------------------------------------------------------------

def _open_tracer():
    """(tracer, None) or (None, why tracing is not possible here)."""
    try:
        tracer = tracefs.Tracer("watch", EVENTS, buffer_kb=8192, filters=FILTERS, guard=True)
    except tracefs.TracefsUnavailable as e:
        return None, str(e)
    if not tracer.enabled:
        tracer.close()
        return None, "this kernel has none of the tracepoints watch reads"
    return tracer, None


def _blind_spots(tracer) -> list[str]:
    """What a tracer that runs cannot see: missing tracepoints, a reset reason the kernel omits."""
    out = [f"this kernel has no tracepoint {e}: its events are not shown" for e in tracer.missing]
    if "tcp/tcp_send_reset" in tracer.enabled:
        try:
            has_reason = "reason" in tracefs.read_format("tcp/tcp_send_reset").split("print fmt:")[0]
        except tracefs.TracefsUnavailable:
            has_reason = True
        if not has_reason:
            out.append("this kernel's tcp_send_reset names no reason (added in Linux 6.10): "
                       "resets sent point to flag:RST")
    return out


def _on_signals():
    """SIGTERM and SIGHUP end watch as Ctrl-C does, so the instance is removed; so does the death
    of whoever started watch (PR_SET_PDEATHSIG). Returns a function that undoes it all."""
    from .machine.netns import die_with_parent

    def stop(signum, frame):
        raise Stop(signal.Signals(signum).name)

    parent = os.getppid()
    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request was made
        raise Stop("parent gone")

    def undo():
        die_with_parent(0)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return undo


def _load(as_json: bool) -> Knowledge | None:
    from . import answer

    loaded: list[Knowledge] = []
    return loaded[0] if answer.run(lambda conn: loaded.append(Knowledge(conn)), as_json) == 0 else None


def main(ports=(), hosts=(), events=(), reasons=(), duration: float | None = None,
         as_json: bool = False, summary: bool = False, netns: str | None = None) -> int:
    """Watch until --duration ends, Ctrl-C, SIGTERM or SIGHUP; 0, or 2 for bad usage, 1 when the
    namespace or the database cannot be read."""
    bad = check_options(ports, hosts, events, reasons, duration)
    if bad:
        output.fail(bad)
        return 2
    owner = None
    if netns is not None:
        from .machine import netns as namespaces

        try:
            owner = NamespaceOwner(namespaces.enter_netns(namespaces.namespace_path(netns)))
        except (ValueError, OSError, namespaces.IsolationError) as e:
            output.fail(f"--netns {netns}: {e}")
            return 2 if isinstance(e, ValueError) else 1
    kb = _load(as_json)
    if kb is None:
        return 1
    return _run(kb, Filters(ports, hosts, events, reasons), Printer(as_json), duration, summary, owner)


def _run(kb, filters, printer, duration, summary, owner) -> int:
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    tracer = None
    undo = None
    try:
        undo = _on_signals()
        tracer, why = _open_tracer()
        if tracer is None:
            output.echo(f"tcpkb watch: cannot trace ({why}): polling /proc/net/tcp and the counters every "
                        f"{POLL_INTERVAL:g} s instead; resets, drops, errors and retransmits are seen only "
                        f"as counts, not one by one", err=True)
            _poll(kb, filters, printer, deadline)
        else:
            for line in _blind_spots(tracer):
                output.echo(f"tcpkb watch: {line}", err=True)
            _trace(tracer, kb, filters, printer, deadline, owner)
    except (KeyboardInterrupt, Stop):
        pass
    except BrokenPipeError:
        raise  # the reader went away: main.py ends quietly (the finally below has run)
    finally:
        if tracer is not None:
            tracer.close()
        if undo is not None:
            undo()
    if summary:
        printer.summary(kb, time.monotonic() - started)
    sys.stdout.flush()
    return 0
