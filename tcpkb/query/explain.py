"""Pasted error text -> the entries it means, ranked, each with the evidence that matched.

Rules over the database, not a table in the code: the messages people paste
(the notes' `seen_as`, glibc's messages and their translations, musl's), the
names of entries (ECONNRESET, SIGPIPE, CLOSE-WAIT, tcp_mem), and errno numbers
read in their context ([Errno 54] with "Connection reset by peer" is BSD's
ECONNRESET, not Linux's EXFULL). Standard library only: it runs as a whole
process per pasted line, so it starts like a lookup.
"""

from __future__ import annotations

import re
import sqlite3

from ..clauses import weight

MAX_TEXT = 200_000  # characters; a pasted log, not a disk image
THRESHOLD = 0.3  # below this an entry is not named at all

_NAME = re.compile(r"\b(WSAE[A-Z]{3,}|E[A-Z0-9]{3,}|SIG[A-Z0-9]{2,})\b"
                   r"|(?<=:)(e[a-z]{4,})\b")  # Erlang and Elixir spell them as atoms: :econnreset
_STATE = re.compile(r"\b(SYN[-_]SENT|SYN[-_]RECV|SYN[-_]RECEIVED|FIN[-_]WAIT[-_]?[12]|CLOSE[-_]WAIT|"
                    r"CLOSING|LAST[-_]ACK|TIME[-_]WAIT|ESTAB(?:LISHED)?|LISTEN)\b")
_SS_SUMMARY = re.compile(r"\b(timewait|synrecv|closed|orphaned) (\d+)")  # `ss -s`: "timewait 30001"
_SYSCTL = re.compile(r"\b((?:net\.[a-z0-9_]+\.)?(?:tcp|ip|nf_conntrack|somaxconn)[a-z0-9_]*)\b")
_NUMBERS = [  # (pattern, what it is) — the number group is 1; -N is -errno only where libuv says so
    (re.compile(r"\[Errno (\d+)\]"), "Python's [Errno N]"),  # [Errno -2] is getaddrinfo's: see _resolver
    (re.compile(r"\((\d+): [A-Za-z]"), "nginx-style (N: message)"),
    (re.compile(r"\bOs \{ code: (\d+)"), "Rust's Os { code: N }"),
    (re.compile(r"\berrno[:=]? ?(-?\d+)"), "errno N"),  # Node's errno: -4077, C's errno=104
    (re.compile(r"SocketException \((\d+)\)"), ".NET SocketException (N)"),
    (re.compile(r"\b(?:error|code)\s*[:=]\s*(-?\d+)\b", re.I), "error code N"),
    (re.compile(r"\((\d{2,5})\)\s*$", re.M), "(N) at the end of a line"),
]
_EXIT = re.compile(r"\b(?:exit (?:status|code)|exited with(?: code)?|returned|\] Error)\s*:?\s*(1[2-5]\d)\b",
                   re.I)  # `make: *** [x] Error 141` too
# A shell's job report: "bash: line 1:  4821 Broken pipe    yes" names the signal by its description.
_JOB = re.compile(r"(?:^|\n)[^\n]*?\b\d+ +([A-Z][a-z]+(?: [a-z]+)*?) {2,}\S")


def _find_in_order(lowered: str, frags: list[str]) -> list[tuple[int, str]]:
    """Where each fragment stands, searched after the previous one and as whole words
    ("signal" is not in "MSG_NOSIGNAL"); -1 where it is missing."""
    out, at = [], 0
    for f in frags:
        where = _find_word(lowered, f, at)
        out.append((where, f))
        if where >= 0:
            at = where + len(f)
    return out


def _find_word(lowered: str, fragment: str, start: int) -> int:
    edge_left = fragment[0].isascii() and fragment[0].isalnum()
    edge_right = fragment[-1].isascii() and fragment[-1].isalnum()
    at = lowered.find(fragment, start)
    while at >= 0:
        before = lowered[at - 1] if at else " "
        after = lowered[at + len(fragment):at + len(fragment) + 1] or " "
        if not (edge_left and (before.isalnum() or before == "_")) and \
                not (edge_right and (after.isalnum() or after == "_")):
            return at
        at = lowered.find(fragment, at + 1)
    return -1


def _ends_clause(text: str, end: int) -> bool:
    rest = text[end:end + 2]
    return not rest or rest[0] in "\n\r)]'\",.;" or rest == " (" or rest.isspace()


