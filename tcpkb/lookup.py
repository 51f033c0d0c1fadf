"""Queries over the built database: the lookup path.

Plain sqlite3 and the standard library only: this module runs on every
`tcpkb errno 104`, so it must not import sqlite-utils, YAML or markdown.
Every function returns plain dicts shaped exactly as `--json` prints them.
"""

from __future__ import annotations

import json
import re
import sqlite3

KIND_NAMES = ("errno", "signal", "state", "flag", "claim", "sysctl", "sockopt", "call")
ERRNO_PLATFORMS = ("linux", "alpha", "mips", "sparc", "parisc", "powerpc", "darwin", "freebsd", "windows")
LINUX_ABIS = ("alpha", "mips", "sparc", "parisc", "powerpc")
MAX_QUERY = 500  # characters; longer input is not a name, a number or a search


class NotFound(Exception):
    def __init__(self, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.suggestions = suggestions or []


class BadQuery(Exception):
    """The query cannot mean anything (empty, too long, an unknown platform)."""


class Found:
    """A lookup answer: the entry, and remarks on how the query was read."""

    def __init__(self, entry: dict, notes: list[str] | None = None, also: list[dict] | None = None):
        self.entry = entry
        self.notes = notes or []
        self.also = also or []

    def as_json(self) -> dict:
        out = dict(self.entry)
        if self.notes:
            out["query_notes"] = self.notes
        if self.also:
            out["also"] = self.also
        return out


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _clean(query: str) -> str:
    query = query.strip()
    if not query:
        raise BadQuery("the query is empty")
    if len(query) > MAX_QUERY:
        raise BadQuery(f"the query is {len(query)} characters long; the limit is {MAX_QUERY}")
    return query


def _int(text: str) -> int | None:
    """104, -104, +104, 0x68 -> an integer; anything else -> None."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d{1,9}", text):
        return int(text)
    if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]{1,8}", text):
        return int(text, 16)
    return None


# --- entries -----------------------------------------------------------------

def entry(conn: sqlite3.Connection, entry_id: str, full: bool = True) -> dict:
    """An entry as the public JSON shape: shared fields, then the kind's own facts."""
    row = conn.execute("select * from entries where id = ?", (entry_id,)).fetchone()
    if row is None:
        raise NotFound(f"no entry {entry_id!r}", suggest(conn, entry_id))
    out = {"id": row["id"], "kind": row["kind"], "name": row["name"], "title": row["title"],
           "summary": row["summary"], "summary_zh": row["summary_zh"]}
    out["aliases"] = [r[0] for r in conn.execute(
        "select alias from aliases where entry_id = ? order by rowid", (entry_id,))]
    out.update(_facts(conn, row["kind"], entry_id))
    if full:
        out["related"] = [r[0] for r in conn.execute(
            "select dst from links where src = ? order by position", (entry_id,))]
        # the other direction: entries whose `related` name this one
        out["linked_from"] = [r[0] for r in conn.execute(
            "select src from links where dst = ? and src not in "
            "(select dst from links where src = ?) order by src", (entry_id, entry_id))]
        out["seen_as"] = [r[0] for r in conn.execute(
            "select text from messages where entry_id = ? and source = 'note' and not deadline "
            "order by rowid", (entry_id,))]
        deadline = [r[0] for r in conn.execute(
            "select text from messages where entry_id = ? and deadline order by rowid", (entry_id,))]
        if deadline:
            out["seen_as_deadline"] = deadline
        out["sections"] = {r["slug"]: r["markdown"] for r in conn.execute(
            "select slug, markdown from sections where entry_id = ? order by position", (entry_id,))}
        out["path"] = "kb/" + row["path"]
        out["verification"] = verification(conn, entry_id)
    return out


def verification(conn: sqlite3.Connection, entry_id: str) -> list[dict]:
    """How the entry was verified on each machine: reproductions first, then checks."""
    rows = conn.execute(
        "select level, scenario, claim, ok, kernel, arch, time, detail from verifications"
        " where entry_id = ? order by level = 'checked', kernel, arch, scenario", (entry_id,))
    out = []
    for r in rows:
        item = {"level": r["level"], "scenario": r["scenario"], "claim": r["claim"], "ok": bool(r["ok"]),
                "kernel": r["kernel"], "arch": r["arch"], "time": r["time"]}
        if r["detail"]:
            detail = json.loads(r["detail"])
            item["compared"] = detail.get("compared", [])
        out.append(item)
    return out


def proving_scenarios(conn: sqlite3.Connection, entry_id: str) -> list[str]:
    """The scenarios that reproduced an entry, those most about it first: runs that captured
    packets, then where the entry stands in the scenario's list (claims aside), then the
    scenarios proving fewest entries. Both web faces draw the first few."""
    rows = conn.execute("""
        with mine as (select distinct scenario from verifications
                      where entry_id = :id and level = 'reproduced' and ok),
        listed as (select scenario, entry_id, rowid as n from scenario_entries
                   where scenario in (select scenario from mine)
                     and (entry_id = :id or entry_id not like 'claim:%'))
        select m.scenario,
          (select max(coalesce(json_array_length(r.trace, '$.packets'), 0)) from runs r
            where r.scenario = m.scenario) as packets,
          (select count(*) from listed l where l.scenario = m.scenario and l.n <
            (select min(n) from listed x where x.scenario = m.scenario and x.entry_id = :id)) as place,
          (select count(*) from listed l where l.scenario = m.scenario) as size
        from mine m""", {"id": entry_id}).fetchall()
    rows.sort(key=lambda r: (not r["packets"], r["place"], r["size"], r["scenario"]))
    return [r["scenario"] for r in rows]


def _facts(conn: sqlite3.Connection, kind: str, entry_id: str) -> dict:
    if kind == "errno":
        r = conn.execute("select * from errno where id = ?", (entry_id,)).fetchone()
        numbers = {p: None for p in ERRNO_PLATFORMS + ("libuv",)}
        names = {}
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
    if kind == "signal":
        r = conn.execute("select * from signals where id = ?", (entry_id,)).fetchone()
        return {"number": r["number"], "numbers": _abi_numbers(conn, "signal_numbers", entry_id), "action": r["action"],
                "standard": r["standard"], "socket": bool(r["socket"])}
    if kind == "state":
        r = conn.execute("select * from states where id = ?", (entry_id,)).fetchone()
        transitions = [{"to": t["to_state"], "event": t["event"], "send": t["send"],
                        "side": t["side"], "rfc": bool(t["rfc"])}
                       for t in conn.execute("select * from transitions where from_state = ?"
                                             " order by position", (entry_id,))]
        return {"number": r["number"], "hex": r["hex"], "rfc": r["rfc"], "ss": r["ss"],
                "netstat": r["netstat"], "side": r["side"], "transitions": transitions}
    if kind == "flag":
        r = conn.execute("select * from flags where id = ?", (entry_id,)).fetchone()
        combos = [dict(c) for c in conn.execute(
            "select flags, name, meaning from flag_combinations where entry_id = ? order by rowid",
            (entry_id,))]
        return {"bit": r["bit"], "hex": f"0x{r['bit']:03x}", "letter": r["letter"], "rfc": r["rfc"],
                "combinations": combos}
    if kind == "claim":
        r = conn.execute("select verdict from claims where id = ?", (entry_id,)).fetchone()
        return {"verdict": r["verdict"]}
    if kind == "sysctl":
        r = conn.execute("select * from sysctls where id = ?", (entry_id,)).fetchone()
        return {k: r[k] for k in ("type", "unit", "range", "default", "computed")} | {
            "per_netns": bool(r["per_netns"]), "inherited": bool(r["inherited"]),
            "noop_since": r["noop_since"],
            "removed_in": r["removed_in"], "proc_path": r["path"]}
    if kind == "sockopt":
        r = conn.execute("select * from sockopts where id = ?", (entry_id,)).fetchone()
        return {k: r[k] for k in ("level", "number", "value", "access", "default", "default_from")} | {
            "numbers": _abi_numbers(conn, "sockopt_numbers", entry_id)}
    if kind == "call":
        r = conn.execute("select * from calls where id = ?", (entry_id,)).fetchone()
        errors = [{"errno": e["errno_id"], "when": e["condition"]} for e in conn.execute(
            "select errno_id, condition from call_errors where call_id = ? order by position", (entry_id,))]
        return {"synopsis": r["synopsis"], "man": r["man"], "errors": errors}
    return {}


def _abi_numbers(conn: sqlite3.Connection, table: str, entry_id: str) -> dict[str, int | None]:
    """A signal's or option's number on Linux and each ABI (None where the ABI lacks it)."""
    numbers: dict[str, int | None] = {p: None for p in ("linux",) + LINUX_ABIS}
    for platform, number in conn.execute(f"select platform, number from {table} where entry_id = ?",
                                         (entry_id,)):
        numbers[platform] = number
    return numbers


def list_kind(conn: sqlite3.Connection, kind: str) -> list[dict]:
    if kind not in KIND_NAMES:
        raise BadQuery(f"unknown kind {kind!r}; kinds are: {', '.join(KIND_NAMES)}")
    ids = [r[0] for r in conn.execute("select id from entries where kind = ? order by rowid", (kind,))]
    return [entry(conn, i, full=False) for i in ids]


def show(conn: sqlite3.Connection, query: str) -> Found:
    """`kind:NAME` -> that entry; a bare name is looked up in every kind."""
    query = _clean(query)
    if ":" in query:
        kind, _, name = query.partition(":")
        kind = kind.strip().lower()
        if kind not in KIND_NAMES:
            raise BadQuery(f"unknown kind {kind!r} in {query!r}; kinds are: {', '.join(KIND_NAMES)}")
        return FINDERS[kind](conn, name)
    for kind in KIND_NAMES:
        try:
            return FINDERS[kind](conn, query)
        except (NotFound, BadQuery):
            continue
    raise NotFound(f"no entry named {query!r}", suggest(conn, query))


def _by_name(conn: sqlite3.Connection, kind: str, name: str) -> str | None:
    row = conn.execute(
        "select id from entries where kind = ? and upper(name) = upper(?) union all "
        "select a.entry_id from aliases a join entries e on e.id = a.entry_id "
        "where e.kind = ? and upper(a.alias) = upper(?) limit 1", (kind, name, kind, name)).fetchone()
    return row[0] if row else None


def suggest(conn: sqlite3.Connection, query: str, kind: str | None = None) -> list[str]:
    """The closest ids to a query that found nothing."""
    import difflib  # only a miss pays for it

    rows = conn.execute(
        "select e.id, e.name from entries e where ?1 is null or e.kind = ?1 union all "
        "select e.id, a.alias from aliases a join entries e on e.id = a.entry_id "
        "where ?1 is null or e.kind = ?1", (kind,)).fetchall()
    by_name: dict[str, str] = {}
    for id_, name in rows:
        by_name.setdefault(name.upper(), id_)
    word = query.split(":")[-1].strip().upper()[:60]
    close = difflib.get_close_matches(word, list(by_name), n=5, cutoff=0.6)
    if not close and len(word) >= 3:
        close = [n for n in by_name if word in n][:5]
    return list(dict.fromkeys(by_name[n] for n in close))


# --- errno -------------------------------------------------------------------

def find_errno(conn: sqlite3.Connection, query: str, os_: str | None = None,
               arch: str | None = None) -> Found:
    query = _clean(query)
    if os_ and arch:
        raise BadQuery("give --os or --arch, not both")
    platform = (os_ or arch or "linux").lower()
    if platform not in ERRNO_PLATFORMS:
        raise BadQuery(f"unknown platform {platform!r}; one of: {', '.join(ERRNO_PLATFORMS)}")
    number = _int(query)
    notes: list[str] = []
    if number is None:
        name = query.upper()
        id_ = _by_name(conn, "errno", name)
        if id_ is None and name.startswith("WSAE"):  # Windows spells them WSAECONNRESET
            id_ = _by_name(conn, "errno", name[3:])
            if id_:
                notes.append(f"{name} is the Windows Sockets name of {id_.split(':')[1]}")
        if id_ is None:
            raise NotFound(f"no errno named {query!r}", suggest(conn, query, "errno"))
        return Found(entry(conn, id_), notes)

    if number <= -4000 and not (os_ or arch):  # libuv's own codes on Windows (Node's errno: -4077)
        row = conn.execute("select entry_id, name from errno_numbers where platform = 'libuv' "
                           "and number = ?", (number,)).fetchone()
        if row:
            notes.append(f"{number} is libuv's {row['name']} on Windows (Node.js prints it as errno)")
            return Found(entry(conn, row["entry_id"]), notes)
    if number < 0:  # the kernel returns -errno, and so do libuv and io_uring
        notes.append(f"{number} is read as errno {-number} (system calls return -errno)")
        number = -number
    if number >= 10000 and not (os_ or arch):  # Windows Sockets codes live at 10000 and up
        platform = "windows"
    row = conn.execute(
        "select entry_id, name from errno_numbers where platform = ? and number = ? "
        "order by name = substr(entry_id, 7) desc limit 1", (platform, number)).fetchone()
    if row is None:
        where = "Linux" if platform == "linux" else platform
        raise NotFound(f"no errno {number} on {where}", _numbered_elsewhere(conn, number, platform))
    if row["name"] != row["entry_id"].split(":", 1)[1]:
        notes.append(f"{number} on {platform} is {row['name']}, filed under {row['entry_id']}")
    if platform == "windows" and not os_:
        notes.append(f"{number} is read as the Windows Sockets code {row['name']}")
    found = Found(entry(conn, row["entry_id"]), notes)
    found.also = _also(conn, number, platform, row["entry_id"])
    return found


def _also(conn: sqlite3.Connection, number: int, platform: str, chosen: str) -> list[dict]:
    """The same number on other platforms naming another errno: Linux 54 vs BSD 54."""
    rows = conn.execute(
        "select entry_id, name, group_concat(platform, ', ') as platforms from errno_numbers "
        "where number = ? and platform != ? and entry_id != ? group by entry_id, name "
        # other operating systems first: that is where a pasted number usually comes from
        "order by max(platform in ('darwin', 'freebsd', 'windows')) desc, min(rowid)",
        (number, platform, chosen)).fetchall()
    return [{"id": r["entry_id"], "name": r["name"], "platforms": r["platforms"].split(", ")}
            for r in rows]


def _numbered_elsewhere(conn: sqlite3.Connection, number: int, platform: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "select distinct entry_id from errno_numbers where number = ? and platform != ?",
        (number, platform))]


