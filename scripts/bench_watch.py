"""What `tcpkb watch` costs while a namespace sends resets, and how many events it keeps up with.

    sudo python scripts/bench_watch.py [--rate 1000] [--seconds 10] [--netns] [--flood]

A workload (tests/watch_workload.py, rst-loop) connects to a closed port in a fresh network
namespace `--rate` times a second for `--seconds`; each connect is answered with an RST, so
the kernel records about six events (two state changes, the reset sent, the SYN's drop, the
reset received, the error set on the socket). `tcpkb watch --json` (with --netns: only that
namespace's events) runs meanwhile. Reported:

- events/s watch printed, and how many of the workload's resets it showed (rst:NO_SOCKET lines
  against connects), with the instance's overrun count (events the kernel had to discard);
- watch's CPU (utime+stime of its process, from /proc/PID/stat) per wall second, and as a ratio
  to the workload's own CPU for the same resets.

--flood runs the loop as fast as it goes instead of at --rate: the events/s watch sustains.
Root only (tracefs, namespaces). Measurements to report, never assertions in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def instance_of(pid: int) -> str | None:
    sys.path.insert(0, str(ROOT))
    from tcpkb.machine.tracefs import PREFIX, tracing_root

    base = os.path.join(tracing_root(), "instances")
    names = [n for n in os.listdir(base) if n.startswith(f"{PREFIX}{pid}-")]
    return os.path.join(base, names[0]) if names else None


def overruns(instance: str) -> int:
    total = 0
    for cpu in os.listdir(os.path.join(instance, "per_cpu")):
        with open(os.path.join(instance, "per_cpu", cpu, "stats")) as f:
            for line in f:
                if line.startswith("overrun:"):
                    total += int(line.split()[1])
    return total


def bounded_wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        time.sleep(0.05)
    raise SystemExit(f"bench_watch: gave up waiting for {what}")


def measure(rate: float, seconds: float, netns: bool, out_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    load = subprocess.Popen([sys.executable, "-m", "tests.watch_workload", f"rst-loop:{rate}:{seconds}"],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    watch = None
    try:
        load_pid = json.loads(load.stdout.readline())["pid"]
        args = ["--netns", str(load_pid)] if netns else []
        with open(out_path, "w") as out:
            watch = subprocess.Popen([sys.executable, "-m", "tcpkb", "watch", "--json", *args], cwd=ROOT,
                                     env=env, stdout=out, stderr=subprocess.DEVNULL)
        instance = bounded_wait(lambda: instance_of(watch.pid), 60, "watch's tracefs instance")
        time.sleep(0.5)
        cpu_before, wall_before = cpu_seconds(watch.pid), time.monotonic()
        load.stdin.write("go\n")
        load.stdin.flush()
        done = json.loads(load.stdout.readline())["done"][f"rst-loop:{rate}:{seconds}"]
        time.sleep(1.0)  # the reader catches up with what is in the buffer
        lost = overruns(instance)
        cpu_after, wall_after = cpu_seconds(watch.pid), time.monotonic()
        watch.send_signal(signal.SIGINT)
        watch.wait(30)
    finally:
        load.stdin.close()
        load.wait(30)
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait()
    lines = out_path.read_text().splitlines()
    shown = sum(1 for x in lines if '"entry": "rst:NO_SOCKET"' in x)
    wall = wall_after - wall_before
    cpu = cpu_after - cpu_before
    return {"resets": done["resets"], "load_seconds": done["seconds"], "load_cpu": done["cpu"],
            "events": len(lines), "events_per_s": len(lines) / done["seconds"], "resets_shown": shown,
            "overruns": lost, "watch_cpu": cpu, "wall": wall}


def report(label: str, r: dict) -> None:
    print(f"{label}:")
    print(f"  workload: {r['resets']} connects answered with RST in {r['load_seconds']:.1f} s "
          f"({r['resets'] / r['load_seconds']:.0f}/s), {r['load_cpu']:.2f} CPU s")
    print(f"  watch printed {r['events']} events ({r['events_per_s']:.0f}/s), showed "
          f"{r['resets_shown']} of the {r['resets']} resets; the kernel discarded {r['overruns']} "
          f"(buffer overruns)")
    print(f"  watch CPU: {r['watch_cpu']:.2f} s over {r['wall']:.1f} s wall = "
          f"{r['watch_cpu'] / r['wall']:.3f} CPU s per wall s; "
          f"{r['watch_cpu'] / max(r['load_cpu'], 1e-9):.2f}x the workload's own CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--netns", action="store_true", help="watch only the workload's namespace")
    parser.add_argument("--flood", action="store_true", help="connect as fast as possible")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_watch: needs root (tracefs and network namespaces)")
    rate = 1e9 if args.flood else args.rate
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_watch-{os.getpid()}.jsonl"
    try:
        r = measure(rate, args.seconds, args.netns, out)
    finally:
        out.unlink(missing_ok=True)
    label = "as fast as the loop goes" if args.flood else f"{args.rate:g} RSTs/s"
    report(f"tcpkb watch --json{' --netns' if args.netns else ''}, {label}", r)


if __name__ == "__main__":
    main()
