"""No argument and no search string may ever end in a traceback."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tcpkb.cli import app

# Text people paste, plus the characters that mean something to FTS5, shells and parsers.
SPICY = st.sampled_from(['"', "'", "*", "NEAR(", "AND", "OR", "NOT", "(", ")", ":", "^", "-", "+",
                         "0x", "\\", "%", "_", "\x00", "\u200b", "é", "连接", "🔥", "\n", "SIG", "E"])
TEXT = st.one_of(st.text(max_size=60), st.lists(st.one_of(SPICY, st.text(max_size=8)), max_size=12).map("".join))
COMMANDS = st.sampled_from(["errno", "signal", "state", "flag", "show", "search", "list", "sysctl",
                            "sockopt", "call", "explain"])


@pytest.fixture(scope="module")
def runner_env(kb_db):
    return {"TCPKB_DB": str(kb_db)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=COMMANDS, arg=TEXT, as_json=st.booleans())
def test_any_argument(runner_env, command, arg, as_json):
    args = [command, *(["--json"] if as_json else []), "--", arg]
    result = CliRunner().invoke(app, args, env=runner_env)
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert "Traceback" not in result.output


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(TEXT, min_size=1, max_size=5), kind=st.sampled_from([None, "errno", "state"]))
def test_any_search(runner_env, words, kind):
    args = ["search", *(["--kind", kind] if kind else []), "--", *words]
    result = CliRunner().invoke(app, args, env=runner_env)
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)


def test_explain_reads_any_bytes_on_stdin(kb_db):
    """Binary junk or a log in another encoding is text to search, never a traceback."""
    import subprocess
    import sys

    for data in (b"\xff\xfe\x00garbage \xc3(", b"recv() failed (104: Connection reset by peer)\xff\n"):
        done = subprocess.run([sys.executable, "-m", "tcpkb", "explain"], input=data, capture_output=True,
                              timeout=60, env={"TCPKB_DB": str(kb_db), "PATH": "/usr/bin:/bin"})
        assert done.returncode in (0, 1) and b"Traceback" not in done.stderr, done.stderr
