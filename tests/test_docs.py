"""The README is a true tour: its commands run as shown, and CI runs its test command."""

from __future__ import annotations

import re
import shlex

import pytest
from typer.testing import CliRunner

from tcpkb.cli import app

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
QUICK_START = re.findall(r"```sh\n(.+?)\n```", README.split("## The tour")[0])
TOUR = re.findall(r"^\$ (tcpkb .+)$", README, re.M)


def test_quick_start_is_two_commands():
    assert QUICK_START == ["python3 -m venv .venv && . .venv/bin/activate && pip install . && tcpkb errno 104",
                           "pip install '.[test]' && python -m pytest"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert QUICK_START[1] in ci.splitlines()


@pytest.mark.parametrize("command", TOUR)
def test_tour_command_runs(command, kb_db, tmp_path, monkeypatch):
    argv = shlex.split(command)[1:]
    monkeypatch.chdir(ROOT)  # paths in the tour (a saved dump under tests/fixtures/) are the checkout's
    if argv[0] == "serve":
        pytest.skip("a server runs until stopped: tests/test_serve.py starts it and runs the README's curl lines")
    # `tcpkb build` and a verify run must not touch the checkout's database or results.
    writes = argv[0] == "build" or (argv[0] == "verify" and not {"--coverage", "--list"} & set(argv))
    monkeypatch.setenv("TCPKB_DB", str(tmp_path / "t.db") if writes else str(kb_db))
    if writes:
        monkeypatch.setenv("TCPKB_RESULTS", str(tmp_path / "results"))
    if argv[0] == "site":  # as shown, but into a temporary directory instead of site/_build/
        monkeypatch.setattr("tcpkb.site.generate.default_out", lambda: tmp_path / "site")
    result = CliRunner().invoke(app, argv)
    # `sysctl --diff` and `doctor` exit 1 when they found something, as documented
    findings = "--diff" in argv or argv[0] == "doctor"
    assert result.exit_code in ((0, 1) if findings else (0,)), (command, result.output)
    assert result.stdout.strip()  or argv[0] == "lint"
