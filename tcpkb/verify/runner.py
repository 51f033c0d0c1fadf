"""Run scenarios in parallel, each in a forked child with its own network namespace.

The child puts itself in its own process group and asks to die with the
runner; it runs the scenario under a watchdog (SIGALRM raising a timeout, so
the trace so far is kept), writes one JSON result to a pipe and exits. The
runner kills the whole process group if the child overstays, and on Ctrl-C
kills every child before it returns. A namespace, its TUN device and its
sockets die with the child that created them, so nothing outlives a run.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import selectors
import signal
import time
import traceback

from ..machine import netns
from . import Scenario, needs
from .lab import Lab, ScenarioFailed, Skip

GRACE_S = 3.0  # after the watchdog, how long the runner waits before SIGKILL


def watchdog(s: Scenario) -> float:
    """How long a scenario may run. The watchdog only stops a scenario that hangs; it judges no
    timing (the scenarios' own windows do). TCPKB_WATCHDOG_SCALE stretches it where the CPU is
    emulated: the VM runner sets it, as a check that takes 2 s there took over 10 s under load."""
    try:
        scale = max(1.0, float(os.environ.get("TCPKB_WATCHDOG_SCALE", "1")))
    except ValueError:
        scale = 1.0
    return s.timeout * scale


class ScenarioTimeout(Exception):
    pass


def machine() -> dict:
    return {"kernel": platform.release(), "arch": platform.machine()}


def run(scenarios: list[Scenario], jobs: int = 2, context: dict | None = None,
        on_result=None, expected_ms: dict[str, float] | None = None) -> list[dict]:
    """Run every scenario, at most `jobs` at a time; return their results in input order.

    A scenario that failed gets one more attempt, alone, once the others are done: a VM under TCG
    once stalled a scenario 400 ms between two calls, past a 200 ms kernel timer. A pass on the
    second attempt keeps the first failure under `first_attempt`, so a flaky scenario stays in
    sight. An error (a bug in the scenario) and a skip are final."""
    done = _run_batch(scenarios, jobs, context, on_result, expected_ms)
    failed = {r["scenario"] for r in done if r["status"] == "failed"}
    if not failed:
        return done

    def again(result: dict) -> None:
        first = next(r for r in done if r["scenario"] == result["scenario"])
        result["first_attempt"] = {k: first[k] for k in ("status", "reason", "duration_ms")}
        if on_result:
            on_result(result)

    retried = _run_batch([s for s in scenarios if s.name in failed], 1, context, again, expected_ms)
    by_name = {r["scenario"]: r for r in retried}
    return [by_name.get(r["scenario"], r) for r in done]


def _run_batch(scenarios: list[Scenario], jobs: int, context: dict | None, on_result,
               expected_ms: dict[str, float] | None) -> list[dict]:
    """One attempt at every scenario, at most `jobs` at a time, in input order.

    The longest start first (by `expected_ms`, a previous run's durations, else by the declared
    timeout), so a 7 s scenario does not begin last and stretch the whole run."""
    needs.snapshot_host_sysctls()  # before any child leaves this namespace
    expected_ms = expected_ms or {}
    pending = sorted(scenarios, key=lambda s: -(expected_ms.get(s.name) or s.timeout * 1000))
    running: dict[int, tuple[Scenario, int, float, bytearray]] = {}  # fd -> (scenario, pid, deadline, data)
    results: dict[str, dict] = {}
    sel = selectors.DefaultSelector()
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                s = pending.pop(0)
                fd, pid = _spawn(s, context or {})
                running[fd] = (s, pid, time.monotonic() + watchdog(s) + GRACE_S, bytearray())
                sel.register(fd, selectors.EVENT_READ)
            soonest = min(d for _, _, d, _ in running.values())
            for key, _ in sel.select(timeout=max(0.0, min(0.5, soonest - time.monotonic()))):
                s, pid, deadline, data = running[key.fd]
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    data += chunk
                    continue
                result = _finish(s, pid, key.fd, sel, data)
                del running[key.fd]
                results[s.name] = result
                if on_result:
                    on_result(result)
            now = time.monotonic()
            for fd, (s, pid, deadline, data) in list(running.items()):
                if now > deadline:
                    _kill(pid)
                    result = _finish(s, pid, fd, sel, bytearray(), killed=True)
                    del running[fd]
                    results[s.name] = result
                    if on_result:
                        on_result(result)
    finally:  # Ctrl-C or any error: no child outlives the runner
        for fd, (s, pid, _, _) in running.items():
            _kill(pid)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            sel.unregister(fd)
            os.close(fd)
        sel.close()
        _sweep_tracing()
    return [results[s.name] for s in scenarios if s.name in results]


def _sweep_tracing() -> None:
    """A child killed at its deadline (or by Ctrl-C) cannot remove its tracefs instance."""
    from ..machine import tracefs

    for root in tracefs.MOUNTS:
        if os.path.isdir(os.path.join(root, "instances")):
            tracefs.sweep_stale(root)
            return


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def _finish(s: Scenario, pid: int, fd: int, sel, data: bytearray, killed: bool = False) -> dict:
    sel.unregister(fd)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    _kill(pid)  # anything the scenario forked and left behind in its process group
    try:
        result = json.loads(data.decode()) if data else None
    except ValueError:
        result = None
    if result is None:
        why = (f"killed after {watchdog(s) + GRACE_S:.0f} s" if killed
               else f"the scenario's process ended without a result (status {status})")
        result = _result(s, "error", why, {}, 0.0)
    return result


def _result(s: Scenario, status: str, reason: str | None, trace: dict, ms: float,
            entries: list[dict] | None = None) -> dict:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out = {"scenario": s.name, "module": s.module, "level": s.level, "claim": s.claim,
           "proves": list(s.proves), "verdicts": s.verdicts, "status": status, "reason": reason,
           **machine(), "time": now, "duration_ms": round(ms, 1), "trace": trace}
    if entries is not None:
        out["entries"] = entries
    return out


def _spawn(s: Scenario, context: dict) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(r)
        code = 0
        try:
            os.setpgid(0, 0)
            netns.die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                result = _run_here(s, context)
            except Exception as e:  # the namespace or the lab itself broke: say how
                result = _result(s, "error", f"{type(e).__name__}: {e}", {}, 0.0)
            payload = json.dumps(result, default=str).encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(w, view):]
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except (PermissionError, ProcessLookupError):
        pass  # the child already did it, or already exited
    os.close(w)
    return r, pid


def _alarm(signum, frame):
    raise ScenarioTimeout()


def _run_here(s: Scenario, context: dict) -> dict:
    """Inside the child: make the namespace, run the scenario, return its result."""
    began = time.monotonic()

    def ms() -> float:
        return (time.monotonic() - began) * 1000

    isolated = False
    if "netns" in s.needs or "tun" in s.needs:
        try:
            netns.enter_new_netns()
            isolated = True
        except netns.IsolationError as e:
            return _result(s, "skipped", str(e), {}, ms())
    missing = needs.unmet(s.needs)
    if missing:
        return _result(s, "skipped", missing, {}, ms())
    lab = Lab(s.name, isolated=isolated, traced=isolated and s.level != "checked")
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, watchdog(s))
    status, reason, entries = "passed", None, None
    try:
        out = s.fn(lab, **context) if s.level == "checked" else s.fn(lab)
        if s.level == "checked":
            entries = out
            bad = [e for e in entries if e["ok"] is False]
            if bad:
                status = "failed"
                reason = f"{len(bad)} of {len(entries)} entries differ: " + ", ".join(e["entry"] for e in bad[:8])
    except Skip as e:
        status, reason = "skipped", str(e)
    except netns.IsolationError as e:
        status, reason = "skipped", str(e)
    except ScenarioFailed as e:
        status, reason = "failed", str(e)
    except ScenarioTimeout:
        status, reason = "failed", f"timed out after {watchdog(s)} s"
        lab.steps.append({"t_ms": lab._ms(), "actor": "lab", "expect": reason, "ok": False})
    except Exception as e:  # a bug in the scenario, reported with where it happened
        status = "error"
        reason = f"{type(e).__name__}: {e} ({traceback.extract_tb(e.__traceback__)[-1].lineno})"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        trace = lab.finish()
    except Exception as e:  # the trace is evidence, but a broken trace must not hide the verdict
        trace = {"error": f"{type(e).__name__}: {e}"}
    return _result(s, status, reason, trace, ms(), entries)
