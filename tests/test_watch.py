"""`tcpkb watch`: the real events, made in fresh network namespaces, reported with the right
reason and entry; one namespace's events kept apart from a neighbour's; and the tracefs
instance gone after every way watch can end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tcpkb import watch
from tcpkb.machine import tracefs

from .conftest import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="tracing and namespaces need root")
TUN = os.access("/dev/net/tun", os.R_OK | os.W_OK)  # the scripted peer's device
WORKS = ["closed-port", "unread-close", "zero-linger", "close-wait"] + \
    (["listen-overflow", "keepalive-timeout", "retransmit"] if TUN else [])
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


def _root() -> str:
    try:
        return tracefs.tracing_root()
    except tracefs.TracefsUnavailable as e:
        pytest.skip(str(e))


def _instances(pid: int) -> list[str]:
    base = os.path.join(_root(), "instances")
    return [n for n in os.listdir(base) if n.startswith(f"{tracefs.PREFIX}{pid}-")]


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what} after {seconds} s")


def _start_watch(*args: str, kb_db=None) -> subprocess.Popen:
    """watch in a process of its own, its output going to files: a pipe nobody reads until the
    end fills, and would stop watch in the middle of a line."""
    import tempfile

    env = {**ENV, "TCPKB_DB": str(kb_db)} if kb_db else ENV
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "tcpkb", "watch", *args], cwd=ROOT, env=env,
                            stdout=out, stderr=err, text=True)
    proc.out, proc.err = out, err
    _wait_recording(proc.pid, proc)
    return proc


def _finish(proc: subprocess.Popen, sig: int | None = signal.SIGTERM) -> tuple[str, str]:
    """Signal watch (unless `sig` is None), wait for it, and return what it printed (stdout, stderr)."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(30)
    texts = []
    for f in (proc.out, proc.err):
        f.seek(0)
        texts.append(f.read())
        f.close()
    return texts[0], texts[1]


def _wait_recording(pid: int, proc=None) -> None:
    """Until watch's instance exists with its events enabled (it records from then on)."""
    def recording():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"watch ended early: {_finish(proc)[1]}")
        for name in _instances(pid):
            enable = os.path.join(_root(), "instances", name, "events", "sock", "inet_sock_set_state", "enable")
            try:
                with open(enable) as f:
                    return f.read().strip() == "1"
            except OSError:
                return False
        return False
    _wait(recording, 30, "watch to start recording")
    time.sleep(0.2)  # trace_pipe opened just after the events are enabled


