"""The proof engine's clocks: kernel packet stamps, a call's sleep, timer bounds and windows."""

from __future__ import annotations

import os
import socket
import time

import pytest

from tcpkb.machine import netns
from tcpkb.verify import timing
from tcpkb.verify.lab import Lab, ScenarioFailed

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root (CI runs as root)")


def _stamps_around_sends(pause: float) -> dict:
    """In a fresh namespace: two sends on loopback `pause` seconds apart, each bracketed by the
    wall clock, and the kernel stamps of the two segments as the capture recorded them."""
    lab = Lab("stamps")
    try:
        _, client, _ = lab.connected_pair()
        brackets = []
        for data in (b"first", b"second"):
            before = time.time()
            client.sock.send(data)
            brackets.append((before, time.time()))
            time.sleep(pause)
        sent = [p for p in lab.packets() if p.get("proto") == "tcp" and p["len"]]
        return {"stamping": lab.capture.stamping, "brackets": brackets,
                "stamps": [lab.stamp(p) for p in sent],
                "all": [lab.stamp(p) for p in lab.packets()]}
    finally:
        lab.finish()


@needs_root
def test_capture_stamps_are_the_kernels_monotonic_and_inside_the_send():
    got = netns.in_new_namespace(lambda: _stamps_around_sends(0.2))
    assert got["stamping"] is True
    assert got["all"] == sorted(got["all"]) and len(got["all"]) >= 5  # handshake, data, ACKs
    # loopback stamps the arriving copy while send() is still in the kernel
    for (before, after), stamp in zip(got["brackets"], got["stamps"]):
        assert before <= stamp <= after
    # a segment sent after a 0.2 s sleep is stamped at least 0.2 s after the one before it
    gap = got["stamps"][1] - got["stamps"][0]
    assert 0.2 <= gap < 0.2 + 1.0


def test_a_sleep_is_measured_as_sleep_and_a_busy_loop_is_not():
    def busy():
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            pass
    _, spin = timing.measure(busy)
    assert spin.wall >= 0.1 and spin.blocked < 0.05  # it ran (or waited for a CPU); it never slept
    sleeps = [timing.measure(lambda: time.sleep(0.1))[1] for _ in range(3)]
    for span in sleeps:
        assert span.wall >= 0.1 and span.blocked <= span.wall and span.slept == (span.wall, span.blocked)
    # the scheduler's accounting can absorb a sleep under heavy load (timing.Span.slept); one
    # of three honest measurements is enough to show it measures sleep at all
    assert max(s.blocked for s in sleeps) >= 0.09


def test_measure_returns_the_error_of_a_failed_call():
    def refused():
        with socket.socket() as s:
            s.connect(("127.0.0.1", 1))
    error, span = timing.measure(refused)
    assert isinstance(error, OSError) and span.end >= span.start


def test_tight_read_brackets_the_read_and_reports_a_slow_one():
    value, start, end = timing.tight_read(lambda: 42)
    assert value == 42 and start <= end
    _, start, end = timing.tight_read(lambda: time.sleep(0.01), tries=2)
    assert end - start >= 0.01  # a read that cannot be quick is not made to look quick


@pytest.mark.parametrize("hz, seconds, slack_jiffies", [
    (250, 0.2, 1),     # 50 jiffies: level 0, exact
    (250, 1.0, 8),     # 250 jiffies: level 1, 8-jiffy buckets (the 1.024 s SYN retries seen live)
    (250, 4.0, 64),    # 1000 jiffies: level 2
    (250, 60.0, 512),  # TIME_WAIT's 15000 jiffies: level 3
    (1000, 1.0, 64),   # the same second at HZ=1000 is 1000 jiffies: level 2
    (100, 0.2, 1),
])
def test_wheel_slack_follows_the_timer_wheel_levels(monkeypatch, hz, seconds, slack_jiffies):
    monkeypatch.setattr(timing, "_HZ", hz)
    assert timing.wheel_slack(seconds) == pytest.approx(slack_jiffies / hz)
    low, high = timing.timer_bounds(seconds)
    assert low == pytest.approx(seconds - 1 / hz)
    assert high == pytest.approx(seconds + (slack_jiffies + 1) / hz + timing.LOAD_MARGIN_S)


def test_a_chain_of_timers_adds_each_rounding_once(monkeypatch):
    monkeypatch.setattr(timing, "_HZ", 250)
    low, high = timing.chain_bounds([1.0, 2.0, 4.0])
    assert low == pytest.approx(7.0 - 0.004)
    assert high == pytest.approx(7.0 + (0.032 + 0.004) + (0.032 + 0.004) + (0.256 + 0.004) + timing.LOAD_MARGIN_S)


def test_kernel_hz_is_the_running_kernels():
    if not os.path.exists("/proc/config.gz"):
        pytest.skip("this kernel does not expose /proc/config.gz")
    import gzip
    with gzip.open("/proc/config.gz", "rt") as f:
        line = next(x for x in f if x.startswith("CONFIG_HZ="))
    assert timing.kernel_hz() == int(line.split("=")[1])


def test_a_window_holds_each_bound_against_its_own_estimate():
    lab = Lab("windows", isolated=False)
    lab.expect_window(0.5, 0.4, 0.6, "plain", "capture")
    lab.expect_window((1.2, 0.9), 1.0, 1.1, "a sleep: wall 1.2 s, slept 0.9 s", "blocked")
    lab.expect_window(0.01, None, 0.02, "no low bound", "blocked")
    with pytest.raises(ScenarioFailed):
        lab.expect_window((0.95, 0.95), 1.0, 1.1, "too short", "blocked")
    with pytest.raises(ScenarioFailed):
        lab.expect_window((1.2, 1.15), 1.0, 1.1, "slept too long", "blocked")
    windows = [s["window"] for s in lab.steps if "window" in s]
    assert [s["ok"] for s in lab.steps] == [True, True, True, False, False]
    assert windows[2] == {"measured_s": [0.01, 0.01], "low_s": None, "high_s": 0.02, "clock": "blocked"}
