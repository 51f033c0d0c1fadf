"""The counter and drop kinds: every counter the running kernel prints and every drop reason its
kfree_skb tracepoint can report is an entry, found by every spelling people meet."""

from __future__ import annotations

import json
import platform

import pytest

from tcpkb.kinds.base import exists_on
from tcpkb.machine.tracefs import TracefsUnavailable, enum_values
from tcpkb.verify.lab import counter_names
from tcpkb.verify.scenarios.reasons import _family


def here(db, kind: str, table: str) -> set[str]:
    rows = db.execute(f"select e.name, t.since, t.absent_on, t.removed_in from entries e join {table} t "
                      "on t.id = e.id").fetchall()
    return {r["name"] for r in rows if exists_on(dict(r), platform.release())}


def test_the_kernel_prints_no_counter_the_knowledge_base_lacks(db):
    live = {_family(n) for n in counter_names()} - {"IcmpMsgInType", "IcmpMsgOutType"}
    assert live <= here(db, "counter", "counters")


def test_every_counter_said_to_exist_here_is_printed_in_a_fresh_namespace(db):
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("a fresh namespace needs root")
    code = ("from tcpkb.machine.netns import enter_new_netns; enter_new_netns(); "
            "from tcpkb.verify.lab import counter_names; print('\\n'.join(counter_names()))")
    live = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.split())
    expected = here(db, "counter", "counters") - {"IcmpMsgInType", "IcmpMsgOutType"}
    assert expected == live  # a fresh namespace prints every counter, and no IcmpMsg line yet


def test_the_kernel_has_no_drop_reason_the_knowledge_base_lacks(db):
    try:
        live = set(enum_values("skb/kfree_skb", "reason")) - {"MAX"}
    except TracefsUnavailable as e:
        pytest.skip(str(e))
    assert live == here(db, "drop", "drop_reasons")


@pytest.mark.parametrize("query", ["TcpExtListenOverflows", "ListenOverflows", "TcpExt:ListenOverflows",
                                   "TcpExt ListenOverflows", "LINUX_MIB_LISTENOVERFLOWS",
                                   "12 times the listen queue of a socket overflowed",
                                   "times the listen queue of a socket overflowed"])
def test_a_counter_is_found_by_every_spelling(cli, query):
    r = cli("counter", query, "--json")
    assert r.exit_code == 0, r.stdout
    assert json.loads(r.stdout)["id"] == "counter:TcpExtListenOverflows"


def test_a_field_printed_by_several_groups_names_them(cli):
    answer = json.loads(cli("counter", "InErrors", "--json").stdout)
    assert answer["id"] == "counter:UdpInErrors"  # Udp, UdpLite and Icmp print it; Udp is likeliest
    also = {a["id"] for a in answer.get("also") or []}
    assert {"counter:UdpLiteInErrors", "counter:IcmpInErrors"} <= also, answer.get("also")
    r = cli("counter", "IcmpMsgOutType3", "--json")
    assert json.loads(r.stdout)["id"] == "counter:IcmpMsgOutType"


@pytest.mark.parametrize("query", ["TCP_LISTEN_OVERFLOW", "tcp_listen_overflow",
                                   "SKB_DROP_REASON_TCP_LISTEN_OVERFLOW", "tcp-listen-overflow"])
def test_a_drop_reason_is_found_by_every_spelling(cli, query):
    r = cli("drop", query, "--json")
    assert r.exit_code == 0, r.stdout
    assert json.loads(r.stdout)["id"] == "drop:TCP_LISTEN_OVERFLOW"


def test_a_drop_reason_number_is_read_on_the_kernel_it_was_read_on(cli, db):
    try:
        number = enum_values("skb/kfree_skb", "reason")["NO_SOCKET"]
    except (TracefsUnavailable, KeyError) as e:
        pytest.skip(str(e))
    checked = db.execute("select 1 from facts_by_kernel where entry_id = 'drop:NO_SOCKET' and "
                         "field = 'number' and source = 'observed'").fetchone()
    if not checked:
        pytest.skip("no verification results for the drop kind in this build")
    answer = json.loads(cli("drop", str(number), "--json").stdout)
    assert answer["id"] == "drop:NO_SOCKET"
