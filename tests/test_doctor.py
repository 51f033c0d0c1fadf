"""`tcpkb doctor`: the rules on made-up scans, and real trouble staged in fresh namespaces.

The namespace tests need root: each runs in a forked child inside a network
namespace of its own (127.0.0.1 only), sets up one kind of trouble, runs
scan() and findings() there, and checks them against what it set up and
against `ss -tan` run in the same namespace. The child's exit destroys the
namespace with every socket in it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from tcpkb import doctor
from tcpkb.query import lookup
from tcpkb.machine import netns

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")
needs_ss = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
TROUBLE = ("problem", "warning")


# --- helpers ------------------------------------------------------------------------------

def in_namespace(fn, timeout: float = 30.0, own_hash_table: bool = True):
    try:
        return netns.in_new_namespace(fn, timeout, own_hash_table)
    except netns.IsolationError as e:
        if "cannot create" in str(e):
            pytest.skip(str(e))
        raise


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def count(st: int) -> int:
    return sum(r["st"] == st for r in doctor.sockets())


def ss_states(conn) -> tuple[dict[str, int], dict[str, int]]:
    """`ss -tan` in this namespace: {state id: count}, and {listening port: Recv-Q}."""
    by_ss = {r[0]: r[1] for r in conn.execute("select ss, id from states where ss is not null and ss != ''")}
    text = subprocess.run(["ss", "-tan"], capture_output=True, text=True, timeout=10, check=True).stdout
    states: dict[str, int] = {}
    queues: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if not parts:
            continue
        sid = by_ss[parts[0]]
        states[sid] = states.get(sid, 0) + 1
        if sid == "state:LISTEN":
            queues[parts[3].rsplit(":", 1)[1]] = int(parts[1])  # JSON keys are strings
    return states, queues


def measured(db: str) -> dict:
    """scan() + findings() with `ss -tan` before and after; retried until ss saw no change."""
    conn = lookup.connect(db)
    try:
        for _ in range(5):
            before = ss_states(conn)
            t = time.perf_counter()
            scan = doctor.scan(conn)
            found = doctor.findings(scan, conn)
            took = time.perf_counter() - t
            after = ss_states(conn)
            if before == after:
                break
        return {"scan": scan, "findings": found, "ss": after[0], "ss_queues": after[1],
                "stable": before == after, "seconds": took, "pid": os.getpid()}
    finally:
        conn.close()


def ids(found: list[dict], trouble_only: bool = False) -> set[str]:
    return {f["id"] for f in found if f["id"] != "sysctl-off-default"
            and (not trouble_only or f["severity"] in TROUBLE)}


def agrees_with_ss(r: dict) -> None:
    assert r["stable"], "the sockets kept changing between two runs of ss"
    assert r["scan"]["states"] == r["ss"]
    for x in r["scan"]["listeners"]:
        assert r["ss_queues"][str(x["port"])] == x["accept_queue"]


# --- rules on made-up scans (no root) --------------------------------------------------------

def fake_scan(**kw) -> dict:
    scan = {"states": {}, "total": 0, "ports": [], "listeners": [], "detached": {}, "counters": {},
            "knobs": [], "port_range": {"low": 32768, "high": 60999, "size": 28232}}
    scan.update(kw)
    return scan


def everything_wrong(conn) -> dict:
    knob = lookup.entry(conn, "sysctl:net.ipv4.tcp_fin_timeout")
    return fake_scan(
        states={"state:CLOSE_WAIT": 30, "state:TIME_WAIT": 90, "state:SYN_RECV": 12,
                "state:FIN_WAIT2": 150, "state:LISTEN": 1},
        ports=[{"port": 8080, "total": 42, "states": {"state:CLOSE_WAIT": 30, "state:SYN_RECV": 12},
                "owners": [{"pid": 4242, "comm": "javaapp"}]}],
        listeners=[{"address": "0.0.0.0", "port": 8080, "accept_queue": 7, "owner": None}],
        detached={"state:FIN_WAIT2": 150, "state:TIME_WAIT": 90},
        counters={"TcpExtListenOverflows": 3, "TcpExtListenDrops": 3, "TcpExtTCPTimeWaitOverflow": 1,
                  "TcpExtSyncookiesSent": 5, "TcpExtTCPAbortOnTimeout": 2, "TcpRetransSegs": 9},
        knobs=[{"id": knob["id"], "name": knob["name"], "value": "30", "default": "60",
                "default_source": "note", "summary": knob["summary"],
                "advice": knob["sections"]["what-to-do"]}],
        port_range={"low": 40000, "high": 40099, "size": 100})


def test_every_rule_fires_and_every_read_id_exists(kb_db):
    with lookup.connect(str(kb_db)) as conn:
        found = doctor.findings(everything_wrong(conn), conn)
        assert [f["id"] for f in found] == [
            "close-wait-pile", "listen-overflow", "time-wait-exhaustion", "time-wait-overflow",
            "syncookies-sent", "abort-on-timeout", "fin-wait2-orphans", "sysctl-off-default"]
        for f in found:
            assert set(f) == {"id", "severity", "title", "detail", "explain", "read"}
            assert f["severity"] in doctor.SEVERITIES and f["read"]
            assert "\n" not in f["title"]
            for entry_id in f["read"]:
                lookup.entry(conn, entry_id, full=False)  # raises NotFound if the id is not in the KB
    by_id = {f["id"]: f for f in found}
    assert "8080" in by_id["close-wait-pile"]["detail"] and "pid 4242 (javaapp)" in by_id["close-wait-pile"]["detail"]
    assert "port 8080 (7 waiting)" in by_id["listen-overflow"]["detail"]
    assert "90 sockets in TIME_WAIT" in by_id["time-wait-exhaustion"]["detail"]
    assert by_id["sysctl-off-default"]["read"] == ["sysctl:net.ipv4.tcp_fin_timeout"]
    assert by_id["sysctl-off-default"]["explain"].startswith("Leave it at 60")  # the note's first paragraph
    assert doctor.status(found) == 1


def test_thresholds(kb_db):
    with lookup.connect(str(kb_db)) as conn:
        calm = fake_scan(
            states={"state:CLOSE_WAIT": 9, "state:TIME_WAIT": 49, "state:SYN_RECV": 9},
            ports=[{"port": 80, "total": 9, "states": {"state:CLOSE_WAIT": 9}, "owners": []}],
            detached={"state:FIN_WAIT2": 99}, counters={"TcpRetransSegs": 100, "TcpExtTCPAbortOnData": 4},
            port_range={"low": 40000, "high": 40099, "size": 100})
        assert doctor.findings(calm, conn) == []
        assert doctor.status([]) == 0
        only_counter = fake_scan(counters={"TcpExtListenDrops": 1})
        [f] = doctor.findings(only_counter, conn)  # a count since boot is history
        assert (f["id"], f["severity"]) == ("listen-overflow", "info")
        [f] = doctor.findings(only_counter, conn, previous={"TcpExtListenDrops": 1})
        assert f["severity"] == "info"  # it has not moved since the last round
        [f] = doctor.findings(only_counter, conn, previous={"TcpExtListenDrops": 0})
        assert f["severity"] == "warning"  # it is moving now


def test_watch_ends_on_ctrl_c_with_the_last_status(kb_db, monkeypatch):
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    overflows = iter([1, 3])  # the counter moves between the two rounds: a warning now
    monkeypatch.setattr(doctor, "scan", lambda conn=None: fake_scan(
        counters={"TcpExtListenOverflows": next(overflows)}))
    sleeps = []

    def interrupted(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(doctor.time, "sleep", interrupted)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert doctor.main(as_json=False, watch=5, times=None) == 1
    text = out.getvalue()
    assert text.count("listen-overflow") == 2 and "2 overflows since the last round" in text


def test_watch_times_and_bad_usage(kb_db, monkeypatch):
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    monkeypatch.setattr(doctor, "scan", lambda conn=None: fake_scan())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert doctor.main(as_json=True, watch=0.01, times=3) == 0
    decoder, text, reports = json.JSONDecoder(), out.getvalue(), []
    i = 0
    while i < len(text.rstrip()):
        obj, i = decoder.raw_decode(text, i)
        reports.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    assert len(reports) == 3
    with contextlib.redirect_stderr(io.StringIO()):
        assert doctor.main(watch=0) == 2
        assert doctor.main(watch=1, times=0) == 2


def test_a_missing_database_is_an_error_not_a_crash(tmp_path, monkeypatch):
    (tmp_path / "bad.db").write_text("not a database")
    monkeypatch.setenv("TCPKB_DB", str(tmp_path / "bad.db"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert doctor.main() == 1
    assert "cannot read the database" in err.getvalue()


# --- real trouble in fresh namespaces (root) ----------------------------------------------------

@needs_root
@needs_ss
def test_close_wait_pile(kb_db):
    def child():
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2048 if hard == resource.RLIM_INFINITY else min(max(hard, 2048), hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 7001))
        srv.listen(256)
        srv.settimeout(2)
        clients, kept = [], []
        try:
            for _ in range(200):
                c = socket.socket()
                c.settimeout(2)
                c.connect(("127.0.0.1", 7001))
                clients.append(c)
                kept.append(srv.accept()[0])  # accepted and never closed: the bug being staged
            for c in clients:
                c.close()
            wait_until(lambda: count(8) == 200, 5, "200 CLOSE_WAIT")
            return measured(str(kb_db))
        finally:
            for s in kept + clients + [srv]:
                s.close()

    # A namespace with a hash table of its own (256 entries) also gets tcp_max_tw_buckets 128, and
    # FIN_WAIT2 orphans beyond it are freed (TcpExtTCPTimeWaitOverflow): share the host's table.
    r = in_namespace(child, own_hash_table=False)
    agrees_with_ss(r)
    s = r["scan"]
    assert s["states"] == {"state:CLOSE_WAIT": 200, "state:FIN_WAIT2": 200, "state:LISTEN": 1}
    assert s["ports"][0]["port"] == 7001 and s["ports"][0]["states"] == {"state:CLOSE_WAIT": 200}
    assert s["ports"][0]["owners"] == [{"pid": r["pid"], "comm": s["ports"][0]["owners"][0]["comm"]}]
    assert ids(r["findings"], trouble_only=True) == {"close-wait-pile"}
    # the clients closed first: their 200 sockets wait for a FIN that never comes
    assert ids(r["findings"]) == {"close-wait-pile", "fin-wait2-orphans"}
    [f] = [f for f in r["findings"] if f["id"] == "close-wait-pile"]
    assert f["severity"] == "problem"
    assert "200 sockets on local port 7001" in f["detail"] and f"pid {r['pid']} " in f["detail"]
    assert f["read"] == ["state:CLOSE_WAIT", "call:close"]


@needs_root
@needs_ss
def test_time_wait_against_a_small_port_range(kb_db):
    def child():
        netns.set_sysctl("net.ipv4.ip_local_port_range", "40000 40099")
        srv = socket.socket()
        srv.bind(("127.0.0.1", 7002))  # outside the range, so the listener takes none of its ports
        srv.listen(128)
        srv.settimeout(2)
        clients, accepted = [], []
        try:
            for _ in range(80):
                c = socket.socket()
                c.settimeout(2)
                c.connect(("127.0.0.1", 7002))
                clients.append(c)
                accepted.append(srv.accept()[0])
            for c in clients:  # the client closes first, so TIME_WAIT lands on its side
                c.close()
            wait_until(lambda: count(8) == 80, 5, "80 CLOSE_WAIT on the server side")
            for a in accepted:
                a.close()
            wait_until(lambda: count(6) == 80, 5, "80 TIME_WAIT")
            return measured(str(kb_db))
        finally:
            for s in accepted + clients + [srv]:
                s.close()

    r = in_namespace(child)
    agrees_with_ss(r)
    s = r["scan"]
    assert s["states"] == {"state:TIME_WAIT": 80, "state:LISTEN": 1}
    assert s["port_range"] == {"low": 40000, "high": 40099, "size": 100}
    assert all(40000 <= p["port"] <= 40099 and p["states"] == {"state:TIME_WAIT": 1} for p in s["ports"])
    assert ids(r["findings"]) == {"time-wait-exhaustion"}
    [f] = [f for f in r["findings"] if f["id"] == "time-wait-exhaustion"]
    assert f["severity"] == "warning"
    assert "80 sockets in TIME_WAIT" in f["detail"] and "40000-40099 (100 ports, 80%" in f["detail"]
    knobs = [f for f in r["findings"] if f["id"] == "sysctl-off-default"]
    assert [k["read"] for k in knobs if "ip_local_port_range" in k["read"][0]] == [
        ["sysctl:net.ipv4.ip_local_port_range"]]


@needs_root
@needs_ss
def test_listen_queue_overflow(kb_db):
    def child():
        srv = socket.socket()
        srv.bind(("127.0.0.1", 7003))
        srv.listen(1)  # takes backlog + 1 = 2 connections; nothing ever accepts them
        clients = []
        try:
            for _ in range(8):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", 7003))
                clients.append(c)
            wait_until(lambda: doctor.counters().get("TcpExtListenOverflows", 0) > 0, 5,
                       "TcpExtListenOverflows")
            return measured(str(kb_db))
        finally:
            for c in clients + [srv]:
                c.close()

    r = in_namespace(child)
    agrees_with_ss(r)
    s = r["scan"]
    assert s["counters"]["TcpExtListenOverflows"] > 0
    assert s["listeners"] == [{"address": "127.0.0.1", "port": 7003, "accept_queue": 2,
                               "owner": {"pid": r["pid"], "comm": s["listeners"][0]["owner"]["comm"]}}]
    assert ids(r["findings"]) == {"listen-overflow"}
    [f] = r["findings"][:1]
    assert (f["id"], f["severity"]) == ("listen-overflow", "problem")
    assert "port 7003 (2 waiting" in f["detail"]
    assert f"ListenOverflows {s['counters']['TcpExtListenOverflows']}" in f["detail"]


@needs_root
@needs_ss
def test_a_clean_namespace_is_healthy_and_json_has_its_shape(kb_db):
    def child():
        os.environ["TCPKB_DB"] = str(kb_db)
        r = measured(str(kb_db))
        text, js = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(text):
            r["status"] = doctor.main(as_json=False, watch=None, times=None)
        with contextlib.redirect_stdout(js):
            r["json_status"] = doctor.main(as_json=True, watch=None, times=None)
        r["text"], r["json"] = text.getvalue(), json.loads(js.getvalue())
        return r

    r = in_namespace(child)
    agrees_with_ss(r)
    assert r["scan"]["states"] == {} and r["scan"]["listeners"] == []
    assert not ids(r["findings"], trouble_only=True)
    assert r["status"] == 0 and r["json_status"] == 0
    assert "0 TCP sockets" in r["text"]
    j = r["json"]
    assert list(j) == ["states", "ports", "listeners", "counters", "knobs", "findings"]
    assert j["states"] == {} and j["ports"] == [] and j["listeners"] == []
    assert set(j["counters"]) == set(doctor.COUNTERS) and not any(j["counters"].values())
    assert all(f["severity"] == "info" for f in j["findings"])