def _context_numbers(text: str) -> set[int]:
    return {int(m.group(1)) for pattern, _ in _NUMBERS for m in pattern.finditer(text) if m.group(1)}


class Evidence(dict):
    """{rule, span, text, detail}: what in the pasted text matched what."""


def _add(found: dict, entry_id: str, score: float, evidence: dict) -> None:
    item = found.setdefault(entry_id, {"id": entry_id, "scores": [], "evidence": []})
    item["scores"].append(score)
    item["evidence"].append(evidence)


def _messages(conn: sqlite3.Connection, text: str, lowered: str, found: dict) -> dict[str, float]:
    """Every message whose literal fragments appear in the text; returns entry -> best score."""
    import json

    pasted_numbers = _context_numbers(text)
    best: dict[str, float] = {}
    hits_all: list[tuple[str, list[int], float, dict]] = []
    for entry_id, message, source, deadline, fragments in conn.execute(
            "select entry_id, text, source, deadline, fragments from messages"):
        frags = json.loads(fragments)
        # the error itself comes last ("...: Connection refused"): without it, no match
        if not frags or frags[-1][0] not in lowered:
            continue
        hits = _find_in_order(lowered, [f for f, _ in frags])
        if hits[-1][0] < 0:
            continue
        if source != "note" and not _ends_clause(text, hits[-1][0] + len(hits[-1][1])):
            continue  # a bare C-library message ends its clause: not "Out of memory: Killed process"
        weights = dict(frags)
        found_frags = [(at, f) for at, f in hits if at >= 0]
        coverage = sum(weights[f] for _, f in found_frags) / sum(weights.values())
        raw = sum(weight(f) for _, f in found_frags)
        if coverage < 0.5 or raw < 8:
            continue
        if source == "note" and pasted_numbers and (own := _context_numbers(message)) \
                and not own & pasted_numbers:
            continue  # same words, another errno number: "(111)" is not "(113)"
        score = 0.45 + 0.5 * coverage * min(1.0, raw / 25)
        if deadline:
            score -= 0.02  # a kernel message for the same words wins a tie
        start = min(at for at, _ in found_frags)
        end = max(at + len(f) for at, f in found_frags)
        evidence = Evidence(
            rule="deadline" if deadline else "message", span=[start, end], text=text[start:end],
            detail=f"{'an application deadline' if deadline else 'the message'} "
                   f"{message!r} ({_source(source)})")
        hits_all.append((entry_id, [start, end], score, evidence))
    # A message inside a longer one another entry matched is that entry's ("Too many open
    # files" within "Too many open files in system"); then keep each entry's best few.
    kept = [h for h in hits_all if not any(
        o[0] != h[0] and o[1][0] <= h[1][0] and h[1][1] <= o[1][1] and o[1][1] - o[1][0] > h[1][1] - h[1][0]
        for o in hits_all)]
    kept.sort(key=lambda h: -h[2])
    seen: dict[str, set] = {}
    for entry_id, span, score, evidence in kept:
        spans = seen.setdefault(entry_id, set())
        if tuple(span) in spans or len(spans) >= 3:
            continue
        spans.add(tuple(span))
        best[entry_id] = max(best.get(entry_id, 0), score)
        _add(found, entry_id, score, evidence)
    return best


def _source(source: str) -> str:
    if source == "note":
        return "as people paste it"
    if source.startswith("glibc:"):
        return f"glibc's translation, {source.split(':', 1)[1]}"
    return {"glibc": "glibc's strerror", "musl": "musl's strerror"}.get(source, source)


