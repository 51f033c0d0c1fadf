"""claim: things people repeat about sockets, each with the verdict a scenario reached."""

from __future__ import annotations

from .base import Field, Hit, Kind, NotFound, by_name, clean, fact, suggest

VERDICTS = ("confirmed", "refuted", "depends")


class Claim(Kind):
    name = "claim"
    plural = "Claims"
    intro = ("Things people repeat about TCP sockets, each checked by a scenario on a live kernel: "
             "confirmed, refuted, or depends (true only under conditions the entry names).")
    fields = {**Kind.fields, "verdict": Field("str", required=True, choices=VERDICTS)}
    sections = ("The claim", "What the kernel does", "What to do")
    required_sections = ("The claim", "What the kernel does")
    command_help = "Look up a claim by its slug (close-with-unread-data-sends-rst)."
    query_help = "time-wait-lasts-2msl, or the slug's words"
    table = "claims"
    columns = {"id": "text", "name": "text", "verdict": "text"}
    descriptions = {"claims": ("Claims people repeat about sockets, with the verdict of the scenario "
                               "that tests each.", {"verdict": "confirmed, refuted or depends"})}

    def find(self, conn, query: str) -> Hit:
        """A claim by its slug; spaces count as hyphens."""
        slug = "-".join(clean(query).lower().split())
        entry_id = by_name(conn, "claim", slug)
        if entry_id is None:
            raise NotFound(f"no claim {query!r}", suggest(conn, query, "claim"))
        return Hit(entry_id)

    def facts(self, e: dict) -> list[dict]:
        return [fact("Verdict", e["verdict"])]

    def headline(self, e: dict) -> list:
        style = {"confirmed": "good", "refuted": "bad"}.get(e["verdict"], "warn")
        return [("claim", None), (e["verdict"].upper(), style)]

    def list_columns(self, e: dict) -> list:
        return [("Verdict", [e["verdict"]])]


KIND = Claim()
