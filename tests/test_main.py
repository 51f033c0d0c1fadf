"""The fast path for plain lookups answers exactly as the Typer commands do, without Typer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tcpkb import answer
from tcpkb.cli import app
from tcpkb.main import plain_lookup

SAME = [
    ["errno", "104"], ["errno", "-104", "--json"], ["errno", "54", "--os", "darwin"],
    ["errno", "131", "--arch", "mips", "--brief"], ["errno", "NOPE"], ["errno", ""],
    ["errno", "104", "--os", "plan9"], ["signal", "141", "--json"], ["signal", "10", "--arch", "mips"],
    ["state", "time-wait", "-b"], ["state", "0A", "--json"], ["flag", "S."], ["flag", "RST", "--json"],
    ["show", "errno:EPIPE"], ["show", "widget:X"], ["state", "WAITING", "--json"],
    ["sysctl", "tcp_fin_timeout"], ["sysctl", "net.ipv4.tcp_tw_reuse", "--json"], ["sysctl", "nope"],
    ["sockopt", "SO_LINGER", "-b"], ["call", "sendmsg", "--json"], ["call", "frobnicate"],
]


@pytest.mark.parametrize("argv", SAME)
def test_fast_path_prints_what_typer_prints(argv, kb_db, monkeypatch, capsys):
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    call = plain_lookup(argv)
    assert call is not None
    status = answer.find(**call)
    fast = capsys.readouterr()
    typed = CliRunner().invoke(app, argv)
    assert (status, fast.out, fast.err) == (typed.exit_code, typed.stdout, typed.stderr)


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["errno"], ["errno", "--help"], ["errno", "104", "--bogus"], ["errno", "1", "2"],
    ["errno", "104", "--os=darwin"], ["errno", "104", "--os"], ["state", "-5"], ["list", "errno"],
    ["search", "reset"], ["lint"], ["errno", "--", "-104"], ["sysctl", "--diff"], ["sysctl"],
])
def test_everything_else_goes_to_typer(argv):
    assert plain_lookup(argv) is None


def test_fast_path_does_not_import_typer(kb_db):
    code = ("import sys; from tcpkb.main import plain_lookup; from tcpkb.answer import find; "
            "find(**plain_lookup(['errno', '104'])); print('typer' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, TCPKB_DB=str(kb_db)))
    assert proc.returncode == 0 and proc.stderr.strip() == "False"
