"""state: TCP states by any spelling (RFC 9293, kernel, ss, netstat), number or /proc hex."""

from __future__ import annotations

import re

from .base import Field, Hit, Kind, NotFound, clean, fact, link, suggest

SIDES = ("client", "server", "both", "closer", "passive-closer", "none")
TRANSITION_KEYS = {"to": True, "cause": True, "event": True, "send": False, "side": False, "rfc": False}


class State(Kind):
    name = "state"
    plural = "States"
    intro = ("The TCP states as Linux numbers them (tcpi_state, the st column of /proc/net/tcp), "
             "with the spelling RFC 9293, ss and netstat use.")
    fields = {
        **Kind.fields,
        "number": Field("int", required=True),
        "hex": Field("str_or_null", required=True),
        "rfc": Field("str_or_null", required=True),
        "ss": Field("str_or_null", required=True),
        "netstat": Field("str_or_null", required=True),
        "side": Field("str", required=True, choices=SIDES),
        "transitions": Field("records", required=True, keys=TRANSITION_KEYS),
    }
    sections = ("Meaning", "How it is entered", "How it is left", "When it piles up", "How to see it")
    required_sections = ("Meaning", "How it is entered", "How it is left", "How to see it")
    unique = "number"
    command_help = "Look up a TCP state by any spelling (RFC, kernel, ss, netstat) or number."
    query_help = "TIME_WAIT, time-wait, TIME-WAIT, ESTAB, FIN_WAIT1, 6, 06, 0A"
    table = "states"
    columns = {"id": "text", "name": "text", "number": "integer", "hex": "text", "rfc": "text",
               "ss": "text", "netstat": "text", "side": "text"}
    extra_tables = {"transitions": ({"from_state": "text", "to_state": "text", "position": "integer",
                                     "cause": "text", "event": "text", "send": "text", "side": "text",
                                     "rfc": "boolean"},
                                    ())}
    descriptions = {
        "states": ("TCP states: the kernel's number, /proc/net/tcp hex and every spelling.", {
            "number": "tcpi_state, the kernel's state number",
            "hex": "the st column of /proc/net/tcp; empty for states it never prints",
            "rfc": "the RFC 9293 spelling; empty for Linux-only states",
            "ss": "how ss prints it", "netstat": "how netstat prints it",
            "side": "who reaches it: client, server, both, closer, passive-closer or none"}),
        "transitions": ("The TCP state machine as Linux runs it: one row per way out of a state.", {
            "from_state": "the state left", "to_state": "the state entered",
            "position": "order in the note",
            "cause": "what makes it happen, as an arrow of RFC 9293's Figure 5 is labelled (rcv SYN, close())",
            "event": "what makes it happen, in a sentence",
            "send": "the flags sent, if any", "side": "who takes it",
            "rfc": "1 if RFC 9293 has it; 0 for Linux's own"}),
    }

    def references(self, meta: dict):
        for t in meta.get("transitions") or []:
            if isinstance(t, dict) and isinstance(t.get("to"), str):
                yield "transitions", f"state:{t['to']}", "transition to"

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        rows = super().rows(note, ctx)
        rows["transitions"] = [{"from_state": note.id, "to_state": f"state:{t['to']}", "position": i,
                                "cause": t["cause"], "event": t["event"], "send": t.get("send"), "side": t.get("side"),
                                "rfc": bool(t.get("rfc"))}
                               for i, t in enumerate(note.meta["transitions"])]
        return rows

    def json(self, conn, entry_id: str) -> dict:
        out = super().json(conn, entry_id)
        out["transitions"] = [{"to": t["to_state"], "cause": t["cause"], "event": t["event"], "send": t["send"],
                               "side": t["side"], "rfc": bool(t["rfc"])}
                              for t in conn.execute("select * from transitions where from_state = ?"
                                                    " order by position", (entry_id,))]
        return out

    def find(self, conn, query: str) -> Hit:
        query = clean(query)
        number, notes = None, []
        if re.fullmatch(r"\d{1,3}", query):
            number = int(query)
        elif re.fullmatch(r"(0[xX])?[0-9a-fA-F]{1,2}", query) and not re.fullmatch(r"[a-zA-Z]+", query):
            number = int(query, 16)
            notes.append(f"{query} is read as the hex state code of /proc/net/tcp ({number})")
        if number is not None:
            row = conn.execute("select id, hex from states where number = ?", (number,)).fetchone()
            if row is None:
                raise NotFound(f"no TCP state numbered {number}", [])
            if notes and row[1] is None:
                notes = [f"{query} is read as state {number} in hex; /proc/net/tcp never prints that code"]
            return Hit(row[0], notes)
        key = _key(query.removeprefix("TCP_").removeprefix("tcp_"))
        for r in conn.execute("select s.id, s.name, s.rfc, s.ss, s.netstat, (select group_concat("
                              "alias, char(31)) from aliases a where a.entry_id = s.id) as aliases "
                              "from states s"):
            spellings = [r["name"], r["rfc"], r["ss"], r["netstat"], *(r["aliases"] or "").split("\x1f")]
            if key in {_key(s) for s in spellings if s}:
                return Hit(r["id"])
        raise NotFound(f"no TCP state {query!r}", suggest(conn, query, "state"))

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("tcpi_state", e["number"]), fact("/proc/net/tcp st", e["hex"] or "never printed"),
                fact("RFC 9293", e["rfc"] or "not an RFC state"), fact("ss", e["ss"] or "never printed"),
                fact("netstat", e["netstat"] or "never printed"), fact("Reached by", e["side"])]
        for t in e["transitions"]:
            send = f"; sends {t['send']}" if t["send"] else ""
            rows.append(fact("Leads to", link(t["to"]), f" on {t['event']}{send}"
                             + ("" if t["rfc"] else " (Linux only)")))
        return rows

    def headline(self, e: dict) -> list:
        proc = f"/proc hex {e['hex']}" if e["hex"] else "never in /proc/net/tcp"
        return [(f"state {e['number']} ({proc})", None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        return [("Number", [str(e["number"])]), ("Hex", [e["hex"] or ""]), ("RFC 9293", [e["rfc"] or ""]),
                ("ss", [e["ss"] or ""]), ("netstat", [e["netstat"] or ""]), ("Reached by", [e["side"]]),
                ("Title", [e["title"]])]

    def sort_key(self, e: dict):
        return (e["number"], e["name"])


def _key(text: str) -> str:
    return re.sub(r"[-_\s]", "", text.upper())


KIND = State()
