"""resolver: the error codes of getaddrinfo() (EAI_*), by name, by number on each C library and
operating system, by the message gai_strerror() gives, and by the forms programs print."""

from __future__ import annotations

from .base import BadQuery, Field, Hit, Kind, NotFound, Option, by_name, clean, fact, parse_int, suggest

# where a number comes from: glibc (the note's `number`), and the platforms a note lists
PLATFORMS = ("musl", "darwin", "freebsd", "windows", "libuv")
NEGATIVE = ("glibc", "musl", "libuv")  # these number EAI codes below zero; the others above it
LABELS = {"glibc": "glibc", "musl": "musl", "darwin": "macOS", "freebsd": "FreeBSD",
          "windows": "Windows", "libuv": "libuv (Node.js)"}
OS_NAMES = {"linux": "glibc", "glibc": "glibc", "musl": "musl", "darwin": "darwin", "macos": "darwin",
            "freebsd": "freebsd", "windows": "windows", "libuv": "libuv", "node": "libuv"}
# a C library's answer for a code it has no text for: it names no code, so explain ignores it
FALLBACK = "Unknown error"


def explain_worthy(text: str | None) -> bool:
    """A C library's message that identifies a code when pasted: not the fallback, and at least
    three words ("System error" or "Overflow" alone say nothing about name resolution)."""
    return bool(text) and text != FALLBACK and len(text.split()) >= 3


def sign_problem(platform: str, number) -> str | None:
    if isinstance(number, bool) or not isinstance(number, int):
        return None  # the type is KB006's
    if platform in NEGATIVE and number >= 0:
        return f"{platform} numbers getaddrinfo's codes below zero, not {number}"
    if platform not in NEGATIVE and number <= 0:
        return f"{platform} numbers getaddrinfo's codes above zero, not {number}"
    return None


