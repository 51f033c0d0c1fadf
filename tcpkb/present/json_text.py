"""JSON laid out as `json.dumps(value, ensure_ascii=False, indent=2)` lays it out, without `json`.

`import json` brings `re` with it (for escaping patterns it uses only without its C part), and a
piped `tcpkb explain --json` would spend a third of its time on that import. The escaping here
is json's own C function (`_json.encode_basestring`, what json.dumps calls for ensure_ascii=False);
only the indented layout of dicts and lists is written out, for the types an answer holds.
tests/test_explain_index.py holds it to json.dumps on every evaluation line and on generated values.
"""

from __future__ import annotations

try:
    from _json import encode_basestring as _string
except ImportError:  # an interpreter without json's C part: json's own, and its import
    from json.encoder import py_encode_basestring as _string

_INFINITY = float("inf")


def dumps(value, indent: str = "") -> str:
    """`value` (dict, list, tuple, str, int, float, bool, None) as indented JSON; TypeError for others."""
    if isinstance(value, str):
        return _string(value)
    if value is None or value is True or value is False:
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        return "Infinity" if value == _INFINITY else "-Infinity" if value == -_INFINITY else float.__repr__(value)
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        if not all(isinstance(key, str) for key in value):
            raise TypeError("JSON keys here are text")
        items = [f"{inner}{_string(key)}: {dumps(item, inner)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + dumps(item, inner) for item in value) + "\n" + indent + "]"
    raise TypeError(f"{type(value).__name__} is not laid out as JSON here")
