"""`tcpkb doctor` beyond this namespace: --netns, --all, --from a saved dump, --prometheus.

The namespace tests need root. Each makes two named namespaces (`ip netns add`, unique
names) and, in one of them, a process that plants a CLOSE_WAIT pile (a server accepts 20
connections and never closes them after the clients close) and a listen-queue overflow
(a listener with backlog 1 that never accepts, closed once ListenOverflows moved, its
clients reset with SO_LINGER 0, so no counter or socket changes afterwards). Its neighbour
holds 20 healthy ESTABLISHED connections. The dumps are made by running the real commands
(ss, nstat, netstat -s, sysctl -a, cat /proc/net/…) inside the filled namespace. Every
process is killed and every namespace deleted on every path.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import shutil
import subprocess
import sys
import uuid

import pytest
import yaml

from tcpkb import doctor
from tcpkb.doctor import dump, prometheus
from tcpkb.query import lookup

from .conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
needs_tools = pytest.mark.skipif(not all(shutil.which(t) for t in ("ip", "ss", "nstat", "sysctl")),
                                 reason="needs ip, ss, nstat (iproute2) and sysctl (procps)")
RULES = ROOT / "examples" / "prometheus" / "tcpkb.rules.yml"
PILE_PORT, OVERFLOW_PORT, HEALTHY_PORT = 7101, 7102, 7103

# Run by `ip netns exec NAME python -c HOLDER KIND`: sets up the sockets, prints "ready",
# holds them until its stdin closes.
HOLDER = r"""
import socket, struct, sys, time
kind = sys.argv[1]
def counter(name):
    lines = open("/proc/net/netstat").read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        for k, v in zip(names.split(), values.split()):
            if names.split()[0] + k == name:
                return int(v)
    return 0
def listener(port, backlog):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(backlog); s.settimeout(2); return s
held = []
if kind == "pile":
    srv = listener(%(pile)d, 64); clients = []
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", %(pile)d), timeout=2)
        clients.append(c); held.append(srv.accept()[0])  # accepted, never closed
    for c in clients:
        c.close()
    held.append(srv)
    # a listener that never accepts: backlog + 1 connections fit, the others overflow
    slow = listener(%(overflow)d, 1); waiting = []
    for _ in range(6):
        c = socket.socket(); c.setblocking(False); c.connect_ex(("127.0.0.1", %(overflow)d))
        waiting.append(c)
    deadline = time.monotonic() + 5
    while counter("TcpExt:ListenOverflows") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    slow.close()
    for c in waiting:  # reset, not closed: nothing lingers in TIME_WAIT or retransmits
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
else:
    srv = listener(%(healthy)d, 64)
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", %(healthy)d), timeout=2)
        held += [c, srv.accept()[0]]
    held.append(srv)
def states():
    return sorted(l.split()[3] for f in ("/proc/net/tcp", "/proc/net/tcp6") for l in open(f).read().splitlines()[1:])
before, deadline = None, time.monotonic() + 5
while states() != before and time.monotonic() < deadline:  # settled: two reads alike
    before = states(); time.sleep(0.2)
print("ready", flush=True)
sys.stdin.read()
""" % {"pile": PILE_PORT, "overflow": OVERFLOW_PORT, "healthy": HEALTHY_PORT}


# --- namespaces and the processes that fill them ---------------------------------------------

def _run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check, **kw)


@contextlib.contextmanager
def named_namespace():
    name = f"tcpkb-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        _run("ip", "netns", "del", name, check=False)


@contextlib.contextmanager
def holding(prefix: list[str], kind: str):
    """A process (started by prefix + python) holding `kind` sockets until this block ends."""
    proc = subprocess.Popen([*prefix, sys.executable, "-c", HOLDER, kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            raise AssertionError(f"the {kind} holder did not get ready: {line!r} {proc.stderr.read()[:500] if not ready else ''}")
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()


@pytest.fixture(scope="module")
def fleet():
    """{"pile": name, "healthy": name, "pile_pid": pid}: two namespaces, one with trouble."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and ip (iproute2)")
    with named_namespace() as sick, named_namespace() as well, \
            holding(["ip", "netns", "exec", sick], "pile") as p, \
            holding(["ip", "netns", "exec", well], "healthy"):
        yield {"pile": sick, "healthy": well, "pile_pid": p.pid}


def run_doctor(kb_db, monkeypatch, **kw) -> tuple[int, str]:
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = doctor.main(**kw)
    return code, out.getvalue()