# --- signal ------------------------------------------------------------------

def find_signal(conn: sqlite3.Connection, query: str, arch: str | None = None) -> Found:
    query = _clean(query)
    platform = (arch or "linux").lower()
    if platform not in ("linux",) + LINUX_ABIS:
        raise BadQuery(f"unknown arch {platform!r}; one of: linux, {', '.join(LINUX_ABIS)}")
    number = _int(query)
    if number is None:
        name = query.upper().replace(" ", "")
        if m := re.fullmatch(r"(?:SIG)?RTM(IN|AX)([+-]\d{1,3})?", name):
            return _realtime(conn, platform, name, m)
        for candidate in (name, "SIG" + name):
            if id_ := _by_name(conn, "signal", candidate):
                return Found(entry(conn, id_))
        raise NotFound(f"no signal named {query!r}", suggest(conn, "SIG" + name.removeprefix("SIG"), "signal"))

    notes = []
    rtmin, rtmax = _rt_range(conn, platform)
    if number > rtmax and 128 < number <= 128 + rtmax:
        notes.append(f"exit status {number} = 128 + {number - 128}: the process was killed by "
                     f"signal {number - 128}")
        number -= 128
    row = conn.execute("select entry_id from signal_numbers where platform = ? and number = ? "
                       "order by entry_id", (platform, number)).fetchone()
    if row:
        return Found(entry(conn, row[0]), notes)
    standard_max = conn.execute("select max(number) from signal_numbers where platform = ? and number < ?",
                                (platform, rtmin)).fetchone()[0] or 0
    if standard_max < number < rtmin:
        notes.append(f"{number} lies between the last standard signal ({standard_max}) and glibc's "
                     f"SIGRTMIN ({rtmin}): the C library keeps it for its own threads")
        return Found(entry(conn, "signal:SIGRTMIN"), notes)
    if rtmin < number < rtmax:
        notes.append(f"{number} is the real-time signal SIGRTMIN+{number - rtmin}")
        return Found(entry(conn, "signal:SIGRTMIN"), notes)
    raise NotFound(f"no signal {number} on {platform}: signals run from 1 to {rtmax}")


