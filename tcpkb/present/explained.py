"""How explain's matches read: the same lines on a terminal, in a pipe and from the explain index.

A shown match is its head (id, title, confidence, the evidence that matched, whether the
deadline was the application's) and its card (the entry's summary, top causes and what to do).
The head depends on the text; the card only on the entry, so the explain index stores each
entry's card as a pipe prints it (tcpkb.explain_index), and a terminal lays it out anew.
"""

from __future__ import annotations

from .style import accent, bold, dim, style

SHOWN_WHOLE = 0.6  # matches after the first are shown whole from this score; weaker ones are listed


def shown(matches: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the matches shown whole, the weaker ones named on the last line)."""
    best, rest = matches[0], matches[1:]
    return [best] + [r for r in rest if r["score"] >= SHOWN_WHOLE], [r for r in rest if r["score"] < SHOWN_WHOLE]


def head_lines(m: dict) -> list[str]:
    low = "" if m.get("confident", True) else "  " + style("(low confidence: a guess, not an answer)", "33")
    lines = [f"{accent(m['id'])}  {bold(m['title'])}  {dim('confidence')} {m['score']:.2f}{low}"]
    for ev in m["evidence"][:4]:
        lines.append(f"  {dim('matched')} {style(repr(ev['text']), '33')} {dim('→')} {ev['detail']}")
    if m["deadline"]:
        lines.append("  " + style("the deadline was the application's own, not the kernel's", "33"))
    return lines


def others_line(others: list[dict]) -> str:
    return dim("also possible: " + ", ".join(f"{r['id']} ({r['score']:.2f})" for r in others))


def card_parts(summary: str, sections: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """(summary, up to three causes, every piece of advice whole), as markdown items."""
    causes = _items(sections.get("causes") or sections.get("when-it-piles-up") or sections.get("traps") or "",
                    most=3)
    return summary, causes, _items(sections.get("what-to-do") or "")


def _items(markdown: str, most: int | None = None) -> list[str]:
    """The items of a note's top-level list, each whole (its wrapped source lines and nested
    items joined); a section with no list gives its paragraphs instead."""
    from .text import blocks

    found = blocks(markdown)
    items: list[str] = []
    listed = any(kind == "item" and not prefix.startswith(" ") for kind, prefix, _ in found)
    for kind, prefix, body in found:
        if kind == "item" and not prefix.startswith(" "):
            items.append(body)
        elif kind in ("item", "para", "code") and items and (listed or kind == "code"):
            items[-1] += " " + " ".join(body.split())  # nested under the item before
        elif kind == "para" and not listed:
            items.append(body)
    return items[:most] if most else items
