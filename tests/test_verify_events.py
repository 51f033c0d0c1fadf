"""The kernel's tracepoint events in a scenario's trace: attributed to the scenario exactly,
never to a neighbour doing the same things at the same time, and cleaned up after."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tcpkb.machine import tracefs
from tcpkb.verify import all_scenarios
from tcpkb.verify.events import attribute
from tcpkb.verify.runner import run
from tcpkb.verify.trace_schema import validate_trace

OURS = range(10240, 10752)


def ev(event, **fields):
    return {"event": event, "t": 1.0, "cpu": fields.pop("cpu", 0), **fields}


def test_events_on_the_labs_ports_are_its_own_and_others_are_not():
    events = [ev("tcp_send_reset", sport=5000, dport=10300, reason="NO_SOCKET", skbaddr="aa"),
              ev("tcp_send_reset", sport=5000, dport=40000, reason="NO_SOCKET", skbaddr="bb"),
              ev("inet_sk_error_report", sport=10300, dport=5000, error=111)]
    ours, _ = attribute(events, OURS)
    assert [(e["event"], e.get("dport")) for e in ours] == [("tcp_send_reset", 10300),
                                                             ("inet_sk_error_report", 5000)]


def test_a_drop_is_the_labs_only_when_its_packet_or_socket_was():
    events = [ev("tcp_send_reset", sport=5000, dport=10300, skbaddr="aa", skaddr="0000000000000000"),
              ev("kfree_skb", skbaddr="aa", rx_sk="0", reason="NO_SOCKET"),       # the same skb: ours
              ev("kfree_skb", skbaddr="aa", rx_sk="0", reason="NO_SOCKET", cpu=1),  # another CPU: not
              ev("tcp_send_reset", sport=5000, dport=40000, skbaddr="aa"),          # reused by another
              ev("kfree_skb", skbaddr="aa", rx_sk="0", reason="NO_SOCKET"),       # so not ours
              ev("tcp_retransmit_skb", sport=10300, dport=5000, skaddr="s1", skbaddr="cc"),
              ev("kfree_skb", skbaddr="dd", rx_sk="s1", reason="TCP_OFO_DROP")]   # our socket
    ours, left_out = attribute(events, OURS)
    assert [e.get("reason") for e in ours if e["event"] == "kfree_skb"] == ["NO_SOCKET", "TCP_OFO_DROP"]
    assert left_out == 2


def test_an_error_report_without_an_error_is_not_an_event():
    ours, _ = attribute([ev("inet_sk_error_report", sport=10300, dport=0, error=0)], OURS)
    assert ours == []


def test_a_trace_line_is_parsed_into_fields():
    line = ("          python3-21563   [001] ..s2.  8670.353771: tcp_send_reset: skbaddr=00000000956ebfc5 "
            "skaddr=0000000000000000 src=127.0.0.1:9 dest=127.0.0.1:37802 state=UNKNOWN reason=NO_SOCKET")
    e = tracefs.parse_line(line)
    assert e["event"] == "tcp_send_reset" and e["sport"] == 9 and e["dport"] == 37802
    assert e["reason"] == "NO_SOCKET" and e["cpu"] == 1 and e["t"] == 8670.353771
    drop = tracefs.parse_line("  <idle>-0 [000] ..s1. 1.5: kfree_skb: skbaddr=00000000aa rx_sk=0000000000000000 "
                              "protocol=2048 location=tcp_v4_rcv+0x99/0x1400 reason: NO_SOCKET")
    assert drop["reason"] == "NO_SOCKET" and drop["protocol"] == 2048


# -- live -------------------------------------------------------------------------------

def _tracing() -> str:
    if os.geteuid() != 0:
        pytest.skip("tracepoints need root (CI runs as root)")
    try:
        return tracefs.tracing_root()
    except tracefs.TracefsUnavailable as e:
        pytest.skip(str(e))


NEIGHBOUR = textwrap.dedent("""
    import socket, sys, time
    from tcpkb.machine.netns import enter_new_netns
    enter_new_netns()
    resets, end = 0, time.monotonic() + float(sys.argv[1])
    lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(64)
    print("ready", flush=True)
    while time.monotonic() < end:                 # the same resets the scenario makes, and more
        probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]; probe.close()
        c = socket.socket()
        try:
            c.connect(("127.0.0.1", port))
        except OSError:
            resets += 1
        c.close()
        c = socket.create_connection(lst.getsockname()); s, _ = lst.accept()
        c.send(b"unread"); time.sleep(0.001); s.close(); c.close(); resets += 1
    print(resets, flush=True)
""")


def test_a_noisy_neighbour_is_never_attributed_to_the_scenario():
    root = _tracing()
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert neighbour.stdout.readline().strip() == "ready"
        scenarios = all_scenarios()
        results = run([scenarios["syn_to_a_closed_port_is_reset_for_no_socket"],
                       scenarios["close_with_unread_data_is_reset_for_abort_on_close"]] * 3, jobs=3)
        neighbour_resets = int(neighbour.communicate(timeout=30)[0].split()[-1])
    finally:
        neighbour.kill()
        neighbour.wait()
    assert neighbour_resets > 20  # the neighbour really was resetting while the scenarios ran
    for r in results:
        assert r["status"] == "passed", r["reason"]
        trace = r["trace"]
        assert validate_trace(trace) == []
        low, high = trace["ports"]
        assert all(low <= e.get("sport", -1) <= high or low <= e.get("dport", -1) <= high
                   for e in trace["events"] if e["event"] != "kfree_skb")
        resets = [e["reason"] for e in trace["events"] if e["event"] == "tcp_send_reset"]
        want = "NO_SOCKET" if r["scenario"].startswith("syn_to") else "TCP_ABORT_ON_CLOSE"
        assert resets == [want]  # exactly the scenario's one reset, none of the neighbour's
    assert not [n for n in os.listdir(os.path.join(root, "instances")) if n.startswith(tracefs.PREFIX)]


def test_an_instance_left_by_a_killed_process_is_swept():
    root = _tracing()
    child = subprocess.Popen([sys.executable, "-c", "from tcpkb.machine.tracefs import Tracer; import time, sys\n"
                              "t = Tracer('killed'); print(t.path, flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    path = child.stdout.readline().strip()
    assert os.path.isdir(path)
    child.kill()
    child.wait()
    assert os.path.basename(path) in tracefs.sweep_stale(root)
    assert not os.path.exists(path)


def _hangs_traced(lab):
    lab.note("traced, about to hang")
    import time
    time.sleep(60)


def test_a_scenario_killed_at_its_deadline_leaves_no_instance():
    from tcpkb.verify import Scenario

    root = _tracing()
    [result] = run([Scenario("hangs_traced", "Hangs.", ("errno:EPIPE",), _hangs_traced, "test",
                             needs=frozenset({"netns"}), timeout=0.3)])
    assert result["status"] == "failed"
    assert not [n for n in os.listdir(os.path.join(root, "instances")) if n.startswith(tracefs.PREFIX)]


def test_a_drop_on_a_socket_a_probe_named_is_the_labs_and_probes_are_not_kept():
    events = [ev("tcp_probe", sport=5000, dport=10300, skaddr="s9", skbaddr="p1"),
              ev("kfree_skb", skbaddr="zz", rx_sk="s9", reason="TCP_ZEROWINDOW")]
    ours, left_out = attribute(events, OURS)
    assert [e["event"] for e in ours] == ["kfree_skb"] and left_out == 0
