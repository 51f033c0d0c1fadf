"""The written form of a scenario trace: a versioned JSON Schema (trace.schema.json) and a check.

The schema is the contract between the lab that records a trace, the results files that
store it and the faces that draw it. Version 1 added the `schema` key and the timing keys
of a step; traces written before it validate too.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("trace.schema.json")


@lru_cache(maxsize=1)
def trace_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def validate_trace(trace) -> list[str]:
    """Every way `trace` departs from the schema, as 'path: what' lines; [] when it conforms."""
    from jsonschema import Draft202012Validator  # only the build and the tests need it

    schema = trace_schema()
    if Draft202012Validator(schema).is_valid(trace):
        return []
    # The schema accepts three shapes; say what is wrong with the one the trace tries to be.
    shape = ("#/$defs/recorded" if not isinstance(trace, dict) or set(trace) - {"error"}
             else None)
    focused = {k: v for k, v in schema.items() if k != "oneOf"}
    focused.update({"$ref": shape} if shape else schema["oneOf"][1])
    errors = sorted(Draft202012Validator(focused).iter_errors(trace), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(trace)'}: {e.message}" for e in errors] or \
        ["(trace): not an empty trace, an error trace or a recorded trace"]
