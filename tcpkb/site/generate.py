"""The static docs site: `tcpkb site [--out DIR]`.

Reads only the built database (kb/ → tcpkb.db → this face) and writes plain HTML pages with
Jinja2, one per entry, kind and scenario, plus the state diagram and the packet ladders drawn
by tcpkb.present.diagrams, then indexes them with Pagefind for offline search.

Every link is relative and names index.html explicitly, so the site works opened from disk and
under any URL prefix. The output directory is replaced whole: the pages are written to a sibling
directory first and swapped in at the end, so a failed build never leaves half a site, and a
directory that is not a previous build is never overwritten.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


from ..kinds import KINDS
from ..paths import site_dir
from ..present import diagrams, page
from ..present.styles import pygments_css
from ..query import lookup
from ..query.matrix import matrix

# States in the order a connection meets them, for the table of transitions (the diagram has its own layout).
LIFECYCLE = ("CLOSE", "LISTEN", "SYN_SENT", "SYN_RECV", "NEW_SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
             "FIN_WAIT2", "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK", "BOUND_INACTIVE")
MARKER = ".tcpkb-site"  # marks a directory as a previous build, which may be replaced
PAGEFIND_TIMEOUT_S = 60


class SiteError(Exception):
    """A failed build step (no database, Pagefind failed): reported in one line, status 1."""
    status = 1


class OutputError(SiteError):
    """An output location we cannot or must not write: bad usage, status 2."""
    status = 2


# --- paths and links -------------------------------------------------------------

def entry_path(entry_id: str) -> str:
    """errno:EPIPE -> errno/EPIPE/index.html (names are [A-Za-z0-9_.-] only)."""
    kind, _, name = entry_id.partition(":")
    return f"{kind}/{name}/index.html"


def scenario_path(name: str) -> str:
    return f"scenario/{name}/index.html"


def href(path: str) -> str:
    """A site path as it goes in an href: percent-encoded, in case a name ever holds a space or '#'."""
    return quote(path)


def root_of(page: str) -> str:
    """The relative prefix from a page back to the site root: 'errno/EPIPE/index.html' -> '../../'."""
    return "../" * page.count("/")


# --- data --------------------------------------------------------------------------

@dataclass
class SiteData:
    """Everything the pages need, read from the database."""
    entries: dict[str, dict]                # id -> lookup.entry() shape (full)
    order: dict[str, list[str]]             # kind -> ids in note order
    scenarios: dict[str, dict]              # name -> scenarios row + entries + runs
    transitions: list[dict]
    meta: dict[str, str]
    kernels: list[str]                      # "6.18.44-fc-v669 x86_64" for each machine that ran scenarios


def load(conn: sqlite3.Connection) -> SiteData:
    order: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for entry_id, kind in conn.execute("select id, kind from entries order by rowid"):
        order.setdefault(kind, []).append(entry_id)
    entries = {i: lookup.entry(conn, i) for ids in order.values() for i in ids}
    scenarios = {r["name"]: dict(r) | {"entries": [], "runs": []}
                 for r in conn.execute("select * from scenarios order by name")}
    for r in conn.execute("select scenario, entry_id, verdict from scenario_entries order by rowid"):
        if r["scenario"] in scenarios:
            scenarios[r["scenario"]]["entries"].append({"id": r["entry_id"], "verdict": r["verdict"]})
    for r in conn.execute("select * from runs order by time desc, kernel"):
        if r["scenario"] in scenarios:
            run = dict(r)
            run["trace"] = json.loads(r["trace"]) if r["trace"] else None
            scenarios[r["scenario"]]["runs"].append(run)
    meta = {r["key"]: r["value"] for r in conn.execute("select key, value from meta")}
    kernels = [f"{r[0]} {r[1]}" for r in conn.execute(
        "select distinct kernel, arch from runs order by kernel, arch")]
    return SiteData(entries, order, scenarios, page.all_transitions(conn), meta, kernels)


# --- rendering -----------------------------------------------------------------------

def environment():
    """One Jinja2 environment for the whole build: strict, autoescaping, templates compiled once.
    The site's frame is in site/templates; the entry article and kind table both faces share
    are in tcpkb/present/templates."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([os.path.join(site_dir(), "templates"), page.template_dir()]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(page.template_globals())
    env.globals["KINDS"] = KINDS
    return env


