"""`tcpkb verify`: choose scenarios, run them, report, save the results, rebuild the database."""

from __future__ import annotations

import os
import re
import sys
import time

from .. import paths
from ..present import terminal as output
from ..query import lookup
from . import Scenario, all_scenarios, results
from .runner import machine, run

MARKS = {"passed": ("ok", "32"), "failed": ("FAIL", "31"), "error": ("ERROR", "31"),
         "skipped": ("skip", "33")}


class Usage(Exception):
    """A bad selection: exit status 2."""


def select(targets: list[str], scenarios: dict[str, Scenario]) -> list[Scenario]:
    """Scenario names, module names (`states`) or entry ids (`errno:ECONNRESET`)."""
    if not targets:
        return list(scenarios.values())
    chosen: dict[str, Scenario] = {}
    for t in targets:
        hits = [s for s in scenarios.values()
                if t in (s.name, s.module) or t in s.proves
                or (s.kind and t.partition(":")[0] == s.kind and ":" in t)]
        if not hits:
            near = sorted(n for n in scenarios if t.lower().replace(":", "_") in n.lower())[:3]
            raise Usage(f"no scenario, module or proved entry {t!r}"
                        + (f"; did you mean {', '.join(near)}?" if near else "; see tcpkb verify --list"))
        chosen.update({s.name: s for s in hits})
    return [s for s in scenarios.values() if s.name in chosen]


def verify(targets: list[str], as_json: bool = False, jobs: int | None = None,
           coverage: bool = False, list_only: bool = False, kernel: str | None = None,
           rebuild: bool = True) -> int:
    try:
        scenarios = all_scenarios()
        if kernel and (coverage or list_only):
            raise Usage("--kernel runs scenarios in a VM; it does not combine with --list or --coverage")
        if coverage:
            return show_coverage(as_json)
        chosen = select(targets, scenarios)
    except Usage as e:
        output.fail(str(e))
        return 2
    if list_only:
        return show_list(chosen, as_json)
    if kernel:
        return verify_in_vm(kernel, targets, set(scenarios), as_json, jobs, rebuild)
    db = _fresh_db()
    # Scenarios mostly wait on kernel timers, not the CPU: their durations add up to about 40 s,
    # so two per core (4 here) cannot finish under 10 s; four per core measured 7.3 s idle and held
    # every timing window under two CPU hogs (scripts/bench_verify.py --hog 2).
    jobs = jobs or 4 * (os.cpu_count() or 1)
    here = machine()
    if not as_json:
        output.echo(f"tcpkb verify: {len(chosen)} scenarios on {here['kernel']} {here['arch']}, "
                    f"{jobs} at a time")
    began = time.monotonic()
    done = run(chosen, jobs=jobs, context={"db": db}, on_result=None if as_json else _print_result,
               expected_ms=_previous_durations())
    wall = time.monotonic() - began
    path = results.write(done, here["kernel"], here["arch"], known=set(scenarios))
    if rebuild:
        _rebuild()
    return report(done, here, path, as_json, {"jobs": jobs, "wall_s": round(wall, 2)})


def report(done: list[dict], here: dict, path: str, as_json: bool, extra: dict) -> int:
    """Print a run's results (failures with their traces); exit status 1 if any failed."""
    counts = {k: sum(r["status"] == k for r in done) for k in MARKS}
    if as_json:
        output.print_json({**here, **extra, **counts, "file": path,
                           "results": [{k: r[k] for k in ("scenario", "level", "status", "reason",
                                                          "duration_ms", "proves")}
                                       | ({"trace": r["trace"]} if r["status"] in ("failed", "error") else {})
                                       | ({"first_attempt": r["first_attempt"]} if "first_attempt" in r else {})
                                       for r in done]})
    else:
        for r in done:
            if r["status"] in ("failed", "error"):
                print_trace(r)
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        retried = [r["scenario"] for r in done if "first_attempt" in r and r["status"] == "passed"]
        if retried:
            summary += f" ({len(retried)} on a second attempt: {', '.join(retried)})"
        booted = f" (a VM: {extra['boot_s']:.1f} s to boot)" if "boot_s" in extra else ""
        output.echo(f"{summary or 'nothing run'} in {extra['wall_s']:.1f} s{booted}; results in {_short(path)}")
    return 1 if counts["failed"] or counts["error"] else 0


