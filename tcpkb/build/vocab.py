"""data/vocab/*.json -> rows explain reads: vendors' codes and phrases that never name an errno.

A vocabulary file is {"vocabulary", "vendor", "_source", "forms", "items", "phrases"}:
- forms: where the vendor's codes stand in a line, [{pattern, what, split?, needs?}]; `pattern`
  is a regular expression with a named group `term` (Envoy's flags after the status code,
  HAProxy's termination state before its counters); `needs` lists literals one of which the text
  must hold before the pattern is even compiled (explain runs as a whole process per line);
- items: [{term, entry, reason, source, confidence?, deadline?}], a code and the entry it means;
- phrases: [{text, entry, reason, source, confidence?, deadline?}], a driver's or proxy's own
  wording, matched clause by clause like any message.

An item naming an entry no note defines (an id another change has yet to add) is skipped
with a warning, never a failed build.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DEFAULT_CONFIDENCE = 0.8


class VocabError(ValueError):
    """A vocabulary file that cannot be read: the build stops with this one line."""


def vocab_rows(paths: list[str], entry_ids: set[str]) -> dict[str, list[dict]]:
    """vocab_forms, vocab_terms and messages rows from every vocabulary file."""
    rows: dict[str, list[dict]] = {"vocab_forms": [], "vocab_terms": [], "messages": []}
    for path in paths:
        data = _read(path)
        name = data["vocabulary"]
        for form in data.get("forms") or []:
            try:
                if "term" not in re.compile(form["pattern"]).groupindex:
                    raise VocabError(f"{path}: form {form['pattern']!r} has no (?P<term>…) group")
            except re.error as exc:
                raise VocabError(f"{path}: form {form['pattern']!r} is not a regular expression ({exc})") from None
            needs = form.get("needs") or []
            if not isinstance(needs, list) or not all(isinstance(n, str) and n for n in needs):
                raise VocabError(f"{path}: form {form['pattern']!r}: needs is a list of literal strings")
            rows["vocab_forms"].append({"vocabulary": name, "pattern": form["pattern"], "what": form["what"],
                                        "split": form.get("split", ""), "needs": json.dumps(needs)})
        for item in _known(data.get("items") or [], entry_ids):
            rows["vocab_terms"].append({
                "vocabulary": name, "term": item["term"], "entry_id": item["entry"], "reason": item["reason"],
                "source": item["source"], "confidence": item.get("confidence", DEFAULT_CONFIDENCE),
                "deadline": bool(item.get("deadline"))})
        for item in _known(data.get("phrases") or [], entry_ids):
            rows["messages"].append({
                "entry_id": item["entry"], "text": item["text"], "source": f"vocab:{name}",
                "deadline": bool(item.get("deadline")), "reason": item["reason"],
                "confidence": item.get("confidence")})
    return rows


def _read(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VocabError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("vocabulary"), str):
        raise VocabError(f"{path}: no \"vocabulary\" name")
    for key, fields in (("items", ("term", "entry", "reason", "source")),
                        ("phrases", ("text", "entry", "reason", "source")),
                        ("forms", ("pattern", "what"))):
        for i, item in enumerate(data.get(key) or []):
            missing = [f for f in fields if not isinstance(item.get(f), str) or not item[f]]
            if missing:
                raise VocabError(f"{path}: {key}[{i}] lacks {', '.join(missing)}")
    return data


def _known(items: list[dict], entry_ids: set[str]) -> list[dict]:
    """The items whose entry the notes being built define: a build of a few notes (a fixture, a
    checkout trimmed for a test) skips the rest quietly; tests/test_explain_world.py holds every
    item to the project's own notes."""
    return [item for item in items if item["entry"] in entry_ids]
