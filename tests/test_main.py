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


@pytest.mark.parametrize("argv", [[b"errno", b"\xff"], [b"search", b"caf\xe9"], [b"rst", b"\xff\xfe", b"--json"],
                                  [b"show", b"errno:\xc3"], [b"list", b"\x80"]])
def test_an_argument_that_is_not_utf8_is_one_line_and_status_2(argv, kb_db):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TCPKB_DB": str(kb_db)}
    proc = subprocess.run([sys.executable.encode(), b"-c", b"from tcpkb.main import main; main()", *argv],
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert proc.stderr.count(b"\n") == 1 and b"not valid UTF-8" in proc.stderr


def test_explain_reads_text_that_is_not_utf8_as_a_log_line(kb_db):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TCPKB_DB": str(kb_db)}
    proc = subprocess.run([sys.executable.encode(), b"-c", b"from tcpkb.main import main; main()",
                           b"explain", b"recv: Connection reset by peer \xff\xfe", b"--json"],
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b'"errno:ECONNRESET"' in proc.stdout