def verify_in_vm(spec: str, targets: list[str], known: set[str], as_json: bool,
                 jobs: int | None, rebuild: bool) -> int:
    """The same run on another kernel booted in QEMU; its results join this machine's results dir."""
    from . import vm

    try:
        kernel = vm.resolve(spec)
        vm.check_host()  # before anything is printed: a missing QEMU is one line
        _fresh_db()
        if not as_json:
            output.echo(f"tcpkb verify: booting {kernel.release} in QEMU (TCG, no network device)")
        began = time.monotonic()
        args = [*targets, "--no-build", *(["--jobs", str(jobs)] if jobs else [])]
        back = vm.run_in_vm(kernel, args, on_line=None if as_json else _guest_line)
    except vm.VmError as e:
        output.fail(str(e))
        return 2
    data = back["results"]
    here = {"kernel": data["kernel"], "arch": data["arch"]}
    path = results.write(data["results"], data["kernel"], data["arch"], known=known)
    if rebuild:
        _rebuild()
    extra = {"vmlinuz": kernel.vmlinuz, "wall_s": round(time.monotonic() - began, 2),
             "boot_s": back["boot_s"], "guest_run_s": back["run_s"]}
    return report(data["results"], here, path, as_json, extra)


GUEST_PROGRESS = re.compile(r"  (ok|FAIL|ERROR|skip) ")


def _guest_line(line: str) -> None:
    """Echo the guest's line per scenario (its traces come once, from the results, at the end)
    and the initramfs's warnings."""
    if GUEST_PROGRESS.match(line):
        output.echo(line)
    elif line.startswith("tcpkb-vm: WARNING"):
        output.echo(line, err=True)


def _fresh_db() -> str:
    """The database, rebuilt first if the notes changed: the checks compare the notes as they are
    now (a VM's guest reads this same file)."""
    db = paths.db_path()
    if not os.path.exists(db) or paths.is_stale(db) is not False:
        _rebuild()
    return db


def _previous_durations() -> dict[str, float]:
    """Each scenario's longest duration in the results on disk, for the runner's order."""
    try:
        previous = results.load_all()
    except ValueError:
        return {}
    durations: dict[str, float] = {}
    for r in previous:
        durations[r["scenario"]] = max(durations.get(r["scenario"], 0.0), r.get("duration_ms") or 0.0)
    return durations


def _rebuild() -> None:
    """Load the new results into the database the lookups read."""
    from pathlib import Path

    from ..build.database import BuildError, build
    from . import proof_records

    try:
        build(Path(paths.kb_dir()), Path(paths.db_path()), proof_records())
    except (BuildError, ValueError) as e:  # the run's results are saved either way
        output.fail(f"could not rebuild the database: {e}; run `tcpkb build` to see why")


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def _print_result(r: dict) -> None:
    mark, colour = MARKS[r["status"]]
    why = f"  {r['reason']}" if r["reason"] else ""
    if "first_attempt" in r:
        why += output.dim(f"  (second attempt, alone; the first {r['first_attempt']['status']}: "
                          f"{r['first_attempt']['reason']})")
    output.echo(f"  {output.style(mark.ljust(5), colour)} {r['scenario']}  "
                f"{output.dim(str(round(r['duration_ms'])) + ' ms')}{why}")


