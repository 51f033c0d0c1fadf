"""Time `tcpkb errno 104` as a whole process against a bare Python start-up.

    python scripts/bench_cli.py [--rounds N] [--command "tcpkb errno 104"] [--baseline "tcpkb errno 104"]
    python scripts/bench_cli.py --fuzz 10000

Runs the two commands alternately (so drift in machine load hits both) and
prints each median and the median ratio. Targets: `tcpkb errno 104` within 2x
of a bare Python start-up, `tcpkb --help` within 4x; `tcpkb explain "<line>"`
within 2x of `tcpkb errno 104` (--baseline). The package's modules are compiled
first, as `pip install` does. `--fuzz N` runs the bytes fuzz of tests/test_fuzz.py
with N cases instead (0 tracebacks is the target). Measurements to report, never
assertions in the tests.
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
    parser.add_argument("--baseline", default=None, help="default: a bare Python start-up")
    parser.add_argument("--fuzz", type=int, default=0, metavar="N", help="run the bytes fuzz with N cases")
    args = parser.parse_args()
    if args.fuzz:
        sys.exit(fuzz(args.fuzz))
    _compile_package()
    command = _resolve(shlex.split(args.command))
    baseline = (_resolve(shlex.split(args.baseline)) if args.baseline
                else [sys.executable, "-c", "import os; os.strerror(104)"])
    run(command)  # warm the page cache and build the database if it is missing
    ours, base = [], []
    for _ in range(args.rounds):
        ours.append(run(command))
        base.append(run(baseline))
    ratios = [o / b for o, b in zip(ours, base)]
    print(f"{args.command!r}: median {statistics.median(ours) * 1000:.1f} ms")
    shown = args.baseline or "python -c 'import os; os.strerror(104)'"
    print(f"{shown}: median {statistics.median(base) * 1000:.1f} ms")
    print(f"median ratio {statistics.median(ratios):.2f}x over {args.rounds} alternating rounds")


def _compile_package() -> None:
    """Byte-compile tcpkb as an install does: a run under PYTHONDONTWRITEBYTECODE (or from an
    editable install) would otherwise compile every module it imports on every start."""
    import compileall

    import tcpkb

    compileall.compile_dir(Path(tcpkb.__file__).parent, quiet=1)


def fuzz(cases: int) -> int:
    """The bytes fuzz with `cases` examples; its exit status (0: no traceback in any case)."""
    import os

    root = Path(__file__).resolve().parent.parent
    started = time.perf_counter()
    status = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "--hypothesis-show-statistics", str(root / "tests" / "test_fuzz.py"), "-k", "bytes"],
                             cwd=root, env={**os.environ, "TCPKB_FUZZ_EXAMPLES": str(cases)})
    print(f"bytes fuzz: {cases} cases in {time.perf_counter() - started:.0f} s: "
          + ("no traceback" if status == 0 else f"FAILED (pytest exit {status})"))
    return status


def _resolve(command: list[str]) -> list[str]:
    # Prefer the console script beside this interpreter: a pyenv shim on PATH
    # would add a bash start-up that has nothing to do with tcpkb.
    beside = Path(sys.executable).parent / command[0]
    if beside.exists():
        return [str(beside), *command[1:]]
    if not shutil.which(command[0]):
        sys.exit(f"bench_cli: {command[0]} is not on PATH; pip install . first")
    return command


if __name__ == "__main__":
    main()
