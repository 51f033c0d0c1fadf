"""Load `tcpkb serve` from a second process and compare it with plain Datasette.

Starts two servers on free loopback ports, each a child process:
  tcpkb   `python -m tcpkb serve` (the plugin, metadata, templates, cached answers)
  plain   `datasette serve -i DB` on the same file, every plugin unregistered, default settings
then drives each with CLIENTS concurrent clients (threads with keep-alive connections), each
sending requests back to back, for a bounded time and count. The mix is the same kind of work
on both: a third entry pages (tcpkb's /errno/ECONNRESET, plain's row page), a third JSON lookups
(/errno/104.json against the row's .json), a third full-text searches (25 common words and
every entry's title). Every URL is in the pool once, shuffled, so caches start cold: the first
pass through the pool and the rest are reported apart. Prints p50/p95/p99 per server, per kind
of request, and the ratios.

    python scripts/bench_serve.py [--clients 20] [--seconds 10] [--max-requests 20000]

Only loopback; every wait is bounded; both servers are killed however the script ends.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["connection reset", "broken pipe", "time wait", "reuseaddr", "keepalive", "refused",
         "timed out", "syn flood", "backlog", "close wait", "linger", "nagle", "fin timeout",
         "port range", "no route", "too many open files", "conntrack", "retransmit", "sigpipe",
         "would block", "interrupted", "accept queue", "half open", "orphan", "tw reuse"]

# plain Datasette with nothing but its own default plugins, on the file as given
PLAIN = """
import sys
from datasette.plugins import pm, DEFAULT_PLUGINS
for name, plugin in list(pm.list_name_plugin()):
    if getattr(plugin, "__name__", "") not in DEFAULT_PLUGINS:
        pm.unregister(plugin)
from datasette.cli import cli
sys.argv = ["datasette", "serve", "-i", sys.argv[1], "--host", "127.0.0.1", "--port", sys.argv[2]]
cli()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, db: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "TCPKB_DB": db})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"server did not listen within 30 s: {' '.join(cmd)}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def pools(db: str) -> dict[str, list[str]]:
    """The same work for both servers: entry pages, JSON lookups, searches."""
    from datasette.utils import tilde_encode

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        ids = [r[0] for r in conn.execute("select id from entries order by id")]
        # searches as people type them: the fixed words, then each entry's title
        words = WORDS + sorted({r[0] for r in conn.execute("select title from entries")})
    own = lambda i: "/" + i.split(":", 1)[0] + "/" + quote(i.split(":", 1)[1], safe="")  # noqa: E731
    row = lambda i: "/tcpkb/entries/" + tilde_encode(i)  # noqa: E731 (Datasette's row URLs)
    return {
        "tcpkb": [own(i) for i in ids] + [own(i) + ".json" for i in ids]
        + [f"/search.json?q={quote(w)}" for w in words],
        "plain": [row(i) for i in ids] + [row(i) + ".json" for i in ids]
        + [f"/tcpkb/search.json?_search={quote(w)}" for w in words],
    }


def drive(port: int, paths: list[str], clients: int, seconds: float, max_requests: int) -> dict:
    """CLIENTS threads, each on one keep-alive connection, sending requests back to back."""
    rng = random.Random(1)
    order = paths[:]
    rng.shuffle(order)
    lock = threading.Lock()
    state = {"next": 0, "errors": 0}
    latencies: list[tuple[int, float]] = []  # (request number, seconds)
    by_kind: dict[str, list[float]] = {}
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while time.monotonic() < stop_at:
                with lock:
                    n = state["next"]
                    if n >= max_requests:
                        return
                    state["next"] += 1
                path = order[n % len(order)]
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    resp.read()
                    ok = resp.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                took = time.perf_counter() - t0
                with lock:
                    latencies.append((n, took))
                    by_kind.setdefault(kind_of(path), []).append(took)
                    state["errors"] += not ok
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 15)
    wall = time.monotonic() - t0
    first = [s for n, s in latencies if n < len(order)]
    rest = [s for n, s in latencies if n >= len(order)]
    return {"requests": len(latencies), "errors": state["errors"], "rps": len(latencies) / wall,
            "all": stats([s for _, s in latencies]), "first pass": stats(first), "warm": stats(rest),
            **{k: stats(v) for k, v in sorted(by_kind.items())}}


def kind_of(path: str) -> str:
    if "search" in path:
        return "search"
    return "json" if ".json" in path else "page"


def stats(samples: list[float]) -> dict | None:
    if len(samples) < 20:
        return None
    q = statistics.quantiles(samples, n=100)
    return {"n": len(samples), "p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-requests", type=int, default=20000)
    ap.add_argument("--db", default=str(ROOT / "data" / "tcpkb.db"))
    args = ap.parse_args()
    if not Path(args.db).exists():
        print(f"no database at {args.db}; run `tcpkb build`", file=sys.stderr)
        return 2
    work = pools(args.db)
    results = {}
    for name in ("plain", "tcpkb"):
        port = free_port()
        cmd = ([sys.executable, "-c", PLAIN, args.db, str(port)] if name == "plain" else
               [sys.executable, "-m", "tcpkb", "serve", "--port", str(port)])
        proc = start(cmd, port, args.db)
        try:
            results[name] = drive(port, work[name], args.clients, args.seconds, args.max_requests)
        finally:
            stop(proc)
    print(f"{args.clients} clients, {args.seconds:g} s each, pool of {len(work['tcpkb'])} URLs")
    for name, r in results.items():
        print(f"{name:6} {r['requests']:6d} requests  {r['rps']:7.1f}/s  errors {r['errors']}")
        for part in ("all", "first pass", "warm", "page", "json", "search"):
            if s := r.get(part):
                print(f"       {part:10} n={s['n']:5d}  p50 {s['p50']:6.1f} ms  p95 {s['p95']:6.1f} ms"
                      f"  p99 {s['p99']:6.1f} ms")
    a, b = results["tcpkb"]["all"], results["plain"]["all"]
    if a and b:
        print(f"ratio tcpkb/plain: p50 {a['p50'] / b['p50']:.2f}x  p95 {a['p95'] / b['p95']:.2f}x  "
              f"throughput {results['tcpkb']['rps'] / results['plain']['rps']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