def print_trace(r: dict) -> None:
    """The steps of a failed run: call, result or errno, states; then the packets."""
    output.echo()
    output.echo(output.bold(f"{r['scenario']}: {r['status']}") + f"  {r['reason']}")
    output.echo(output.dim(f"  claim: {r['claim']}"))
    trace = r.get("trace") or {}
    for step in trace.get("steps", []):
        what = step.get("call") or step.get("note") or step.get("expect", "")
        if "errno" in step:
            outcome = f"→ {step['errno']}"
        elif "result" in step and step["result"] is not None:
            outcome = f"→ {step['result']}"
        elif "ok" in step:
            outcome = "✓" if step["ok"] else "✗"
        else:
            outcome = ""
        states = " ".join(f"{k}={v}" for k, v in step.get("states", {}).items())
        output.echo(f"  {step['t_ms']:>9.3f} ms  {step['actor']:<10} {what} {outcome}  {output.dim(states)}")
    for p in trace.get("packets", []):
        if p.get("proto") == "tcp":
            output.echo(output.dim(f"  {p['t_ms']:>9.3f} ms  {p['from']} > {p['to']}  [{p['flags']}] "
                                   f"seq {p['seq']} ack {p['ack']} win {p['win']} len {p['len']}"))
    if "error" in trace:
        output.echo(f"  trace incomplete: {trace['error']}")


def show_list(chosen: list[Scenario], as_json: bool) -> int:
    if as_json:
        output.print_json([{"scenario": s.name, "module": s.module, "level": s.level,
                            "claim": s.claim, "proves": list(s.proves), "kind": s.kind,
                            "needs": sorted(s.needs)} for s in chosen])
        return 0
    for s in chosen:
        proves = ", ".join(s.proves) or f"every {s.kind} entry"
        output.echo(f"{output.accent(s.name)}  {output.dim(s.module)}")
        output.echo(f"  {s.claim}")
        output.echo(output.dim(f"  proves {proves}"))
    return 0


SOCKET_KINDS = ("state", "flag")


def coverage_report(conn, all_results: list[dict]) -> dict:
    """Each entry's best level across every machine's results; what is neither."""
    levels = results.entry_levels(all_results)
    rows = conn.execute("select e.id, e.kind, coalesce(x.socket, 0) as socket from entries e"
                        " left join errno x on x.id = e.id order by e.kind, e.id").fetchall()
    report = {"reproduced": [], "checked": [], "unverified": []}
    for r in rows:
        report[levels.get(r["id"], "unverified")].append(r["id"])
    # States, flags and socket errnos are what tcpkb is about: each needs a reproduction.
    report["socket_only_checked"] = [r["id"] for r in rows if levels.get(r["id"]) == "checked"
                                     and (r["kind"] in SOCKET_KINDS or r["socket"] or r["kind"] == "claim")]
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_kind.setdefault(r["kind"], {"reproduced": 0, "checked": 0, "unverified": 0})
        counts[levels.get(r["id"], "unverified")] += 1
    report["by_kind"] = by_kind
    return report


def show_coverage(as_json: bool) -> int:
    from ..build.ensure import ensure_db
    from . import proof_records

    conn = lookup.connect(ensure_db(proof_records))
    try:
        report = coverage_report(conn, results.load_all())
    finally:
        conn.close()
    if as_json:
        output.print_json(report)
    else:
        output.echo(f"reproduced {len(report['reproduced'])}, checked {len(report['checked'])}, "
                    f"unverified {len(report['unverified'])}")
        for kind, c in report["by_kind"].items():
            output.echo(f"  {kind:<8} reproduced {c['reproduced']:>4}  checked {c['checked']:>4}  "
                        f"unverified {c['unverified']:>4}")
        for label, key in (("unverified", "unverified"),
                           ("socket entries only checked, not reproduced", "socket_only_checked")):
            if report[key]:
                output.echo(output.bold(label + ":"))
                for entry_id in report[key]:
                    output.echo(f"  {entry_id}")
    return 1 if report["unverified"] else 0


if __name__ == "__main__":  # python -m tcpkb.verify.command [targets…]
    sys.exit(verify(sys.argv[1:]))
