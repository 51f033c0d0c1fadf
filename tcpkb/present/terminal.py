"""How answers look in a terminal: colour and layout on a TTY, plain text in a pipe.

Styles are plain ANSI sequences, stripped at the last moment when the stream
is not a terminal or NO_COLOR is set. This module stays free of Typer so the
lookup fast path in main.py can print without loading it.
"""

from __future__ import annotations

import json
import os
import sys

from ..kinds.base import fact_text, kernels_text
from ..query.lookup import Found
from . import explained as explaining
from . import text as typeset
from .style import accent, bold, dim, style, unstyled  # noqa: F401  (the faces style through output)


def _is_terminal(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def _wants_colour(stream) -> bool:
    return not os.environ.get("NO_COLOR") and _is_terminal(stream)


def layout(err: bool = False) -> tuple[bool, int | None]:
    """(colour, width) for a stream: a terminal gets its width (colour unless NO_COLOR);
    anything else plain text, unwrapped (width None)."""
    stream = sys.stderr if err else sys.stdout
    return _wants_colour(stream), (typeset.terminal_width(stream) if _is_terminal(stream) else None)


def echo(line: str = "", err: bool = False) -> None:
    """Print a line: on a terminal wrapped to its width (and coloured unless NO_COLOR), else
    as it is, without ANSI sequences."""
    stream = sys.stderr if err else sys.stdout
    colour, width = layout(err)
    if not colour:
        line = unstyled(line)
    if width is not None and "\n" not in line:
        line = "\n".join(typeset.fit(line, width))
    stream.write(line + "\n")


def markdown_lines(markdown: str, indent: str = "  ") -> list[str]:
    """A note's markdown laid out for stdout (tcpkb.present.text has the contract)."""
    colour, width = layout()
    return typeset.render(markdown, indent, styled=colour, width=width)


def print_json(data) -> None:
    echo(json.dumps(data, ensure_ascii=False, indent=2))


STYLES = {None: (), "bold": ("1",), "good": ("32",), "warn": ("33",), "bad": ("31",)}


def headline(e: dict) -> str:
    """NAME  <the kind's segments>: 'ECONNRESET  errno 104  Connection reset by peer'."""
    from ..kinds import KINDS

    name = e["title"] if e["kind"] == "claim" else e["name"]
    parts = [accent(name)]
    for text, how in KINDS[e["kind"]].headline(e):
        parts.append(style(text, *STYLES[how]) if STYLES[how] else text)
    return "  ".join(parts)


def fact_lines(facts: list[dict]) -> list[str]:
    """The facts model as aligned 'label  value' lines; a value that differs by kernel gets a
    line per kernel."""
    width = max((len(f["label"]) for f in facts), default=0)
    lines = []
    for f in facts:
        label = dim(f["label"].ljust(width))
        if f.get("kernels"):
            for i, k in enumerate(f["kernels"]):
                lines.append(f"  {label if i == 0 else ' ' * width}  {k['value']}  "
                             + dim(f"on {kernels_text(k['kernels'])}"))
        else:
            lines.append(f"  {label}  {fact_text(f)}")
    return lines


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
    lines = [line]
    for k in live.get("other_kernels") or []:  # the default is not the same on every kernel
        lines.append(f"{dim('      ')}  " + style(f"default {k['value']} on {kernels_text(k['kernels'])}", "33"))
    return lines


def print_found(found: Found, brief: bool = False, lang: str = "en") -> None:
    """An entry as text; brief: at most four lines (headline, summary in `lang`, what the
    query was read as, how it was verified)."""
    e = found.entry
    if brief:
        _print_brief(found, lang)
        return
    for note in found.notes:
        echo(dim(f"note: {note}"))
    if e.get("kind") == "combination":
        print_combination(e)
        return
    echo(headline(e))
    echo(f"{dim(e['id'])}")
    echo(e["summary"])
    echo(e["summary_zh"])
    for a in found.also:
        echo(style(f"also: {a['name']} ({a['id']}) has this number on "
                   f"{', '.join(a['platforms'])}", "33"))  # yellow
    for line in verification_lines(e.get("verification") or [], e["id"]):
        echo(line)
    if e.get("live"):
        for line in live_lines(e, e["live"]):
            echo(line)
    echo()
    aliases = [{"label": "Aliases", "value": [", ".join(e["aliases"])]}] if e.get("aliases") else []
    for line in fact_lines(aliases + (e.get("facts") or [])):
        echo(line)
    for slug, body in (e.get("sections") or {}).items():
        echo()
        echo(bold(slug.replace("-", " ").capitalize()))
        for line in markdown_lines(body):
            echo(line)
    if e.get("related"):
        echo()
        echo(f"{dim('related')}  {', '.join(e['related'])}")
    if e.get("linked_from"):
        if not e.get("related"):
            echo()
        echo(f"{dim('see also')} {', '.join(e['linked_from'])}")
    if e.get("path"):
        echo(f"{dim('source')}   {e['path']}")


def _print_brief(found: Found, lang: str) -> None:
    e = found.entry
    remarks = list(found.notes)
    if found.also:
        remarks.append("also " + ", ".join(f"{a['name']} on {'/'.join(a['platforms'])}" for a in found.also))
    if e.get("kind") == "combination":
        echo(f"{accent(e['letters'])}  {e['hex']}  {bold(e['title'])}")
        echo(e["summary"] or "")
        echo("  ".join(f"{accent(f['name'])} {f['hex']}" for f in e["flags"]))
        return
    echo(headline(e))
    echo((e.get("summary_zh") if lang == "zh" else None) or e["summary"])
    if remarks:
        echo(dim("note: " + "; ".join(remarks)))
    if e.get("live"):
        echo(live_lines(e, e["live"])[0])
    else:
        echo(verification_summary(e.get("verification") or [], e["id"]))


def verification_summary(items: list[dict], entry_id: str) -> str:
    """How an entry was verified, in one line: scenarios and checks counted once each, with the
    number of kernels they ran on."""
    if not items:
        return dim("unverified: no scenario reproduces or checks it yet")
    parts = []
    for level, word in (("reproduced", "scenario"), ("checked", "check")):
        mine = [v for v in items if (v["level"] == "checked") == (level == "checked")]
        if not mine:
            continue
        names = {v["scenario"] for v in mine}
        failed = {v["scenario"] for v in mine if not v["ok"]}
        kernels = len({v["kernel"] for v in mine})
        count = f"{len(names)} {word}{'s' if len(names) != 1 else ''}"
        text = f"{level} by {count} on {kernels} kernel{'s' if kernels != 1 else ''}"
        parts.append(style(f"{len(failed)} of {count} FAILED", "31") + f"; {text}" if failed
                     else style(level, "32") + text[len(level):])
    return "; ".join(parts) + dim(f"  (tcpkb verify --list {entry_id})")


def verification_lines(items: list[dict], entry_id: str = "ID", most: int = 3) -> list[str]:
    """'reproduced on 6.1, 6.18 x86_64: <claim> (scenario)' lines, a scenario once with every
    kernel it ran on, failures first, then the checks."""
    lines = []
    runs: dict[tuple, list[dict]] = {}
    for v in items:
        runs.setdefault((v["level"] == "checked", v["scenario"]), []).append(v)
    reproduced = sorted((r for (checked, _), r in runs.items() if not checked),
                        key=lambda r: (all(v["ok"] for v in r), r[0]["scenario"]))
    for r in reproduced[:most]:
        ok = all(v["ok"] for v in r)
        verdict = style("reproduced", "32") if ok else style("FAILED", "31")
        lines.append(f"{verdict} on {_where(r if ok else [v for v in r if not v['ok']])}: "
                     f"{r[0]['claim']} {dim('(' + r[0]['scenario'] + ')')}")
    if len(reproduced) > most:
        lines.append(dim(f"… and {len(reproduced) - most} more scenarios (tcpkb verify --list {entry_id})"))
    for (checked, name), r in runs.items():
        if checked:
            what = ", ".join(dict.fromkeys(c for v in r for c in v.get("compared") or []))
            verdict = style("checked", "32") if all(v["ok"] for v in r) else style("CHECK FAILED", "31")
            lines.append(f"{verdict} on {_where(r)}: {what} {dim('(' + name + ')')}")
    return lines


def _where(runs: list[dict]) -> str:
    """'6.1.0-57-amd64, 6.18.44 x86_64': the kernels, then the architectures."""
    kernels = ", ".join(dict.fromkeys(v["kernel"] for v in runs))
    return f"{kernels} {' '.join(dict.fromkeys(v['arch'] for v in runs))}"


def print_combination(e: dict) -> None:
    echo(f"{accent(e['letters'])}  {e['hex']}  {bold(e['title'])}")
    if e["summary"]:
        echo(e["summary"])
    for f in e["flags"]:
        echo(f"  {accent(f['name'].ljust(4))} {f['hex']}  {f['summary']}")


def print_list(entries: list[dict]) -> None:
    """One line per entry: its first list column (as on the web's list pages), name and title."""
    from ..kinds import KINDS

    def key(e: dict) -> str:
        cells = [parts for label, parts in KINDS[e["kind"]].list_columns(e) if label not in ("Title", "Claim")]
        return _cell_text(cells[0])[:24] if cells else ""

    keys = [key(e) for e in entries]
    key_width = max((len(k) for k in keys), default=0)
    width = max((len(e["name"]) for e in entries), default=0) + 1
    for k, e in zip(keys, entries):
        echo(f"{k.rjust(key_width) if k.isdigit() else k.ljust(key_width)}  {accent(e['name'].ljust(width))} {e['title']}")


def _cell_text(parts: list) -> str:
    return "".join(p if isinstance(p, str) else p["text"] for p in parts)


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


def _print_items(items: list[str], numbered: bool) -> None:
    colour, width = layout()
    for i, item in enumerate(items, 1):
        marker = f"    {i}. " if numbered else "    - "
        body = typeset.inline(item, styled=colour)
        if width is None:
            echo(marker + body)
        else:
            echo("\n".join(typeset.wrap(body, width, marker, " " * len(marker))))


def print_explained(matches: list[dict]) -> None:
    """explain's matches, each with its entry's card (tcpkb.present.explained has the layout)."""
    whole, others = explaining.shown(matches)
    for m in whole:
        for line in explaining.head_lines(m):
            echo(line)
        print_card(m["summary"], m["sections"])
    if others:
        echo(explaining.others_line(others))


def print_card(summary: str, sections: dict[str, str]) -> None:
    """An entry's summary, top causes and every piece of advice, then a blank line."""
    summary, causes, steps = explaining.card_parts(summary, sections)
    echo(f"  {summary}")
    if causes:
        echo(f"  {dim('top causes')}")
        _print_items(causes, numbered=True)
    if steps:
        echo(f"  {dim('what to do')}")
        _print_items(steps, numbered=False)
    echo()


# Search hits: marked by the query with these (no text holds them), then shown in colour on a
# terminal, and between « and » in a pipe or in JSON: never [ ], which `[Errno 104]` holds.
HIT = ("\x02", "\x03")
PLAIN_HIT = ("«", "»")


def plain_hits(snippet: str) -> str:
    return snippet.replace(HIT[0], PLAIN_HIT[0]).replace(HIT[1], PLAIN_HIT[1])


def print_search(results: list[dict]) -> None:
    colour, _ = layout()
    for r in results:
        echo(f"{accent(r['id'].ljust(24))} {r['summary']}")
        if r["snippet"]:
            # a fragment of a note: its markdown read, and what a cut left unpaired dropped
            snippet = typeset.inline(" ".join(r["snippet"].split()), styled=False)
            snippet = snippet.replace("`", "").replace("**", "")
            if colour:  # the hit stands out of the dim snippet: bold yellow, then dim again
                snippet = snippet.replace(HIT[0], "\x1b[22;1;33m").replace(HIT[1], "\x1b[22;39;2m")
            echo(f"  {dim(plain_hits(snippet))}")


def fail(message: str, suggestions: list[str] | None = None) -> None:
    echo(f"tcpkb: {message}", err=True)
    if suggestions:
        echo(f"closest: {', '.join(suggestions)}", err=True)
