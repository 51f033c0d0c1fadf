"""Timing windows read from the kernel's clocks, so that a loaded machine does not move them.

A user-space clock read after a call returns measures the call plus however long the
scheduler kept the process off a CPU. The kernel keeps better records:

- every captured packet carries the time the kernel stamped it as it crossed the device
  (SO_TIMESTAMPNS on the capture socket: CLOCK_REALTIME, nanoseconds);
- /proc/thread-self/schedstat counts the nanoseconds a thread ran and the nanoseconds it
  waited, runnable, for a CPU: what is left of a call's wall time is the time it slept in the
  kernel, i.e. the kernel timer or event it waited for (`Span.blocked`);
- /proc/net/tcp gives each socket's pending timer and the jiffies until it fires.

A call that starts or ends a window and puts nothing on the wire is bracketed by two
CLOCK_REALTIME readings (the capture's clock), and a bound uses the end of the bracket that
cannot make a wrong behaviour pass. The bounds themselves come from the kernel's timer
granularity: `jiffy()` (1/CONFIG_HZ) and `wheel_slack()` (kernel/time/timer.c).
"""

from __future__ import annotations

import gzip
import os
import platform
import time
from dataclasses import dataclass

SCHEDSTAT = "/proc/thread-self/schedstat"

# How late a kernel timer may run on a loaded machine beyond the jiffy and the wheel's own
# rounding: the timer softirq can be pushed to ksoftirqd, a normal thread that competes with
# the load for a CPU. Observed on the 2-core 6.18 machine, in 25 full runs under 2 CPU hogs
# and the other engineers' QEMU and test runs (load 3-8): no timer used more than 1 ms of
# this margin. 100 ms leaves room for a busier CI runner and stays far below every gap a
# scenario tells apart (200 ms TCP_RTO_MIN against an immediate send, 1 s against 0.1 s …).
LOAD_MARGIN_S = 0.1


def kernel_hz() -> int:
    """CONFIG_HZ of the running kernel (from /proc/config.gz or /boot/config-*), else 100: the
    coarsest tick Linux builds use, so a bound computed from it is the widest."""
    paths = ("/proc/config.gz", f"/boot/config-{platform.release()}")
    for path in paths:
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith("CONFIG_HZ="):
                        return int(line.split("=", 1)[1])
        except (OSError, ValueError):
            continue
    return 100


_HZ: int | None = None


def jiffy() -> float:
    """Seconds per jiffy: the resolution of every TCP timer (they are timer_list timers)."""
    global _HZ
    if _HZ is None:
        _HZ = kernel_hz()
    return 1.0 / _HZ


def wheel_slack(seconds: float) -> float:
    """How late the timer wheel may fire a timer armed `seconds` ahead: it files the timer in
    the level whose buckets cover that distance and rounds the expiry up to the bucket's
    granularity, 8**level jiffies (level 0 below 63 jiffies, each next level 8 times farther;
    calc_wheel_index() in kernel/time/timer.c)."""
    delta = round(seconds / jiffy())
    level = 0
    while level < 8 and delta >= 63 << (3 * level):
        level += 1
    return (1 << (3 * level)) * jiffy()


def timer_bounds(nominal: float) -> tuple[float, float]:
    """(low, high) for an interval a kernel timer of `nominal` seconds ends, measured from the
    kernel event that armed it. Low: a timer is armed in jiffies, so it may fire up to one jiffy
    sooner than `nominal` after the arming instant. High: the wheel's rounding, one jiffy more
    for the conversion, and LOAD_MARGIN_S for a timer softirq delayed by load."""
    return nominal - jiffy(), nominal + wheel_slack(nominal) + jiffy() + LOAD_MARGIN_S


