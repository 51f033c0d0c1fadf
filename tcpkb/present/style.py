"""The styles every face's terminal text is made of: plain ANSI sequences, and the pattern that
strips them where the stream is no terminal. Nothing heavy is imported (its pattern comes through
tcpkb.patterns): the explain fast path prints with these."""

from __future__ import annotations

from ..patterns import Lazy

ANSI = Lazy(r"\x1b\[[0-9;]*m")


def style(text: str, *codes: str) -> str:
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


def bold(text: str) -> str:
    return style(text, "1")


def dim(text: str) -> str:
    return style(text, "2")


def accent(text: str) -> str:
    return style(text, "1", "36")  # bold cyan


def unstyled(line: str) -> str:
    return ANSI.sub("", line)
