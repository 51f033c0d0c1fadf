"""The scenario trace's written schema: every shipped trace conforms, a new one carries its
version, and the check names what is wrong with a trace that does not conform."""

from __future__ import annotations

import copy
import json
import os
import time

import pytest
from jsonschema import Draft202012Validator

from tcpkb.verify import Scenario, all_scenarios
from tcpkb.verify.runner import run
from tcpkb.verify.trace_schema import SCHEMA_VERSION, trace_schema, validate_result, validate_trace

from .conftest import ROOT

SHIPPED = sorted((ROOT / "data" / "verify").glob("*.json"))


def test_the_schema_is_draft_2020_12_and_names_its_version():
    schema = trace_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f":{SCHEMA_VERSION}") and schema["version"] == SCHEMA_VERSION


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_trace_conforms(path):
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    assert results
    wrong = {r["scenario"]: validate_trace(r["trace"])[:3] for r in results if validate_trace(r["trace"])}
    assert not wrong
    wrong = {r["scenario"]: validate_result(r)[:3] for r in results if validate_result(r)}
    assert not wrong


def test_a_result_with_an_unknown_status_or_a_spoiled_trace_is_refused():
    result = copy.deepcopy(json.loads(SHIPPED[0].read_text(encoding="utf-8"))["results"][0])
    assert validate_result(result) == []
    result["status"] = "flaky"
    assert any(p.startswith("status:") for p in validate_result(result))
    result["status"] = "passed"
    result["trace"] = {"steps": []}
    assert any(p.startswith("trace/(trace): 'packets'") for p in validate_result(result))


def test_the_three_shapes_of_a_trace_conform():
    assert validate_trace({}) == []
    assert validate_trace({"error": "KeyError: 'steps'"}) == []
    assert validate_trace({"steps": [], "packets": [], "counters": {}, "sysctls": {}, "sockets": {}}) == []


def _recorded() -> dict:
    """A shipped trace with steps of every kind and TCP packets."""
    for path in SHIPPED:
        for r in json.loads(path.read_text(encoding="utf-8"))["results"]:
            trace = r["trace"]
            kinds = {k for s in trace.get("steps", []) for k in ("call", "note", "expect") if k in s}
            if kinds == {"call", "note", "expect"} and any(p["proto"] == "tcp" for p in trace["packets"]):
                return copy.deepcopy(trace)
    pytest.skip("no shipped trace with calls, notes, expectations and packets")


def _first_tcp(trace: dict) -> dict:
    return next(p for p in trace["packets"] if p["proto"] == "tcp")


@pytest.mark.parametrize("spoil, where", [
    (lambda t: t["steps"][0]["states"].update(client="HALF_OPEN"), "steps/0/states/client"),
    (lambda t: _first_tcp(t).pop("seq"), "packets/"),
    (lambda t: _first_tcp(t).update(flags="SYN"), "/flags"),
    (lambda t: t["steps"][0].update(window={"measured_s": [1, 1], "low_s": 0, "high_s": 2,
                                            "clock": "sundial"}), "steps/0/window/clock"),
    (lambda t: t["steps"][0].update(t_ms=-5.0), "steps/0/t_ms"),
    (lambda t: t["steps"][0].pop("actor"), "steps/0"),
    (lambda t: t.update(schema=99), "schema"),
    (lambda t: t.pop("packets"), "(trace)"),
    (lambda t: t["counters"].update(ListenOverflows=1), "counters"),
])
def test_a_spoiled_trace_is_refused_where_it_is_wrong(spoil, where):
    trace = _recorded()
    assert validate_trace(trace) == []
    spoil(trace)
    problems = validate_trace(trace)
    assert problems and any(where in p for p in problems), problems


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a live scenario needs root (CI runs as root)")


def _hangs(lab):
    lab.note("about to hang")
    time.sleep(60)


@needs_root
def test_the_trace_of_a_scenario_that_timed_out_conforms():
    [result] = run([Scenario("hangs", "Hangs.", ("errno:EPIPE",), _hangs, "test", needs=frozenset({"netns"}),
                             timeout=0.3)])
    assert result["status"] == "failed" and "timed out" in result["reason"]
    assert validate_result(result) == []


@needs_root
def test_a_new_trace_carries_the_version_and_conforms():
    scenarios = all_scenarios()
    [result] = run([scenarios["tw_reuse_takes_time_wait_port_after_delay"]])
    assert result["status"] == "passed", result["reason"]
    trace = result["trace"]
    assert trace["schema"] == SCHEMA_VERSION
    assert any("window" in s for s in trace["steps"])  # the timing keys are covered too
    assert validate_trace(trace) == []