def _rt_range(conn: sqlite3.Connection, platform: str) -> tuple[int, int]:
    got = dict(conn.execute(
        "select e.name, n.number from signal_numbers n join entries e on e.id = n.entry_id "
        "where n.platform = ? and e.name in ('SIGRTMIN', 'SIGRTMAX')", (platform,)).fetchall())
    return got.get("SIGRTMIN", 1 << 30), got.get("SIGRTMAX", 0)


def _realtime(conn: sqlite3.Connection, platform: str, name: str, m: re.Match) -> Found:
    rtmin, rtmax = _rt_range(conn, platform)
    base = rtmin if m.group(1) == "IN" else rtmax
    offset = int(m.group(2) or 0)
    number = base + offset
    if not rtmin <= number <= rtmax:
        raise NotFound(f"{name} is {number}, outside the real-time range {rtmin}..{rtmax}")
    target = "signal:SIGRTMAX" if number == rtmax and m.group(1) == "AX" else "signal:SIGRTMIN"
    return Found(entry(conn, target), [f"{name} is signal {number} on {platform}"] if offset else [])


# --- state -------------------------------------------------------------------

def _state_key(text: str) -> str:
    return re.sub(r"[-_\s]", "", text.upper())


def find_state(conn: sqlite3.Connection, query: str) -> Found:
    query = _clean(query)
    notes = []
    number = None
    if re.fullmatch(r"\d{1,3}", query):
        number = int(query)
    elif re.fullmatch(r"(0[xX])?[0-9a-fA-F]{1,2}", query) and not re.fullmatch(r"[a-zA-Z]+", query):
        number = int(query, 16)
        notes.append(f"{query} is read as the hex state code of /proc/net/tcp ({number})")
    if number is not None:
        row = conn.execute("select id from states where number = ?", (number,)).fetchone()
        if row is None:
            raise NotFound(f"no TCP state numbered {number}", [])
        return Found(entry(conn, row[0]), notes)
    key = _state_key(query.removeprefix("TCP_").removeprefix("tcp_"))
    for r in conn.execute("select s.id, s.name, s.rfc, s.ss, s.netstat, "
                          "(select group_concat(alias, char(31)) from aliases a where a.entry_id = s.id)"
                          " as aliases from states s"):
        spellings = [r["name"], r["rfc"], r["ss"], r["netstat"], *(r["aliases"] or "").split("\x1f")]
        if key in {_state_key(s) for s in spellings if s}:
            return Found(entry(conn, r["id"]))
    raise NotFound(f"no TCP state {query!r}", suggest(conn, query, "state"))


