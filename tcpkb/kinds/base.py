"""What every kind is made of, and the small pieces its module builds from.

A kind (errno, signal, state …) is one module in this package holding a `Kind` subclass:
the grammar of its notes, the tables and rows the build writes, how a query finds an entry,
the kind's own JSON fields, its facts as labelled rows, its terminal headline and its list
columns. Everything else — lint, build, lookups, the CLI, both web faces — iterates the
registry in `tcpkb.kinds`.

This module is on the path of every lookup: standard library only, and cheap ones at that
(no dataclasses, no typing at run time).
"""

from __future__ import annotations

import re

LINUX_ABIS = ("alpha", "mips", "sparc", "parisc", "powerpc")
OTHER_OSES = ("darwin", "freebsd", "windows")
MAX_QUERY = 500  # characters; longer input is not a name, a number or a search


# --- the grammar ---------------------------------------------------------------------

class Field:
    """One front-matter field: its type, whether it is required, its allowed values.

    Types: str, int, bool, str_list, str_or_null, value_or_null, numbers, alias_numbers,
    release ("6.12"), range (">=6.1,<6.12"), and records (a list of mappings with the `keys`
    given, True for required).
    `versioned` fields may instead map kernel ranges to values (">=6.18": "4194304")."""

    __slots__ = ("type", "required", "choices", "keys", "versioned")

    def __init__(self, type: str, required: bool = False, choices: tuple = (), keys=(),
                 versioned: bool = False):
        self.type, self.required, self.choices = type, required, choices
        self.keys, self.versioned = keys, versioned


COMMON_FIELDS = {
    "name": Field("str", required=True),
    "title": Field("str", required=True),
    "summary": Field("str", required=True),
    "summary_zh": Field("str", required=True),
    "aliases": Field("str_list"),
    "seen_as": Field("str_list"),
    "seen_as_deadline": Field("str_list"),
    "related": Field("str_list"),
}


def slug(section: str) -> str:
    """'What to do' -> 'what-to-do': the stable key of a section."""
    return section.lower().replace(" ", "-")


# --- reading a query -----------------------------------------------------------------

