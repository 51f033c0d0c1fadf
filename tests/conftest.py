"""Shared fixtures: the real notes built once per session, and a CLI runner over them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcpkb.build import build
from tcpkb.cli import app

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "kb"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def kb_db(tmp_path_factory) -> Path:
    """The project's own notes, compiled into a throwaway database."""
    path = tmp_path_factory.mktemp("db") / "tcpkb.db"
    build(KB, path)
    return path


@pytest.fixture
def base_kb(tmp_path) -> Path:
    """A copy of the small valid knowledge base the lint fixtures start from."""
    dest = tmp_path / "kb"
    shutil.copytree(FIXTURES / "lint" / "base", dest)
    return dest


@pytest.fixture
def cli(kb_db, monkeypatch):
    """Run `tcpkb ARGS…` in-process against the built notes; returns the click Result."""
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    monkeypatch.delenv("NO_COLOR", raising=False)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run