def doctor_json(kb_db, monkeypatch, **kw) -> tuple[int, dict]:
    code, out = run_doctor(kb_db, monkeypatch, as_json=True, **kw)
    return code, json.loads(out)


def by_id(report: dict) -> dict[str, dict]:
    return {f["id"]: f for f in report["findings"]}


def trouble(report: dict) -> list[tuple]:
    """The findings that matter, as comparable tuples (the knobs and `from` set aside)."""
    return sorted((f["id"], f["severity"], f["title"], f["detail"]) for f in report["findings"]
                  if f["id"] != "sysctl-off-default")


# --- --netns and --all ----------------------------------------------------------------------------

@needs_root
@needs_tools
def test_netns_finds_the_pile_in_its_namespace_and_not_next_door(fleet, kb_db, monkeypatch):
    code, sick = doctor_json(kb_db, monkeypatch, netns=fleet["pile"])
    assert code == 1
    assert sick["netns"]["name"] == fleet["pile"] and sick["netns"]["path"] == f"/run/netns/{fleet['pile']}"
    assert sick["states"]["state:CLOSE_WAIT"] == 20
    f = by_id(sick)["close-wait-pile"]
    assert f["severity"] == "problem"
    assert f"20 sockets on local port {PILE_PORT}" in f["detail"]
    assert f"pid {fleet['pile_pid']} (python" in f["detail"]  # the owner, found in that namespace's /proc
    assert sick["counters"]["TcpExtListenOverflows"] > 0 and "listen-overflow" in by_id(sick)
    assert f["from"] == ["/proc/net/tcp", "/proc/net/tcp6", "/proc/*/fd"]

    code, well = doctor_json(kb_db, monkeypatch, netns=fleet["healthy"])
    assert well["states"] == {"state:ESTABLISHED": 40, "state:LISTEN": 1}
    assert trouble(well) == [] and code == 0

    # the same namespace by its holder's pid and by its path
    for spec in (str(fleet["pile_pid"]), f"/run/netns/{fleet['pile']}"):
        code, out = run_doctor(kb_db, monkeypatch, as_json=True, netns=spec)
        assert trouble(json.loads(out)) == trouble(sick), spec


@needs_root
@needs_tools
def test_all_groups_the_pile_under_its_namespace(fleet, kb_db, monkeypatch):
    code, out = run_doctor(kb_db, monkeypatch, as_json=True, all_=True)
    groups = {g["netns"]["name"]: g for g in json.loads(out)["namespaces"] if g["netns"]["name"]}
    assert code == 1
    sick, well = groups[fleet["pile"]], groups[fleet["healthy"]]
    assert f"20 sockets on local port {PILE_PORT}" in by_id(sick)["close-wait-pile"]["detail"]
    assert trouble(well) == []
    assert sick["netns"]["inode"] == os.stat(f"/run/netns/{fleet['pile']}").st_ino
    assert sick["netns"]["pid"] == fleet["pile_pid"]  # the lowest pid in it: `ip netns exec` became python
    # text: one heading per namespace, the finding under the right one
    code, text = run_doctor(kb_db, monkeypatch, all_=True)
    section = text.split(f"== network namespace {fleet['pile']}")[1].split("== network namespace")[0]
    assert "close-wait-pile" in section
    section = text.split(f"== network namespace {fleet['healthy']}")[1].split("== network namespace")[0]
    assert "close-wait-pile" not in section and "41 TCP sockets: ESTABLISHED 40, LISTEN 1" in section