# --- flag --------------------------------------------------------------------

def find_flag(conn: sqlite3.Connection, query: str) -> Found:
    """A flag by name (RST), by tcpdump letter (R), or a combination (S., 0x12)."""
    query = _clean(query)
    id_ = _by_name(conn, "flag", query)
    if id_:
        return Found(entry(conn, id_))
    flags = conn.execute("select id, name, bit, letter from flags order by bit").fetchall()
    mask = _int(query)
    if mask is None:
        letters = {f["letter"]: f for f in flags}
        words = [w for w in re.split(r"[\s,+|/]+", query.upper()) if w]
        names = {f["name"]: f for f in flags}
        if words and all(w in names for w in words):
            mask = sum(names[w]["bit"] for w in words)
        elif all(ch in letters for ch in query):
            mask = sum(letters[ch]["bit"] for ch in dict.fromkeys(query))
        else:
            raise NotFound(f"no TCP flag or combination {query!r}", suggest(conn, query, "flag"))
    chosen = [f for f in flags if mask & f["bit"]]
    if not chosen or sum(f["bit"] for f in chosen) != mask:
        raise NotFound(f"{query!r} is not a combination of TCP flags (bits 0x001..0x100)")
    if len(chosen) == 1:
        return Found(entry(conn, chosen[0]["id"]))
    letters = "".join(f["letter"] for f in chosen)  # tcpdump prints them in bit order too
    combo = conn.execute("select entry_id, flags, name, meaning from flag_combinations",
                         ).fetchall()
    match = next((c for c in combo if sorted(c["flags"]) == sorted(letters)), None)
    return Found({
        "id": None, "kind": "combination", "name": "+".join(f["name"] for f in chosen),
        "title": match["name"] if match else "+".join(f["name"] for f in chosen),
        "summary": match["meaning"] if match else "",
        "bits": mask, "hex": f"0x{mask:03x}", "letters": match["flags"] if match else letters,
        "flags": [entry(conn, f["id"], full=False) for f in chosen],
    })