class Workload:
    """tests/watch_workload.py in a namespace of its own."""

    def __init__(self, *works: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.watch_workload", *works], cwd=ROOT,
                                     env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            pytest.skip(f"no namespace for the workload: {self.proc.stderr.read().strip()[-300:]}")
        self.pid = json.loads(line)["pid"]

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def done(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the workload failed: {self.proc.stderr.read()[-2000:]}"
        return json.loads(line)["done"]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _stop(proc: subprocess.Popen) -> list[dict]:
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _ports(record: dict) -> set[int]:
    return {int(e.rsplit(":", 1)[1]) for e in (record["src"], record["dst"]) if e}


def _one(records: list[dict], entry: str, port: int | None = None) -> list[dict]:
    return [r for r in records if r["entry"] == entry and (port is None or port in _ports(r))]


@pytest.fixture(scope="module")
def neighbours(kb_db):
    """Two namespaces doing the same things at the same time; one watch for the first namespace
    alone, one for every namespace."""
    target, neighbour = Workload(*WORKS), Workload(*WORKS)
    watchers = []
    try:
        watchers = [_start_watch("--json", "--netns", str(target.pid), kb_db=kb_db),
                    _start_watch("--json", kb_db=kb_db)]
        target.go()
        neighbour.go()
        facts = target.done(), neighbour.done()
        time.sleep(0.5)  # the last events reach the readers
        only, everything = (_stop(w) for w in watchers)
        yield facts, only, everything
    finally:
        for w in watchers:
            if w.poll() is None:
                w.kill()
                w.wait()
        target.close()
        neighbour.close()


def _kernel_has(event: str, field: str, value: str) -> bool:
    try:
        return value in tracefs.enum_values(event, field)
    except tracefs.TracefsUnavailable:
        return False


def test_a_closed_port_is_a_reset_for_no_socket_a_drop_and_econnrefused(neighbours):
    (facts, _), only, _ = neighbours
    closed, client = facts["closed-port"]["closed_port"], facts["closed-port"]["client_port"]
    if _kernel_has("tcp/tcp_send_reset", "reason", "NO_SOCKET"):
        [rst] = _one(only, "rst:NO_SOCKET", closed)
        assert rst["what"] == "reset-sent" and rst["reason"] == "NO_SOCKET"
        assert rst["src"] == f"127.0.0.1:{closed}" and rst["dst"] == f"127.0.0.1:{client}"
        assert rst["title"] and rst["explanation"]
    [drop] = _one(only, "drop:NO_SOCKET", closed)
    assert drop["what"] == "drop" and drop["reason"] == "NO_SOCKET"
    [refused] = _one(only, "errno:ECONNREFUSED", client)
    assert refused["error"] == 111 and refused["title"] == "Connection refused"


def test_close_with_unread_data_is_a_reset_for_abort_on_close(neighbours):
    (facts, _), only, _ = neighbours
    server, client = facts["unread-close"]["server_port"], facts["unread-close"]["client_port"]
    if not _kernel_has("tcp/tcp_send_reset", "reason", "TCP_ABORT_ON_CLOSE"):
        pytest.skip("this kernel's tcp_send_reset names no reason")
    [rst] = _one(only, "rst:TCP_ABORT_ON_CLOSE", server)
    assert rst["src"] == f"127.0.0.1:{server}" and rst["process"], rst  # sent from close(), in its process
    assert _one(only, "errno:ECONNRESET", client)
    assert _one(only, "flag:RST", client)


def test_zero_linger_close_is_a_reset_for_tcp_state(neighbours):
    (facts, _), only, _ = neighbours
    server = facts["zero-linger"]["server_port"]
    if not _kernel_has("tcp/tcp_send_reset", "reason", "TCP_STATE"):
        pytest.skip("this kernel's tcp_send_reset names no reason")
    [rst] = _one(only, "rst:TCP_STATE", server)
    assert rst["reason"] == "TCP_STATE"


def _needs_tun() -> None:
    if not TUN:
        pytest.skip("no usable /dev/net/tun for the scripted peer")


def test_a_full_accept_queue_drops_the_last_ack_for_listen_overflow(neighbours):
    _needs_tun()
    _, only, _ = neighbours
    if not _kernel_has("skb/kfree_skb", "reason", "TCP_LISTEN_OVERFLOW"):
        pytest.skip("this kernel has no drop reason TCP_LISTEN_OVERFLOW (added after 6.12)")
    [drop] = _one(only, "drop:TCP_LISTEN_OVERFLOW")
    assert drop["reason"] == "TCP_LISTEN_OVERFLOW" and drop["title"]


def test_unanswered_keepalives_are_a_reset_for_keepalive_timeout_and_etimedout(neighbours):
    _needs_tun()
    (facts, _), only, _ = neighbours
    port = facts["keepalive-timeout"]["keepalive_port"]
    [timedout] = _one(only, "errno:ETIMEDOUT", port)
    assert timedout["process"] is None  # a timer fired it: no process is named
    if _kernel_has("tcp/tcp_send_reset", "reason", "TCP_KEEPALIVE_TIMEOUT"):
        [rst] = _one(only, "rst:TCP_KEEPALIVE_TIMEOUT", port)
        assert rst["dst"] == "10.0.0.2:80"


def test_a_socket_left_open_after_the_peer_closed_shows_as_close_wait(neighbours):
    (facts, _), only, _ = neighbours
    port = facts["close-wait"]["server_port"]
    [record] = [r for r in _one(only, "state:CLOSE_WAIT", port) if r["src"].endswith(f":{port}")]
    assert record["from"] == "ESTABLISHED" and record["to"] == "CLOSE_WAIT" and record["title"]
    assert record["process"] is None  # the FIN arrived in an interrupt


def test_unacknowledged_data_is_retransmitted(neighbours):
    _needs_tun()
    (facts, _), only, _ = neighbours
    port = facts["retransmit"]["retransmit_port"]
    found = _one(only, "counter:TcpRetransSegs", port)
    assert found and all(r["what"] == "retransmit" and r["dst"] == "10.0.0.2:81" for r in found)


def _ports_used(facts: dict) -> set[int]:
    out = set()
    for work in facts.values():
        for value in work.values():
            out |= set(value) if isinstance(value, list) else {value}
    return out


def test_netns_shows_nothing_of_a_neighbour_doing_the_same(neighbours):
    (mine, theirs), only, everything = neighbours
    # the neighbour's events happened, and a watch of every namespace saw them
    assert _one(everything, "rst:TCP_ABORT_ON_CLOSE", theirs["unread-close"]["server_port"]) or \
        not _kernel_has("tcp/tcp_send_reset", "reason", "TCP_ABORT_ON_CLOSE")
    assert _one(everything, "drop:NO_SOCKET", theirs["closed-port"]["closed_port"])
    if TUN:
        port = theirs["keepalive-timeout"]["keepalive_port"]
        assert _one(everything, "errno:ETIMEDOUT", port), [r for r in everything if port in _ports(r)]
    # ... and none reached the watch of the first namespace: each kind counted once, not twice
    theirs_only = _ports_used(theirs) - _ports_used(mine) - {8080, 40001, 40002, 40003, 80, 81}
    leaked = [r for r in only if _ports(r) & theirs_only]
    assert not leaked, leaked
    once = ["drop:NO_SOCKET", "errno:ECONNREFUSED"] + (["errno:ETIMEDOUT"] if TUN else [])
    if TUN and _kernel_has("skb/kfree_skb", "reason", "TCP_LISTEN_OVERFLOW"):
        once.append("drop:TCP_LISTEN_OVERFLOW")  # no ports: the process or the packet tells
    for entry in once:
        assert len(_one(only, entry)) == 1, (entry, _one(only, entry))
        assert len(_one(everything, entry)) >= 2, entry  # the neighbour's too, in the global watch


def test_text_lines_and_filters(kb_db):
    load = Workload("closed-port", "unread-close")
    proc = None
    try:
        proc = _start_watch("--netns", str(load.pid), "--event", "reset-sent", "--reason", "NO_SOCKET",
                            "--summary", kb_db=kb_db)
        load.go()
        facts = load.done()
        time.sleep(0.5)
        out, _ = _finish(proc, signal.SIGINT)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        load.close()
    lines = out.splitlines()
    closed = facts["closed-port"]["closed_port"]
    if not _kernel_has("tcp/tcp_send_reset", "reason", "NO_SOCKET"):
        pytest.skip("this kernel's tcp_send_reset names no reason")
    [line] = [x for x in lines if "rst:" in x and "event(s)" not in x and not x.startswith(" ")]
    assert f"127.0.0.1:{closed} >" in line and "reset-sent NO_SOCKET" in line and line.endswith("rst:NO_SOCKET")
    assert "TCP_ABORT_ON_CLOSE" not in out.split("event(s)")[0]  # filtered out by --reason
    assert "1 event(s) in" in out and "rst:NO_SOCKET" in out.split("event(s)")[1]


# --- without tracing ---------------------------------------------------------------------------

def test_without_tracing_it_says_so_and_polls_states_and_counters(monkeypatch, capsys, kb_db):
    import socket
    import threading

    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    def no_tracefs():
        raise tracefs.TracefsUnavailable("tracefs is not mounted and cannot be mounted here (root needed)")
    monkeypatch.setattr(tracefs, "tracing_root", no_tracefs)  # as for a user who is not root
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def trouble():
        time.sleep(0.8)
        listener.listen(1)
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        target = closed.getsockname()
        closed.close()
        with socket.socket() as s:
            try:
                s.connect(target)
            except ConnectionRefusedError:
                pass
    t = threading.Thread(target=trouble)
    t.start()
    try:
        assert watch.main(duration=2.0, as_json=True) == 0
    finally:
        t.join()
        listener.close()
    out, err = capsys.readouterr()
    assert err.startswith("tcpkb watch: cannot trace (tracefs is not mounted and cannot be mounted here "
                          "(root needed)): polling /proc/net/tcp and the counters every 0.5 s") and err.count("\n") == 1
    records = [json.loads(x) for x in out.splitlines()]
    assert [r for r in records if r["entry"] == "state:LISTEN" and r["src"] == f"127.0.0.1:{port}"]
    counters = {r["reason"] for r in records if r["what"] == "counter"}
    assert "TcpOutRsts" in counters and all(r["explanation"] for r in records)
    assert "IpInReceives" not in counters  # traffic, not trouble


class _Tracer:
    def __init__(self, missing):
        self.missing, self.enabled = missing, [e for e in watch.EVENTS if e not in missing]


def test_what_a_kernel_without_an_event_cannot_show_is_said_once_per_event():
    lines = watch._blind_spots(_Tracer(["tcp/tcp_receive_reset", "skb/kfree_skb"]))
    assert lines[:2] == ["this kernel has no tracepoint tcp/tcp_receive_reset: its events are not shown",
                         "this kernel has no tracepoint skb/kfree_skb: its events are not shown"]
    has_reason = "reason" in tracefs.read_format("tcp/tcp_send_reset").split("print fmt:")[0]
    assert len(lines) == (2 if has_reason else 3)


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "--port takes a port number"),
    (["--host", "example"], "--host takes an IPv4 or IPv6 address"),
    (["--event", "boom"], "--event takes one of"),
    (["--duration", "-1"], "--duration takes a number of seconds"),
    (["--netns", "no-such-namespace-here"], "no network namespace at /run/netns/no-such-namespace-here"),
])
def test_bad_options_are_one_line_and_exit_2(args, message):
    done = subprocess.run([sys.executable, "-m", "tcpkb", "watch", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


# --- the instance is gone after every way of ending ----------------------------------------------

def _gone(pid: int) -> None:
    _wait(lambda: not _instances(pid), 10, f"the instance of watch {pid} to be removed")


@pytest.mark.parametrize("how", ["duration", "SIGINT", "SIGTERM", "SIGKILL"])
def test_no_instance_is_left_after(how, kb_db):
    proc = _start_watch(*(["--duration", "3"] if how == "duration" else []), kb_db=kb_db)
    assert _instances(proc.pid)
    _, err = _finish(proc, None if how == "duration" else getattr(signal, how))
    _gone(proc.pid)
    assert "Traceback" not in err
    assert proc.returncode == (-9 if how == "SIGKILL" else 0)


def test_no_instance_is_left_when_the_parent_is_killed_outright(kb_db):
    starter = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', "
         "'tcpkb', 'watch']); print(p.pid, flush=True); p.wait()"],
        cwd=ROOT, env={**ENV, "TCPKB_DB": str(kb_db)}, stdout=subprocess.PIPE, text=True)
    pid = int(starter.stdout.readline())
    try:
        _wait_recording(pid)
        starter.kill()  # SIGKILL: the parent cannot pass anything on
        starter.wait()
        _wait(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 10, f"watch {pid} to end")
        _gone(pid)
    finally:
        if os.path.exists(f"/proc/{pid}") and not _zombie(pid):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_stale_instance_of_a_dead_process_is_swept_at_the_next_start(kb_db):
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    stale = os.path.join(_root(), "instances", f"{tracefs.PREFIX}{child.pid}-stale")
    os.mkdir(stale)
    try:
        _finish(_start_watch("--duration", "2", kb_db=kb_db), None)
        assert not os.path.isdir(stale)
    finally:
        if os.path.isdir(stale):
            os.rmdir(stale)


