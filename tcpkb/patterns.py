"""Regular expressions that cost nothing to import: compiled on first use, from a program the
explain index carries when there is one.

`tcpkb explain` runs as a whole process per pasted line, and importing `re` (with enum and
functools behind it) costs about as much as the rest of the answer. The matching itself is done
by `_sre`, the C engine built into the interpreter; `re` only turns a pattern's text into its
program. So after a build the programs of every pattern explain uses are made once, by `re`'s
own compiler, and stored in the explain index (tcpkb.explain_index) with the interpreter's
version and `_sre.MAGIC`. A process that loads the index hands them to `_sre.compile`, which
is what `re.compile` ends with, and never imports `re`. Any other process, or an index made by
another interpreter, compiles with `re` as usual: the same Pattern objects either way
(tests/test_explain_index.py holds them to `re.compile`).
"""

from __future__ import annotations

import sys

_PROGRAMS: dict[str, bytes] = {}  # pattern text -> the arguments of _sre.compile, marshalled
_COMPILED: dict[str, object] = {}
SOURCES: list[str] = []  # every Lazy made at import: what the index writer compiles
_LAZIES: list = []


def interpreter() -> str:
    """Which interpreter a program was made by: `cpython-3.11.7-20220615` (the engine's MAGIC)."""
    import _sre

    return f"{sys.implementation.name}-{'.'.join(map(str, sys.version_info[:3]))}-{_sre.MAGIC}"


def adopt(programs: dict[str, bytes]) -> None:
    """Use these programs (made by this interpreter: the caller checked), each the marshalled
    arguments of `_sre.compile`, instead of `re`."""
    _PROGRAMS.update(programs)


def forget() -> None:
    """Drop the adopted programs and what was compiled from them (a damaged index's)."""
    _PROGRAMS.clear()
    _COMPILED.clear()
    for lazy in _LAZIES:
        lazy._pattern = None


def compiled(source: str):
    """The compiled pattern for `source` (inline flags only: `(?i)`, `(?m)`)."""
    pattern = _COMPILED.get(source)
    if pattern is None:
        program = _PROGRAMS.get(source)
        if program is not None:
            import _sre
            import marshal

            pattern = _sre.compile(*marshal.loads(program))
        else:
            import re

            pattern = re.compile(source)
        _COMPILED[source] = pattern
    return pattern


class Lazy:
    """A pattern compiled on first use; most of explain's are skipped for a given text (each is
    guarded by a literal it needs), so compiling them all at import would cost more than matching."""

    __slots__ = ("source", "_pattern")

    def __init__(self, source: str):
        self.source, self._pattern = source, None
        SOURCES.append(source)
        _LAZIES.append(self)

    def __getattr__(self, name: str):
        if self._pattern is None:
            self._pattern = compiled(self.source)
        return getattr(self._pattern, name)


def program(source: str) -> tuple:
    """The arguments `re.compile(source)` passes to `_sre.compile`, as plain data (marshal takes
    no int subclasses, which the compiler's opcodes are). Made with `re`'s own parser and code
    generator: private modules, so the interpreter's version is stored beside every program."""
    try:
        from re import _compiler, _parser  # 3.11 and later
    except ImportError:  # 3.10
        import sre_compile as _compiler
        import sre_parse as _parser

    parsed = _parser.parse(source, 0)
    code = _compiler._code(parsed, 0)
    groupindex = dict(parsed.state.groupdict)
    indexgroup = [None] * parsed.state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    return (source, int(parsed.state.flags), [int(op) for op in code], parsed.state.groups - 1,
            groupindex, tuple(indexgroup))
