"""The linter: every code has a fixture that shows it, alone, with file and line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tcpkb.kinds import KINDS
from tcpkb.lint import CODES, lint

from .conftest import FIXTURES, KB

LINT = FIXTURES / "lint"


def overlay(base_kb: Path, code: str) -> Path:
    shutil.copytree(LINT / code, base_kb, dirs_exist_ok=True)
    return base_kb


def test_base_fixture_is_clean(base_kb):
    assert lint(base_kb) == []


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_code_has_a_failing_fixture(base_kb, code):
    assert (LINT / code).is_dir(), f"no fixture for {code}"
    problems = lint(overlay(base_kb, code))
    assert problems, f"{code} fixture raised nothing"
    assert {p.code for p in problems} == {code}
    broken = {str(p.relative_to(LINT / code)) for p in (LINT / code).rglob("*.md")}
    for p in problems:
        assert p.line >= 1
        assert any(p.path.endswith(b) for b in broken), p


def test_problem_lines_point_at_the_field(base_kb):
    (problem,) = lint(overlay(base_kb, "KB004"))
    text = (base_kb / "errno" / "EXTRA.md").read_text().splitlines()
    assert text[problem.line - 1].startswith("colour:")


def test_codes_are_documented():
    readme = (KB / "README.md").read_text()
    documented = dict(re.findall(r"^\| (KB\d{3}) \| (.+?) \|$", readme, re.M))
    assert documented == CODES


def test_grammar_documented_for_every_field_and_section():
    readme = (KB / "README.md").read_text()
    for kind in KINDS.values():
        for name in kind.fields:
            assert f"`{name}`" in readme, f"{kind.name}.{name} is not documented"
        for section in kind.sections:
            assert f"`{section}`" in readme, f"section {section!r} is not documented"


def test_project_notes_are_clean():
    problems = lint(KB)
    assert not problems, "\n".join(map(str, problems[:20]))


def test_cli_prints_path_line_code_and_exits_1(base_kb, monkeypatch):
    from typer.testing import CliRunner

    from tcpkb.cli import app

    result = CliRunner().invoke(app, ["lint", str(overlay(base_kb, "KB010"))])
    assert result.exit_code == 1
    assert re.search(r"errno/ELINK\.md:\d+: KB010 related id 'errno:ENOPE' does not exist", result.output)


def test_cli_lint_clean_exits_0(base_kb):
    from typer.testing import CliRunner

    from tcpkb.cli import app

    assert CliRunner().invoke(app, ["lint", str(base_kb)]).exit_code == 0
