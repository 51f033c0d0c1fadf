"""Every lookup form the CLI promises, its JSON shape, and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def ids(result) -> str:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


@pytest.mark.parametrize("query", ["104", "ECONNRESET", "econnreset", "0x68", "-104",
                                   "WSAECONNRESET", "10054", " ECONNRESET "])
def test_errno_forms(cli, query):
    assert ids(cli("errno", query, "--json")) == "errno:ECONNRESET"


@pytest.mark.parametrize("args,expected", [
    (["54", "--os", "darwin"], "errno:ECONNRESET"),
    (["54", "--os", "freebsd"], "errno:ECONNRESET"),
    (["131", "--arch", "mips"], "errno:ECONNRESET"),
    (["10054", "--os", "windows"], "errno:ECONNRESET"),
    (["EWOULDBLOCK"], "errno:EAGAIN"),
    (["10035"], "errno:EAGAIN"),
    (["ENOTSUP"], "errno:EOPNOTSUPP"),
    (["45", "--os", "darwin"], "errno:EOPNOTSUPP"),  # darwin's ENOTSUP
    (["EDEADLOCK"], "errno:EDEADLK"),
    (["58", "--arch", "powerpc"], "errno:EDEADLK"),  # powerpc's own EDEADLOCK
    (["133"], "errno:EHWPOISON"),
    (["512"], "errno:ERESTARTSYS"),
])
def test_errno_platforms_and_aliases(cli, args, expected):
    assert ids(cli("errno", *args, "--json")) == expected


def test_errno_json_shape(cli):
    data = json.loads(cli("errno", "104", "--json").stdout)
    for key in ("id", "kind", "name", "summary", "summary_zh", "number", "message", "numbers",
                "related", "seen_as", "sections"):
        assert key in data
    assert data["number"] == 104 and data["kind"] == "errno"
    assert data["numbers"]["darwin"] == 54 and data["numbers"]["windows"] == 10054
    assert set(data["sections"]) == {"meaning", "causes", "what-to-do", "how-to-see-it"}
    assert all(":" in r for r in data["related"])


def test_ambiguous_number_says_so(cli):
    result = cli("errno", "54")
    assert result.exit_code == 0
    assert "EXFULL" in result.stdout and "ECONNRESET" in result.stdout and "darwin" in result.stdout
    data = json.loads(cli("errno", "54", "--json").stdout)
    assert data["id"] == "errno:EXFULL"
    assert any(a["id"] == "errno:ECONNRESET" and "darwin" in a["platforms"] for a in data["also"])


@pytest.mark.parametrize("query", ["13", "SIGPIPE", "sigpipe", "pipe", "PIPE", "141"])
def test_signal_forms(cli, query):
    assert ids(cli("signal", query, "--json")) == "signal:SIGPIPE"


def test_exit_status_is_explained(cli):
    out = cli("signal", "141").stdout
    assert "128 + 13" in out


@pytest.mark.parametrize("args,expected,note", [
    (["10", "--arch", "mips"], "signal:SIGBUS", None),
    (["SIGRTMIN+3"], "signal:SIGRTMIN", "signal 37"),
    (["40"], "signal:SIGRTMIN", "SIGRTMIN+6"),
    (["32"], "signal:SIGRTMIN", "C library"),
    (["64"], "signal:SIGRTMAX", None),
    (["SIGIOT"], "signal:SIGABRT", None),
    (["poll"], "signal:SIGIO", None),
])
def test_signal_arch_and_realtime(cli, args, expected, note):
    result = cli("signal", *args, "--json")
    assert ids(result) == expected
    if note:
        assert note in " ".join(json.loads(result.stdout).get("query_notes", []))


@pytest.mark.parametrize("query,expected", [
    ("TIME_WAIT", "TIME_WAIT"), ("time-wait", "TIME_WAIT"), ("TIME-WAIT", "TIME_WAIT"),
    ("6", "TIME_WAIT"), ("06", "TIME_WAIT"), ("timewait", "TIME_WAIT"),
    ("SYN-RECEIVED", "SYN_RECV"), ("SYN_RECV", "SYN_RECV"), ("SYN-RECV", "SYN_RECV"),
    ("CLOSE", "CLOSE"), ("CLOSED", "CLOSE"), ("UNCONN", "CLOSE"),
    ("ESTAB", "ESTABLISHED"), ("established", "ESTABLISHED"),
    ("FIN-WAIT-1", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT1"), ("FIN_WAIT_1", "FIN_WAIT1"),
    ("0A", "LISTEN"), ("10", "LISTEN"), ("TCP_LISTEN", "LISTEN"),
    ("NEW_SYN_RECV", "NEW_SYN_RECV"), ("13", "BOUND_INACTIVE"),
])
def test_state_spellings(cli, query, expected):
    assert ids(cli("state", query, "--json")) == f"state:{expected}"


def test_state_json_has_transitions(cli):
    data = json.loads(cli("state", "TIME_WAIT", "--json").stdout)
    assert data["number"] == 6 and data["hex"] == "06"
    assert any(t["to"] == "state:CLOSE" for t in data["transitions"])


@pytest.mark.parametrize("query,expected", [("RST", "flag:RST"), ("rst", "flag:RST"), ("R", "flag:RST"),
                                            ("ACK", "flag:ACK"), (".", "flag:ACK"), ("AE", "flag:AE")])
def test_flag_forms(cli, query, expected):
    assert ids(cli("flag", query, "--json")) == expected


@pytest.mark.parametrize("query", ["S.", "SYN+ACK", "0x12", "syn,ack"])
def test_flag_combination(cli, query):
    result = cli("flag", query, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["kind"] == "combination" and data["bits"] == 0x12
    assert [f["id"] for f in data["flags"]] == ["flag:SYN", "flag:ACK"]


@pytest.mark.parametrize("query,expected", [("errno:ECONNRESET", "errno:ECONNRESET"),
                                            ("state:TIME_WAIT", "state:TIME_WAIT"),
                                            ("signal:SIGPIPE", "signal:SIGPIPE"),
                                            ("flag:RST", "flag:RST"),
                                            ("SIGPIPE", "signal:SIGPIPE")])
def test_show(cli, query, expected):
    assert ids(cli("show", query, "--json")) == expected


@pytest.mark.parametrize("kind,minimum", [("errno", 131 + 17), ("signal", 33), ("state", 13), ("flag", 9)])
def test_list(cli, kind, minimum):
    result = cli("list", kind, "--json")
    entries = json.loads(result.stdout)
    assert len(entries) >= minimum
    for e in entries:
        assert e["kind"] == kind and e["id"] == f"{kind}:{e['name']}" and e["summary"]
    if kind == "errno":
        assert all("number" in e and "message" in e and "numbers" in e for e in entries)
    if kind == "state":
        assert sorted(e["number"] for e in entries) == list(range(1, 14))


def test_search(cli):
    data = json.loads(cli("search", "connection", "reset", "--json").stdout)
    assert "errno:ECONNRESET" in [r["id"] for r in data["results"][:3]]
    for words in ("SO_REUSEADDR", "reuseaddr", "so_reuseaddr"):
        data = json.loads(cli("search", words, "--json").stdout)
        ids = [r["id"] for r in data["results"]]
        assert ids[0] == "sockopt:SO_REUSEADDR" and "errno:EADDRINUSE" in ids[:5], words
    data = json.loads(cli("search", "ECONNRESET", "--json").stdout)
    assert data["results"][0]["id"] == "errno:ECONNRESET"
    data = json.loads(cli("search", "broken pipe", "--json").stdout)
    assert {"errno:EPIPE", "signal:SIGPIPE"} <= {r["id"] for r in data["results"][:5]}


@pytest.mark.parametrize("args", [["errno", "ECONNRESTE"], ["errno", "99999"], ["signal", "0"],
                                  ["state", "WAITING"], ["flag", "XYZ"], ["show", "errno:NOPE"],
                                  ["search", "zzzyyqqq"]])
def test_not_found_exits_1_with_suggestions(cli, args):
    result = cli(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith("tcpkb: ")
    assert "Traceback" not in result.output


def test_suggestion_names_the_closest(cli):
    assert "errno:ECONNRESET" in cli("errno", "ECONNRESTE").stderr


@pytest.mark.parametrize("args", [["errno", ""], ["errno", "104", "--os", "plan9"],
                                  ["errno", "104", "--os", "darwin", "--arch", "mips"],
                                  ["list", "widgets"], ["errno"], ["show", "widget:X"],
                                  ["errno", "x" * 10000]])
def test_bad_usage_exits_2(cli, args):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("words", ['"', "NEAR(", "*", "a AND", "OR", "(", "-", "^x", "ECONN*"])
def test_fts_syntax_is_harmless(cli, words):
    result = cli("search", words)
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output


def test_plain_when_piped_colour_on_a_tty(kb_db):
    import pty

    env = dict(os.environ, TCPKB_DB=str(kb_db))
    env.pop("NO_COLOR", None)
    piped = subprocess.run([sys.executable, "-m", "tcpkb", "errno", "104"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "tcpkb", "errno", "104", "--brief"], env=env,
                              stdout=follower, stderr=subprocess.PIPE, timeout=60)
        os.close(follower)
        follower = None
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    assert proc.returncode == 0 and b"\x1b[" in out
    no_color = subprocess.run([sys.executable, "-m", "tcpkb", "errno", "104"], capture_output=True,
                              env=dict(env, NO_COLOR="1"), text=True, timeout=60)
    assert "\x1b[" not in no_color.stdout


def test_closed_pipe_is_quiet(kb_db):
    env = dict(os.environ, TCPKB_DB=str(kb_db))
    proc = subprocess.run(f"{sys.executable} -m tcpkb list errno | head -1", shell=True, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().startswith("1")
    assert proc.stderr == ""


def test_claims_show_their_verdict(cli):
    shown = cli("show", "claim:time-wait-lasts-2msl")
    assert shown.exit_code == 0 and "REFUTED" in shown.stdout
    listed = cli("list", "claim")
    assert listed.exit_code == 0
    assert any(line.startswith("refuted") and "tcp-tw-recycle-fixes-time-wait" in line
               for line in listed.stdout.splitlines())
    as_json = json.loads(cli("show", "claim:fin-wait-2-has-no-timeout", "--json").stdout)
    assert as_json["verdict"] == "depends" and as_json["kind"] == "claim"
