"""Check every note against the grammar its kind module declares (tcpkb/kinds/).

Each problem is `path:line: KBnnn message`. The codes are stable and listed
in CODES (kb/README.md documents them; tests/fixtures/lint/KBnnn holds a
knowledge base that shows each one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import kernels
from .kinds import KINDS
from .notes import Note, load

CODES = {
    "KB001": "the file is not valid UTF-8 or cannot be read",
    "KB002": "no front matter, or its YAML does not parse, or it is not a mapping",
    "KB003": "the note is in a directory that is not a kind",
    "KB004": "a field the kind does not have",
    "KB005": "a required field is missing",
    "KB006": "a field has the wrong type or a value outside its closed set",
    "KB007": "`name` does not match the file name",
    "KB008": "two entries claim the same id, name or alias",
    "KB009": "two entries of a kind share a number that must be unique",
    "KB010": "`related`, a transition or a call's error names an id that does not exist",
    "KB011": "a section the kind does not have, or text before the first section",
    "KB012": "sections out of order, or one repeated",
    "KB013": "a required section is missing or empty",
    "KB014": "`summary` or `summary_zh` is not exactly one sentence",
    "KB015": "placeholder text (`TODO`, `TBD`, `FIXME`) left in the note",
    "KB016": "facts that go together disagree (a sysctl without a default that is neither computed nor removed)",
    "KB017": "two entries claim the same `seen_as` text: pasted text must mean one entry",
    "KB018": "a number has the wrong sign for its platform (getaddrinfo's codes are below zero on glibc, musl "
             "and libuv, above it on macOS, FreeBSD and Windows)",
}

_PLACEHOLDER = re.compile(r"\b(TODO|TBD|FIXME)\b")
# A sentence ends at . ! or ? followed by space and a capital, digit or quote.
_INNER_STOP = re.compile(r"[.!?]\s+[A-Z0-9\"'`(]")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message}"


def spelling_key(kind: str, text: str) -> str:
    """How lookups compare names: case-blind, and for states blind to - _ and spaces."""
    key = text.strip().upper()
    if kind == "state":
        key = re.sub(r"[-_\s]", "", key)
    return key


def spellings(note: Note) -> list[str]:
    """Every name a lookup may find this note by."""
    names = [note.meta.get("name", note.stem)] + list(note.meta.get("aliases") or [])
    if note.kind == "state":
        names += [note.meta[k] for k in ("rfc", "ss", "netstat") if isinstance(note.meta.get(k), str)]
    return [n for n in names if isinstance(n, str)]


def check_type(f, value) -> str | None:
    """What is wrong with `value` for field `f` (a kinds.base.Field), or None if it fits."""
    if f.versioned and kernels.is_versioned(value):
        for spec, v in value.items():
            if problem := check_type(_plain(f), v):
                return f"{spec}: {problem}"
        return None
    if isinstance(value, dict) and f.versioned and f.type != "numbers":
        bad = next(k for k in value if kernels.check_range(k))
        return kernels.check_range(bad)
    return _check_plain(f, value)


def _plain(f):
    from .kinds.base import Field

    return Field(f.type, f.required, f.choices, f.keys)


def _check_plain(f, value) -> str | None:
    t = f.type
    if t == "range":  # one range, or several joined by ";" ("<=6.1; 6.18")
        if not isinstance(value, str):
            return "must be a kernel range such as \"<=6.12\""
        return next(filter(None, (kernels.check_range(part.strip()) for part in value.split(";"))), None)
    elif t in ("str", "release"):
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string" + (" such as \"6.12\"" if t == "release" else "")
        if t == "release" and kernels.check_range(value):
            return f"{value!r} is not a kernel release such as \"6.12\""
        if f.choices and value not in f.choices:
            return f"must be one of {', '.join(f.choices)}"
    elif t == "str_or_null":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return "must be a string or null"
    elif t == "value_or_null":  # a value as a file prints it: may be empty, never a number
        if value is not None and not isinstance(value, str):
            return "must be a quoted string (\"\" for an empty value) or null" + (
                ", or a mapping of kernel ranges to such values" if f.versioned else "")
    elif t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
    elif t == "bool":
        if not isinstance(value, bool):
            return "must be true or false"
    elif t == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            return "must be a list of non-empty strings"
    elif t == "numbers":
        return _check_numbers(value, f.keys)
    elif t == "alias_numbers":
        if not isinstance(value, dict):
            return "must map alias names to {platform: number}"
        for alias, numbers in value.items():
            if problem := _check_numbers(numbers, f.keys):
                return f"{alias}: {problem}"
    elif t == "records":
        return _check_records(value, f.keys)
    return None


CAUSE_MAX = 24  # a transition's `cause` is drawn on its arrow in the state diagram


def _check_records(value, keys: dict) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return "must be a list of mappings"
    for item in value:
        for key, required in keys.items():
            if required and not item.get(key):
                return f"each item needs `{key}`"
        if unknown := set(item) - set(keys):
            return f"unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(keys)})"
        if "rfc" in item and "rfc" in keys and not isinstance(item["rfc"], bool):
            return "`rfc` must be true or false"
        if "cause" in keys and (not isinstance(item["cause"], str) or len(item["cause"]) > CAUSE_MAX
                                or "/" in item["cause"]):
            return (f"`cause` labels an arrow: a short text of at most {CAUSE_MAX} characters "
                    "without `/` (`rcv SYN`, `close()`; what is sent comes from `send`)")
    return None


def _check_numbers(value, keys: tuple) -> str | None:
    if not isinstance(value, dict):
        return "must be a mapping of platform to number"
    for k, v in value.items():
        if k not in keys:
            return f"unknown platform {k!r} (allowed: {', '.join(keys)})"
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            return f"{k}: must be an integer or null"
    return None


def lint(kb: Path, loaded: tuple[list[Note], list] | None = None) -> list[Problem]:
    """Every problem in kb/; `loaded` is load(kb) when the caller has already read the notes."""
    notes, errors = loaded or load(kb)
    problems = [Problem(_show(e.path), e.line, e.code, e.message) for e in errors]
    good: list[Note] = []
    for note in notes:
        found = _check_note(note)
        problems += found
        if note.kind in KINDS:
            good.append(note)
    problems += _check_across(good)
    return sorted(set(problems))


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _check_note(note: Note) -> list[Problem]:
    out: list[Problem] = []
    path = _show(note.path)

    def add(line: int, code: str, message: str) -> None:
        out.append(Problem(path, line, code, message))

    kind = KINDS.get(note.kind)
    if kind is None:
        add(1, "KB003", f"unknown kind {note.kind!r}: notes live in kb/<kind>/ with kind one of "
            + ", ".join(KINDS))
        return out
    meta = note.meta
    for key in meta:
        if key not in kind.fields:
            add(note.line_of(key), "KB004", f"unknown field {key!r} for kind {kind.name}")
    for key, f in kind.fields.items():
        if f.required and key not in meta:
            add(1, "KB005", f"missing required field {key!r}")
        elif key in meta and (problem := check_type(f, meta[key])):
            add(note.line_of(key), "KB006", f"{key}: {problem}")
    name = meta.get("name")
    if isinstance(name, str) and name != note.stem:
        add(note.line_of("name"), "KB007", f"name {name!r} does not match the file name {note.stem!r}")

    out += [Problem(path, note.line_of(k), code, why) for k, code, why in kind.lint(meta)]

    for key, pattern in (("summary", _english_sentence), ("summary_zh", _chinese_sentence)):
        if isinstance(meta.get(key), str) and (why := pattern(meta[key])):
            add(note.line_of(key), "KB014", f"{key} {why}")

    # Sections: known, in order, not repeated, the required ones present and not empty.
    if note.preamble_line:
        add(note.preamble_line, "KB011", "text before the first `## ` section")
    order = {title: i for i, title in enumerate(kind.sections)}
    last = -1
    seen: set[str] = set()
    for s in note.sections:
        if s.title not in order:
            add(s.line, "KB011", f"unknown section {s.title!r}; {kind.name} sections are: "
                + ", ".join(kind.sections))
            continue
        if s.title in seen:
            add(s.line, "KB012", f"section {s.title!r} appears twice")
        elif order[s.title] < last:
            add(s.line, "KB012", f"section {s.title!r} is out of order; the order is: "
                + ", ".join(kind.sections))
        seen.add(s.title)
        last = max(last, order[s.title])
    required = set(kind.required_sections)
    if meta.get("socket") is True:
        required |= set(kind.socket_sections)
    present = {s.title: s for s in note.sections}
    for title in kind.sections:
        if title in required and (title not in present or not present[title].markdown.strip()):
            where = present[title].line if title in present else 1
            add(where, "KB013", f"required section {title!r} is missing or empty")

    raw = note.path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(raw, 1):
        if m := _PLACEHOLDER.search(line):
            add(n, "KB015", f"placeholder {m.group(1)} left in the note")
            break
    return out


def _english_sentence(text: str) -> str | None:
    text = text.strip()
    if not text.endswith((".", "!", "?")):
        return "must end with a full stop"
    if _INNER_STOP.search(text[:-1]):
        return "must be one sentence (found a sentence break inside)"
    return None


def _chinese_sentence(text: str) -> str | None:
    text = text.strip()
    if not _CJK.search(text):
        return "must be written in Chinese"
    if not text.endswith(("。", "！", "？")):
        return "must end with 。"
    if re.search(r"[。！？]", text[:-1]):
        return "must be one sentence (found 。 inside)"
    return None


def _check_across(notes: list[Note]) -> list[Problem]:
    out: list[Problem] = []
    ids = {n.id for n in notes}
    claimed: dict[tuple[str, str], Note] = {}
    messages: dict[str, Note] = {}
    numbers: dict[tuple[str, object], Note] = {}
    for note in notes:
        kind = KINDS[note.kind]
        for spelling in dict.fromkeys(spelling_key(note.kind, s) for s in spellings(note)):
            other = claimed.setdefault((note.kind, spelling), note)
            if other is not note:
                out.append(Problem(_show(note.path), note.line_of("name"), "KB008",
                                   f"{note.kind} {spelling!r} is already claimed by {_show(other.path)}"))
        if kind.unique and isinstance(note.meta.get(kind.unique), int):
            value = note.meta[kind.unique]
            other = numbers.setdefault((note.kind, value), note)
            if other is not note:
                out.append(Problem(_show(note.path), note.line_of(kind.unique), "KB009",
                                   f"{kind.unique} {value} is already used by {other.id}"))
        for key in ("seen_as", "seen_as_deadline"):
            texts = note.meta.get(key)
            for text in texts if isinstance(texts, list) else []:
                if not isinstance(text, str):
                    continue
                other = messages.setdefault(" ".join(text.lower().split()), note)
                if other is not note:
                    out.append(Problem(_show(note.path), note.line_of(key), "KB017",
                                       f"{text!r} is also in {other.id}'s seen_as"))
        for field, target, what in _references(note):
            if target not in ids:
                out.append(Problem(_show(note.path), note.line_of(field), "KB010",
                                   f"{what} {target!r} does not exist"))
    return out


def _references(note: Note):
    """(field, id, what) for every id a note points at: related, transitions, errors, default_from."""
    def items(key):
        value = note.meta.get(key)
        return value if isinstance(value, list) else []

    for target in items("related"):
        if isinstance(target, str):
            yield "related", target, "related id"
    yield from KINDS[note.kind].references(note.meta)