class Resolver(Kind):
    name = "resolver"
    plural = "Resolver errors"
    intro = ("The error codes getaddrinfo() returns when a name cannot be turned into addresses, "
             "with their numbers on glibc, musl, macOS, FreeBSD, Windows and libuv, the message "
             "each C library gives, and the forms Python, Node.js, Go, Java and curl print.")
    fields = {
        **Kind.fields,
        "number": Field("int", required=True),
        "message": Field("str", required=True),
        "source": Field("str", required=True),
        "gnu": Field("bool"),
        "windows_name": Field("str_or_null"),
        "platforms": Field("records", keys={"platform": True, "number": True, "message": False,
                                             "source": True}),
        "printed": Field("records", keys={"text": True, "by": True, "source": True, "host": False}),
    }
    sections = ("Meaning", "Causes", "What to do", "How to see it")
    required_sections = ("Meaning",)
    unique = "number"
    command_help = "Look up a getaddrinfo() error (EAI_NONAME) by name, number or message."
    query_help = "EAI_NONAME, NONAME, -2, ENOTFOUND, 'Name or service not known', 8 --os darwin, 11001"
    negative_numbers = True
    options = (Option("--os", "os_", "Read the number on glibc (linux), musl, darwin, freebsd, "
                                     "windows or libuv."),)
    table = "resolver"
    columns = {"id": "text", "name": "text", "number": "integer", "message": "text", "gnu": "boolean",
               "windows_name": "text", "source": "text"}
    extra_tables = {
        "resolver_numbers": ({"entry_id": "text", "platform": "text", "number": "integer",
                              "message": "text", "source": "text"}, ("number",)),
        "resolver_forms": ({"entry_id": "text", "position": "integer", "text": "text", "by": "text",
                            "source": "text"}, ("entry_id",)),
    }
    descriptions = {
        "resolver": ("getaddrinfo() error codes: glibc's number and gai_strerror() text.", {
            "number": "the number glibc gives it (netdb.h)",
            "message": "glibc's gai_strerror() text",
            "gnu": "1 for the GNU extensions glibc defines only with _GNU_SOURCE",
            "windows_name": "the Windows Sockets code ws2tcpip.h defines it as",
            "source": "where the glibc number and message were read"}),
        "resolver_numbers": ("Every getaddrinfo() code's number and message per platform.", {
            "entry_id": "the resolver entry", "platform": "glibc, musl, darwin, freebsd, windows or libuv",
            "number": "the number there", "message": "the C library's message there, if it has one",
            "source": "where it was read"}),
        "resolver_forms": ("The lines programs print for a getaddrinfo() error.", {
            "entry_id": "the resolver entry", "position": "order in the note",
            "text": "the line as the program prints it",
            "by": "the program", "source": "where the line comes from"}),
    }

    def lint(self, meta: dict) -> list[tuple[str, str, str]]:
        out = []
        if problem := sign_problem("glibc", meta.get("number")):
            out.append(("number", "KB018", problem))
        rows = meta.get("platforms") if isinstance(meta.get("platforms"), list) else []
        seen = set()
        for row in (r for r in rows if isinstance(r, dict)):
            platform, number = row.get("platform"), row.get("number")
            if platform not in PLATFORMS or platform in seen:
                out.append(("platforms", "KB006", f"platform {platform!r} is unknown or repeated "
                                                  f"(one of: {', '.join(PLATFORMS)})"))
            elif isinstance(number, bool) or not isinstance(number, int):
                out.append(("platforms", "KB006", f"{platform}: number must be an integer"))
            elif problem := sign_problem(platform, number):
                out.append(("platforms", "KB018", problem))
            seen.add(platform)
        return out

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        rows = super().rows(note, ctx)
        m, id_ = note.meta, note.id
        rows["resolver"][0]["gnu"] = bool(m.get("gnu"))
        glibc = {"platform": "glibc", "number": m["number"], "message": m["message"], "source": m["source"]}
        platforms = [glibc] + list(m.get("platforms") or [])
        rows["resolver_numbers"] = [{"entry_id": id_, "platform": p["platform"], "number": p["number"],
                                     "message": p.get("message"), "source": p["source"]} for p in platforms]
        rows["resolver_forms"] = [{"entry_id": id_, "position": i, "text": f["text"], "by": f["by"],
                                   "source": f["source"]} for i, f in enumerate(m.get("printed") or [])]
        # explain reads the C libraries' own texts, and the printed forms with the host left out
        said = {p["message"]: p["platform"] for p in platforms
                if p["platform"] in ("glibc", "darwin") and explain_worthy(p.get("message"))}
        rows["messages"] = [{"entry_id": id_, "text": t, "source": f"{LABELS[p]}'s gai_strerror",
                             "deadline": False} for t, p in said.items()]
        rows["messages"] += [{"entry_id": id_, "text": t, "source": "note", "deadline": False}
                             for t in printed_patterns(m)]
        return rows

    def find(self, conn, query: str, os_: str | None = None) -> Hit:
        q = clean(query)
        platform = None
        if os_ is not None:
            platform = OS_NAMES.get(os_.lower())
            if platform is None:
                raise BadQuery(f"unknown platform {os_!r}; one of: {', '.join(OS_NAMES)}")
        number = parse_int(q)
        if number is not None:
            return _by_number(conn, number, platform)
        if platform:
            raise BadQuery("--os reads a number; give the code's number, or leave --os out")
        name = q.upper().replace("-", "_").replace(" ", "_")
        for candidate in (name, "EAI_" + name):
            if entry_id := by_name(conn, "resolver", candidate):
                return Hit(entry_id)
        if hit := _by_message(conn, q):
            return hit
        raise NotFound(f"no resolver error {query!r}", suggest(conn, query, "resolver"))

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from resolver where id = ?", (entry_id,)).fetchone()
        numbers = {p: None for p in ("glibc",) + PLATFORMS}
        messages, sources = {}, {}
        for n in conn.execute("select * from resolver_numbers where entry_id = ? order by rowid", (entry_id,)):
            numbers[n["platform"]] = n["number"]
            sources[n["platform"]] = n["source"]
            if n["message"]:
                messages[n["platform"]] = n["message"]
        printed = [{"text": f["text"], "by": f["by"], "source": f["source"]} for f in conn.execute(
            "select * from resolver_forms where entry_id = ? order by position", (entry_id,))]
        return {"number": r["number"], "message": r["message"], "gnu": bool(r["gnu"]),
                "windows_name": r["windows_name"], "numbers": numbers, "messages": messages,
                "sources": sources, "printed": printed}

    def facts(self, e: dict) -> list[dict]:
        rows = [fact("Number on glibc", e["number"]), fact("Message on glibc", e["message"])]
        rows.append(fact("Standard", "a GNU extension: glibc defines it only with _GNU_SOURCE"
                         if e["gnu"] else "POSIX (netdb.h)"))
        for platform in PLATFORMS:
            number = e["numbers"].get(platform)
            if number is None:
                continue
            shown = f"{number} ({e['windows_name']})" if platform == "windows" and e["windows_name"] \
                else str(number)
            if e["messages"].get(platform):
                shown += f": {e['messages'][platform]}"
            rows.append(fact(LABELS[platform], shown))
        for f in e["printed"]:
            rows.append(fact(f"Printed by {f['by']}", f["text"]))
        return rows

    def headline(self, e: dict) -> list:
        return [(f"getaddrinfo {e['number']}", None), (e["message"], "bold")]

    def list_columns(self, e: dict) -> list:
        n = e["numbers"]
        show = (lambda v: "" if v is None else str(v))
        return [("glibc", [str(e["number"])]), ("macOS", [show(n["darwin"])]),
                ("Windows", [show(n["windows"])]), ("Message", [e["message"]]),
                ("GNU", ["GNU" if e["gnu"] else ""])]

    def sort_key(self, e: dict):
        return (-e["number"], e["name"])

    def order(self, meta: dict):
        number = meta.get("number")
        return (-number if isinstance(number, int) else 1 << 30, meta.get("name", ""))