class Writer:
    """Renders templates into the output directory and counts what it wrote."""

    def __init__(self, env, out: Path, common: dict):
        self.env = env
        self.out = out
        self.common = common
        self.pages = 0
        self._templates: dict = {}

    def page(self, path: str, template: str, **context) -> None:
        if template not in self._templates:
            self._templates[template] = self.env.get_template(template)
        root = root_of(path)
        html = self._templates[template].render(
            self.common, root=root, page=path,
            url=lambda target: root + target,
            entry_url=lambda entry_id: root + href(entry_path(entry_id)),
            scenario_url=lambda name: root + href(scenario_path(name)),
            kind_url=lambda kind: root + f"{kind}/index.html",
            diagram_url=root + "diagram/index.html", json_url=None,
            **context)
        dest = self.out / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(html, encoding="utf-8")
        self.pages += 1


def build_site(db_path: str | os.PathLike, out_dir: str | os.PathLike, search: bool = True) -> dict:
    """Build the whole site from the database at db_path into out_dir (replaced whole).

    Returns counts: pages, entries, scenarios, ladders, and seconds taken. search=False skips
    the Pagefind index (tests that only look at the HTML)."""
    started = time.perf_counter()
    out = Path(out_dir).resolve()
    check_output_dir(out)
    if not os.path.isfile(db_path):
        raise SiteError(f"no database at {db_path}; run `tcpkb build`")
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        staging.mkdir(parents=True)
    except OSError as err:
        raise OutputError(f"cannot create {out}: {err.strerror or err}") from None
    try:
        counts = write_pages(db_path, staging)
        if search:
            run_pagefind(staging)
            index_chinese(db_path, staging)
        (staging / MARKER).write_text("a tcpkb site build; `tcpkb site` replaces this directory whole\n")
        swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts["seconds"] = round(time.perf_counter() - started, 3)
    return counts


def check_output_dir(out: Path) -> None:
    """Refuse a file, or a non-empty directory that is not a previous build (we would delete it)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise OutputError(f"{out} is not empty and is not a previous site build; choose a new or empty directory")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {parent}: permission denied")


def swap_in(staging: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def write_pages(db_path: str | os.PathLike, out: Path) -> dict:
    conn = lookup.connect(str(db_path))
    try:
        data = load(conn)
        copy_assets(out)
        w = Writer(environment(), out, {
            "kernels": data.kernels, "built": (data.meta.get("built_at") or "")[:10],
            "version": data.meta.get("tcpkb_version", ""),
            "counts": {kind: len(data.order.get(kind, [])) for kind in KINDS}, "entries": data.entries})
        ladders: dict = {}
        _write_front_pages(w, data, conn)
        linked = page.inlinks(conn)
        for kind in KINDS:
            rows = page.kind_rows(kind, [data.entries[i] for i in data.order.get(kind, [])], linked)
            w.page(f"{kind}/index.html", "kind.html", kind=KINDS[kind], rows=rows,
                   diagram=_state_svg(data, f"{kind}/index.html") if kind == "state" else None)
            for entry_id in data.order.get(kind, []):
                path = entry_path(entry_id)
                context = page.article(conn, data.entries[entry_id], _entry_href(path), ladders, data.transitions)
                w.page(path, "entry.html", **context)
        w.page("scenario/index.html", "scenarios.html", scenarios=list(data.scenarios.values()))
        for name, scenario in data.scenarios.items():
            w.page(scenario_path(name), "scenario.html", s=scenario, drawn=page.ladder(conn, name, ladders),
                   source=page.scenario_source(scenario.get("source")))
    finally:
        conn.close()
    return {"pages": w.pages, "entries": len(data.entries), "scenarios": len(data.scenarios),
            "ladders": sum(1 for v in ladders.values() if v)}


def _entry_href(page_path: str):
    root = root_of(page_path)
    return lambda entry_id: root + href(entry_path(entry_id))


def _state_svg(data: SiteData, page_path: str, highlight: str | None = None) -> str:
    return diagrams.state_diagram(data.transitions, highlight, _entry_href(page_path))


def _write_front_pages(w: "Writer", data: SiteData, conn: sqlite3.Connection) -> None:
    w.page("index.html", "index.html", diagram=_state_svg(data, "index.html"), scenario_count=len(data.scenarios))
    w.page("search/index.html", "search.html")
    w.page("kernels/index.html", "kernels.html", matrix=matrix(conn))
    w.page("diagram/index.html", "diagram.html", diagram=_state_svg(data, "diagram/index.html"),
           transitions=sorted(data.transitions, key=lambda t: (lifecycle_rank(t["from_state"]), t["position"])))


def lifecycle_rank(state_id: str) -> tuple[int, str]:
    name = state_id.split(":", 1)[1]
    return (LIFECYCLE.index(name) if name in LIFECYCLE else len(LIFECYCLE), name)


def copy_assets(out: Path) -> None:
    """site/assets -> OUT/assets, with the Pygments colours appended to the one stylesheet."""
    src = Path(site_dir()) / "assets"
    dest = out / "assets"
    shutil.copytree(src, dest)
    css = dest / "site.css"
    css.write_text(css.read_text(encoding="utf-8") + "\n" + pygments_css(), encoding="utf-8")


def index_chinese(db_path: str | os.PathLike, out: Path) -> None:
    """A second Pagefind bundle, OUT/pagefind-zh/, of each entry's Chinese text (its Chinese
    summary and glibc's zh-CN and zh-TW messages) indexed as Chinese, which the search page
    merges with the English one.

    Pagefind gives each page one language, its <html lang>, and splits the index by it; our
    pages are English with Chinese lines in them, so their Chinese would be cut into words by
    English rules (and 连接 then ranks obscure knobs first). Each entry's Chinese is written as a
    page of its own at the entry's path in a scratch directory, so a hit links to the entry."""
    import tempfile

    conn = lookup.connect(str(db_path))
    try:
        inlinks = page.inlinks(conn)
        with tempfile.TemporaryDirectory(prefix="tcpkb-zh-") as scratch:
            for row in conn.execute("select id, kind, name, title, summary_zh from entries order by rowid"):
                path = Path(scratch, entry_path(row["id"]))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_chinese_page(row, page.chinese_messages(conn, row["id"]),
                                              inlinks.get(row["id"], 0)), encoding="utf-8")
            run_pagefind(Path(scratch), out / "pagefind-zh")
    finally:
        conn.close()