def find_claim(conn: sqlite3.Connection, query: str) -> Found:
    """A claim by its slug (close-with-unread-data-sends-rst); spaces count as hyphens."""
    slug = "-".join(_clean(query).lower().split())
    entry_id = _by_name(conn, "claim", slug)
    if entry_id is None:
        raise NotFound(f"no claim {query!r}", suggest(conn, query, "claim"))
    return Found(entry(conn, entry_id))


# --- sysctl, sockopt, call --------------------------------------------------------

def sysctl_name(query: str) -> tuple[str, str | None]:
    """What people paste -> a dotted name, and a value if the text set one.

    net.ipv4.tcp_fin_timeout, net/ipv4/tcp_fin_timeout, /proc/sys/net/ipv4/tcp_fin_timeout,
    `sysctl -w net.ipv4.tcp_fin_timeout=30`, `net.ipv4.tcp_fin_timeout = 30` (sysctl.conf).
    """
    text = _clean(query)
    text = re.sub(r"^sysctl(\s+-[a-zA-Z]+)*\s+", "", text)
    name, eq, value = text.partition("=")
    name = name.strip().removeprefix("/proc/sys/").strip("/").replace("/", ".")
    return name, (" ".join(value.split()) or None) if eq else None


def find_sysctl(conn: sqlite3.Connection, query: str) -> Found:
    """A knob by full name, path or short name (tcp_fin_timeout)."""
    name, value = sysctl_name(query)
    notes = []
    entry_id = _by_name(conn, "sysctl", name)
    if entry_id is None:  # a short name: the last component, net.ipv4 first
        rows = conn.execute(
            "select id from sysctls where lower(substr(name, -length(?1) - 1)) = '.' || lower(?1) "
            "order by substr(name, 1, 9) != 'net.ipv4.', name", (name,)).fetchall()
        if not rows:
            raise NotFound(f"no sysctl {name!r} in the knowledge base", suggest(conn, name, "sysctl"))
        entry_id = rows[0][0]
        if len(rows) > 1:
            notes.append(f"{name} is also " + ", ".join(r[0] for r in rows[1:]))
    found = entry(conn, entry_id)
    if value is not None:  # a pasted sysctl.conf line: say how its value stands
        default = found["default"]
        verdict = ("the default" if default is not None and value.split() == default.split()
                   else f"not the default {default}" if default is not None else "the default is computed")
        notes.insert(0, f"the text sets {found['name']} to {value} ({verdict})")
    return Found(found, notes)


