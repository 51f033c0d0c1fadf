"""What a CLI user expects: --version, -h, completion, a man page, bare queries, helpful misses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from tcpkb import __version__
from tcpkb.cli import app
from tcpkb.commands import COMMANDS, LOOKUPS
from tcpkb.kinds import KINDS
from tcpkb.main import KIND_OPTIONS

from .conftest import ROOT


def tcpkb(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpkb", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, cwd=cwd or ROOT)


def test_the_entry_points_command_list_is_the_apps():
    group = typer.main.get_command(app)
    assert sorted(COMMANDS) == sorted(n for n, c in group.commands.items() if not c.hidden)
    assert set(LOOKUPS) == {k for k in KINDS if KINDS[k].command_help} | {"show"}
    assert KIND_OPTIONS == {k: {o.flag: o.keyword for o in KINDS[k].options} for k in KINDS if KINDS[k].options}


def test_shipped_help_and_man_page_are_what_the_app_generates():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_cli_docs import generated
    finally:
        sys.path.pop(0)
    for path, text in generated().items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: python scripts/gen_cli_docs.py"


@pytest.mark.parametrize("columns", ["80", "120"])
def test_help_without_typer_is_typers_help(columns):
    fast = tcpkb("--help", env={"COLUMNS": columns})
    typed = CliRunner().invoke(app, ["--help"], prog_name="tcpkb", env={"COLUMNS": columns})
    assert fast.returncode == 0 and fast.stdout == typed.stdout
    assert "..." not in fast.stdout.split("Commands:")[1] and "notes in kb/" not in fast.stdout
    assert tcpkb("-h").stdout == fast.stdout


def test_version_and_short_help():
    assert tcpkb("--version").stdout == f"tcpkb {__version__}\n"
    assert "Usage: tcpkb errno" in CliRunner().invoke(app, ["errno", "-h"], prog_name="tcpkb").stdout


def test_man_page_renders(tmp_path):
    page = tcpkb("man", env={"TCPKB_DB": str(tmp_path / "unused.db")})
    assert page.returncode == 0 and page.stdout.startswith(".TH TCPKB 1")
    for command in COMMANDS:
        assert f".SS tcpkb {command}\n" in page.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_and_entry_names(shell, kb_db):
    script = tcpkb("completion", shell)
    assert script.returncode == 0 and "_TCPKB_COMPLETE" in script.stdout
    env = {"TCPKB_DB": str(kb_db), "_TCPKB_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env.update(COMP_WORDS="tcpkb errno ECONN", COMP_CWORD="2")
    else:
        env.update(_TYPER_COMPLETE_ARGS="tcpkb errno ECONN", _TYPER_COMPLETE_FISH_ACTION="get-args")
    done = tcpkb(env=env)
    assert "ECONNRESET" in done.stdout and "ECONNREFUSED" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("query, kind", [("104", "errno"), ("ECONNRESET", "errno"), ("TIME_WAIT", "state"),
                                         ("SIGPIPE", "signal")])
def test_a_bare_query_answers_as_its_command(query, kind, kb_db):
    env = {"TCPKB_DB": str(kb_db)}
    bare, command = tcpkb(query, env=env), tcpkb(kind, query, env=env)
    assert bare.returncode == 0 and bare.stdout == command.stdout
    typed = CliRunner().invoke(app, [query], env=env)  # the Typer app reads it the same way
    assert typed.exit_code == 0 and typed.stdout == command.stdout


def test_a_bare_miss_points_to_search_explain_or_the_command(kb_db):
    miss = tcpkb("connection reset", env={"TCPKB_DB": str(kb_db)})
    assert miss.returncode == 1 and "tcpkb search 'connection reset'" in miss.stderr
    assert "tcpkb explain" in miss.stderr and "Traceback" not in miss.stderr
    typo = tcpkb("serach", env={"TCPKB_DB": str(kb_db)})
    assert typo.returncode == 1 and "`tcpkb search`" in typo.stderr


def test_a_miss_points_to_search_and_explain(kb_db):
    miss = tcpkb("errno", "connection reset", env={"TCPKB_DB": str(kb_db)})
    assert miss.returncode == 1 and "tcpkb search" in miss.stderr and "tcpkb explain" in miss.stderr


def test_an_unknown_errno_number_does_not_mention_windows_without_os(kb_db):
    miss = tcpkb("errno", "99999", env={"TCPKB_DB": str(kb_db)})
    assert miss.returncode == 1 and "windows" not in miss.stderr.lower()