def _chinese_page(row: sqlite3.Row, messages: list[dict], inlinks: int) -> str:
    """The Chinese of one entry as Pagefind reads it: glibc's message and the summary, the name
    and kind as the result's title and filter. Many entries share a word (连接 is in 250
    summaries), so the text weighs more the more notes link to the entry: ECONNRESET, which
    73 notes name, comes before an MPTCP counter that mentions a connection."""
    from html import escape

    title = f"{row['name']}: {row['title']}" if row["kind"] != "claim" else row["title"]
    weight = min(10, 1 + round(math.log2(1 + inlinks)))
    said = "".join(f'<p lang="{m["lang"]}">{escape(m["text"])}</p>' for m in messages)
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
            f'<body><main data-pagefind-body data-pagefind-meta="title:{escape(title)}">'
            f'<div data-pagefind-filter="kind:{escape(row["kind"])}"></div>'
            f'<div data-pagefind-weight="{weight}">{said}<p>{escape(row["summary_zh"] or "")}</p></div>'
            f'</main></body></html>')


def run_pagefind(site: Path, output: Path | None = None) -> None:
    """Index the pages under `site` for offline search (Pagefind's bundle goes to SITE/pagefind/,
    or to `output`)."""
    output = output or site / "pagefind"
    argv = [sys.executable, "-m", "pagefind", "--site", str(site), "--output-path", str(output),
            "--keep-index-url", "--silent"]
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=PAGEFIND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SiteError(f"pagefind took longer than {PAGEFIND_TIMEOUT_S} s") from None
    except OSError as err:
        raise SiteError(f"cannot run pagefind: {err}") from None
    if proc.returncode != 0 or not (output / "pagefind.js").exists():
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise SiteError(f"pagefind failed (exit {proc.returncode}): {why[-1] if why else 'no output'}")


def default_out() -> Path:
    """site/_build/ in a checkout; ./tcpkb-site when installed (never inside site-packages)."""
    from ..paths import checkout_root

    root = checkout_root()
    return Path(root, "site", "_build") if root else Path.cwd() / "tcpkb-site"


def main(out: Path | None) -> int:
    """`tcpkb site [--out DIR]`: one line on success; one line and status 2 (bad --out) or 1."""
    from ..present.terminal import fail
    from ..answer import ensure_db

    target = Path(out) if out is not None else default_out()
    try:
        counts = build_site(ensure_db(), target)
    except SiteError as err:
        fail(str(err))
        return err.status
    except OSError as err:
        fail(f"cannot write the site to {target}: {err.strerror or err}")
        return 1
    print(f"wrote {counts['pages']} pages to {target} in {counts['seconds']:.1f} s")
    return 0
