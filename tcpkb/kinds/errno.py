"""errno: error codes, by number on every platform, name, alias or Windows Sockets name."""

from __future__ import annotations

import json

from .base import (LINUX_ABIS, OTHER_OSES, BadQuery, Field, Hit, Kind, NotFound, Option, by_name,
                   clean, differing_abis, fact, joined, link, parse_int, suggest)

PLATFORMS = ("linux",) + LINUX_ABIS + OTHER_OSES
FULL = ("Meaning", "Causes", "What to do", "How to see it")


class Errno(Kind):
    name = "errno"
    plural = "Errors"
    intro = ("Error codes as the kernel numbers them on x86-64, arm64 and the other generic ABIs, "
             "with the numbers the same names have on the Linux ABIs that differ (alpha, mips, "
             "sparc, parisc, powerpc), on macOS, FreeBSD and Windows Sockets, and the C library's "
             "message. The ones a socket program meets are marked.")
    fields = {
        **Kind.fields,
        "number": Field("int", required=True),
        "message": Field("str", required=True),
        "numbers": Field("numbers", keys=LINUX_ABIS + OTHER_OSES),
        "alias_numbers": Field("alias_numbers", keys=LINUX_ABIS + OTHER_OSES),
        "socket": Field("bool"),
        "internal": Field("bool"),
    }
    sections = FULL
    required_sections = ("Meaning",)
    socket_sections = FULL
    unique = "number"
    command_help = "Look up an errno by number or name."
    query_help = "104, ECONNRESET, econnreset, 0x68, -104, WSAECONNRESET or 10054"
    negative_numbers = True
    options = (Option("--os", "os_", "Read the number as darwin, freebsd, windows or linux."),
               Option("--arch", "arch", "Read the number on a Linux ABI: alpha, mips, sparc, parisc, powerpc."))
    table = "errno"
    columns = {"id": "text", "name": "text", "number": "integer", "message": "text",
               "socket": "boolean", "internal": "boolean", "calls": "text"}
    extra_tables = {"errno_numbers": ({"entry_id": "text", "platform": "text", "name": "text",
                                       "number": "integer"}, ("number",))}
    descriptions = {
        "errno": ("Error codes: the Linux generic number, glibc's message, socket relevance.", {
            "number": "The number on x86-64, arm64 and the other generic Linux ABIs",
            "message": "glibc's strerror() text",
            "socket": "1 if a socket program meets this code",
            "internal": "1 for kernel-internal codes that must never reach user space",
            "calls": "JSON list of the system calls whose notes say they return it"}),
        "errno_numbers": ("Every errno's number per platform (Linux ABIs, macOS, FreeBSD, Windows "
                          "Sockets, libuv on Windows), under the name it has there.", {
            "platform": "linux, alpha, mips, sparc, parisc, powerpc, darwin, freebsd, windows or libuv",
            "name": "the name on that platform (WSAECONNRESET, UV_ECONNRESET, an alias)",
            "number": "the number on that platform"}),
    }

    def rows(self, note, ctx) -> dict[str, list[dict]]:
        m, id_ = note.meta, note.id
        numbers = []
        for platform, number in platform_numbers(m).items():
            if number is not None:
                name = ("WSA" + m["name"]) if platform == "windows" else m["name"]
                numbers.append({"entry_id": id_, "platform": platform, "name": name, "number": number})
        for alias, per in (m.get("alias_numbers") or {}).items():
            numbers += [{"entry_id": id_, "platform": p, "name": alias, "number": n} for p, n in per.items()]
        row = {"id": id_, "name": m["name"], "number": m["number"], "message": m["message"],
               "socket": bool(m.get("socket")), "internal": bool(m.get("internal")),
               "calls": json.dumps(ctx.calls_returning(id_))}
        return {"errno": [row], "errno_numbers": numbers}

    def json(self, conn, entry_id: str) -> dict:
        r = conn.execute("select * from errno where id = ?", (entry_id,)).fetchone()
        numbers = {p: None for p in PLATFORMS + ("libuv",)}
        names: dict = {}
        for n in conn.execute("select platform, name, number from errno_numbers where entry_id = ?"
                              " order by rowid", (entry_id,)):
            if n["name"] in (r["name"], "WSA" + r["name"], "UV_" + r["name"]):
                numbers[n["platform"]] = n["number"]
            else:  # an alias with a number of its own there (EDEADLOCK on powerpc)
                names.setdefault(n["name"], {})[n["platform"]] = n["number"]
        out = {"number": r["number"], "message": r["message"], "numbers": numbers,
               "socket": bool(r["socket"]), "internal": bool(r["internal"]),
               "calls": json.loads(r["calls"])}
        if numbers["windows"] is not None:
            out["windows_name"] = "WSA" + r["name"]
        if names:
            out["alias_numbers"] = names
        return out

    def find(self, conn, query: str, os_: str | None = None, arch: str | None = None) -> Hit:
        query = clean(query)
        if os_ and arch:
            raise BadQuery("give --os or --arch, not both")
        platform = (os_ or arch or "linux").lower()
        if platform not in PLATFORMS:
            raise BadQuery(f"unknown platform {platform!r}; one of: {', '.join(PLATFORMS)}")
        number = parse_int(query)
        if number is None:
            return _by_errno_name(conn, query)
        return _by_number(conn, number, platform, explicit=bool(os_ or arch), os_given=bool(os_))

    def facts(self, e: dict) -> list[dict]:
        nums = e["numbers"]
        rows = [fact("Number on Linux", e["number"]), fact("Message", e["message"])]
        if other := differing_abis(nums, e["number"]):
            rows.append(fact("Other Linux ABIs", other))
        for platform, label in (("darwin", "macOS"), ("freebsd", "FreeBSD")):
            if nums.get(platform) is not None:
                rows.append(fact(label, nums[platform]))
        if nums.get("windows") is not None:
            rows.append(fact("Windows", f"{nums['windows']} ({e['windows_name']})"))
        if nums.get("libuv") is not None:
            rows.append(fact("libuv / Node.js on Windows", nums["libuv"]))
        for alias, per in (e.get("alias_numbers") or {}).items():
            rows.append(fact(alias, ", ".join(f"{p} {n}" for p, n in per.items())))
        if e["calls"]:
            rows.append(fact("Returned by", *joined([link(f"call:{c}") for c in e["calls"]])))
        rows.append(fact("Sockets", "met by socket programs" if e["socket"] else "rarely seen on sockets"))
        if e["internal"]:
            rows.append(fact("Internal", "kernel-internal code: user space should never see it"))
        return rows

    def headline(self, e: dict) -> list:
        return [(f"errno {e['number']}", None), (e["message"], "bold")]

    def list_columns(self, e: dict) -> list:
        n = e["numbers"]
        show = (lambda v: "" if v is None else str(v))
        return [("Linux", [str(e["number"])]), ("Other Linux ABIs", [differing_abis(n, e["number"])]),
                ("macOS", [show(n["darwin"])]), ("FreeBSD", [show(n["freebsd"])]),
                ("Windows", [show(n["windows"])]), ("Message", [e["message"]]),
                ("Sockets", ["socket" if e["socket"] else "internal" if e["internal"] else ""])]

    def sort_key(self, e: dict):
        return (e["number"], e["name"])


