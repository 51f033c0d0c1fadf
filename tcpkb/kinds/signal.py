"""signal: signals by number, name, real-time name or a shell's exit status."""

from __future__ import annotations

import re

from .base import (LINUX_ABIS, BadQuery, Field, Hit, Kind, NotFound, Option, abi_numbers, by_name,
                   clean, differing_abis, fact, meta_abi_numbers, parse_int, suggest)

FULL = ("Meaning", "Causes", "What to do", "How to see it")


class Signal(Kind):
    name = "signal"
    plural = "Signals"
    intro = ("Signals by number on x86-64 and the generic ABIs, with the Linux ABIs that number them "
             "differently, their default action and the standard that defines them. A shell reports "
             "a child killed by signal n as exit status 128 + n.")
    fields = {
        **Kind.fields,
        "number": Field("int", required=True),
        "numbers": Field("numbers", keys=LINUX_ABIS),
        "action": Field("str", required=True, choices=("Term", "Core", "Ign", "Stop", "Cont")),
        "standard": Field("str", required=True, choices=("P1990", "P2001", "-")),
        "socket": Field("bool"),
    }
    sections = FULL
    required_sections = ("Meaning",)
    socket_sections = FULL
    unique = "number"
    command_help = "Look up a signal by number, name or shell exit status."
    query_help = "13, SIGPIPE, pipe, 141 (a shell exit status), SIGRTMIN+3"
    negative_numbers = True
    options = (Option("--arch", "arch", "Read the number on a Linux ABI: alpha, mips, sparc, parisc, powerpc."),)
    table = "signals"
    columns = {"id": "text", "name": "text", "number": "integer", "action": "text",
               "standard": "text", "socket": "boolean"}
    extra_tables = {"signal_numbers": ({"entry_id": "text", "platform": "text", "number": "integer"},
                                       ("number",))}
    descriptions = {
        "signals": ("Signals: number, default action, standard.", {
            "number": "The number on x86-64 and the generic ABIs (glibc's SIGRTMIN for the real-time range)",
            "action": "Default disposition: Term, Core, Ign, Stop or Cont (signal(7))",
            "standard": "P1990, P2001 or - as signal(7) lists it",
            "socket": "1 if a socket program meets this signal"}),
        "signal_numbers": ("Every signal's number on Linux and each Linux ABI.", {
            "platform": "linux, alpha, mips, sparc, parisc or powerpc",
            "number": "the signal's number there"}),
    }

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        rows = super().rows(note, ctx)
        rows["signals"][0]["socket"] = bool(note.meta.get("socket"))
        rows["signal_numbers"] = [{"entry_id": note.id, "platform": p, "number": n}
                                  for p, n in meta_abi_numbers(note.meta).items() if n is not None]
        return rows

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from signals where id = ?", (entry_id,)).fetchone()
        return {"number": r["number"], "numbers": abi_numbers(conn, "signal_numbers", entry_id),
                "action": r["action"], "standard": r["standard"], "socket": bool(r["socket"])}

    def find(self, conn, query: str, arch: str | None = None) -> Hit:
        query = clean(query)
        platform = (arch or "linux").lower()
        if platform not in ("linux",) + LINUX_ABIS:
            raise BadQuery(f"unknown arch {platform!r}; one of: linux, {', '.join(LINUX_ABIS)}")
        number = parse_int(query)
        if number is None:
            return _by_signal_name(conn, query, platform)
        return _by_number(conn, number, platform)

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("Number", e["number"])]
        if other := differing_abis(e["numbers"], e["number"]):
            rows.append(fact("Other Linux ABIs", other))
        rows += [fact("Default action", e["action"]), fact("Standard", e["standard"]),
                 fact("Exit status", f"{128 + e['number']} when it kills a shell's child")]
        return rows

    def headline(self, e: dict) -> list:
        return [(f"signal {e['number']}", None), (e["title"], "bold"), (f"(default: {e['action']})", None)]

    def list_columns(self, e: dict) -> list:
        return [("Number", [str(e["number"])]),
                ("Other Linux ABIs", [differing_abis(e["numbers"], e["number"])]),
                ("Default action", [e["action"]]), ("Standard", [e["standard"]]), ("Title", [e["title"]])]

    def sort_key(self, e: dict):
        return (e["number"], e["name"])


def _by_signal_name(conn, query: str, platform: str) -> Hit:
    name = query.upper().replace(" ", "")
    if m := re.fullmatch(r"(?:SIG)?RTM(IN|AX)([+-]\d{1,3})?", name):
        return _realtime(conn, platform, name, m)
    for candidate in (name, "SIG" + name):
        if id_ := by_name(conn, "signal", candidate):
            return Hit(id_)
    raise NotFound(f"no signal named {query!r}", suggest(conn, "SIG" + name.removeprefix("SIG"), "signal"))


def _by_number(conn, number: int, platform: str) -> Hit:
    notes = []
    rtmin, rtmax = _rt_range(conn, platform)
    if number > rtmax and 128 < number <= 128 + rtmax:
        notes.append(f"exit status {number} = 128 + {number - 128}: the process was killed by "
                     f"signal {number - 128}")
        number -= 128
    row = conn.execute("select entry_id from signal_numbers where platform = ? and number = ? "
                       "order by entry_id", (platform, number)).fetchone()
    if row:
        return Hit(row[0], notes)
    standard_max = conn.execute("select max(number) from signal_numbers where platform = ? and number < ?",
                                (platform, rtmin)).fetchone()[0] or 0
    if standard_max < number < rtmin:
        notes.append(f"{number} lies between the last standard signal ({standard_max}) and glibc's "
                     f"SIGRTMIN ({rtmin}): the C library keeps it for its own threads")
        return Hit("signal:SIGRTMIN", notes)
    if rtmin < number < rtmax:
        notes.append(f"{number} is the real-time signal SIGRTMIN+{number - rtmin}")
        return Hit("signal:SIGRTMIN", notes)
    raise NotFound(f"no signal {number} on {platform}: signals run from 1 to {rtmax}")


def _rt_range(conn, platform: str) -> tuple[int, int]:
    got = dict(conn.execute(
        "select e.name, n.number from signal_numbers n join entries e on e.id = n.entry_id "
        "where n.platform = ? and e.name in ('SIGRTMIN', 'SIGRTMAX')", (platform,)).fetchall())
    return got.get("SIGRTMIN", 1 << 30), got.get("SIGRTMAX", 0)


def _realtime(conn, platform: str, name: str, m: re.Match) -> Hit:
    rtmin, rtmax = _rt_range(conn, platform)
    base = rtmin if m.group(1) == "IN" else rtmax
    number = base + int(m.group(2) or 0)
    if not rtmin <= number <= rtmax:
        raise NotFound(f"{name} is {number}, outside the real-time range {rtmin}..{rtmax}")
    target = "signal:SIGRTMAX" if number == rtmax and m.group(1) == "AX" else "signal:SIGRTMIN"
    return Hit(target, [f"{name} is signal {number} on {platform}"] if m.group(2) else [])


KIND = Signal()
