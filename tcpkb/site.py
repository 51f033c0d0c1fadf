"""The static docs site: `tcpkb site [--out DIR]`.

Reads only the built database (kb/ → tcpkb.db → this face) and writes plain HTML pages with
Jinja2, one per entry, kind and scenario, plus the state diagram and the packet ladders drawn
by tcpkb.diagrams, then indexes them with Pagefind for offline search.

Every link is relative and names index.html explicitly, so the site works opened from disk and
under any URL prefix. The output directory is replaced whole: the pages are written to a sibling
directory first and swapped in at the end, so a failed build never leaves half a site, and a
directory that is not a previous build is never overwritten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from . import lookup
from .paths import site_dir
from .present import diagrams

# Kinds in navigation order, with the plural used in headings.
KINDS = (
    ("errno", "Errors"),
    ("signal", "Signals"),
    ("state", "States"),
    ("flag", "Flags"),
    ("sysctl", "Sysctls"),
    ("sockopt", "Socket options"),
    ("call", "Calls"),
    ("claim", "Claims"),
)
KIND_TITLES = dict(KINDS)
# States in the order a connection meets them, for tables of transitions (the diagram has its own layout).
LIFECYCLE = ("CLOSE", "LISTEN", "SYN_SENT", "SYN_RECV", "NEW_SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
             "FIN_WAIT2", "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK", "BOUND_INACTIVE")
MARKER = ".tcpkb-site"  # marks a directory as a previous build, which may be replaced
LADDERS_PER_ENTRY = 3   # packet ladders inlined on an entry page; the rest are linked
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
    """Everything the pages need, read from the database in a few bulk queries."""
    entries: dict[str, dict]                # id -> lookup.entry() shape (full)
    order: dict[str, list[str]]             # kind -> ids in note order
    sections: dict[str, list[dict]]         # id -> [{slug, title, html}]
    scenarios: dict[str, dict]              # name -> scenarios row + entries + run
    transitions: list[dict]
    meta: dict[str, str]
    kernels: list[str]                      # "6.18.44-fc-v669 x86_64" for each machine that ran scenarios
    proofs: dict[str, list[str]]            # id -> reproducing scenarios, most about it first


def load(conn: sqlite3.Connection) -> SiteData:
    order: dict[str, list[str]] = {kind: [] for kind, _ in KINDS}
    for entry_id, kind in conn.execute("select id, kind from entries order by rowid"):
        order.setdefault(kind, []).append(entry_id)
    entries = {i: lookup.entry(conn, i) for ids in order.values() for i in ids}
    sections: dict[str, list[dict]] = {}
    for r in conn.execute("select entry_id, slug, title, html from sections order by entry_id, position"):
        sections.setdefault(r["entry_id"], []).append({"slug": r["slug"], "title": r["title"], "html": r["html"]})
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
    transitions = [dict(r) for r in conn.execute(
        "select from_state, to_state, position, event, send, side, rfc from transitions"
        " order by from_state, position")]
    meta = {r["key"]: r["value"] for r in conn.execute("select key, value from meta")}
    kernels = [f"{r[0]} {r[1]}" for r in conn.execute(
        "select distinct kernel, arch from runs order by kernel, arch")]
    proofs = {i: lookup.proving_scenarios(conn, i) for i in entries}
    return SiteData(entries, order, sections, scenarios, transitions, meta, kernels, proofs)


def packet_count(run: dict | None) -> int:
    if not run or not run.get("trace"):
        return 0
    return len(run["trace"].get("packets") or [])


def newest_run(scenario: dict) -> dict | None:
    return scenario["runs"][0] if scenario["runs"] else None


# --- facts of an entry -----------------------------------------------------------
# A fact is (label, value); a value is a list of parts, each a string or a link
# {"id": entry id, "text": shown text}. Templates render the parts.

def link(entry_id: str, text: str | None = None) -> dict:
    return {"id": entry_id, "text": text or entry_id.split(":", 1)[1]}


def join(parts: list, sep: str = ", ") -> list:
    out: list = []
    for i, p in enumerate(parts):
        if i:
            out.append(sep)
        out.append(p)
    return out


def differing_abis(numbers: dict, linux: int | None) -> str:
    """'alpha 35, mips 11' for the Linux ABIs whose number differs from the generic one."""
    return ", ".join(f"{p} {'none' if numbers.get(p) is None else numbers[p]}"
                     for p in lookup.LINUX_ABIS if numbers.get(p) != linux)


def facts(e: dict, known: dict) -> list[tuple[str, list]]:
    """The kind's own facts as label/value rows, with links to other entries where useful."""
    rows: list[tuple[str, list]] = []
    kind = e["kind"]
    if e.get("aliases"):
        rows.append(("Aliases", [", ".join(e["aliases"])]))
    if kind == "errno":
        nums = e["numbers"]
        rows.append(("Number on Linux", [str(e["number"])]))
        rows.append(("Message", [e["message"]]))
        if other := differing_abis(nums, e["number"]):
            rows.append(("Other Linux ABIs", [other]))
        for platform, label in (("darwin", "macOS"), ("freebsd", "FreeBSD")):
            if nums.get(platform) is not None:
                rows.append((label, [str(nums[platform])]))
        if nums.get("windows") is not None:
            rows.append(("Windows", [f"{nums['windows']} ({e['windows_name']})"]))
        if nums.get("libuv") is not None:
            rows.append(("libuv / Node.js on Windows", [str(nums["libuv"])]))
        for alias, per in (e.get("alias_numbers") or {}).items():
            rows.append((alias, [", ".join(f"{p} {n}" for p, n in per.items())]))
        if e["calls"]:
            rows.append(("Returned by", join([link(f"call:{c}") if f"call:{c}" in known else c
                                              for c in e["calls"]])))
        rows.append(("Sockets", ["met by socket programs" if e["socket"] else "rarely seen on sockets"]))
        if e["internal"]:
            rows.append(("Internal", ["kernel-internal code: user space should never see it"]))
    elif kind == "signal":
        rows.append(("Number", [str(e["number"])]))
        if other := differing_abis(e["numbers"], e["number"]):
            rows.append(("Other Linux ABIs", [other]))
        rows.append(("Default action", [e["action"]]))
        rows.append(("Standard", [e["standard"]]))
        rows.append(("Exit status", [f"{128 + e['number']} when it kills a shell's child"]))
    elif kind == "state":
        rows.append(("tcpi_state", [str(e["number"])]))
        rows.append(("/proc/net/tcp st", [e["hex"]]))
        rows.append(("RFC 9293", [e["rfc"] or "not an RFC state"]))
        rows.append(("ss", [e["ss"] or "never printed"]))
        rows.append(("netstat", [e["netstat"] or "never printed"]))
        rows.append(("Reached by", [e["side"]]))
    elif kind == "flag":
        rows.append(("Bit", [f"{e['bit']} ({e['hex']})"]))
        rows.append(("tcpdump letter", [e["letter"]]))
        rows.append(("Defined in", [e["rfc"]]))
    # a claim has no facts of its own: its verdict is shown under the title
    elif kind == "sysctl":
        rows.append(("Type", [e["type"] + (f", {e['unit']}" if e["unit"] else "")]))
        if e["range"]:
            rows.append(("Range", [e["range"]]))
        if e["default"] is not None:
            rows.append(("Default", [e["default"] if e["default"] != "" else "(empty)"]))
        if e["computed"]:
            rows.append(("Computed from", [e["computed"]]))
        rows.append(("Namespace", ["one value for the whole machine" if not e["per_netns"] else
                                   "one per network namespace, starting from the host's current value"
                                   if e["inherited"] else "one per network namespace"]))
        if e["noop_since"]:
            rows.append(("No effect", [f"since Linux {e['noop_since']}: the file exists but does nothing"]))
        if e["removed_in"]:
            rows.append(("Removed", [f"in Linux {e['removed_in']}"]))
        else:
            rows.append(("File", [e["proc_path"]]))
    elif kind == "sockopt":
        rows.append(("Level", ["send/recv flag" if e["level"] == "flags" else e["level"]]))
        rows.append(("Number", [str(e["number"])]))
        if other := differing_abis(e["numbers"], e["number"]):
            rows.append(("Other Linux ABIs", [other]))
        rows.append(("Value", [e["value"]]))
        rows.append(("Access", [e["access"]]))
        if e["default"] is not None or e["default_from"]:
            default = e["default"] if e["default"] is not None else ""
            if e["default_from"]:
                source = f"sysctl:{e['default_from']}"
                src = link(source, e["default_from"]) if source in known else e["default_from"]
                rows.append(("Default", ([default, " (from "] if default else ["from "]) + [src]
                             + ([")"] if default else [])))
            else:
                rows.append(("Default", [default]))
    elif kind == "call":
        rows.append(("Manual", [e["man"]]))
    return rows


