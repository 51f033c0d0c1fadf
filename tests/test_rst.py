"""The rst kind: every reason the running kernel's tcp:tcp_send_reset can report is an entry, found
by every spelling people meet, with its number on each kernel verified."""

from __future__ import annotations

import json
import platform

import pytest

from tcpkb import kernels
from tcpkb.machine.tracefs import TracefsUnavailable, enum_values


def live_reasons() -> dict[str, int]:
    try:
        return enum_values("tcp/tcp_send_reset", "reason")
    except TracefsUnavailable as e:
        pytest.skip(f"no tracepoint format to compare with: {e}")


def test_the_kernel_has_no_reason_the_knowledge_base_lacks(db):
    live = set(live_reasons()) - {"MAX"}
    rows = db.execute("select e.name, r.since from entries e join rst_reasons r on r.id = e.id").fetchall()
    here = {name for name, since in rows if kernels.exists_on(since, None, platform.release())}
    assert live == here


@pytest.mark.parametrize("query", ["TCP_ABORT_ON_CLOSE", "tcp_abort_on_close", "abort_on_close",
                                   "SK_RST_REASON_TCP_ABORT_ON_CLOSE", "abort-on-close"])
def test_a_reason_is_found_by_every_spelling(cli, query):
    r = cli("rst", query, "--json")
    assert r.exit_code == 0, r.stdout
    assert json.loads(r.stdout)["id"] == "rst:TCP_ABORT_ON_CLOSE"


def test_a_miss_suggests_the_closest(cli):
    r = cli("rst", "TCP_ABORT_ON_CLOZE", "--json")
    assert r.exit_code == 1
    assert "rst:TCP_ABORT_ON_CLOSE" in json.loads(r.stdout)["suggestions"]


def test_the_number_is_given_with_the_kernel_it_was_read_on(cli, db):
    checked = {r[0] for r in db.execute("select distinct kernel from verifications where entry_id = "
                                        "'rst:TCP_ABORT_ON_CLOSE' and level = 'checked' and ok")}
    if not checked:
        pytest.skip("no verification results for the rst kind in this build")
    answer = json.loads(cli("rst", "TCP_ABORT_ON_CLOSE", "--json").stdout)
    number = next(f for f in answer["facts"] if f["label"] == "Number")
    present = {k for row in answer["by_kernel"]["exists"] if row["value"] for k in row["kernels"]}
    absent = {k for row in answer["by_kernel"]["exists"] if not row["value"] for k in row["kernels"]}
    assert present | absent == checked  # every kernel checked said whether the reason exists
    assert {k for row in number["kernels"] for k in row["kernels"]} == present
    if platform.release() in checked:
        here = next(row for row in number["kernels"] if platform.release() in row["kernels"])
        assert here["value"] == str(live_reasons()["TCP_ABORT_ON_CLOSE"])
