"""sysctl knobs with live values, socket options and system calls, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tcpkb.machine import live

from .conftest import ROOT

ROOTED = os.geteuid() == 0


def proc(name: str) -> str:
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return " ".join(f.read().split())


@pytest.mark.parametrize("query", [
    "tcp_fin_timeout", "net.ipv4.tcp_fin_timeout", "net/ipv4/tcp_fin_timeout",
    "/proc/sys/net/ipv4/tcp_fin_timeout", "NET.IPV4.TCP_FIN_TIMEOUT",
])
def test_sysctl_by_any_spelling_shows_the_live_value(cli, query):
    r = cli("sysctl", query, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["id"] == "sysctl:net.ipv4.tcp_fin_timeout"
    assert data["live"]["value"] == proc("net.ipv4.tcp_fin_timeout")
    assert data["live"]["differs"] == (data["live"]["value"] != data["default"])


def test_a_pasted_sysctl_conf_line_is_read_against_the_default(cli):
    r = cli("sysctl", "net.ipv4.tcp_fin_timeout = 30")
    assert r.exit_code == 0
    assert "sets net.ipv4.tcp_fin_timeout to 30 (not the default 60)" in r.stdout
    r = cli("sysctl", "sysctl -w net.ipv4.tcp_tw_reuse=2")
    assert "to 2 (the default)" in r.stdout


def test_text_output_names_value_default_and_namespace(cli):
    out = cli("sysctl", "tcp_fin_timeout").stdout
    assert "live" in out and "default" in out and "one per network namespace" in out
    assert "/proc/sys/net/ipv4/tcp_fin_timeout" in out


def test_a_removed_knob_says_so_and_what_to_do(cli):
    r = cli("sysctl", "tcp_tw_recycle")
    assert r.exit_code == 0
    assert "REMOVED in 4.12" in r.stdout and "not on this kernel" in r.stdout
    assert "What to do" in r.stdout


def test_a_computed_default_is_read_from_a_fresh_namespace(cli):
    if not ROOTED:
        pytest.skip("a fresh namespace needs root or user namespaces")
    data = json.loads(cli("sysctl", "tcp_max_syn_backlog", "--json").stdout)
    assert data["default"] is None and data["computed"]
    assert data["live"]["default_source"] == "fresh namespace"
    assert data["live"]["default"].isdigit()


def test_unknown_knob_and_bad_usage(cli):
    r = cli("sysctl", "tcp_fin_timeou")
    assert r.exit_code == 1 and "sysctl:net.ipv4.tcp_fin_timeout" in r.stderr
    assert cli("sysctl").exit_code == 2
    assert cli("sysctl", "tcp_fin_timeout", "--diff").exit_code == 2


def test_the_fastopen_key_is_never_printed(cli):
    data = json.loads(cli("sysctl", "tcp_fastopen_key", "--json").stdout)
    assert data["live"]["value"] in (None, "(hidden: a secret key)")
    assert data["live"]["differs"] is None


def test_diff_on_this_machine_compares_every_knob(cli):
    r = cli("sysctl", "--diff", "--json")
    report = json.loads(r.stdout)
    assert r.exit_code == (1 if report["differs"] else 0)
    for d in report["differs"]:
        assert d["value"] == proc(d["name"]) and d["value"].split() != d["default"].split()
        assert d["advice"]
    assert report["compared"] >= 100


@pytest.mark.skipif(not ROOTED or not shutil.which("unshare"), reason="needs root to make a namespace")
def test_diff_flags_a_knob_changed_in_this_namespace_with_its_advice(kb_db):
    """In a namespace of its own the test can change knobs without touching the host's."""
    script = ("echo 15 > /proc/sys/net/ipv4/tcp_fin_timeout; echo 0 > /proc/sys/net/ipv4/tcp_tw_reuse; "
              f"exec {sys.executable} -m tcpkb sysctl --diff --json")
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ, TCPKB_DB=str(kb_db)))
    assert done.returncode == 1, done.stderr
    differs = {d["name"]: d for d in json.loads(done.stdout)["differs"]}
    assert differs["net.ipv4.tcp_fin_timeout"]["value"] == "15"
    assert differs["net.ipv4.tcp_fin_timeout"]["default"] == "60"
    assert differs["net.ipv4.tcp_tw_reuse"]["value"] == "0"
    text = subprocess.run(["unshare", "-n", "sh", "-c", script.replace(" --json", "")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=dict(os.environ, TCPKB_DB=str(kb_db), NO_COLOR="1")).stdout
    assert "net.ipv4.tcp_fin_timeout  15  default 60" in text


def test_fresh_namespace_values_are_bounded_and_never_secret():
    assert live.fresh_namespace_values(["net.ipv4.tcp_fastopen_key"]) == {}
    if ROOTED:
        values = live.fresh_namespace_values(["net.ipv4.tcp_fin_timeout", "net.ipv4.no_such"])
        assert values == {"net.ipv4.tcp_fin_timeout": "60"}


@pytest.mark.parametrize("query, wanted", [
    ("SO_LINGER", "sockopt:SO_LINGER"), ("so_linger", "sockopt:SO_LINGER"), ("linger", "sockopt:SO_LINGER"),
    ("NODELAY", "sockopt:TCP_NODELAY"), ("nosignal", "sockopt:MSG_NOSIGNAL"),
])
def test_sockopt_by_name_or_short_name(cli, query, wanted):
    r = cli("sockopt", query, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == wanted


def test_sockopt_shows_level_number_and_other_abis(cli):
    data = json.loads(cli("sockopt", "SO_REUSEADDR", "--json").stdout)
    assert (data["level"], data["number"], data["numbers"]["alpha"]) == ("SOL_SOCKET", 2, 4)
    assert "alpha 4" in cli("sockopt", "SO_REUSEADDR").stdout


@pytest.mark.parametrize("query, wanted", [
    ("connect", "call:connect"), ("sendmsg", "call:send"), ("accept4", "call:accept"),
    ("connect(2)", "call:connect"), ("epoll_pwait", "call:epoll_wait"),
])
def test_call_by_name_or_variant(cli, query, wanted):
    r = cli("call", query, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == wanted


def test_errno_pages_list_the_calls_that_return_them(cli):
    epipe = json.loads(cli("errno", "EPIPE", "--json").stdout)
    assert {"send", "write"} <= set(epipe["calls"])
    send = json.loads(cli("call", "send", "--json").stdout)
    assert "errno:EPIPE" in [e["errno"] for e in send["errors"]]
    assert "Returned by" in cli("errno", "EPIPE").stdout


def test_new_kinds_are_listed_searched_and_shown(cli):
    assert "net.ipv4.tcp_fin_timeout" in cli("list", "sysctl").stdout
    assert "SO_REUSEPORT" in cli("list", "sockopt").stdout
    assert "shutdown(2)" in cli("list", "call").stdout
    found = [r["id"] for r in json.loads(cli("search", "reuseaddr", "--json").stdout)["results"]]
    assert "sockopt:SO_REUSEADDR" in found[:3]
    assert cli("show", "call:shutdown").exit_code == 0
    assert cli("show", "sysctl:net.ipv4.tcp_fin_timeout").exit_code == 0


def test_related_links_resolve_in_both_directions(kb_db):
    """A link A -> B is answered on B's page by `linked_from`, so either end leads to the other."""
    from tcpkb.query import lookup

    conn = lookup.connect(str(kb_db))
    for src, dst in conn.execute("select src, dst from links where dst like 'sysctl:%' "
                                 "or dst like 'sockopt:%' or dst like 'call:%'").fetchall():
        e = lookup.entry(conn, dst)
        assert src in e["related"] + e["linked_from"], (src, dst)
    fin = lookup.entry(conn, "sysctl:net.ipv4.tcp_fin_timeout")
    assert "state:FIN_WAIT2" in fin["related"] + fin["linked_from"]
