"""call: system calls, by name or variant, with the errno codes each returns on a TCP socket."""

from __future__ import annotations

import re

from .base import Field, Hit, Kind, NotFound, clean, fact, link, suggest

ERROR_KEYS = {"errno": True, "when": True}


class Call(Kind):
    name = "call"
    plural = "Calls"
    intro = "The system calls of a TCP program, with the errors each returns on a socket."
    fields = {
        **Kind.fields,
        "synopsis": Field("str", required=True),
        "man": Field("str", required=True),
        "errors": Field("records", keys=ERROR_KEYS),
    }
    sections = ("Meaning", "What it does to the connection", "Pitfalls", "How to see it")
    required_sections = ("Meaning", "What it does to the connection")
    command_help = "Look up a system call: what it does to the connection and the errno codes it returns."
    query_help = "connect, shutdown, sendmsg, accept4, epoll_wait"
    table = "calls"
    columns = {"id": "text", "name": "text", "synopsis": "text", "man": "text"}
    extra_tables = {
        "call_names": ({"name": "text", "entry_id": "text"}, ("name",)),
        "call_errors": ({"call_id": "text", "errno_id": "text", "position": "integer",
                         "condition": "text"}, ("errno_id",)),
    }
    descriptions = {
        "calls": ("System calls: prototype and manual page.", {
            "synopsis": "the C prototype", "man": "the manual page, as name(2)"}),
        "call_names": ("Every name a call is looked up by: the call and the variants its note covers.", {
            "name": "a call or variant (sendmsg)", "entry_id": "the note that covers it"}),
        "call_errors": ("The errno codes each call returns on a TCP socket, with the condition.", {
            "call_id": "the call", "errno_id": "the errno entry", "position": "order in the note",
            "condition": "when the call returns it"}),
    }

    def search_boost(self, meta: dict) -> float:
        return 2.0

    def references(self, meta: dict):
        for e in meta.get("errors") or []:
            if isinstance(e, dict) and isinstance(e.get("errno"), str):
                yield "errors", f"errno:{e['errno']}", "error entry"

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        m, id_ = note.meta, note.id
        rows = super().rows(note, ctx)
        rows["call_names"] = [{"name": n, "entry_id": id_} for n in [m["name"], *(m.get("aliases") or [])]]
        rows["call_errors"] = [{"call_id": id_, "errno_id": f"errno:{e['errno']}", "position": i,
                                "condition": e["when"]} for i, e in enumerate(m.get("errors") or [])]
        return rows

    def json(self, conn, entry_id: str) -> dict:
        out = super().json(conn, entry_id)
        out["errors"] = [{"errno": e["errno_id"], "when": e["condition"]} for e in conn.execute(
            "select errno_id, condition from call_errors where call_id = ? order by position", (entry_id,))]
        return out

    def find(self, conn, query: str) -> Hit:
        """A call by name or variant (sendmsg -> send); `connect(2)` and `connect()` work too."""
        name = re.sub(r"\(\d?\)$", "", clean(query).lower())
        row = conn.execute("select entry_id from call_names where name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no system call {query!r}", suggest(conn, query, "call"))
        return Hit(row[0], [] if row[0] == f"call:{name}" else [f"{name} is covered by {row[0]}"])

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("Synopsis", e["synopsis"]), fact("Manual", e["man"])]
        rows += [fact("Returns", link(err["errno"]), f" when {err['when']}") for err in e["errors"]]
        return rows

    def headline(self, e: dict) -> list:
        return [(e["man"], None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        errors = []
        for i, err in enumerate(e.get("errors") or []):
            errors += ([", "] if i else []) + [link(err["errno"])]
        return [("Manual", [e["man"]]), ("Synopsis", [e["synopsis"]]), ("Errors", errors)]


KIND = Call()