def test_netns_by_name_and_by_path_as_ip_netns_makes_them(kb_db, tmp_path):
    import shutil

    if not shutil.which("ip"):
        pytest.skip("no ip(8) here to make a named namespace")
    name = f"tcpkb-watch-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("ip netns add failed here")
    try:
        for spec in (name, f"/run/netns/{name}"):
            proc = _start_watch("--json", "--netns", spec, "--event", "error", kb_db=kb_db)
            code = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; "
                    "s.close(); c = socket.socket()\ntry: c.connect(('127.0.0.1', p))\nexcept OSError: pass\n"
                    "print(p, flush=True)\nimport time; time.sleep(1)")  # alive while watch reads
            port = int(subprocess.run(["ip", "netns", "exec", name, "sh", "-c", f"ip link set lo up && "
                                       f"{sys.executable} -c \"{code}\""], capture_output=True, text=True,
                                      timeout=30).stdout)
            time.sleep(0.3)
            [refused] = _one(_stop(proc), "errno:ECONNREFUSED", port)
            assert refused["dst"] == f"127.0.0.1:{port}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_filters_match_ports_addresses_events_and_reasons_as_the_kernel_spells_them():
    reset = {"what": "reset-sent", "entry": "rst:NO_SOCKET", "reason": "NO_SOCKET",
             "src": "[::ffff:10.1.2.3]:8080", "dst": "[::ffff:10.1.2.4]:40000"}
    state = {"what": "state", "entry": "state:CLOSE_WAIT", "reason": "CLOSE_WAIT",
             "src": "127.0.0.1:5432", "dst": "127.0.0.1:50000"}
    drop = {"what": "drop", "entry": "drop:NO_SOCKET", "reason": "NO_SOCKET", "src": None, "dst": None}
    cases = [({"ports": [8080]}, [reset]), ({"ports": [40000, 5432]}, [reset, state]),
             ({"hosts": ["10.1.2.4"]}, [reset]), ({"hosts": ["::1"]}, []),
             ({"events": ["tcp_send_reset"]}, [reset]), ({"events": ["state", "drop"]}, [state, drop]),
             ({"reasons": ["tcp_close_wait"]}, [state]), ({"reasons": ["no_socket"]}, [reset, drop]),
             ({"reasons": ["NO_SOCKET"], "events": ["drop"]}, [drop]), ({}, [reset, state, drop])]
    for options, passing in cases:
        chosen = watch.Filters(**options)
        assert [r for r in (reset, state, drop) if chosen.passes(r)] == passing, options


