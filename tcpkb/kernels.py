"""Kernel releases and ranges: which value of a fact holds on which kernel.

A note may give a fact per kernel range instead of one value:

    default: {">=6.18": "4194304", "<6.18": "1048576"}
    since: "6.12"            # the knob (or option, or reason) exists from 6.12 on

A range is one or more comparisons joined by commas (">=6.1,<6.12"), or a bare series
("6.12", meaning that series only). Releases compare by their numeric prefix, so
"6.18.44-fc-v669" is 6.18.44. Standard library only: lookups and scenarios import this.
"""

from __future__ import annotations

import re

_RELEASE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_TERM = re.compile(r"\s*(>=|<=|>|<|==)?\s*(\d+\.\d+(?:\.\d+)?)\s*")


def release(text: str) -> tuple[int, int, int]:
    """'6.18.44-fc-v669' -> (6, 18, 44); ValueError for text that is not a release."""
    m = _RELEASE.match(text.strip())
    if not m:
        raise ValueError(f"not a kernel release: {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def series(text: str) -> str:
    """'6.18.44-fc-v669' -> '6.18'."""
    major, minor, _ = release(text)
    return f"{major}.{minor}"


def _terms(spec: str) -> list[tuple[str, tuple[int, int, int], bool]]:
    terms = []
    for part in spec.split(","):
        m = _TERM.fullmatch(part)
        if not m:
            raise ValueError(f"not a kernel range: {spec!r} (write >=6.12, <6.18, >=6.1,<6.12 or 6.12)")
        op, version = m.group(1), m.group(2)
        terms.append((op or "series", release(version), version.count(".") == 1))
    return terms


def check_range(spec: str) -> str | None:
    """What is wrong with a range, or None."""
    if not isinstance(spec, str):
        return f"a kernel range must be a string like \">=6.12\", not {spec!r}"
    try:
        _terms(spec)
    except ValueError as e:
        return str(e)
    return None


def in_range(spec: str, kernel: str) -> bool:
    """Does the kernel release fall in the range?"""
    have = release(kernel)
    for op, want, bare in _terms(spec):
        if op == "series":
            if have[:2] != want[:2] or (not bare and have != want):
                return False
            continue
        # a bare series as a bound means its first release: <6.18 excludes 6.18.0 and up
        ok = {">=": have >= want, ">": have > want if not bare else have[:2] > want[:2],
              "<=": have <= want if not bare else have[:2] <= want[:2], "<": have < want,
              "==": have == want if not bare else have[:2] == want[:2]}[op]
        if not ok:
            return False
    return True


def is_versioned(value) -> bool:
    """A mapping whose keys are all kernel ranges is a per-kernel value."""
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and check_range(k) is None for k in value)


def pick(value, kernel: str | None):
    """The value that holds on `kernel` (a plain value holds everywhere). A per-kernel value
    with no range matching the kernel gives None; with kernel None, the newest range's value."""
    if not is_versioned(value):
        return value
    if kernel is None:
        return value[newest(value)]
    for spec, v in value.items():
        if in_range(spec, kernel):
            return v
    return None


def newest(value: dict) -> str:
    """The range of a per-kernel value that reaches furthest up (">=6.18" before "<6.18")."""
    def reach(spec: str) -> tuple:
        terms = _terms(spec)
        uppers = [v for op, v, _ in terms if op in ("<", "<=", "series", "==")]
        return (0, ()) if uppers else (1, max(v for _, v, _ in terms))
    return max(value, key=lambda spec: (reach(spec), spec))


def exists_on(since: str | None, removed_in: str | None, kernel: str) -> bool:
    """Does something that appeared in `since` and went away in `removed_in` exist on `kernel`?"""
    if since and not in_range(f">={since}", kernel):
        return False
    if removed_in and in_range(f">={removed_in}", kernel):
        return False
    return True
