"""Time full `tcpkb verify` runs and count failures: the proof engine's speed and stability.

    python scripts/bench_verify.py --runs 20 --hog 2   # stable under load? two CPU hogs
    python scripts/bench_verify.py --runs 1            # the idle full-run wall time
    python scripts/bench_verify.py --runs 5 --jobs 2   # fewer scenarios at once

Each run is a fresh `python -m tcpkb verify --json` process writing to a
throwaway results directory. `--hog N` keeps N processes burning a CPU each for
the whole benchmark (each also ends on its own when its parent dies or after a
time limit, so none outlives the benchmark). Prints each run's wall time and any
scenario that did not pass and the load average, then the timing windows that came
closest to a bound across all runs, and the minimum, median and maximum wall times;
exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
# A hog spins until this many seconds have passed, even if nobody stops it.
HOG_CODE = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


def _die_with_parent() -> None:
    """In the hog, before exec: SIGKILL when the benchmark's process dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start_hogs(count: int, limit: float) -> list[subprocess.Popen]:
    code = HOG_CODE.format(limit=limit)
    return [subprocess.Popen([sys.executable, "-c", code], preexec_fn=_die_with_parent,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for hog in hogs:
        if hog.poll() is None:
            hog.kill()
    for hog in hogs:
        hog.wait(timeout=5)


def run_once(env: dict, jobs: int | None, timeout: float) -> tuple[dict, float]:
    """(the --json report, the whole command's wall time) of one `tcpkb verify`."""
    command = [sys.executable, "-m", "tcpkb", "verify", "--json"]
    if jobs:
        command += ["--jobs", str(jobs)]
    began = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - began
    try:
        return json.loads(done.stdout), wall
    except ValueError:
        raise SystemExit(f"tcpkb verify printed no report (exit {done.returncode}):\n{done.stderr[-2000:]}")


def windows(path: str) -> list[tuple[float, str]]:
    """(margin in seconds, description) of every timing window a run's results checked: how
    close the measurement came to its nearer bound."""
    with open(path, encoding="utf-8") as f:
        results = json.load(f)["results"]
    out = []
    for r in results:
        for step in (r.get("trace") or {}).get("steps", []):
            w = step.get("window")
            if not w:
                continue
            earliest, latest = w["measured_s"]
            margins = [m for m in (w["low_s"] is not None and earliest - w["low_s"],
                                   w["high_s"] is not None and w["high_s"] - latest) if m is not False]
            out.append((min(margins), f"{r['scenario']}: {step['expect']}"))
    return out


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench(args, env: dict) -> tuple[list[float], list[float], int, list]:
    walls, commands, failed_runs, tightest = [], [], 0, []
    for i in range(1, args.runs + 1):
        report, wall = run_once(env, args.jobs, args.timeout)
        tightest = sorted(tightest + windows(report["file"]))[:args.tightest]
        bad = [f"{r['scenario']} ({r['status']}: {r['reason']})" for r in report["results"]
               if r["status"] in ("failed", "error")]
        failed_runs += bool(bad)
        walls.append(report["wall_s"])
        commands.append(wall)
        print(f"run {i}: {report['passed']} passed, {report['skipped']} skipped, {len(bad)} failed; "
              f"scenarios {report['wall_s']:.2f} s, whole command {wall:.2f} s, load {load()}",
              flush=True)
        for b in bad:
            print(f"    {b}", flush=True)
    return walls, commands, failed_runs, tightest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=None, help="scenarios at once (default: tcpkb verify's)")
    ap.add_argument("--hog", type=int, default=0, metavar="N", help="CPU-burning processes during the runs")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per run")
    ap.add_argument("--tightest", type=int, default=8, metavar="N",
                    help="list the N timing windows that came closest to a bound")
    args = ap.parse_args()
    if not 0 <= args.hog <= 64:
        ap.error("--hog takes 0 to 64 processes")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TCPKB_RESULTS=f"{tmp}/results", TCPKB_DB=f"{tmp}/tcpkb.db")
        subprocess.run([sys.executable, "-m", "tcpkb", "build"], env=env, cwd=ROOT, check=True,
                       capture_output=True, timeout=120)
        hogs = start_hogs(args.hog, limit=args.runs * args.timeout + 60)
        try:
            print(f"{args.hog} CPU hogs running; load {load()}", flush=True)
            walls, commands, failed_runs, tightest = bench(args, env)
        finally:  # also on Ctrl-C and on a run that overran its timeout
            stop_hogs(hogs)
    if tightest:
        print("timing windows closest to a bound (margin, then the check):")
        for margin, what in tightest:
            print(f"  {margin * 1000:8.1f} ms  {what}")
    print(f"{args.runs} runs, {args.hog} hogs, jobs {args.jobs or 'default'}: scenarios min "
          f"{min(walls):.2f} s, median {statistics.median(walls):.2f} s, max {max(walls):.2f} s; "
          f"whole command median {statistics.median(commands):.2f} s; runs with a failure: {failed_runs}")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