# --- rendering -----------------------------------------------------------------------

def environment():
    """One Jinja2 environment for the whole build: strict, autoescaping, templates compiled once."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(site_dir(), "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["KINDS"] = KINDS
    env.globals["KIND_TITLES"] = KIND_TITLES
    return env


def pygments_css() -> str:
    """Pygments token colours for code in notes: a light style, and a dark one under the media query."""
    from pygments.formatters import HtmlFormatter

    def defs(style: str) -> str:
        lines = HtmlFormatter(style=style).get_style_defs(".highlight").splitlines()
        # our stylesheet owns the block's background and line-number colours; the token-name
        # comments only add weight to every page
        return "\n".join(re.sub(r"\s*/\*.*?\*/", "", line) for line in lines
                         if not line.startswith((".highlight {", "pre {", "td.", "span.")))

    dark = "\n".join("  " + line for line in defs("github-dark").splitlines())
    return f"/* Pygments: default (light) and github-dark */\n{defs('default')}\n" \
           f"@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


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
            **context)
        dest = self.out / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(html, encoding="utf-8")
        self.pages += 1


def ladder_for(scenario: dict, cache: dict) -> dict | None:
    """The newest run's ladder SVG and timeline, drawn once per scenario and reused."""
    name = scenario["name"]
    if name not in cache:
        run = newest_run(scenario)
        if run is None or not run["trace"] or not (run["trace"].get("packets") or run["trace"].get("steps")):
            cache[name] = None
        else:
            caption = f"{name} on Linux {run['kernel']} {run['arch']}"
            cache[name] = {"name": name, "svg": diagrams.ladder(run["trace"], caption),
                           "timeline": diagrams.timeline(run["trace"]),
                           "packets": packet_count(run), "run": run}
    return cache[name]


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
    finally:
        conn.close()
    copy_assets(out)
    env = environment()
    known = data.entries
    common = {
        "kernels": data.kernels,
        "built": (data.meta.get("built_at") or "")[:10],
        "version": data.meta.get("tcpkb_version", ""),
        "counts": {kind: len(data.order.get(kind, [])) for kind, _ in KINDS},
        "entries": known,
        "fact_rows": lambda e: facts(e, known),
    }
    w = Writer(env, out, common)
    ladders: dict = {}

    def state_svg(page: str, highlight: str | None = None) -> str:
        root = root_of(page)
        return diagrams.state_diagram(data.transitions, highlight, lambda sid: root + href(entry_path(sid)))

    w.page("index.html", "index.html", diagram=state_svg("index.html"), scenario_count=len(data.scenarios))
    w.page("search/index.html", "search.html")
    w.page("diagram/index.html", "diagram.html", diagram=state_svg("diagram/index.html"),
           transitions=sorted(data.transitions, key=lambda t: (lifecycle_rank(t["from_state"]), t["position"])))

    for kind, _ in KINDS:
        rows = [known[i] for i in data.order.get(kind, [])]
        extra = {}
        if kind == "state":
            extra["diagram"] = state_svg(f"{kind}/index.html")
        w.page(f"{kind}/index.html", f"kind_{kind}.html", kind=kind, rows=sorted_rows(kind, rows), **extra)

    for kind, _ in KINDS:
        for entry_id in data.order.get(kind, []):
            e = known[entry_id]
            path = entry_path(entry_id)
            drawn = [ladder_for(data.scenarios[n], ladders) for n in data.proofs[entry_id]
                     if n in data.scenarios]
            shown = [d for d in drawn if d and d["packets"]]
            extra = {"diagram": None, "incoming": []}
            if kind == "state":
                extra["diagram"] = state_svg(path, entry_id)
                extra["incoming"] = [t for t in data.transitions if t["to_state"] == entry_id]
            w.page(path, "entry.html", e=e, sections=data.sections.get(entry_id, []),
                   ladders=shown[:LADDERS_PER_ENTRY], more_ladders=len(shown) - min(len(shown), LADDERS_PER_ENTRY),
                   **extra)

    w.page("scenario/index.html", "scenarios.html", scenarios=list(data.scenarios.values()))
    for name, scenario in data.scenarios.items():
        w.page(scenario_path(name), "scenario.html", s=scenario, drawn=ladder_for(scenario, ladders))

    return {"pages": w.pages, "entries": len(known), "scenarios": len(data.scenarios),
            "ladders": sum(1 for v in ladders.values() if v)}


