"""flag: TCP header flags by name, tcpdump letter, or a combination (S., SYN+ACK, 0x12)."""

from __future__ import annotations

import re

from .base import Field, Hit, Kind, NotFound, by_name, clean, fact, parse_int, suggest

COMBINATION_KEYS = {"flags": True, "name": True, "meaning": True}


class Flag(Kind):
    name = "flag"
    plural = "Flags"
    intro = "The bits of the TCP header's flags field, with the letter tcpdump prints for each."
    fields = {
        **Kind.fields,
        "bit": Field("int", required=True),
        "letter": Field("str", required=True),
        "rfc": Field("str", required=True),
        "combinations": Field("records", keys=COMBINATION_KEYS),
    }
    sections = ("Meaning", "When the kernel sets it", "How to see it")
    required_sections = sections
    unique = "bit"
    command_help = "Look up a TCP flag, or a combination as tcpdump prints it."
    query_help = "RST, R, S. (SYN+ACK), SYN+ACK, 0x12"
    table = "flags"
    columns = {"id": "text", "name": "text", "bit": "integer", "letter": "text", "rfc": "text"}
    extra_tables = {"flag_combinations": ({"entry_id": "text", "flags": "text", "name": "text",
                                           "meaning": "text"}, ())}
    descriptions = {
        "flags": ("TCP header flags: bit, tcpdump letter, defining document.", {
            "bit": "the bit in the 12-bit flags field (FIN is 1, AE is 256)",
            "letter": "what tcpdump prints for it", "rfc": "the document that defines it"}),
        "flag_combinations": ("Combinations of flags people meet, as tcpdump prints them.", {
            "flags": "tcpdump's letters (S., R., F.)", "name": "the usual name",
            "meaning": "what the combination means"}),
    }

    def search_boost(self, meta: dict) -> float:
        return 2.0

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        rows = super().rows(note, ctx)
        rows["flag_combinations"] = [{"entry_id": note.id, "flags": c["flags"], "name": c["name"],
                                      "meaning": c["meaning"]}
                                     for c in note.meta.get("combinations") or []]
        return rows

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from flags where id = ?", (entry_id,)).fetchone()
        combos = [dict(c) for c in conn.execute(
            "select flags, name, meaning from flag_combinations where entry_id = ? order by rowid",
            (entry_id,))]
        return {"bit": r["bit"], "hex": f"0x{r['bit']:03x}", "letter": r["letter"], "rfc": r["rfc"],
                "combinations": combos}

    def find(self, conn, query: str) -> Hit:
        """A flag by name (RST), by letter (R), or a combination: its flags are the answer's."""
        query = clean(query)
        if id_ := by_name(conn, "flag", query):
            return Hit(id_)
        flags = conn.execute("select id, name, bit, letter from flags order by bit").fetchall()
        mask = parse_int(query)
        if mask is None:
            mask = _mask_of_words(flags, query)
            if mask is None:
                raise NotFound(f"no TCP flag or combination {query!r}", suggest(conn, query, "flag"))
        chosen = [f for f in flags if mask & f["bit"]]
        if not chosen or sum(f["bit"] for f in chosen) != mask:
            raise NotFound(f"{query!r} is not a combination of TCP flags (bits 0x001..0x100)")
        if len(chosen) == 1:
            return Hit(chosen[0]["id"])
        return Hit(None, answer=_combination(conn, chosen, mask))

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("Bit", f"{e['bit']} ({e['hex']})"), fact("tcpdump letter", e["letter"]),
                fact("Defined in", e["rfc"])]
        rows += [fact(c["flags"], f"{c['name']}: {c['meaning']}") for c in e.get("combinations") or []]
        return rows

    def headline(self, e: dict) -> list:
        return [(f"flag {e['hex']} ({e['letter']})", None), (e["title"], "bold")]

    def list_columns(self, e: dict) -> list:
        return [("Bit", [e["hex"]]), ("tcpdump", [e["letter"]]), ("Defined in", [e["rfc"]]),
                ("Title", [e["title"]])]

    def sort_key(self, e: dict):
        return e["bit"]


def _mask_of_words(flags, query: str) -> int | None:
    letters = {f["letter"]: f for f in flags}
    names = {f["name"]: f for f in flags}
    words = [w for w in re.split(r"[\s,+|/]+", query.upper()) if w]
    if words and all(w in names for w in words):
        return sum(names[w]["bit"] for w in words)
    if all(ch in letters for ch in query):
        return sum(letters[ch]["bit"] for ch in dict.fromkeys(query))
    return None


def _combination(conn, chosen, mask: int) -> dict:
    """A combination's answer; its `flags` are ids, made entries by the lookup."""
    letters = "".join(f["letter"] for f in chosen)  # tcpdump prints them in bit order too
    combos = conn.execute("select entry_id, flags, name, meaning from flag_combinations").fetchall()
    match = next((c for c in combos if sorted(c["flags"]) == sorted(letters)), None)
    name = "+".join(f["name"] for f in chosen)
    return {"id": None, "kind": "combination", "name": name,
            "title": match["name"] if match else name, "summary": match["meaning"] if match else "",
            "bits": mask, "hex": f"0x{mask:03x}", "letters": match["flags"] if match else letters,
            "flags": [f["id"] for f in chosen]}


KIND = Flag()
