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

--flood measures instead what a flood of bad requests does to `tcpkb serve` alone: 5 clients
fetch entry pages (every entry's page, fetched once untimed first so both phases read warm
pages) for SECONDS, then again for SECONDS while 20 more clients request missing pages as fast
as they are answered: unknown entries, paths, tables and `_sort` columns, each name new, so no
cache helps. Prints the entry pages' p50/p95 in both phases and the ratio of their p95 (the
goal: at most 2), with the flood's rate and the statuses it got (never a 5xx).

    python scripts/bench_serve.py --flood [--seconds 10] [--flooders 20] [--readers 5]

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


def run_threads(threads: list[threading.Thread], timeout: float) -> float:
    """Start the clients, wait for them (bounded), and return the wall time they took."""
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return time.monotonic() - t0


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
    wall = run_threads(threads, seconds + 15)
    first = [s for n, s in latencies if n < len(order)]
    rest = [s for n, s in latencies if n >= len(order)]
    return {"requests": len(latencies), "errors": state["errors"], "rps": len(latencies) / wall,
            "all": stats([s for _, s in latencies]), "first pass": stats(first), "warm": stats(rest),
            **{k: stats(v) for k, v in sorted(by_kind.items())}}


def missing_paths(n: int, seed: int = 2) -> list[str]:
    """N requests for pages that do not exist, each name different: what a scanner sends."""
    rng = random.Random(seed)
    shapes = ["/errno/E{}", "/{}", "/tcpkb/{}", "/tcpkb/entries?_sort={}", "/state/{}.json",
              "/wp-admin/{}.php", "/scenario/{}", "/../{}"]
    token = lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(10))  # noqa: E731
    return [shapes[i % len(shapes)].format(token()) for i in range(n)]


def loop_requests(port: int, paths: list[str], stop_at: float, max_requests: int,
                  record) -> None:
    """One client: a keep-alive connection sending PATHS in turn until stop_at or max_requests."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for n, path in enumerate(paths * (1 + max_requests // max(len(paths), 1))):
            if n >= max_requests or time.monotonic() >= stop_at:
                return
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            record(status, time.perf_counter() - t0)
    finally:
        conn.close()


def phase(port: int, readers: list[list[str]], flooders: list[list[str]], seconds: float,
          max_requests: int) -> dict:
    """Readers and flooders at once for SECONDS: the readers' latencies, everyone's statuses."""
    lock = threading.Lock()
    pages: list[float] = []
    statuses: dict[str, dict[int, int]] = {"pages": {}, "flood": {}}
    stop_at = time.monotonic() + seconds

    def recorder(part: str):
        def record(status: int, took: float) -> None:
            with lock:
                statuses[part][status] = statuses[part].get(status, 0) + 1
                if part == "pages" and status == 200:
                    pages.append(took)
        return record

    threads = [threading.Thread(target=loop_requests, daemon=True,
                                args=(port, paths, stop_at, max_requests, recorder(part)))
               for part, pools in (("pages", readers), ("flood", flooders)) for paths in pools]
    wall = run_threads(threads, seconds + 15)
    flood = sum(statuses["flood"].values())
    return {"pages": stats(pages), "statuses": statuses, "flood_rps": flood / wall,
            "pages_rps": len(pages) / wall}


def flood(args, work: list[str]) -> int:
    """Entry pages' p95 alone and under a flood of missing pages, from one tcpkb server."""
    entry_pages = [p for p in work if p.count("/") == 2 and not p.endswith(".json")
                   and not p.startswith("/search")]
    rng = random.Random(3)
    readers = [rng.sample(entry_pages, len(entry_pages)) for _ in range(args.readers)]
    per_flooder = max(args.max_requests // max(args.flooders, 1), 1)
    misses = missing_paths(per_flooder * args.flooders)
    flooders = [misses[i::args.flooders] for i in range(args.flooders)]
    port = free_port()
    proc = start([sys.executable, "-m", "tcpkb", "serve", "--port", str(port)], port, args.db)
    try:
        warm = phase(port, [entry_pages], [], 300, len(entry_pages))  # every page rendered once
        alone = phase(port, readers, [], args.seconds, args.max_requests)
        flooded = phase(port, readers, flooders, args.seconds, args.max_requests)
    finally:
        stop(proc)
    print(f"tcpkb serve: {args.readers} clients on {len(entry_pages)} entry pages (warmed in "
          f"{len(entry_pages) / max(warm['pages_rps'], 1e-9):.1f} s), {args.seconds:g} s per phase")
    for name, r in (("alone", alone), (f"flood of {args.flooders}", flooded)):
        s = r["pages"]
        line = (f"  {name:12} pages {r['pages_rps']:7.1f}/s  p50 {s['p50']:6.1f} ms  "
                f"p95 {s['p95']:6.1f} ms  p99 {s['p99']:6.1f} ms" if s else f"  {name:12} too few pages")
        print(line + f"  statuses {r['statuses']['pages']}")
    print(f"  flood: {flooded['flood_rps']:.1f} requests/s, statuses {flooded['statuses']['flood']}")
    if not (alone["pages"] and flooded["pages"]):
        return 1
    ratio = flooded["pages"]["p95"] / alone["pages"]["p95"]
    server_errors = sum(n for part in flooded["statuses"].values() for code, n in part.items()
                        if code >= 500 or code == 0)
    print(f"ratio p95 flooded/alone: {ratio:.2f}x (goal <= 2)  5xx or failed: {server_errors}")
    return 0 if ratio <= 2 and not server_errors else 1


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
    # a TERM (timeout, kill) unwinds like Ctrl-C, so the servers' finally blocks stop them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-requests", type=int, default=20000)
    ap.add_argument("--db", default=str(ROOT / "data" / "tcpkb.db"))
    ap.add_argument("--flood", action="store_true", help="entry pages alone, then under a flood of misses")
    ap.add_argument("--flooders", type=int, default=20)
    ap.add_argument("--readers", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.db).exists():
        print(f"no database at {args.db}; run `tcpkb build`", file=sys.stderr)
        return 2
    if min(args.clients, args.flooders, args.readers) < 1 or not 0 < args.seconds <= 600:
        print("--clients, --flooders and --readers are at least 1; --seconds 0 to 600", file=sys.stderr)
        return 2
    work = pools(args.db)
    if args.flood:
        return flood(args, work["tcpkb"])
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
