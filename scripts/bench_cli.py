"""Time `tcpkb errno 104` as a whole process against a bare Python start-up.

    python scripts/bench_cli.py [--rounds N] [--command "tcpkb errno 104"]

Runs the two commands alternately (so drift in machine load hits both) and
prints each median and the median ratio. The issue's target is a ratio of at
most 4; it is a measurement to report, never an assertion in the tests.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path


def run(argv: list[str]) -> float:
    # Not subprocess.run(timeout=...): a wait with a timeout polls with sleeps and
    # adds milliseconds to every run. A watchdog thread bounds the wait instead.
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        status = proc.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit(f"bench_cli: {' '.join(argv)} exited with {status}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--command", default="tcpkb errno 104")
    args = parser.parse_args()
    command = shlex.split(args.command)
    # Prefer the console script beside this interpreter: a pyenv shim on PATH
    # would add a bash start-up that has nothing to do with tcpkb.
    beside = Path(sys.executable).parent / command[0]
    if beside.exists():
        command[0] = str(beside)
    elif not shutil.which(command[0]):
        sys.exit(f"bench_cli: {command[0]} is not on PATH; pip install . first")
    baseline = [sys.executable, "-c", "import os; os.strerror(104)"]
    run(command)  # warm the page cache and build the database if it is missing
    ours, base = [], []
    for _ in range(args.rounds):
        ours.append(run(command))
        base.append(run(baseline))
    ratios = [o / b for o, b in zip(ours, base)]
    print(f"{args.command!r}: median {statistics.median(ours) * 1000:.1f} ms")
    print(f"python -c 'import os; os.strerror(104)': median {statistics.median(base) * 1000:.1f} ms")
    print(f"median ratio {statistics.median(ratios):.2f}x over {args.rounds} alternating rounds (target <= 4x)")


if __name__ == "__main__":
    main()
