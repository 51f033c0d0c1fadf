"""Time the static site build, `tcpkb site`, as a whole process, and weigh its pages.

    python scripts/bench_site.py [--rounds N]

Builds the site N times (default 3) into a temporary directory and prints the median wall time
(Pagefind's index included), the number of pages, and the median page weight: a page's HTML plus
the stylesheets it links, without Pagefind's search bundle. Target: the build within 10 s.
A measurement to report, never an assertion in the tests.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STYLESHEET = re.compile(r'<link rel="stylesheet" href="([^"]+)"')


def build(out: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tcpkb", "site", "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_site: tcpkb site failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def page_weights(site: Path) -> list[int]:
    """Bytes of each page plus the stylesheets it links (Pagefind's bundle excluded)."""
    weights = []
    for page in site.rglob("*.html"):
        if "pagefind" in page.relative_to(site).parts:
            continue
        text = page.read_text(encoding="utf-8")
        total = len(text.encode("utf-8"))
        for href in STYLESHEET.findall(text):
            css = (page.parent / href).resolve()
            if "pagefind" not in css.relative_to(site.resolve()).parts:
                total += css.stat().st_size
        weights.append(total)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory(prefix="tcpkb-bench-site-") as tmp:
        out = Path(tmp) / "site"
        build(out)  # warm the page cache and build the database if it is missing
        for _ in range(args.rounds):
            times.append(build(out))
        weights = page_weights(out)
    print(f"tcpkb site: median {statistics.median(times):.2f} s over {args.rounds} builds "
          f"(min {min(times):.2f} s, max {max(times):.2f} s)")
    print(f"pages: {len(weights)}")
    print(f"median page weight: {statistics.median(weights) / 1024:.1f} KiB (HTML + linked CSS, "
          f"without the search bundle); largest {max(weights) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
