"""No argument and no search string may ever end in a traceback.

TCPKB_FUZZ_EXAMPLES sets the budget of the bytes fuzz (a fixed 300 by default);
`python scripts/bench_cli.py --fuzz 10000` runs the long one and reports its count."""

from __future__ import annotations

import io
import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tcpkb.cli import app
from tcpkb.commands import COMMANDS as COMMAND_NAMES
from tcpkb.main import main

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


FUZZ_EXAMPLES = int(os.environ.get("TCPKB_FUZZ_EXAMPLES", "300"))
# What a shell can hand over: any bytes (decoded as Python does, non-UTF-8 as surrogates), and
# text with lone surrogates that no bytes would give.
ARGUMENT = st.one_of(st.binary(max_size=24).map(os.fsdecode), TEXT,
                     st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4))
# every command (verify only lists: a random target must not start a run), a bare query, --kb
FIRST = st.sampled_from([c for c in COMMAND_NAMES if c != "verify"] + ["", "--kb", "--lang"]).map(lambda c: [c] if c else [])
CASES = {"count": 0}


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    """The console entry point in this process: (status, stdout, stderr), strictly UTF-8 streams
    (printing a surrogate raises, as it would on a real terminal)."""
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.argv, sys.stdout, sys.stderr, sys.stdin
    environ = dict(os.environ)  # `--kb DIR` sets TCPKB_KB: never for the next case
    sys.argv = ["tcpkb", *argv]
    # kept until read: a wrapper closes its buffer when it is collected
    streams = [io.TextIOWrapper(b, encoding="utf-8", errors="strict", write_through=True) for b in (out, err)]
    sys.stdout, sys.stderr = streams
    sys.stdin = io.TextIOWrapper(io.BytesIO(b"recv: Connection reset by peer\xff\n"), encoding="utf-8")
    try:
        main()
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.stdout, sys.stderr, sys.stdin = saved
        os.environ.clear()
        os.environ.update(environ)
    return status, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(first=FIRST, args=st.lists(ARGUMENT, min_size=1, max_size=3), as_json=st.booleans())
def test_any_bytes_on_any_command(runner_env, monkeypatch, first, args, as_json):
    """Every command of the entry point, with bytes and surrogate arguments: a one-line error or an
    answer, never a traceback."""
    for k, v in runner_env.items():
        monkeypatch.setenv(k, v)
    argv = first + (["--list"] if first == ["verify"] else []) + args + (["--json"] if as_json else [])
    CASES["count"] += 1
    status, out, err = _run_main(argv)
    assert status in (0, 1, 2), (argv, status, err)
    assert "Traceback" not in out + err, (argv, err)