def find_sockopt(conn: sqlite3.Connection, query: str) -> Found:
    """An option or flag by name (SO_LINGER, so_linger, linger) or alias."""
    name = _clean(query).upper().replace("-", "_")
    for candidate in (name, "SO_" + name, "TCP_" + name, "MSG_" + name):
        if entry_id := _by_name(conn, "sockopt", candidate):
            return Found(entry(conn, entry_id))
    raise NotFound(f"no socket option or flag {query!r}", suggest(conn, query, "sockopt"))


def find_call(conn: sqlite3.Connection, query: str) -> Found:
    """A system call by name or variant (sendmsg -> send); `connect(2)` and `connect()` work too."""
    name = re.sub(r"\(\d?\)$", "", _clean(query).lower())
    row = conn.execute("select entry_id from call_names where name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no system call {query!r}", suggest(conn, query, "call"))
    notes = [] if row[0] == f"call:{name}" else [f"{name} is covered by {row[0]}"]
    return Found(entry(conn, row[0]), notes)


FINDERS = {"errno": find_errno, "signal": find_signal, "state": find_state, "flag": find_flag,
           "claim": find_claim, "sysctl": find_sysctl, "sockopt": find_sockopt, "call": find_call}


# --- search ------------------------------------------------------------------

def fts_query(words: str, phrase: bool = False) -> str:
    """User words -> a safe FTS5 query: each word a quoted term (never FTS syntax).

    phrase=True asks for the words side by side ("connection reset"); otherwise
    every word must appear, the last one as a prefix so `reuse` finds REUSEADDR.
    """
    terms = [t.replace('"', "") for t in re.findall(r"\w+", words)[:20]]
    if not terms:
        return ""
    if phrase:
        return '"' + " ".join(terms) + '"' if len(terms) > 1 else ""
    return " ".join(f'"{t}"' for t in terms[:-1]) + f' "{terms[-1]}"*'