def _names(conn: sqlite3.Connection, text: str, found: dict) -> None:
    for m in _NAME.finditer(text):
        name = (m.group(1) or m.group(2)).upper()
        row = conn.execute(
            "select e.id from entries e where e.kind in ('errno', 'signal') and e.name = ?1 union all "
            "select a.entry_id from aliases a join entries e on e.id = a.entry_id "
            "where e.kind in ('errno', 'signal') and a.alias = ?1 limit 1",
            (name.removeprefix("WSA") if name.startswith("WSAE") else name,)).fetchone()
        if row:
            _add(found, row[0], 0.85, Evidence(rule="name", span=[m.start(), m.end()], text=name,
                                               detail=f"{name} names {row[0]}"))
    states: dict[str, list[re.Match]] = {}
    for m in _STATE.finditer(text):
        key = re.sub(r"[-_]", "", m.group(1).upper())
        states.setdefault(key, []).append(m)
    for key, matches in states.items():
        row = conn.execute(
            "select id from states where replace(replace(name, '_', ''), '-', '') = ?1 "
            "or replace(coalesce(ss, ''), '-', '') = ?1 or replace(coalesce(rfc, ''), '-', '') = ?1 "
            "or (?1 = 'ESTAB' and name = 'ESTABLISHED') limit 1", (key,)).fetchone()
        if not row:
            continue
        # An ss table is full of ESTAB and LISTEN; only the states that pile up mean trouble.
        common = row[0] in ("state:ESTABLISHED", "state:LISTEN")
        score = 0.2 if common else min(0.9, 0.5 + 0.04 * len(matches))
        m = matches[0]
        _add(found, row[0], score, Evidence(rule="state", span=[m.start(), m.end()], text=m.group(1),
                                            detail=f"{len(matches)} socket(s) in {row[0].split(':')[1]}"))
    for m in _SS_SUMMARY.finditer(text):
        state = {"timewait": "state:TIME_WAIT", "synrecv": "state:SYN_RECV"}.get(m.group(1))
        count = int(m.group(2))
        if state and count >= 100:  # a summary line counts them; a pile is what matters
            _add(found, state, 0.75, Evidence(rule="state", span=[m.start(), m.end()], text=m.group(0),
                                              detail=f"ss -s counts {count} sockets in {state[6:]}"))
    for m in _JOB.finditer(text):
        row = conn.execute("select id from entries where kind = 'signal' and title = ?",
                           (m.group(1),)).fetchone()
        if row:
            _add(found, row[0], 0.8, Evidence(
                rule="name", span=[m.start(1), m.end(1)], text=m.group(1),
                detail=f"a shell reports a job killed by {row[0].split(':')[1]} as {m.group(1)!r}"))
    for m in _SYSCTL.finditer(text):
        word = m.group(1)
        row = conn.execute(
            "select id from sysctls where name = ?1 or substr(name, -length(?1) - 1) = '.' || ?1 "
            "order by substr(name, 1, 9) != 'net.ipv4.' limit 1", (word,)).fetchone()
        if row:
            _add(found, row[0], 0.7, Evidence(rule="sysctl", span=[m.start(), m.end()], text=word,
                                              detail=f"names the knob {row[0].split(':', 1)[1]}"))


_COUNTER = re.compile(r"\b((?:TcpExt|IpExt|MPTcpExt|IcmpMsg|Icmp|UdpLite|Udp|Tcp|Ip)[A-Z][A-Za-z0-9]*)\b")
_FIELD_LINE = re.compile(r"(?m)^[ \t]*([A-Z][A-Za-z0-9]+): (\d+)[ \t]*$")  # netstat -s without a sentence
_REASON = re.compile(r"\b(SKB_DROP_REASON_|SK_RST_REASON_|reason[:=]? ?\(?)([A-Z][A-Z0-9_]{2,})\b")
_DROP_CONTEXT = re.compile(r"kfree_skb|drop|dropwatch|pwru|retis", re.I)
_RST_CONTEXT = re.compile(r"tcp_send_reset|\breset\b|\brst\b", re.I)