@needs_root
@needs_tools
def test_an_unnamed_namespace_is_found_by_pid_and_labelled_by_inode(kb_db, monkeypatch):
    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux)")
    with holding(["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'], "pile") as p:
        inode = os.stat(f"/proc/{p.pid}/ns/net").st_ino
        code, r = doctor_json(kb_db, monkeypatch, netns=str(p.pid))
        assert r["netns"]["name"] is None and r["netns"]["inode"] == inode
        assert r["netns"]["label"] == f"net:[{inode}] pid {p.pid} ({r['netns']['comm']})"
        assert r["netns"]["comm"].startswith("python")
        assert f"pid {p.pid} " in by_id(r)["close-wait-pile"]["detail"]
        code, out = run_doctor(kb_db, monkeypatch, as_json=True, all_=True)
        [group] = [g for g in json.loads(out)["namespaces"] if g["netns"]["inode"] == inode]
        assert group["netns"]["label"].startswith(f"net:[{inode}] pid {p.pid} (")
        assert "close-wait-pile" in by_id(group)


def children() -> set[int]:
    """The pids this process has forked that the kernel still holds (zombies included)."""
    out: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            out |= {int(x) for x in f.read().split()}
    return out


@needs_root
@pytest.mark.skipif(not os.path.exists(f"/proc/self/task/{os.getpid()}/children"),
                    reason="needs /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)")
def test_the_namespace_child_is_bounded_and_reaped_on_every_path():
    import time

    from tcpkb.machine.netns import IsolationError, in_namespace_at

    before = children()
    here = "/proc/self/ns/net"
    assert in_namespace_at(here, lambda: {"pid": os.getpid()}, 5)["pid"] != os.getpid()
    with pytest.raises(IsolationError, match="ZeroDivisionError"):
        in_namespace_at(here, lambda: 1 / 0, 5)

    with pytest.raises(IsolationError, match="nothing in time"):
        in_namespace_at(here, lambda: time.sleep(60), 0.5)
    fifo = "/tmp/tcpkb-test-fifo-%d" % os.getpid()
    os.mkfifo(fifo)
    try:  # opening a FIFO blocks: in the child, so the deadline still holds
        with pytest.raises(IsolationError, match="nothing in time"):
            in_namespace_at(fifo, lambda: 0, 0.5)
    finally:
        os.unlink(fifo)
    assert children() == before


# --- --from: real dumps made in the filled namespace --------------------------------------------

def make_sosreport(ns: str, top) -> list[str]:
    """The files sos would keep, made with the real commands inside namespace `ns`."""
    run = ["ip", "netns", "exec", ns]
    files = {"sos_commands/networking/ss_-peaonmi": ["ss", "-peaonmi"],
             "sos_commands/networking/nstat_-zas": ["nstat", "-zas"],
             "sos_commands/kernel/sysctl_-a": ["sysctl", "-a"]}
    if shutil.which("netstat"):
        files["sos_commands/networking/netstat_-s"] = ["netstat", "-s"]
    for f in ("tcp", "tcp6", "netstat", "snmp"):
        files[f"proc/net/{f}"] = ["cat", f"/proc/net/{f}"]
    for rel, argv in files.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(_run(*run, *argv, check=False).stdout)
    return sorted(files)


def make_plain(ns: str, top, commands: dict[str, list[str]]) -> None:
    top.mkdir()
    for name, argv in commands.items():
        (top / name).write_text(_run("ip", "netns", "exec", ns, *argv, check=False).stdout)


@needs_root
@needs_tools
def test_from_an_sosreport_gives_the_live_findings(fleet, kb_db, monkeypatch, tmp_path):
    _, live = doctor_json(kb_db, monkeypatch, netns=fleet["pile"])
    top = tmp_path / "sosreport-host-2026"
    made = make_sosreport(fleet["pile"], top)
    code, saved = doctor_json(kb_db, monkeypatch, from_=str(top))
    assert code == 1
    assert trouble(saved) == trouble(live)
    assert [(f["id"], f["detail"]) for f in saved["findings"]] == [(f["id"], f["detail"]) for f in live["findings"]]
    assert saved["states"] == live["states"] and saved["counters"] == live["counters"]
    assert saved["files"]["proc-tcp"] == ["proc/net/tcp", "proc/net/tcp6"]
    assert saved["files"]["ss"] == ["sos_commands/networking/ss_-peaonmi"]
    assert saved["files"]["sysctl"] == ["sos_commands/kernel/sysctl_-a"]
    assert sorted(f for files in saved["files"].values() for f in files) == made
    found = by_id(saved)
    assert found["close-wait-pile"]["from"] == ["proc/net/tcp", "proc/net/tcp6",
                                                "sos_commands/networking/ss_-peaonmi"]
    assert found["listen-overflow"]["from"] == ["proc/net/tcp", "proc/net/tcp6",
                                                "proc/net/netstat", "proc/net/snmp"]
    for f in saved["findings"]:
        assert f["from"] and all((top / p).is_file() for p in f["from"])


@needs_root
@needs_tools
def test_from_plain_files_recognised_by_content(fleet, kb_db, monkeypatch, tmp_path):
    _, live = doctor_json(kb_db, monkeypatch, netns=fleet["pile"])
    plain = tmp_path / "incident"
    make_plain(fleet["pile"], plain, {"ss-tan.txt": ["ss", "-tanp"], "counters.out": ["nstat", "-az"],
                                      "knobs": ["sysctl", "-a"]})
    code, saved = doctor_json(kb_db, monkeypatch, from_=str(plain))
    assert saved["files"] == {"ss": ["ss-tan.txt"], "nstat": ["counters.out"], "sysctl": ["knobs"]}
    assert trouble(saved) == trouble(live) and saved["states"] == live["states"]
    # the sysctl findings too: the values of `sysctl -a` against the same defaults
    assert [f["title"] for f in saved["findings"]] == [f["title"] for f in live["findings"]]
    assert by_id(saved)["close-wait-pile"]["from"] == ["ss-tan.txt"]
    assert by_id(saved)["listen-overflow"]["from"] == ["ss-tan.txt", "counters.out"]

    # `ss -tan` alone (no -p): the same pile, its owner unknown
    bare = tmp_path / "bare"
    make_plain(fleet["pile"], bare, {"ss.log": ["ss", "-tan"]})
    _, out = run_doctor(kb_db, monkeypatch, as_json=True, from_=str(bare))
    f = by_id(json.loads(out))["close-wait-pile"]
    assert f"20 sockets on local port {PILE_PORT}" in f["detail"] and "could not be seen" in f["detail"]


@needs_root
@pytest.mark.skipif(not shutil.which("netstat"), reason="needs netstat (net-tools)")
def test_netstat_s_gives_the_same_counters_as_proc(fleet, tmp_path):
    text = _run("ip", "netns", "exec", fleet["pile"], "netstat", "-s").stdout
    proc = "".join(_run("ip", "netns", "exec", fleet["pile"], "cat", f).stdout
                   for f in ("/proc/net/netstat", "/proc/net/snmp"))
    from tcpkb.doctor.sources import parse_counters

    assert dump.kind_of(text) == "netstat-s"
    exact = parse_counters(proc)
    got = dump.parse_netstat_s(text)
    assert got["TcpExtListenOverflows"] == exact["TcpExtListenOverflows"] > 0
    # netstat -s leaves out the TcpExt counters that are 0; what it shows agrees with /proc
    assert got == {k: v for k, v in exact.items() if v or k in got}


def test_each_kind_of_file_is_recognised_by_content(tmp_path):
    commands = {"a": ["ss", "-tan"], "b": ["ss", "-peaonmi"], "c": ["nstat", "-az"],
                "d": ["sysctl", "-a"], "e": ["cat", "/proc/net/tcp"], "f": ["cat", "/proc/net/netstat"],
                "g": ["netstat", "-s"], "h": ["cat", "/proc/net/dev"]}
    want = {"a": "ss", "b": "ss", "c": "nstat", "d": "sysctl", "e": "proc-tcp", "f": "proc-counters",
            "g": "netstat-s", "h": None}
    for name, argv in commands.items():
        if not shutil.which(argv[0]):
            continue
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        assert dump.kind_of(out[:dump.SNIFF]) == want[name], argv


def test_bad_dumps_and_bad_usage_are_one_line_errors(kb_db, monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("nothing to see\n")
    cases = [({"from_": str(tmp_path / "missing")}, "not a directory"),
             ({"from_": str(tmp_path / "empty")}, "no saved"),
             ({"from_": str(tmp_path / "junk")}, "no saved"),
             ({"netns": "tcpkb-no-such-namespace"}, "no namespace named"),
             ({"netns": "999999999"}, "no process 999999999"),
             ({"netns": str(tmp_path / "junk" / "notes.txt")}, "cannot enter"),
             ({"netns": "x", "all_": True}, "one of --netns, --all and --from"),
             ({"from_": str(tmp_path), "watch": 1.0}, "a saved dump does not change"),
             ({"output_path": str(tmp_path / "x.prom")}, "add --prometheus"),
             ({"prometheus": True, "as_json": True}, "not both")]
    if os.geteuid() != 0:
        cases = [c for c in cases if "cannot enter" not in c[1]]
    for kw, message in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code, _ = run_doctor(kb_db, monkeypatch, **kw)
        assert code == 2, kw
        assert message in err.getvalue() and err.getvalue().count("\n") == 1, (kw, err.getvalue())
    # through the command line: a message, no traceback
    env = {**os.environ, "TCPKB_DB": str(kb_db), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "tcpkb", "doctor", "--from", str(tmp_path / "empty")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no saved" in r.stderr


# --- --prometheus ---------------------------------------------------------------------------

def families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict, family: str, **labels) -> float:
    hits = [s.value for s in fams[family].samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (family, labels, hits)
    return hits[0]


@needs_root
@needs_tools
def test_prometheus_of_a_namespace_and_of_all(fleet, kb_db, monkeypatch, tmp_path):
    _, live = doctor_json(kb_db, monkeypatch, netns=fleet["pile"])
    code, text = run_doctor(kb_db, monkeypatch, prometheus=True, netns=fleet["pile"])
    assert code == 1
    fams = families(text)
    ns = fleet["pile"]
    assert sample(fams, "tcpkb_tcp_sockets", netns=ns, state="CLOSE_WAIT", port=str(PILE_PORT)) == 20
    assert sample(fams, "tcpkb_tcp_sockets", netns=ns, state="LISTEN", port=str(PILE_PORT)) == 1
    assert sample(fams, "tcpkb_tcp_sockets", netns=ns, state="FIN_WAIT2", port="other") == 20
    assert sample(fams, "tcpkb_findings", netns=ns, finding="close-wait-pile", severity="problem") == 1
    assert fams["tcpkb_kernel_counter"].type == "counter"
    for name, value in live["counters"].items():
        assert sample(fams, "tcpkb_kernel_counter", netns=ns, entry=f"counter:{name}") == value
    assert sample(fams, "tcpkb_ephemeral_ports", netns=ns) > 0

    prom = tmp_path / "tcpkb.prom"
    prom.write_text("stale\n")
    before = prom.stat().st_ino
    code, text = run_doctor(kb_db, monkeypatch, prometheus=True, all_=True, output_path=str(prom))
    assert text == "" and prom.stat().st_ino != before  # renamed into place, not rewritten
    assert os.listdir(tmp_path) == ["tcpkb.prom"]  # no temporary file left beside it
    fams = families(prom.read_text())
    assert sample(fams, "tcpkb_findings", netns=ns, finding="close-wait-pile", severity="problem") == 1
    assert not [s for s in fams["tcpkb_findings"].samples
                if s.labels["netns"] == fleet["healthy"] and s.labels["severity"] != "info"]


def test_prometheus_text_follows_the_textfile_conventions(kb_db):
    from .test_doctor import everything_wrong

    with lookup.connect(str(kb_db)) as conn:
        scan_ = everything_wrong(conn)
        found = doctor.findings(scan_, conn)
    text = prometheus.text([("web", scan_, found)])
    fams = families(text)
    assert set(fams) == {"tcpkb_tcp_sockets", "tcpkb_tcp_accept_queue", "tcpkb_ephemeral_ports",
                         "tcpkb_kernel_counter", "tcpkb_findings"}
    for name, fam in fams.items():
        assert f"# HELP {name if fam.type != 'counter' else name + '_total'} " in text
        assert fam.documentation and fam.type in ("gauge", "counter")
        assert all(s.timestamp is None for s in fam.samples)  # the textfile collector refuses them
    # port 8080 listens: its own series; nothing else does here
    assert sample(fams, "tcpkb_tcp_sockets", state="CLOSE_WAIT", port="8080") == 30
    assert sample(fams, "tcpkb_tcp_accept_queue", port="8080", address="0.0.0.0") == 7
    assert sample(fams, "tcpkb_ephemeral_ports") == 100
    assert sample(fams, "tcpkb_kernel_counter", entry="counter:TcpExtListenOverflows") == 3
    assert {s.labels["finding"]: s.value for s in fams["tcpkb_findings"].samples} == {
        f["id"]: 1 for f in found}
    assert sample(fams, "tcpkb_findings", finding="close-wait-pile") == 1
    with lookup.connect(str(kb_db)) as conn:  # every entry label is an entry of the knowledge base
        for s in fams["tcpkb_kernel_counter"].samples:
            lookup.entry(conn, s.labels["entry"], full=False)


# --- the example alerting rules -----------------------------------------------------------------

def test_rules_parse_and_use_only_metrics_doctor_writes(kb_db):
    rules = yaml.safe_load(RULES.read_text())
    [group] = rules["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {"TcpCloseWaitPile", "TcpTimeWaitExhaustion", "TcpListenQueueOverflowing"}
    from .test_doctor import everything_wrong

    with lookup.connect(str(kb_db)) as conn:
        scan_ = everything_wrong(conn)
        text = prometheus.text([("web", scan_, doctor.findings(scan_, conn))])
        written = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
        written |= {n + "_total" for n in written}
        for r in alerts.values():
            import re

            assert set(re.findall(r"\btcpkb_[a-z_]+", r["expr"])) <= written, r["expr"]
            assert r["labels"]["severity"] in ("critical", "warning")
            lookup.entry(conn, r["annotations"]["tcpkb_entry"], full=False)
    assert "close-wait-pile" in alerts["TcpCloseWaitPile"]["expr"]
    assert "increase(" in alerts["TcpListenQueueOverflowing"]["expr"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian's prometheus)")
def test_promtool_accepts_the_rules():
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 3 rules found" in r.stdout
