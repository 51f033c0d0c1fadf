"""A note's markdown as terminal text: styled and wrapped to the width on a TTY, plain in a pipe.

The contract of the plain form (a pipe, a file, the answer index), kept stable for scripts:
- every paragraph and every list item is one line, whatever its width (`fold`, `less` or the
  reader wraps it); list items keep their marker (`- `, `1. `), nested ones their indent;
- inline markup is gone: `code` and **bold** print as their text, a link as `text (url)`;
- a fenced code block prints as it is written, indented by four spaces;
- no ANSI sequences, and nothing depends on the terminal.
On a TTY the same blocks are wrapped to the terminal's width with hanging indents, code spans
are coloured, emphasis is bold or italic, and code lines longer than the width break with `↪`.

Only `re` and `unicodedata` are imported: this is on the lookup path.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_ITEM = re.compile(r"^( *)([-*+]|\d{1,3}[.)])( +)(.*)$")
_FENCE = re.compile(r"^ *(```|~~~)")


def terminal_width(stream=None) -> int:
    """COLUMNS when set (as shutil does), else the terminal's width, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size((stream or sys.__stdout__).fileno()).columns or 80
    except (OSError, AttributeError, ValueError):
        return 80


def cell_width(ch: str) -> int:
    """Columns a character takes: two for wide East Asian characters, none for combining marks."""
    if ch < "\u0300":
        return 1
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def visible_width(text: str) -> int:
    plain = _ANSI.sub("", text)
    return len(plain) if plain.isascii() else sum(cell_width(c) for c in plain)


def inline(text: str, styled: bool) -> str:
    """Inline markdown as text: markers removed; on a TTY, code coloured and emphasis styled.
    Code spans are set aside first, so nothing inside them is read as emphasis."""
    spans: list[str] = []

    def keep(m: re.Match) -> str:
        code = m.group(2).strip() if m.group(2).strip() else m.group(2)
        spans.append(f"\x1b[36m{code}\x1b[39m" if styled else code)
        return f"\x00{len(spans) - 1}\x00"

    text = _CODE_SPAN.sub(keep, text)
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    text = _BOLD.sub(lambda m: f"\x1b[1m{m.group(1)}\x1b[22m" if styled else m.group(1), text)
    text = _EM.sub(lambda m: f"\x1b[3m{m.group(1)}\x1b[23m" if styled else m.group(1), text)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], text)


def blocks(markdown: str) -> list[tuple[str, str, str]]:
    """(type, prefix, text) blocks: ("para", indent, text), ("item", indent + marker + space,
    text) with continuation lines joined, ("code", indent, verbatim lines), ("blank", "", "")."""
    out: list[tuple[str, str, str]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            if out and out[-1][0] != "blank":
                out.append(("blank", "", ""))
            i += 1
            continue
        if _FENCE.match(line):
            fence = _FENCE.match(line).group(1)
            indent = len(line) - len(line.lstrip())
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i].lstrip())
                i += 1
            out.append(("code", " " * indent, "\n".join(body)))
            i += 1
            continue
        item = _ITEM.match(line)
        if item:
            prefix = item.group(1) + item.group(2) + " "
            text, body_indent = item.group(4), len(item.group(1) + item.group(2) + item.group(3))
        else:
            prefix, text = " " * (len(line) - len(line.lstrip())), line.strip()
            body_indent = len(prefix)
        i += 1
        # continuation: more text of this block, until a blank line, a new item or a fence
        while i < len(lines) and lines[i].strip() and not _FENCE.match(lines[i]):
            nxt = _ITEM.match(lines[i])
            if nxt and (item is None or len(nxt.group(1)) < body_indent):
                break
            if nxt and item is not None:  # a nested list: its own block
                break
            text += " " + lines[i].strip()
            i += 1
        out.append(("item" if item else "para", prefix, text))
    while out and out[-1][0] == "blank":
        out.pop()
    return out


def render(markdown: str, indent: str = "", styled: bool = False, width: int | None = None) -> list[str]:
    """Markdown as printable lines: plain and unwrapped when `width` is None, else wrapped."""
    lines: list[str] = []
    for kind, prefix, text in blocks(markdown):
        if kind == "blank":
            lines.append("")
        elif kind == "code":
            for code in text.splitlines() or [""]:
                line = f"{indent}{prefix}    {code}"
                if width is None:
                    lines.append(line)
                else:
                    lines += [f"\x1b[2m{part}\x1b[22m" if styled else part
                              for part in _break(line, width, f"{indent}{prefix}    ↪ ")]
        else:
            first = indent + prefix
            body = inline(text, styled)
            if width is None:
                lines.append(first + body)
            else:
                lines += wrap(body, width, first, " " * visible_width(first))
    return lines


def wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    """Words to lines of at most `width` columns (ANSI sequences take none; the spaces between
    words are kept, a line break takes them). A word wider than a line breaks where the line
    ends, and so does text in wide characters (Chinese has no spaces to break at)."""
    lines, line, used = [], first, visible_width(first)
    start = used
    for m in re.finditer(r"( *)([^ ]+)", text):
        gap, word = m.group(1) if used > start else "", m.group(2)
        w = visible_width(word)
        if used + len(gap) + w <= width:
            line, used = line + gap + word, used + len(gap) + w
            continue
        wide = w > len(_ANSI.sub("", word))  # holds wide characters: fill the line, then break
        if used > start and not wide:
            lines.append(line)
            line, used = rest, visible_width(rest)
            start, gap = used, ""
        if used + len(gap) + w <= width:
            line, used = line + gap + word, used + len(gap) + w
            continue
        line, used = line + gap, used + len(gap)
        for ch in _chunks(word):
            cw = visible_width(ch)
            if used + cw > width and used > start:
                lines.append(line)
                line, used = rest, visible_width(rest)
                start = used
            line, used = line + ch, used + cw
    lines.append(line)
    return lines


def _chunks(word: str) -> list[str]:
    """A word as characters, each ANSI sequence kept whole with the character after it."""
    out, pending = [], ""
    for piece in re.split(r"(\x1b\[[0-9;]*m)", word):
        if piece.startswith("\x1b["):
            pending += piece
        else:
            for ch in piece:
                out.append(pending + ch)
                pending = ""
    if pending:
        if out:
            out[-1] += pending
        else:
            out.append(pending)
    return out


def _break(line: str, width: int, more: str) -> list[str]:
    """A line that must keep its spaces (code) cut into pieces of at most `width` columns."""
    if visible_width(line) <= width:
        return [line]
    pieces, piece, used = [], "", 0
    for ch in _chunks(line):
        cw = visible_width(ch)
        if used + cw > width:
            pieces.append(piece)
            piece, used = more, visible_width(more)
        piece, used = piece + ch, used + cw
    return pieces + [piece]


def fit(line: str, width: int) -> list[str]:
    """Any printed line wrapped to the width, continuing under its own indent plus two."""
    if visible_width(line) <= width:
        return [line]
    plain = _ANSI.sub("", line)
    lead = len(plain) - len(plain.lstrip(" "))
    hang = min(lead + 2, max(width // 3, 0))
    return wrap(line[lead:] if line[:lead].isspace() else line, width, " " * lead, " " * hang)
