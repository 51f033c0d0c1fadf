"""Checks of the reasons the kernel names through its tracepoints: each entry against the running
kernel's tracepoint format, with the number it has on this kernel."""

from __future__ import annotations

import platform

from ... import kernels
from ...machine.tracefs import TracefsUnavailable, enum_values
from .. import check
from ..lab import Skip
from .checks import _entries, _verdict

# enum ends the tracepoint lists beside the reasons; never a reason the kernel gives
NOT_REASONS = {"MAX"}


@check(kind="rst", claim="Each RST reason entry is a value the running kernel's tcp:tcp_send_reset "
             "tracepoint can report (from the release the note names on), and its number here is "
             "the tracepoint's; the kernel has no reason the knowledge base lacks.")
def rst_reasons_match_the_tracepoint(lab, db: str) -> list[dict]:
    release = platform.release()
    try:
        live = enum_values("tcp/tcp_send_reset", "reason")
    except TracefsUnavailable as e:
        if kernels.in_range("<6.10", release):  # before 6.10 the tracepoint gives no reason at all
            live = {}
        else:
            raise Skip(str(e)) from None
    out = []
    for e in _entries(db, "rst"):
        expected = {"exists": kernels.exists_on(e["since"], None, release)}
        observed = {"exists": e["name"] in live}
        if e["name"] in live:
            observed["number"] = live[e["name"]]
        out.append(_verdict(e["id"], expected, observed, []))
    missing = sorted(set(live) - NOT_REASONS - {e["name"] for e in _entries(db, "rst")})
    if missing:
        lab.fail(f"the kernel reports reasons the knowledge base lacks: {', '.join(missing)}")
    return out
