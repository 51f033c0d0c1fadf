"""How answers look in a terminal: colour and layout on a TTY, plain text in a pipe.

Styles are plain ANSI sequences, stripped at the last moment when the stream
is not a terminal or NO_COLOR is set. This module stays free of Typer so the
lookup fast path in main.py can print without loading it.
"""

from __future__ import annotations

import json
import os
import re
import sys

from .lookup import Found

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _wants_colour(stream) -> bool:
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def echo(text: str = "", err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write((text if _wants_colour(stream) else _ANSI.sub("", text)) + "\n")


def style(text: str, *codes: str) -> str:
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


def bold(text: str) -> str:
    return style(text, "1")


def dim(text: str) -> str:
    return style(text, "2")


def accent(text: str) -> str:
    return style(text, "1", "36")  # bold cyan


def print_json(data) -> None:
    echo(json.dumps(data, ensure_ascii=False, indent=2))


def headline(e: dict) -> str:
    kind = e["kind"]
    if kind == "errno":
        return f"{accent(e['name'])}  errno {e['number']}  {bold(e['message'])}"
    if kind == "signal":
        return f"{accent(e['name'])}  signal {e['number']}  {bold(e['title'])}  (default: {e['action']})"
    if kind == "state":
        return f"{accent(e['name'])}  state {e['number']} (/proc hex {e['hex']})  {bold(e['title'])}"
    if kind == "flag":
        return f"{accent(e['name'])}  flag {e['hex']} ({e['letter']})  {bold(e['title'])}"
    if kind == "claim":
        colour = {"confirmed": "32", "refuted": "31"}.get(e["verdict"], "33")
        return f"{accent(e['title'])}  claim {style(e['verdict'].upper(), colour)}"
    if kind == "sysctl":
        if e["removed_in"]:
            return f"{accent(e['name'])}  sysctl  {style('REMOVED in ' + e['removed_in'], '31')}  {bold(e['title'])}"
        default = e["default"] if e["default"] is not None else "computed"
        return f"{accent(e['name'])}  sysctl {e['type']}  default {default}  {bold(e['title'])}"
    if kind == "sockopt":
        where = "send/recv flag" if e["level"] == "flags" else e["level"]
        return f"{accent(e['name'])}  {where} {e['number']}  {bold(e['title'])}"
    if kind == "call":
        return f"{accent(e['name'])}  {e['man']}  {bold(e['title'])}"
    return f"{accent(e['name'])}  {bold(e['title'])}"


def facts(e: dict) -> list[tuple[str, str]]:
    """The kind's own facts as label/value rows."""
    rows: list[tuple[str, str]] = []
    kind = e["kind"]
    if e.get("aliases"):
        rows.append(("aliases", ", ".join(e["aliases"])))
    if kind == "errno":
        nums = e["numbers"]
        linux = "  ".join(f"{p} {nums[p]}" for p in ("linux", "alpha", "mips", "sparc", "parisc", "powerpc")
                          if nums.get(p) is not None)
        rows.append(("numbers", linux))
        other = [f"{p} {nums[p]}" for p in ("darwin", "freebsd") if nums.get(p) is not None]
        if nums.get("windows") is not None:
            other.append(f"windows {nums['windows']} ({e.get('windows_name')})")
        if nums.get("libuv") is not None:
            other.append(f"libuv/Node.js on windows {nums['libuv']}")
        rows.append(("elsewhere", "  ".join(other) if other else "not defined on darwin, freebsd or windows"))
        for alias, per in (e.get("alias_numbers") or {}).items():
            rows.append((alias, "  ".join(f"{p} {n}" for p, n in per.items())))
        if e.get("calls"):
            rows.append(("calls", ", ".join(e["calls"])))
        if e.get("internal"):
            rows.append(("internal", "kernel-internal: user space should never see this code"))
    elif kind == "signal":
        nums = e["numbers"]
        rows.append(("numbers", "  ".join(f"{p} {n}" for p, n in nums.items() if n is not None)))
        missing = [p for p, n in nums.items() if n is None]
        if missing:
            rows.append(("absent on", ", ".join(missing)))
        rows.append(("standard", e["standard"]))
        rows.append(("exit status", f"{128 + e['number']} when it kills a shell's child"))
    elif kind == "state":
        rows.append(("spellings", f"RFC {e['rfc'] or '-'}  ss {e['ss'] or '-'}  netstat {e['netstat'] or '-'}"))
        rows.append(("reached by", e["side"]))
        for t in e["transitions"]:
            send = f" / send {t['send']}" if t["send"] else ""
            rows.append(("→ " + t["to"].split(":", 1)[1], f"{t['event']}{send}"
                         + ("" if t["rfc"] else dim("  (Linux)"))))
    elif kind == "sysctl":
        rows += _sysctl_facts(e)
    elif kind == "sockopt":
        rows.append(("value", e["value"]))
        rows.append(("access", e["access"]))
        if e["default"] is not None:
            rows.append(("default", e["default"] + (f"  (from {e['default_from']})" if e["default_from"] else "")))
        elif e["default_from"]:
            rows.append(("default", f"from {e['default_from']}"))
        other = [f"{p} {n}" for p, n in e["numbers"].items() if p != "linux" and n != e["number"]]
        if other:
            rows.append(("other ABIs", "  ".join(other)))
    elif kind == "call":
        rows.append(("synopsis", e["synopsis"]))
        for err in e["errors"]:
            rows.append((err["errno"].split(":", 1)[1], err["when"]))
    elif kind == "flag":
        rows.append(("defined in", e["rfc"]))
        for c in e.get("combinations") or []:
            rows.append((c["flags"], f"{c['name']}: {c['meaning']}"))
    return rows


def _sysctl_facts(e: dict) -> list[tuple[str, str]]:
    rows = [("type", e["type"] + (f", {e['unit']}" if e["unit"] else ""))]
    if e["range"]:
        rows.append(("range", e["range"]))
    if e["default"] is not None:
        rows.append(("default", e["default"]))
    if e["computed"]:
        rows.append(("computed from", e["computed"]))
    rows.append(("namespace", "one value for the whole machine" if not e["per_netns"] else
                 "each network namespace has its own, starting from the host's current value"
                 if e["inherited"] else "each network namespace has its own"))
    if e["noop_since"]:
        rows.append(("no effect", f"since Linux {e['noop_since']}: the file exists but does nothing"))
    if e["removed_in"]:
        rows.append(("removed", f"in Linux {e['removed_in']}: writing it fails"))
    else:
        rows.append(("file", e["proc_path"]))
    return rows


def live_lines(e: dict, live: dict) -> list[str]:
    """'live 30 (default 60: differs)' for `tcpkb sysctl`."""
    if live["value"] is None:
        return [f"{dim('live')}  {live.get('why') or 'cannot be read'}"]
    line = f"{dim('live')}  {bold(live['value'])} on this machine"
    if live["differs"] is True:
        line += "  " + style(f"differs from the default {live['default']} ({live['default_source']})", "33")
    elif live["differs"] is False:
        line += "  " + dim("(the default)")
    else:
        line += "  " + dim("(nothing to compare: read-only, secret or no default)")
    return [line]


def print_found(found: Found, brief: bool = False) -> None:
    e = found.entry
    for note in found.notes:
        echo(dim(f"note: {note}"))
    if e.get("kind") == "combination":
        print_combination(e)
        return
    echo(headline(e))
    echo(f"{dim(e['id'])}")
    echo(e["summary"])
    echo(e["summary_zh"])
    if found.also:
        for a in found.also:
            echo(style(f"also: {a['name']} ({a['id']}) has this number on "
                       f"{', '.join(a['platforms'])}", "33"))  # yellow
    for line in verification_lines(e.get("verification") or [], e["id"]):
        echo(line)
    if e.get("live"):
        for line in live_lines(e, e["live"]):
            echo(line)
    if brief:
        return
    echo()
    rows = facts(e)
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        echo(f"  {dim(label.ljust(width))}  {value}")
    for slug, text in (e.get("sections") or {}).items():
        echo()
        echo(bold(slug.replace("-", " ").capitalize()))
        for line in text.splitlines():
            echo(f"  {line}" if line else "")
    if e.get("related"):
        echo()
        echo(f"{dim('related')}  {', '.join(e['related'])}")
    if e.get("linked_from"):
        if not e.get("related"):
            echo()
        echo(f"{dim('see also')} {', '.join(e['linked_from'])}")
    if e.get("path"):
        echo(f"{dim('source')}   {e['path']}")


def verification_lines(items: list[dict], entry_id: str = "ID", most: int = 3) -> list[str]:
    """'reproduced on 6.18.44 x86_64: <claim> (scenario)' lines, failures first, then checks."""
    lines = []
    reproduced = sorted((v for v in items if v["level"] != "checked"), key=lambda v: v["ok"])
    for v in reproduced[:most]:
        where = f"{v['kernel']} {v['arch']}"
        if v["ok"]:
            lines.append(f"{style('reproduced', '32')} on {where}: {v['claim']} {dim('(' + v['scenario'] + ')')}")
        else:
            lines.append(f"{style('FAILED', '31')} on {where}: {v['claim']} {dim('(' + v['scenario'] + ')')}")
    if len(reproduced) > most:
        lines.append(dim(f"… and {len(reproduced) - most} more scenarios (tcpkb verify --list {entry_id})"))
    for v in (v for v in items if v["level"] == "checked"):
        what = ", ".join(v.get("compared") or [])
        verdict = style("checked", "32") if v["ok"] else style("CHECK FAILED", "31")
        lines.append(f"{verdict} on {v['kernel']} {v['arch']}: {what} {dim('(' + v['scenario'] + ')')}")
    return lines


def print_combination(e: dict) -> None:
    echo(f"{accent(e['letters'])}  {e['hex']}  {bold(e['title'])}")
    if e["summary"]:
        echo(e["summary"])
    for f in e["flags"]:
        echo(f"  {accent(f['name'].ljust(4))} {f['hex']}  {f['summary']}")


def print_list(entries: list[dict]) -> None:
    width = max((len(e["name"]) for e in entries), default=0) + 1
    for e in entries:
        kind = e["kind"]
        if kind == "errno":
            key = f"{e['number']:>3}"
        elif kind == "signal":
            key = f"{e['number']:>3}"
        elif kind == "state":
            key = f"{e['number']:>2} {e['hex']}"
        elif kind == "flag":
            key = f"{e['hex']} {e['letter']}"
        elif kind == "sysctl":
            key = (f"removed {e['removed_in']}" if e["removed_in"] else
                   e["default"] if e["default"] is not None else "computed")[:24].ljust(24)
        elif kind == "sockopt":
            key = f"{'MSG' if e['level'] == 'flags' else e['level']:<12} {e['number']:>5}"
        elif kind == "call":
            key = e["man"].ljust(14)
        else:  # a claim: its verdict, then the claim as people state it
            echo(f"{e['verdict']:<9}  {accent(e['name'])}  {e['title']}")
            continue
        echo(f"{key}  {accent(e['name'].ljust(width))} {e['title']}")


def print_diff(report: dict) -> None:
    for d in report["differs"]:
        echo(f"{accent(d['name'])}  {bold(d['value'])}  {dim('default')} {d['default']}"
             + (dim("  (read from a fresh namespace)") if d["default_source"] == "fresh namespace" else ""))
        echo(f"  {d['summary']}")
        for line in d["advice"].splitlines():
            echo(f"  {dim('│')} {line}" if line else f"  {dim('│')}")
    n = len(report["differs"])
    echo(dim(f"{n} of {report['compared']} knobs differ from their default"
             + (f"; {len(report['not_compared'])} not compared (tcpkb sysctl --diff --json lists them)"
                if report["not_compared"] else "")))


def _first_items(markdown: str, most: int = 3) -> list[str]:
    """The first items of a markdown list (ranked causes), each on one line."""
    items: list[str] = []
    for line in markdown.splitlines():
        if re.match(r"\s{0,3}(\d+\.|[-*])\s", line):
            items.append(re.sub(r"^\s*(\d+\.|[-*])\s+", "", line))
        elif items and line.startswith("   ") and line.strip():
            items[-1] += " " + line.strip()
        if len(items) > most:
            break
    return items[:most]


def print_explained(matches: list[dict]) -> None:
    best, rest = matches[0], matches[1:]
    for m in [best] + [r for r in rest if r["score"] >= 0.6]:
        echo(f"{accent(m['id'])}  {bold(m['title'])}  {dim('confidence')} {m['score']:.2f}")
        for ev in m["evidence"][:4]:
            echo(f"  {dim('matched')} {style(repr(ev['text']), '33')} {dim('→')} {ev['detail']}")
        if m["deadline"]:
            echo("  " + style("the deadline was the application's own, not the kernel's", "33"))
        echo(f"  {m['summary']}")
        sections = m["sections"]
        causes = _first_items(sections.get("causes") or sections.get("when-it-piles-up")
                              or sections.get("traps") or "")
        if causes:
            echo(f"  {dim('top causes')}")
            for i, c in enumerate(causes, 1):
                echo(f"    {i}. {c}")
        todo = sections.get("what-to-do") or ""
        steps = _first_items(todo) or [" ".join(todo.split("\n\n")[0].split())]
        if todo:
            echo(f"  {dim('what to do')}")
            for step in steps:
                echo(f"    - {step}")
        echo()
    others = [r for r in rest if r["score"] < 0.6]
    if others:
        echo(dim("also possible: " + ", ".join(f"{r['id']} ({r['score']:.2f})" for r in others)))


def print_search(results: list[dict]) -> None:
    for r in results:
        echo(f"{accent(r['id'].ljust(24))} {r['summary']}")
        if r["snippet"]:
            echo(f"  {dim(' '.join(r['snippet'].split()))}")


def fail(message: str, suggestions: list[str] | None = None) -> None:
    echo(f"tcpkb: {message}", err=True)
    if suggestions:
        echo(f"closest: {', '.join(suggestions)}", err=True)