def platform_numbers(meta: dict) -> dict[str, int | None]:
    """Every platform's number for an errno: the Linux ABIs default to the generic one."""
    listed = meta.get("numbers") or {}
    out: dict[str, int | None] = {"linux": meta["number"]}
    for abi in LINUX_ABIS:
        out[abi] = listed.get(abi, meta["number"])
    for osname in OTHER_OSES:
        out[osname] = listed.get(osname)
    return out


def _by_errno_name(conn, query: str) -> Hit:
    name = query.upper()
    notes = []
    id_ = by_name(conn, "errno", name)
    if id_ is None and name.startswith("WSAE"):  # Windows spells them WSAECONNRESET
        id_ = by_name(conn, "errno", name[3:])
        if id_:
            notes.append(f"{name} is the Windows Sockets name of {id_.split(':')[1]}")
    if id_ is None:
        raise NotFound(f"no errno named {query!r}", suggest(conn, query, "errno"))
    return Hit(id_, notes)


def _by_number(conn, number: int, platform: str, explicit: bool, os_given: bool) -> Hit:
    notes: list[str] = []
    if number <= -4000 and not explicit:  # libuv's own codes on Windows (Node's errno: -4077)
        row = conn.execute("select entry_id, name from errno_numbers where platform = 'libuv' "
                           "and number = ?", (number,)).fetchone()
        if row:
            notes.append(f"{number} is libuv's {row['name']} on Windows (Node.js prints it as errno)")
            return Hit(row["entry_id"], notes)
    if number < 0:  # the kernel returns -errno, and so do libuv and io_uring
        notes.append(f"{number} is read as errno {-number} (system calls return -errno)")
        number = -number
    if number >= 10000 and not explicit:  # Windows Sockets codes live at 10000 and up
        platform = "windows"
    row = conn.execute(
        "select entry_id, name from errno_numbers where platform = ? and number = ? "
        "order by name = substr(entry_id, 7) desc limit 1", (platform, number)).fetchone()
    if row is None:
        where = "Linux" if platform == "linux" else platform
        if platform == "windows" and not os_given:  # tried as a Windows code only for its size
            where = "Linux"
        raise NotFound(f"no errno {number} on {where}", [r[0] for r in conn.execute(
            "select distinct entry_id from errno_numbers where number = ? and platform != ?",
            (number, platform))])
    if row["name"] != row["entry_id"].split(":", 1)[1]:
        notes.append(f"{number} on {platform} is {row['name']}, filed under {row['entry_id']}")
    if platform == "windows" and not os_given:
        notes.append(f"{number} is read as the Windows Sockets code {row['name']}")
    return Hit(row["entry_id"], notes, _also(conn, number, platform, row["entry_id"]))


def _also(conn, number: int, platform: str, chosen: str) -> list[dict]:
    """The same number on other platforms naming another errno: Linux 54 vs BSD 54."""
    rows = conn.execute(
        "select entry_id, name, group_concat(platform, ', ') as platforms from errno_numbers "
        "where number = ? and platform != ? and entry_id != ? group by entry_id, name "
        # other operating systems first: that is where a pasted number usually comes from
        "order by max(platform in ('darwin', 'freebsd', 'windows')) desc, min(rowid)",
        (number, platform, chosen)).fetchall()
    return [{"id": r["entry_id"], "name": r["name"], "platforms": r["platforms"].split(", ")}
            for r in rows]


KIND = Errno()