def test_trace_lines_become_records_with_their_entries(kb_db):
    import sqlite3

    with sqlite3.connect(kb_db) as conn:
        kb = watch.Knowledge(conn)
    lines = [  # as trace_pipe prints them; the first from a kernel before 6.10, with no reason
        "  python-42  [001] ..s1.  10.000001: tcp_send_reset: skbaddr=00000000aaaa skaddr=0000000000000000 "
        "src=127.0.0.1:9000 dest=127.0.0.1:40000 state=TCP_CLOSE",
        "  python-42  [001] ..s1.  10.000002: kfree_skb: skbaddr=00000000aaaa rx_sk=0000000000000000 "
        "protocol=2048 location=tcp_v4_rcv+0x99/0x1400 reason: NO_SOCKET",
        "  python-42  [001] .....  10.000003: inet_sk_error_report: family=AF_INET protocol=IPPROTO_TCP "
        "sport=40000 dport=9000 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 "
        "daddrv6=::ffff:127.0.0.1 error=111",
        "  <idle>-0  [000] ..s1.  10.000004: inet_sock_set_state: family=AF_INET6 protocol=IPPROTO_TCP "
        "sport=8080 dport=51000 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 "
        "oldstate=TCP_ESTABLISHED newstate=TCP_CLOSE_WAIT",
    ]
    last_seen: dict = {}
    records = []
    for line in lines:
        e = tracefs.parse_line(line)
        record = watch.describe(e, kb, 0.0)
        watch._fill_drop_tuple(e, record, last_seen)
        records.append(record)
    reset, drop, error, state = records
    assert (reset["entry"], reset["reason"], reset["process"], reset["interrupt"]) == ("flag:RST", None, None, True)
    assert (drop["entry"], drop["src"], drop["dst"]) == ("drop:NO_SOCKET", "127.0.0.1:40000", "127.0.0.1:9000")
    assert (error["entry"], error["process"], error["time"]) == (
        "errno:ECONNREFUSED", {"pid": 42, "comm": "python"}, "1970-01-01T00:00:10.000003Z")
    assert (state["entry"], state["from"], state["src"]) == ("state:CLOSE_WAIT", "ESTABLISHED", "[::1]:8080")
    assert all(r["explanation"] for r in records)
