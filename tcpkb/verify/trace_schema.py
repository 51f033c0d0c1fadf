"""The written form of a scenario trace: a versioned JSON Schema (trace.schema.json) and a check.

The schema is the contract between the lab that records a trace, the results files that
store it and the faces that draw it; its $defs/result describes a stored result around
its trace (status, level, verdicts …). Version 1 added the `schema` key and the timing keys
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


def validate_result(result) -> list[str]:
    """The same for one stored result: its envelope (status, level, verdicts …), then its trace."""
    if _validator("result").is_valid(result):  # the usual case, in one pass
        return []
    problems = [_line(e, "(result)") for e in _sorted(_validator("result").iter_errors(result))
                if list(e.absolute_path)[:1] != ["trace"]]
    if isinstance(result, dict) and "trace" in result:
        problems += [f"trace/{p}" for p in validate_trace(result["trace"])]
    return problems


def validate_trace(trace) -> list[str]:
    """Every way `trace` departs from the schema, as 'path: what' lines; [] when it conforms."""
    if _validator(None).is_valid(trace):
        return []
    # A trace has one of three shapes; say what is wrong with the one it tries to be.
    shape = "recorded" if not isinstance(trace, dict) or set(trace) - {"error"} else "unfinished"
    return [_line(e) for e in _sorted(_validator(shape).iter_errors(trace))] or \
        ["(trace): not an empty trace, an error trace or a recorded trace"]


@lru_cache(maxsize=8)
def _validator(definition: str | None):
    """A validator of the whole schema, or of its $defs/`definition` (with the whole schema to
    resolve refs); made once each, as building one costs more than validating a trace."""
    from jsonschema import Draft202012Validator  # imported here: only the build and the tests need it

    if definition is None:
        return Draft202012Validator(trace_schema())
    return Draft202012Validator({**trace_schema(), "$ref": f"#/$defs/{definition}"})


def _sorted(errors) -> list:
    return sorted(errors, key=lambda e: list(map(str, e.absolute_path)))


def _line(error, root: str = "(trace)") -> str:
    return f"{'/'.join(map(str, error.absolute_path)) or root}: {error.message}"