def _kernel_words(conn: sqlite3.Connection, text: str, found: dict) -> None:
    """The kernel's own words: nstat names, netstat -s lines, and the reasons its tracepoints
    (and dropwatch, pwru, retis) print for a drop or a reset."""
    from ..kinds.counter import PREFERRED, group_of, wording_pattern

    for m in _COUNTER.finditer(text):
        name = re.sub(r"^(IcmpMsg(?:In|Out)Type)\d+$", r"\1", m.group(1))
        row = conn.execute("select id from entries where kind = 'counter' and name = ?", (name,)).fetchone()
        if row:
            _add(found, row[0], 0.9, Evidence(rule="counter", span=[m.start(), m.end()], text=m.group(1),
                                              detail=f"nstat's name for {row[0]}"))
    spans: set[tuple[int, int]] = set()
    rows = conn.execute("select id, netstat from counters where netstat is not null").fetchall()
    for entry_id, sentence in sorted(rows, key=lambda r: PREFERRED.index(group_of(r[0][8:]))):
        for m in wording_pattern(sentence).finditer(text):
            if (m.start(), m.end()) in spans:
                continue  # Udp and UdpLite print the same sentence: the likelier group answers
            spans.add((m.start(), m.end()))
            _add(found, entry_id, 0.9, Evidence(rule="counter", span=[m.start(), m.end()], text=m.group(0),
                                                detail=f"netstat -s prints {entry_id} as {sentence!r}"))
    for m in _FIELD_LINE.finditer(text):
        field = re.sub(r"^((?:In|Out)Type)\d+$", r"\1", m.group(1))
        ids = [r[0] for r in conn.execute("select id from counters where field = ?", (field,))]
        if ids:
            entry_id = min(ids, key=lambda i: PREFERRED.index(group_of(i[8:])))
            _add(found, entry_id, 0.85, Evidence(rule="counter", span=[m.start(1), m.end(2)],
                                                 text=m.group(0).strip(),
                                                 detail=f"netstat -s prints {entry_id} by its field name"))
    for m in _REASON.finditer(text):
        end = text.find("\n", m.end())
        line = text[text.rfind("\n", 0, m.start()) + 1:end if end >= 0 else len(text)]
        kinds = ["drop"] if m.group(1) == "SKB_DROP_REASON_" else ["rst"] if m.group(1) == "SK_RST_REASON_" \
            else ["rst", "drop"] if _RST_CONTEXT.search(line) and not _DROP_CONTEXT.search(line) \
            else ["drop", "rst"]
        for rank, kind in enumerate(kinds):
            row = conn.execute("select id from entries where kind = ? and name = ?", (kind, m.group(2))).fetchone()
            if row:
                _add(found, row[0], 0.9 - 0.3 * rank, Evidence(
                    rule="reason", span=[m.start(2), m.end(2)], text=m.group(2),
                    detail=f"the kernel's {'drop' if kind == 'drop' else 'reset'} reason {m.group(2)}"))
                break


def _numbers(conn: sqlite3.Connection, text: str, found: dict, by_message: dict[str, float]) -> None:
    """An errno number read where it stands, and on the platform the message points to."""
    done: set[int] = set()
    for pattern, what in _NUMBERS:
        for m in pattern.finditer(text):
            if m.group(1) is None or m.start(1) in done:
                continue
            done.add(m.start(1))
            number = int(m.group(1))
            rows = conn.execute("select entry_id, platform from errno_numbers where number = ?",
                                (number,)).fetchall()
            if number < 0:  # -errno from a system call, or a libuv code on Windows
                rows = [r for r in rows if r[1] == "libuv"] or conn.execute(
                    "select entry_id, platform from errno_numbers where number = ? and platform = 'linux'",
                    (-number,)).fetchall()
            platforms: dict[str, list[str]] = {}
            for entry_id, platform in rows:
                platforms.setdefault(entry_id, []).append(platform)
            span, shown = [m.start(1), m.end(1)], m.group(1)
            agreed = [e for e in platforms if e in by_message]
            if agreed:  # the message says which platform's number this is
                for entry_id in agreed:
                    where = ", ".join(platforms[entry_id])
                    _add(found, entry_id, 0.8, Evidence(
                        rule="number", span=span, text=shown,
                        detail=f"{what}: {number} is {entry_id.split(':')[1]} on {where}, as the message says"))
                continue
            default = "windows" if number >= 10000 else "libuv" if number <= -4000 else "linux"
            for entry_id, where in platforms.items():
                if default in where:
                    _add(found, entry_id, 0.55, Evidence(
                        rule="number", span=span, text=shown,
                        detail=f"{what}: {abs(number) if default == 'linux' else number} is "
                               f"{entry_id.split(':')[1]} on {default}"))
    for m in _EXIT.finditer(text):
        status = int(m.group(1))
        row = conn.execute("select entry_id from signal_numbers where platform = 'linux' and number = ?",
                           (status - 128,)).fetchone()
        if row:
            _add(found, row[0], 0.6, Evidence(rule="exit status", span=[m.start(1), m.end(1)],
                                              text=m.group(1),
                                              detail=f"exit status {status} = 128 + {status - 128}"))


# getaddrinfo's codes where programs print them: Python's gaierror ([Errno -2] on glibc and musl,
# [Errno 8] on macOS, [Errno 11001] on Windows), libuv's errno (-3008) in Node.js, and the names
# (EAI_AGAIN, Node's ENOTFOUND, WSAHOST_NOT_FOUND). Which number means what is the notes' data.
_GAI_NUMBER = re.compile(r"\[Errno (-?\d+)\]|\berrno[:=]? ?(-3\d{3})\b")
_GAI_NAME = re.compile(r"\b(EAI_[A-Z_]+|E[A-Z]{4,}|WSA[A-Z_]{5,})\b")