def printed_patterns(meta: dict) -> list[str]:
    """The printed forms as explain matches them: the host a form names is left out (as "{}",
    which splits the clause there), so a line about another host matches too."""
    out = []
    for f in meta.get("printed") or []:
        text = f["text"].replace(f["host"], "{}") if f.get("host") else f["text"]
        if text not in out:
            out.append(text)
    return out


def _by_number(conn, number: int, platform: str | None) -> Hit:
    notes = []
    if platform is None:  # where a number of that size comes from
        platform = "windows" if number >= 10000 else "libuv" if number <= -3000 else "glibc"
        if platform != "glibc":
            notes.append(f"{number} is read as a {LABELS[platform]} code")
    rows = conn.execute("select entry_id, platform from resolver_numbers where number = ? and platform = ?",
                        (number, platform)).fetchall()
    if not rows and platform == "glibc" and number > 0:  # glibc's are negative: BSD's are positive
        rows = conn.execute("select entry_id, platform from resolver_numbers where number = ? and "
                            "platform = 'darwin'", (number,)).fetchall()
        if rows:
            notes.append(f"glibc numbers these codes below zero; {number} is read as macOS's "
                         "(FreeBSD's is the same); give --os for another platform")
    if not rows:
        raise NotFound(f"no resolver error {number} on {LABELS.get(platform, platform)}", [r[0] for r in conn.execute(
            "select distinct entry_id from resolver_numbers where number = ?", (number,))])
    also = [{"id": r[0], "name": r[0].split(":")[1], "platforms": r[1].split(", ")} for r in conn.execute(
        "select entry_id, group_concat(platform, ', ') from resolver_numbers where number = ? "
        "and entry_id != ? group by entry_id order by min(rowid)", (number, rows[0][0]))]
    return Hit(rows[0][0], notes, also)


def _by_message(conn, text: str) -> Hit | None:
    """A C library's gai_strerror() text, or a program's printed form, in any case."""
    row = conn.execute(
        "select entry_id, platform from resolver_numbers where lower(message) = lower(?) "
        "and message != ? order by platform != 'glibc' limit 1", (text, FALLBACK)).fetchone()
    if row:
        return Hit(row[0], [f"{LABELS[row[1]]}'s message for {row[0].split(':')[1]}"])
    row = conn.execute("select entry_id, by from resolver_forms where lower(text) = lower(?) limit 1",
                       (text,)).fetchone()
    if row:
        return Hit(row[0], [f"what {row[1]} prints for {row[0].split(':')[1]}"])
    return None


KIND = Resolver()