def chain_bounds(timers: list[float]) -> tuple[float, float]:
    """(low, high) for the end of a chain of timers, each armed when the one before fired (SYN
    retransmissions, keepalive probes), measured from the event that armed the first. Only the
    first arming falls inside a jiffy; each expiry runs late by up to its wheel rounding, and the
    whole chain gets one LOAD_MARGIN_S, since a softirq pushed late by load re-arms late but
    does not lose the time again (the next timer is armed from `jiffies`, not from the plan)."""
    total = sum(timers)
    return total - jiffy(), total + sum(wheel_slack(t) + jiffy() for t in timers) + LOAD_MARGIN_S


def timer_read_bounds(nominal: float) -> tuple[float, float]:
    """(low, high) for a timer's expiry read from /proc/net/tcp (Lab.timer_deadline), measured
    from the capture stamp of the packet whose processing armed it. Low: the arming and the
    read each fall somewhere inside a jiffy, and `when` is rounded down to 10 ms, read within a
    2 ms bracket. High: one jiffy, the same 12 ms, and LOAD_MARGIN_S between the packet's
    stamp and the softirq that processed it. The wheel's rounding does not show here: /proc
    gives the expiry asked for, not when the wheel will run it."""
    return nominal - 2 * jiffy() - 0.012, nominal + jiffy() + 0.012 + LOAD_MARGIN_S


def _schedstat() -> tuple[int, int]:
    """(ns this thread ran, ns it waited runnable for a CPU); zeros where the kernel lacks
    CONFIG_SCHED_INFO (then `blocked` degrades to the wall time)."""
    try:
        with open(SCHEDSTAT) as f:
            ran, waited, _ = f.read().split()
        return int(ran), int(waited)
    except (OSError, ValueError):
        return 0, 0


@dataclass
class Span:
    """One call bracketed by the capture's clock and the scheduler's accounting."""

    start: float  # CLOCK_REALTIME just before the call
    end: float  # CLOCK_REALTIME just after it
    ran: float  # seconds this thread ran in between
    queued: float  # seconds it waited, runnable, for a CPU

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def slept(self) -> tuple[float, float]:
        """(wall, blocked): the pair Lab.expect_window checks a call's sleep with. The sleep is
        never longer than the wall time, and load only lengthens the wall time; `blocked` is
        not lengthened by load (on 6.18 under heavy load the run-delay count was once seen to
        swallow a whole sleep, which only shortens `blocked`). So the low bound is held against
        the wall time and the high bound against `blocked`: neither can fail because of load."""
        return self.wall, self.blocked

    @property
    def woke(self) -> float:
        """When the call's sleep ended, as near as the accounting tells: its start plus the time
        it slept. Exact when the thread went to sleep at once; a thread pre-empted before it
        slept woke later than this by the pre-emption (rare: the path to sleep is short)."""
        return self.start + self.blocked

    @property
    def blocked(self) -> float:
        """Seconds the thread slept in the kernel during the call: the wall time less the time it
        ran and the time it waited for a CPU. Load adds to `queued`, not to this."""
        return max(0.0, self.wall - self.ran - self.queued)


def measure(fn):
    """(value or the OSError raised, Span): `fn()` bracketed by realtime and schedstat readings."""
    ran0, queued0 = _schedstat()
    start = time.time()
    try:
        value = fn()
    except OSError as e:
        value = e
    end = time.time()
    ran1, queued1 = _schedstat()
    return value, Span(start, end, (ran1 - ran0) / 1e9, (queued1 - queued0) / 1e9)


def tight_read(fn, width: float = 0.002, tries: int = 20):
    """(value, start, end): `fn()` read between two realtime readings at most `width` apart, so
    the moment of the read is known to within `width`; a read the scheduler interrupted is
    simply read again (for reads of kernel state that do not change it). After `tries`, the
    narrowest bracket seen."""
    best = None
    for _ in range(max(1, tries)):
        start = time.time()
        value = fn()
        end = time.time()
        if best is None or end - start < best[2] - best[1]:
            best = (value, start, end)
        if end - start <= width:
            break
        os.sched_yield()
    return best