def _resolver(conn: sqlite3.Connection, text: str, found: dict, by_message: dict[str, float]) -> None:
    for m in _GAI_NUMBER.finditer(text):
        number = int(m.group(1) or m.group(2))
        rows = conn.execute("select entry_id, platform from resolver_numbers where number = ?",
                            (number,)).fetchall()
        agreed = [r for r in rows if r[0] in by_message]
        # a bare number: glibc's when negative, libuv's at -3000 and below, Windows' from 11000;
        # a small positive one is an errno unless the message says it is macOS's EAI code
        default = "libuv" if number <= -3000 else "glibc" if number < 0 else "windows" if number > 11000 else None
        chosen = agreed or [r for r in rows if r[1] == default]
        group = 1 if m.group(1) else 2
        for entry_id, platform in chosen:
            _add(found, entry_id, 0.8 if agreed else 0.6, Evidence(
                rule="number", span=[m.start(group), m.end(group)], text=m.group(group),
                detail=f"{number} is getaddrinfo's {entry_id.split(':')[1]} on {platform}"
                       + (", as the message says" if agreed else "")))
    named: set[str] = set()
    for m in _GAI_NAME.finditer(text):
        if m.group(1) in named:
            continue  # Node names the code twice (message and code:), which is one piece of evidence
        named.add(m.group(1))
        row = conn.execute(
            "select e.id, 1 from entries e where e.kind = 'resolver' and e.name = ?1 union all "
            "select a.entry_id, 0 from aliases a join entries e on e.id = a.entry_id "
            "where e.kind = 'resolver' and a.alias = ?1 limit 1", (m.group(1),)).fetchone()
        if row:  # a program's own name for a code may stand for several (Node's ENOTFOUND): weaker
            _add(found, row[0], 0.85 if row[1] else 0.6, Evidence(
                rule="name", span=[m.start(), m.end()], text=m.group(1), detail=f"{m.group(1)} names {row[0]}"))


def explain(conn: sqlite3.Connection, text: str, limit: int = 5) -> list[dict]:
    """The entries the text means, best first: [{id, score, evidence, deadline}]."""
    text = text[:MAX_TEXT]
    lowered = text.lower()
    found: dict[str, dict] = {}
    by_message = _messages(conn, text, lowered, found)
    _names(conn, text, found)
    _kernel_words(conn, text, found)
    _numbers(conn, text, found, by_message)
    _resolver(conn, text, found, by_message)
    # tcpkb explains socket failures: errno codes and signals a socket program does not meet
    # (ENOENT in a file-not-found traceback) are not named, whatever matched.
    quiet = {r[0] for r in conn.execute(
        "select id from errno where not socket union select id from signals where not socket")}
    out = []
    for item in found.values():
        if item["id"] in quiet:
            continue
        miss = 1.0
        for s in item["scores"]:  # independent pieces of evidence add up, never past 1
            miss *= 1 - s
        score = round(1 - miss, 3)
        if score >= THRESHOLD:
            evidence = sorted(item["evidence"], key=lambda e: e["span"][0])
            # an application's deadline when its message is the longest message that matched
            said = [e for e in evidence if e["rule"] in ("message", "deadline")]
            deadline = bool(said) and max(said, key=lambda e: len(e["text"]))["rule"] == "deadline"
            out.append({"id": item["id"], "score": score, "evidence": evidence, "deadline": deadline})
    out.sort(key=lambda m: (-m["score"], m["id"]))
    return out[:limit]


PUBLIC = ("id", "score", "evidence", "deadline", "title", "summary")  # a match in --json and the API


def explained(conn: sqlite3.Connection, text: str, limit: int = 5) -> list[dict]:
    """explain()'s matches with each entry's title, summaries and sections, for the CLI and the web."""
    from .lookup import entry

    out = []
    for m in explain(conn, text, limit):
        e = entry(conn, m["id"])
        out.append({**m, "title": e["title"], "summary": e["summary"],
                    "summary_zh": e["summary_zh"], "sections": e["sections"]})
    return out


def public(matches: list[dict]) -> dict:
    """The JSON answer: {"matches": [{id, score, evidence, deadline, title, summary}]}."""
    return {"matches": [{k: m[k] for k in PUBLIC} for m in matches]}
