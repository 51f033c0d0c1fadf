"""The proof engine: every scenario live on this kernel, coverage, results, and cleanup."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcpkb.query import lookup
from tcpkb.build.database import build
from tcpkb.notes import load
from tcpkb.verify import Scenario, all_scenarios, proof_records, results
from tcpkb.verify.command import coverage_report, select, Usage
from tcpkb.verify.runner import run

from .conftest import KB, ROOT

ROOTED = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOTED, reason="live scenarios need root (CI runs as root)")

# What issue 3 asks to see reproduced, not merely checked.
REPRODUCED_ERRNOS = """ECONNREFUSED ECONNRESET EPIPE EAGAIN EINPROGRESS EALREADY EISCONN ENOTCONN
    EADDRINUSE EADDRNOTAVAIL ETIMEDOUT ENETUNREACH EHOSTUNREACH ECONNABORTED EMFILE EINTR EBADF
    ENOTSOCK EINVAL EOPNOTSUPP EAFNOSUPPORT EPROTONOSUPPORT EDESTADDRREQ EMSGSIZE""".split()
# ... and what issue 4 asks to see reproduced: the knobs and options with a visible effect.
REPRODUCED_KNOBS = ["sysctl:net.ipv4." + k for k in """tcp_fin_timeout tcp_max_tw_buckets tcp_tw_reuse
    tcp_syn_retries tcp_keepalive_time tcp_keepalive_intvl tcp_keepalive_probes tcp_abort_on_overflow
    tcp_syncookies ip_local_port_range tcp_ecn""".split()] + ["sysctl:net.core.somaxconn"] + [
    "sockopt:" + o for o in """SO_LINGER SO_REUSEADDR SO_REUSEPORT SO_KEEPALIVE TCP_KEEPIDLE TCP_KEEPINTVL
    TCP_KEEPCNT TCP_USER_TIMEOUT SO_ERROR MSG_NOSIGNAL SO_RCVTIMEO TCP_NODELAY""".split()]


def _env(tmp: Path) -> dict:
    env = dict(os.environ, TCPKB_RESULTS=str(tmp / "results"), TCPKB_DB=str(tmp / "tcpkb.db"),
               NO_COLOR="1")
    env.pop("TCPKB_KB", None)
    return env


def tcpkb(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpkb", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """One full `tcpkb verify` on this kernel, into a throwaway results dir and database."""
    tmp = tmp_path_factory.mktemp("verify")
    env = _env(tmp)
    done = tcpkb("verify", "--json", "--jobs", str(2 * (os.cpu_count() or 1)), env=env, timeout=300)
    assert done.stdout, done.stderr
    return {"env": env, "tmp": tmp, "report": json.loads(done.stdout), "code": done.returncode}


@needs_root
def test_every_scenario_passes_live(live):
    bad = [(r["scenario"], r["status"], r["reason"]) for r in live["report"]["results"]
           if r["status"] in ("failed", "error")]
    assert bad == []
    assert live["code"] == 0
    skipped = [(r["scenario"], r["reason"]) for r in live["report"]["results"] if r["status"] == "skipped"]
    assert all(reason for _, reason in skipped)  # a skip always says why


@needs_root
def test_states_flags_socket_errnos_knobs_and_options_are_reproduced(live):
    levels = results.entry_levels(results.read(live["report"]["file"])["results"])
    conn = lookup.connect(live["env"]["TCPKB_DB"])
    states_flags = [r[0] for r in conn.execute("select id from entries where kind in ('state', 'flag')")]
    required = states_flags + [f"errno:{n}" for n in REPRODUCED_ERRNOS] + ["signal:SIGPIPE"]
    required += REPRODUCED_KNOBS
    required += [r[0] for r in conn.execute("select id from entries where kind = 'claim'")]
    assert [e for e in required if levels.get(e) != "reproduced"] == []


@needs_root
def test_coverage_lists_nothing_unverified(live):
    done = tcpkb("verify", "--coverage", "--json", env=live["env"])
    report = json.loads(done.stdout)
    assert report["unverified"] == [] and done.returncode == 0
    assert len(report["reproduced"]) >= 60


@needs_root
def test_lookup_shows_the_verification_line(live):
    done = tcpkb("errno", "104", env=live["env"])
    kernel = os.uname().release
    assert f"reproduced on {kernel} {os.uname().machine}: " in done.stdout
    assert "checked on" in done.stdout
    as_json = json.loads(tcpkb("errno", "ECONNRESET", "--json", env=live["env"]).stdout)
    scenarios = {v["scenario"] for v in as_json["verification"] if v["ok"]}
    assert "close_with_unread_data_sends_rst" in scenarios


@needs_root
def test_database_holds_runs_and_traces(live):
    conn = lookup.connect(live["env"]["TCPKB_DB"])
    row = conn.execute("select r.trace from runs r where r.scenario = 'close_with_unread_data_sends_rst'").fetchone()
    trace = json.loads(row["trace"])
    assert any(p["flags"].startswith("R") for p in trace["packets"] if p.get("proto") == "tcp")
    assert any(s.get("errno") == "ECONNRESET" for s in trace["steps"])
    assert conn.execute("select count(*) from verifications where ok").fetchone()[0] > 200


# --- the registry and the notes agree ------------------------------------------

def test_every_proved_id_exists_and_claims_agree_with_their_verdicts():
    notes, _ = load(KB)
    by_id = {n.id: n for n in notes}
    scenarios = all_scenarios().values()
    missing = sorted({e for s in scenarios for e in s.proves if e not in by_id})
    assert missing == []
    for s in scenarios:
        for claim_id, verdict in s.verdicts.items():
            assert claim_id in s.proves, s.name
            assert by_id[claim_id].meta["verdict"] == verdict, (s.name, claim_id)
    proven_claims = {e for s in scenarios for e in s.proves if e.startswith("claim:")}
    assert {n.id for n in notes if n.kind == "claim"} <= proven_claims
    for s in scenarios:
        for claim_id in (e for e in s.proves if e.startswith("claim:")):
            assert claim_id in s.verdicts, f"{s.name} proves {claim_id} without a verdict"


def test_scenarios_are_named_and_claimed():
    for s in all_scenarios().values():
        assert s.claim.endswith(".") and len(s.claim) > 30, s.name
        assert s.level == "checked" or s.proves, s.name
        assert 0 < s.timeout <= 10, s.name


def test_select_by_name_module_entry_and_unknown():
    scenarios = all_scenarios()
    assert [s.name for s in select(["close_with_unread_data_sends_rst"], scenarios)] == \
        ["close_with_unread_data_sends_rst"]
    assert {s.module for s in select(["checks"], scenarios)} == {"checks"}
    by_entry = select(["errno:ECONNRESET"], scenarios)
    assert "close_with_unread_data_sends_rst" in {s.name for s in by_entry}
    assert "errno_numbers_match_libc_and_headers" in {s.name for s in by_entry}
    with pytest.raises(Usage):
        select(["no_such_thing"], scenarios)


def test_unknown_target_is_a_usage_error(tmp_path):
    done = tcpkb("verify", "no_such_scenario", env=_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


# --- results on disk and in the database -----------------------------------------

def _fake(name: str, kernel: str, status: str = "passed", proves=("errno:EPIPE",)) -> dict:
    return {"scenario": name, "module": "fake", "level": "reproduced", "claim": "A fake claim.",
            "proves": list(proves), "verdicts": {}, "status": status, "reason": None,
            "kernel": kernel, "arch": "x86_64", "time": "2026-01-01T00:00:00+00:00",
            "duration_ms": 1.0,
            "trace": {"steps": [], "packets": [], "counters": {}, "sysctls": {}, "sockets": {}}}


def test_results_merge_per_machine_and_load_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setenv("TCPKB_RESULTS", str(tmp_path))
    results.write([_fake("a", "6.1.0"), _fake("b", "6.1.0")], "6.1.0", "x86_64")
    results.write([_fake("a", "6.1.0", "failed")], "6.1.0", "x86_64")  # a partial run merges
    results.write([_fake("a", "5.10.0")], "5.10.0", "x86_64")  # another machine: its own file
    loaded = results.load_all()
    assert sorted((r["kernel"], r["scenario"], r["status"]) for r in loaded) == [
        ("5.10.0", "a", "passed"), ("6.1.0", "a", "failed"), ("6.1.0", "b", "passed")]
    db = tmp_path / "t.db"
    build(KB, db, proof_records())
    conn = lookup.connect(str(db))
    rows = conn.execute("select kernel, ok from verifications where scenario = 'a' order by kernel").fetchall()
    assert [(r["kernel"], r["ok"]) for r in rows] == [("5.10.0", 1), ("6.1.0", 0)]
    lines = lookup.verification(conn, "errno:EPIPE")
    assert {(v["kernel"], v["ok"]) for v in lines if v["scenario"] == "a"} == {("5.10.0", True), ("6.1.0", False)}


def test_a_broken_results_file_fails_the_build_cleanly(tmp_path, monkeypatch):
    monkeypatch.setenv("TCPKB_RESULTS", str(tmp_path / "r"))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "6.1.0-x86_64.json").write_text("{not json")
    db = tmp_path / "t.db"
    db.write_bytes(b"previous")
    env = dict(os.environ, TCPKB_RESULTS=str(tmp_path / "r"))
    done = subprocess.run([sys.executable, "-m", "tcpkb", "build", "--db", str(db)], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "6.1.0-x86_64.json" in done.stderr
    assert db.read_bytes() == b"previous"


def test_coverage_report_levels(kb_db):
    conn = lookup.connect(str(kb_db))
    fake = [_fake("a", "6.1.0", proves=("errno:EPIPE", "state:LISTEN")),
            _fake("b", "6.1.0", status="failed", proves=("errno:EBADF",)),
            {**_fake("c", "6.1.0", proves=()), "level": "checked",
             "entries": [{"entry": "errno:EBADF", "ok": True}, {"entry": "errno:EPERM", "ok": False}]}]
    report = coverage_report(conn, fake)
    assert "errno:EPIPE" in report["reproduced"] and "state:LISTEN" in report["reproduced"]
    assert "errno:EBADF" in report["checked"]  # its scenario failed; its check passed
    assert "errno:EPERM" in report["unverified"]
    assert "errno:EBADF" in report["socket_only_checked"]


# --- isolation and cleanup --------------------------------------------------------

def _hang(lab):
    lab.note("about to hang")
    time.sleep(60)


def _hang_blocking_the_watchdog(lab):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)


def _scenario(fn, timeout: float, needs=("netns",)) -> Scenario:
    return Scenario(fn.__name__, "Hangs.", ("errno:EPIPE",), fn, "test", needs=frozenset(needs),
                    timeout=timeout)


@needs_root
def test_watchdog_fails_a_hung_scenario_and_keeps_its_trace():
    began = time.monotonic()
    [r] = run([_scenario(_hang, 0.5)])
    assert r["status"] == "failed" and "timed out" in r["reason"]
    assert any(s.get("note") == "about to hang" for s in r["trace"]["steps"])
    assert time.monotonic() - began < 3


def _fails_once(lab):
    """Fails the first time it runs in this test, as a starved timing window would."""
    if not os.path.exists(_FLAKY_MARKER[0]):
        open(_FLAKY_MARKER[0], "w").close()
        lab.expect(False, "a window a stalled VM missed")
    lab.expect(True, "the window, measured again")


_FLAKY_MARKER = [""]


def _always_fails(lab):
    lab.expect(False, "a real fault")


def test_a_failed_scenario_gets_a_second_attempt_that_keeps_the_first_failure(tmp_path):
    _FLAKY_MARKER[0] = str(tmp_path / "ran")
    seen = []
    flaky, broken = _scenario(_fails_once, 2.0, needs=()), _scenario(_always_fails, 2.0, needs=())
    done = run([flaky, broken], on_result=seen.append)
    by_name = {r["scenario"]: r for r in done}
    assert by_name["_fails_once"]["status"] == "passed"
    assert by_name["_fails_once"]["first_attempt"]["status"] == "failed"
    assert "a stalled VM" in by_name["_fails_once"]["first_attempt"]["reason"]
    assert by_name["_always_fails"]["status"] == "failed" and "first_attempt" in by_name["_always_fails"]
    assert [r["status"] for r in seen if r["scenario"] == "_fails_once"] == ["failed", "passed"]  # both shown


@needs_root
def test_runner_kills_a_scenario_that_blocks_the_watchdog():
    [r] = run([_scenario(_hang_blocking_the_watchdog, 0.3)])
    assert r["status"] == "error" and "killed after" in r["reason"]


def _descendants(pid: int) -> set[int]:
    out, frontier = set(), {pid}
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for c in map(int, children):
            if c not in out:
                out.add(c)
                frontier.add(c)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@needs_root
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_run_leaves_no_process_namespace_or_device(tmp_path, how):
    """Kill `tcpkb verify` mid-run: every scenario process (and so every namespace,
    TUN device and socket it owned) is gone within a second."""
    env = _env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "tcpkb", "verify", "--jobs", "4", "states_tun",
                             "errno_timeouts"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(seen) < 2:
        seen |= _descendants(proc.pid)
        time.sleep(0.02)
    assert seen, "no scenario process started"
    namespaces = {os.readlink(f"/proc/{p}/ns/net") for p in seen if os.path.exists(f"/proc/{p}/ns/net")}
    os.kill(proc.pid, how)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 2
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _alive(seen) == set()
    ours = os.readlink("/proc/self/ns/net")
    # A namespace lives while a process is in it: none of the scenarios' is left.
    holders = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "ns" / "net") in namespaces - {ours}:
                    holders.add(int(p.name))
            except OSError:
                pass
    assert holders == set()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == ""


def test_without_root_tun_scenarios_skip_with_a_reason():
    """As an unprivileged user a scenario needing /dev/net/tun runs in a user namespace where the
    system allows TUN devices there, and is skipped with the reason where it does not; never failed."""
    scenarios = all_scenarios()
    tun = next(s for s in scenarios.values() if "tun" in s.needs)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            [res] = run([tun])
            os.write(w, json.dumps([res["status"], res["reason"]]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        status, reason = json.loads(f.read() or '["none", ""]')
    os.waitpid(pid, 0)
    assert status == "passed" or (status == "skipped" and ("tun" in reason.lower() or "namespace" in reason)), \
        (status, reason)


def test_a_users_run_on_the_shipped_kernel_replaces_the_shipped_result(tmp_path, monkeypatch):
    shipped, own = tmp_path / "shipped", tmp_path / "own"
    monkeypatch.setenv("TCPKB_RESULTS", f"{shipped}{os.pathsep}{own}")
    results.write([_fake("a", "6.1.0"), _fake("b", "6.1.0")], "6.1.0", "x86_64", folder=str(shipped))
    newer = {**_fake("a", "6.1.0", "failed"), "time": "2026-06-01T00:00:00+00:00"}
    assert results.write([newer], "6.1.0", "x86_64").startswith(str(own))  # writes to the last
    loaded = {r["scenario"]: r["status"] for r in results.load_all()}
    assert loaded == {"a": "failed", "b": "passed"}
    db = tmp_path / "t.db"
    build(KB, db, proof_records())  # one run per scenario and kernel: no duplicate ids
    conn = lookup.connect(str(db))
    assert conn.execute("select count(*) from runs").fetchone()[0] == 2


def test_a_removed_scenario_leaves_this_machines_results(tmp_path, monkeypatch):
    monkeypatch.setenv("TCPKB_RESULTS", str(tmp_path))
    results.write([_fake("old", "6.1.0"), _fake("kept", "6.1.0")], "6.1.0", "x86_64")
    results.write([_fake("kept", "6.1.0")], "6.1.0", "x86_64", known={"kept"})
    assert [r["scenario"] for r in results.load_all()] == ["kept"]


def call_of(step: dict) -> str | None:
    """'client = socket(AF_INET, SOCK_STREAM)' -> socket; 'recv() until end of stream' -> recv."""
    text = step.get("call") or ""
    m = re.match(r"(?:\w+ = )?(\w+)\(", text)
    return m.group(1) if m else None


@needs_root
def test_every_errno_a_call_returned_live_is_listed_by_that_call(live):
    """One source, both directions: a call's `errors` hold every errno the scenarios saw it return."""
    conn = lookup.connect(live["env"]["TCPKB_DB"])
    names = dict(conn.execute("select name, entry_id from call_names").fetchall())
    listed = {(r[0], r[1]) for r in conn.execute("select call_id, errno_id from call_errors")}
    seen = set()
    for (trace,) in conn.execute("select trace from runs where trace is not null"):
        for step in json.loads(trace).get("steps", []):
            call = call_of(step)
            tcp = step.get("socket") == "tcp" or (call == "socket" and "SOCK_STREAM" in step["call"])
            # getsockopt(SO_ERROR) hands over a pending error as the option's value, not its own errno
            so_error = step.get("call", "").startswith("getsockopt(SO_ERROR")
            if step.get("errno") and tcp and call in names and not so_error:
                seen.add((names[call], f"errno:{step['errno']}"))
    assert len(seen) >= 30, seen  # the scenarios drive every call people meet
    assert sorted(seen - listed) == []
    # ... and each errno entry names the calls that list it
    for call_id, errno_id in seen:
        assert call_id.split(":")[1] in lookup.entry(conn, errno_id)["calls"]