def lifecycle_rank(state_id: str) -> tuple[int, str]:
    name = state_id.split(":", 1)[1]
    return (LIFECYCLE.index(name) if name in LIFECYCLE else len(LIFECYCLE), name)


def sorted_rows(kind: str, rows: list[dict]) -> list[dict]:
    """Kind tables in the order people scan them: numbers ascending, names otherwise."""
    if kind in ("errno", "signal", "state"):
        return sorted(rows, key=lambda e: (e["number"], e["name"]))
    if kind == "flag":
        return sorted(rows, key=lambda e: e["bit"])
    if kind == "sockopt":
        return sorted(rows, key=lambda e: (e["level"], e["number"], e["name"]))
    return sorted(rows, key=lambda e: e["name"])


def copy_assets(out: Path) -> None:
    """site/assets -> OUT/assets, with the Pygments colours appended to the one stylesheet."""
    src = Path(site_dir()) / "assets"
    dest = out / "assets"
    shutil.copytree(src, dest)
    css = dest / "site.css"
    css.write_text(css.read_text(encoding="utf-8") + "\n" + pygments_css(), encoding="utf-8")


def run_pagefind(out: Path) -> None:
    """Index the pages for offline search (Pagefind's bundle goes to OUT/pagefind/)."""
    argv = [sys.executable, "-m", "pagefind", "--site", str(out), "--keep-index-url", "--silent"]
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=PAGEFIND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SiteError(f"pagefind took longer than {PAGEFIND_TIMEOUT_S} s") from None
    except OSError as err:
        raise SiteError(f"cannot run pagefind: {err}") from None
    if proc.returncode != 0 or not (out / "pagefind" / "pagefind.js").exists():
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise SiteError(f"pagefind failed (exit {proc.returncode}): {why[-1] if why else 'no output'}")


def default_out() -> Path:
    """site/_build/ in a checkout; ./tcpkb-site when installed (never inside site-packages)."""
    from .paths import checkout_root

    root = checkout_root()
    return Path(root, "site", "_build") if root else Path.cwd() / "tcpkb-site"


def main(out: Path | None) -> int:
    """`tcpkb site [--out DIR]`: one line on success; one line and status 2 (bad --out) or 1."""
    from .output import fail
    from .paths import ensure_db

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