def search(conn: sqlite3.Connection, words: str, kind: str | None = None, limit: int = 20,
           mark: tuple[str, str] = ("[", "]")) -> list[dict]:
    """Entries holding the words, best first, each with a snippet whose hits are between `mark`."""
    words = _clean(words)
    if kind and kind not in KIND_NAMES:
        raise BadQuery(f"unknown kind {kind!r}; kinds are: {', '.join(KIND_NAMES)}")
    results: dict[str, dict] = {}
    # Entries where the words stand together come first, then those that merely hold them all.
    for query in (fts_query(words, phrase=True), fts_query(words)):
        if not query or len(results) >= limit:
            continue
        rows = conn.execute(
            "select s.id, s.kind, s.name, s.summary, "
            "snippet(search_fts, -1, ?, ?, ' … ', 12) as snippet, "
            # names and aliases weigh most, then titles, error messages, summaries, bodies
            "bm25(search_fts, 10.0, 8.0, 4.0, 2.0, 1.0, 3.0, 0.5) * s.boost as rank "
            "from search_fts join search s on s.rowid = search_fts.rowid "
            "where search_fts match ? and (? is null or s.kind = ?) order by rank limit ?",
            (*mark, query, kind, kind, limit)).fetchall()
        for r in rows:
            results.setdefault(r["id"], {"id": r["id"], "kind": r["kind"], "name": r["name"],
                                         "summary": r["summary"], "snippet": r["snippet"],
                                         "score": round(-r["rank"], 3)})
    results = list(results.values())[:limit]
    if not results:  # a fragment of a name, like CONNRES
        like = "%" + re.sub(r"[%_\\]", lambda m: "\\" + m.group(0), words.upper()) + "%"
        rows = conn.execute(
            "select id, kind, name, summary from entries where upper(name) like ? escape '\\' "
            "and (? is null or kind = ?) order by rowid limit ?", (like, kind, kind, limit)).fetchall()
        results = [{"id": r["id"], "kind": r["kind"], "name": r["name"], "summary": r["summary"],
                    "snippet": "", "score": 0.0} for r in rows]
    return results
