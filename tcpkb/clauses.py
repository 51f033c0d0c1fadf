"""How an error message splits into the clauses that identify it, and what each weighs.

Shared by the build (which stores every known message's clauses with their weights) and by
explain at query time (which finds them in pasted text). Standard library only, and no `re`
until a message is split: explain imports this for `weight` alone.
"""

from __future__ import annotations

from .patterns import Lazy

# Variable parts of a message: addresses, ports, numbers, hex ids. What is left
# between them are the literal fragments that identify the message.
VARIABLE = Lazy(
    r"\[?[0-9a-fA-F]*:[0-9a-fA-F:]+\]?(?::\d+)?"  # IPv6 (and host:port)
    r"|\d+(?:\.\d+)+(?::\d+)?"                    # IPv4 (with port), versions
    r"|0x[0-9a-fA-F]+|\b[0-9a-f]{8,}\b"           # hex
    r"|-?\d+")                                    # numbers
EDGE = " \t.,;:!?'\"()[]{}<>=-_/\\|*`。"  # 。 ends a Chinese or Japanese sentence
# Clause boundaries: a message's fragments are its clauses, so the words that
# identify it ("Connection reset") still match when the wrapper differs.
CLAUSE = Lazy(r"[:;,()\[\]{}'\"=]|\s-\s|\.\s")


def fragments(message: str) -> list[str]:
    message = message.replace("\u2019", "'")  # a typographic apostrophe splits like a plain one
    parts = [p.strip(EDGE).lower() for chunk in VARIABLE.split(message) for p in CLAUSE.split(chunk)]
    return [p for p in parts if sum(ch.isalpha() for ch in p) >= 3]


def weight(fragment: str) -> int:
    """Characters of evidence: a CJK character says about as much as two Latin ones."""
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in fragment)
