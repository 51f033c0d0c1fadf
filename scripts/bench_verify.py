"""Time full `tcpkb verify` runs and count failures: the proof engine's speed and stability.

    python scripts/bench_verify.py --runs 20 --jobs 2
    python scripts/bench_verify.py --runs 5 --jobs 4   # 2x the cores

Each run is a fresh `python -m tcpkb verify --json` process writing to a
throwaway results directory. Prints each run's wall time and any scenario that
did not pass, then the median and the worst; exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per run")
    args = ap.parse_args()
    walls, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TCPKB_RESULTS=f"{tmp}/results", TCPKB_DB=f"{tmp}/tcpkb.db")
        subprocess.run([sys.executable, "-m", "tcpkb", "build"], env=env, cwd=ROOT, check=True,
                       capture_output=True, timeout=120)
        for i in range(1, args.runs + 1):
            began = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "tcpkb", "verify", "--json", "--jobs", str(args.jobs)],
                                  env=env, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
            wall = time.monotonic() - began
            report = json.loads(done.stdout)
            bad = [f"{r['scenario']} ({r['status']}: {r['reason']})" for r in report["results"]
                   if r["status"] in ("failed", "error")]
            failures += bool(bad)
            walls.append(report["wall_s"])
            print(f"run {i}: {report['passed']} passed, {report['skipped']} skipped, {len(bad)} failed; "
                  f"scenarios {report['wall_s']:.2f} s, whole command {wall:.2f} s")
            for b in bad:
                print(f"    {b}")
    print(f"{args.runs} runs with --jobs {args.jobs}: median {statistics.median(walls):.2f} s, "
          f"worst {max(walls):.2f} s, runs with a failure: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