class NotFound(Exception):
    def __init__(self, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.suggestions = suggestions or []


class BadQuery(Exception):
    """The query cannot mean anything (empty, too long, an unknown platform)."""


class Hit:
    """What a finder found: an entry id (or a whole answer without a note, such as a flag
    combination), and remarks on how the query was read."""

    __slots__ = ("id", "notes", "also", "answer")

    def __init__(self, id: str | None, notes: list[str] | None = None, also: list[dict] | None = None,
                 answer: dict | None = None):
        self.id, self.notes, self.also, self.answer = id, notes or [], also or [], answer


class Option:
    """A lookup option such as --os: its flag, the finder's keyword, the values it takes."""

    __slots__ = ("flag", "keyword", "help")

    def __init__(self, flag: str, keyword: str, help: str):
        self.flag, self.keyword, self.help = flag, keyword, help

    @property
    def param(self) -> str:
        """Its name in a URL's query string: --os -> os."""
        return self.flag.lstrip("-")


def clean(query: str) -> str:
    query = query.strip()
    if not query:
        raise BadQuery("the query is empty")
    if len(query) > MAX_QUERY:
        raise BadQuery(f"the query is {len(query)} characters long; the limit is {MAX_QUERY}")
    return query


def parse_int(text: str) -> int | None:
    """104, -104, +104, 0x68 -> an integer; anything else -> None."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d{1,9}", text):
        return int(text)
    if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]{1,8}", text):
        return int(text, 16)
    return None


def by_name(conn, kind: str, name: str) -> str | None:
    """The id of the entry of `kind` named or aliased `name`, in any case."""
    row = conn.execute(
        "select id from entries where kind = ? and upper(name) = upper(?) union all "
        "select a.entry_id from aliases a join entries e on e.id = a.entry_id "
        "where e.kind = ? and upper(a.alias) = upper(?) limit 1", (kind, name, kind, name)).fetchone()
    return row[0] if row else None


def suggest(conn, query: str, kind: str | None = None) -> list[str]:
    """The closest ids to a query that found nothing."""
    import difflib  # only a miss pays for it

    rows = conn.execute(
        "select e.id, e.name from entries e where ?1 is null or e.kind = ?1 union all "
        "select e.id, a.alias from aliases a join entries e on e.id = a.entry_id "
        "where ?1 is null or e.kind = ?1", (kind,)).fetchall()
    by_upper: dict[str, str] = {}
    for id_, name in rows:
        by_upper.setdefault(name.upper(), id_)
    word = query.split(":")[-1].strip().upper()[:60]
    close = difflib.get_close_matches(word, list(by_upper), n=5, cutoff=0.6)
    if not close and len(word) >= 3:
        close = [n for n in by_upper if word in n][:5]
    return list(dict.fromkeys(by_upper[n] for n in close))


def abi_numbers(conn, table: str, entry_id: str) -> dict[str, int | None]:
    """A number on Linux and each ABI from a kind's numbers table (None where the ABI lacks it)."""
    numbers: dict[str, int | None] = {p: None for p in ("linux",) + LINUX_ABIS}
    for platform, number in conn.execute(f"select platform, number from {table} where entry_id = ?",
                                         (entry_id,)):
        numbers[platform] = number
    return numbers


def meta_abi_numbers(meta: dict) -> dict[str, int | None]:
    """A note's number on every Linux ABI: listed where it differs, else the generic one."""
    listed = meta.get("numbers") or {}
    out: dict[str, int | None] = {"linux": meta["number"]}
    for abi in LINUX_ABIS:
        out[abi] = listed.get(abi, meta["number"])
    return out


# --- facts: one model for every face -------------------------------------------------
# A fact is {"label", "value": [parts]}; a part is a string or {"id": entry id, "text": …}.
# A fact whose value differs between kernels also has "kernels": [{"value", "kernels"}].

def link(entry_id: str, text: str | None = None) -> dict:
    return {"id": entry_id, "text": text or entry_id.split(":", 1)[1]}


def fact(label: str, *parts) -> dict:
    return {"label": label, "value": [p if isinstance(p, dict) else str(p) for p in parts]}


def joined(items: list, sep: str = ", ") -> list:
    out: list = []
    for i, item in enumerate(items):
        if i:
            out.append(sep)
        out.append(item)
    return out


def differing_abis(numbers: dict, linux: int | None) -> str:
    """'alpha 35, mips 11' for the Linux ABIs whose number differs from the generic one."""
    return ", ".join(f"{p} {'none' if numbers.get(p) is None else numbers[p]}"
                     for p in LINUX_ABIS if numbers.get(p) != linux)


def kernel_rows(e: dict, field: str, always: bool = False) -> list[dict]:
    """[{value, kernels}] for a field that differs by kernel, one row per value: the note's
    ranges where it gives them (the statement the checks verify), else what the checks read
    when kernels disagree (or always, for a fact that only means something per kernel)."""
    per_kernel = (e.get("by_kernel") or {}).get(field) or []
    declared = [k for k in per_kernel if k["source"] == "note"]
    observed = [k for k in per_kernel if k["source"] == "observed"]
    if declared:
        rows = declared
    elif observed and (always or len({repr(k["value"]) for k in observed}) > 1):
        rows = observed
    else:
        return []
    grouped: dict[str, dict] = {}
    for k in rows:
        grouped.setdefault(repr(k["value"]), {"value": k["value"], "kernels": []})["kernels"] += k["kernels"]
    return list(grouped.values())


def versioned_fact(label: str, e: dict, field: str, shown=None, always_kernels: bool = False) -> dict | None:
    """A fact for a field that may differ by kernel: the entry's value, with its value on each
    kernel (kernel_rows) where kernels differ. None when there is nothing to say."""
    shown = shown or (lambda v: "(empty)" if v == "" else str(v))
    rows = kernel_rows(e, field, always_kernels)
    value = e.get(field, rows[0]["value"] if len(rows) == 1 else None)
    if value is None and not rows:
        return None
    out = fact(label, shown(value) if value is not None else "varies")
    if rows:
        out["kernels"] = [{"value": "absent" if k["value"] is None else shown(k["value"]),
                           "kernels": k["kernels"]} for k in rows]
    return out


def value_on(e: dict, field: str, kernel: str):
    """What the note says `field` is on `kernel`: its per-kernel-range value where it gives
    ranges (None when no range covers the kernel), else its one value."""
    from .. import kernels

    declared = [k for k in (e.get("by_kernel") or {}).get(field) or [] if k["source"] == "note"]
    if not declared:
        return e.get(field)
    for k in declared:
        if any(kernels.in_range(spec, kernel) for spec in k["kernels"]):
            return k["value"]
    return None


def exists_on(e: dict, kernel: str) -> bool:
    """Does the note say the entry exists on `kernel` (since, removed_in, absent_on)?"""
    from .. import kernels

    if e.get("absent_on") and any(kernels.in_range(part.strip(), kernel) for part in e["absent_on"].split(";")):
        return False
    return kernels.exists_on(e.get("since"), e.get("removed_in"), kernel)


LIFETIME_FIELDS = {"since": Field("release"), "absent_on": Field("range"), "removed_in": Field("release")}


def lifetime_facts(e: dict) -> list[dict]:
    """Added, Absent and Removed rows from an entry's since, absent_on and removed_in."""
    rows = []
    if e.get("since"):
        rows.append(fact("Added", f"in Linux {e['since']}: absent on older kernels"))
    if e.get("absent_on"):
        rows.append(fact("Absent", f"on {kernels_text([p.strip() for p in e['absent_on'].split(';')])}: verified"))
    if e.get("removed_in"):
        rows.append(fact("Removed", f"in Linux {e['removed_in']}"))
    return rows


def fact_text(f: dict) -> str:
    """A fact's value as plain text, per kernel where it differs: '4194304 on 6.18; 212992 on 6.1'."""
    if f.get("kernels"):
        return "; ".join(f"{k['value']} on {kernels_text(k['kernels'])}" for k in f["kernels"])
    return "".join(p if isinstance(p, str) else p["text"] for p in f["value"])


def kernels_text(kernels: list[str]) -> str:
    """['>=6.18', '6.12'] -> '6.12, 6.18 and later'; ['6.1.0-47', '6.12.57'] -> '6.1.0-47, 6.12.57'."""
    import re

    def when(k: str) -> tuple:
        m = re.search(r"(\d+)\.(\d+)", k)
        return (int(m.group(1)), int(m.group(2))) if m else (1 << 30,)

    words = []
    for k in sorted(kernels, key=when):
        if k.startswith(">="):
            words.append(f"{k[2:]} and later")
        elif k.startswith("<="):
            words.append(f"{k[2:]} and earlier")
        elif k.startswith("<"):
            words.append(f"kernels before {k[1:]}")
        else:
            words.append(k.replace(",", " and "))
    return ", ".join(words)


# --- the kind ------------------------------------------------------------------------

class Kind:
    """The defaults every kind starts from; a kind module overrides what it has."""

    name = ""
    plural = ""                    # the heading of its list page and its place in the navigation
    intro = ""                     # a sentence or two above its list page's table (markdown-free)
    fields: dict = COMMON_FIELDS
    sections: tuple = ()
    required_sections: tuple = ()
    socket_sections: tuple = ()    # also required when the note's `socket` field is true
    unique: str | None = None      # a field whose value is unique among the kind's notes
    command_help = ""              # the CLI command's one line (None: no command of its own)
    query_help = ""                # what the query may be, by example
    options: tuple = ()            # Option()s the finder takes
    negative_numbers = False       # a query may be a negative number (-104), not an option
    live_answer = False            # its answer carries this machine's state: never pre-rendered
    numbers_by_kernel = False      # its numbers are read against the running kernel: not pre-rendered
    table = ""                     # the kind's own table (id, name, …), created by the build
    columns: dict = {}             # its columns -> SQL type names (text, integer, real, boolean)
    descriptions: dict = {}        # table name -> (description, {column: description}) for Datasette
    extra_tables: dict = {}        # other tables: name -> (columns, foreign keys)
    kernel_facts: tuple = ()       # fields a check observes per kernel (kept in facts_by_kernel)

    # build
    def rows(self, note, ctx) -> dict[str, list[dict]]:
        """{table: rows} for one note; the kind's own table row at least."""
        meta = note.meta
        return {self.table: [{"id": note.id, **{c: meta.get(c) for c in self.columns if c != "id"}}]}

    def order(self, meta: dict):
        """Where a note sorts among its kind: by number where it has one, then by name."""
        number = meta.get("number", meta.get("bit"))
        return (number if isinstance(number, int) else 1 << 30, meta.get("name", ""))

    def search_boost(self, meta: dict) -> float:
        """tcpkb is about sockets: the entries a socket program meets rank first in search."""
        return 2.0 if meta.get("socket") else 1.0

    def references(self, meta: dict):
        """(field, id, what) for each id the note's own fields name (besides `related`)."""
        return ()

    def lint(self, meta: dict) -> list[tuple[str, str, str]]:
        """Kind-specific problems: (field, code, message)."""
        return []

    # query
    def json(self, conn, entry_id: str) -> dict:
        """The kind's own fields of an entry, as --json prints them."""
        row = conn.execute(f"select * from {self.table} where id = ?", (entry_id,)).fetchone()
        return {k: row[k] for k in row.keys() if k not in ("id", "name")} if row else {}

    def find(self, conn, query: str, **options) -> Hit:
        """A query -> the entry it names (by name or alias, in any case)."""
        entry_id = by_name(conn, self.name, clean(query))
        if entry_id is None:
            raise NotFound(f"no {self.name} {query!r}", suggest(conn, query, self.name))
        return Hit(entry_id)

    # presentation
    def facts(self, e: dict) -> list[dict]:
        return []

    def headline(self, e: dict) -> list[tuple[str, str | None]]:
        """The terminal's first line after the name: (text, style) segments; style is None,
        'bold', 'good', 'warn' or 'bad'."""
        return [(e["title"], "bold")]

    def list_columns(self, e: dict) -> list[tuple[str, list]]:
        """(heading, parts) cells of the entry's row on list pages, after its name."""
        return [("Title", [e["title"]])]

    def sort_key(self, e: dict):
        """The order of a kind's list page."""
        return e["name"]
