"""Pasted error text -> the entries it means, ranked, each with the evidence that matched.

Rules over the database's lexicon (tcpkb.query.lexicon), not a table in the code: the
messages people paste (the notes' `seen_as`, glibc's messages and their translations, musl's),
the names of entries (ECONNRESET, SIGPIPE, CLOSE-WAIT, tcp_mem), and errno numbers read in their
context ([Errno 54] with "Connection reset by peer" is BSD's ECONNRESET, not Linux's EXFULL).
It imports neither sqlite3 nor re: it runs as a whole process per pasted line, from the explain
index, so it starts like a lookup (patterns through tcpkb.patterns).
"""

from __future__ import annotations

from ..clauses import weight
from ..patterns import Lazy as _Lazy
from ..patterns import compiled

MAX_TEXT = 200_000  # characters; a pasted log, not a disk image
THRESHOLD = 0.3  # below this an entry is not named at all
# The contract for text that is not a socket error: a match under CONFIDENT is still shown, marked
# low-confidence ("confident": false), and the exit status says no entry was named (1).
CONFIDENT = 0.5

SHORT_CLAUSE = 12  # characters of evidence: a clause this short is common words unless it ends a clause
_AS_SPACE = {ord("\n"): " ", ord("\r"): " ", ord("\t"): " "}  # same length: spans stay the text's


# Erlang and Elixir spell them as atoms: Elixir's :econnreset, and inside Erlang's tuples
# ({inet_error,econnreset}, {error, econnrefused}) an atom after the brace or a comma
_NAME = _Lazy(r"\b(WSAE[A-Z]{3,}|E[A-Z0-9]{3,}|SIG[A-Z0-9]{2,})\b"
                   r"|(?:(?<=:)|(?<=[{,])|(?<=[{,] ))(e[a-z]{4,})\b"
                   # a lower-case errno name as a word of its own ("suspend 100(ms) for 2300 emfile errors"):
                   # none is an English word, and only the names of entries count
                   r"|\b(e[a-z]{4,})\b")
_STATE_WORDS = (r"\b(SYN[-_]SENT|SYN[-_]RECV|SYN[-_]RECEIVED|FIN[-_]WAIT[-_]?[12]|CLOSE[-_]WAIT|"
                r"CLOSING|LAST[-_]ACK|TIME[-_]WAIT|ESTAB(?:LISHED)?|LISTEN)\b")
_STATE = _Lazy(_STATE_WORDS)
_STATE_COUNT = _Lazy(r"(?m)^[ \t]*(\d+)[ \t]+" + _STATE_WORDS + r"[ \t]*$"
                r"|^[ \t]*" + _STATE_WORDS + r"[ \t]*[:=]?[ \t]*(\d+)[ \t]*$")
_SS_SUMMARY = _Lazy(r"\b(timewait|synrecv|closed|orphaned) (\d+)")  # `ss -s`: "timewait 30001"
_SYSCTL = _Lazy(r"\b((?:net\.[a-z0-9_]+\.)?(?:tcp|ip|nf_conntrack|somaxconn)[a-z0-9_]*)\b")
_NUMBERS = [  # (pattern, what it is, platform, literals one of which the lowered text must hold)
    # the number group is 1; -N is -errno only where libuv says so
    (_Lazy(r"\bWinError ?(\d+)\b"), "Python's [WinError N]", "windows", ("winerror",)),  # brackets or not
    (_Lazy(r"\[Errno (\d+)\]"), "Python's [Errno N]", None, ("[errno",)),  # [Errno -2] is getaddrinfo's
    (_Lazy(r"\((\d+): [A-Za-z]"), "nginx-style (N: message)", None, (": ",)),
    (_Lazy(r"\bOs \{ code: (\d+)"), "Rust's Os { code: N }", None, ("os {",)),
    (_Lazy(r"\bos error (\d+)\b"), "Rust's (os error N)", None, ("os error",)),
    (_Lazy(r"\berrno[:=]? ?(-?\d+)"), "errno N", None, ("errno",)),  # Node's errno: -4077, C's errno=104
    (_Lazy(r"SocketException \((\d+)\)"), ".NET SocketException (N)", "windows", ("socketexception",)),
    (_Lazy(r"\b(?:NativeErrorCode|SocketErrorCode|ErrorCode)\s*[:=]?\s*(\d{5})\b"),
     ".NET's ErrorCode N", "windows", ("errorcode",)),
    (_Lazy(r"\b(?:[Ss]ocket|WSA|[Ww]insock) ?[Ee]rror(?: code)?\s*[:#]?\s*(\d{5})\b"), "socket error N", "windows",
     ("error",)),
    (_Lazy(r"(?i)\b(?:error|code)\s*[:=]\s*(-?\d+)\b"), "error code N", None, ("error", "code")),
    # DB2's SQL30081N: 'Communication function detecting the error: "recv". Protocol specific error code(s):
    # "104", "*", "0"' (the errno of the failed socket call, or the Windows code)
    (_Lazy(r'Protocol specific error code\(s\): "(\d+)"'), "DB2's protocol specific error code", None,
     ("protocol specific error code",)),
    # MySQL's and MariaDB's CR_CONNECTION_ERROR (2002) and CR_CONN_HOST_ERROR (2003) end with the OS
    # errno: "through socket '/run/mysqld/mysqld.sock' (2)" is ENOENT, "(111)" ECONNREFUSED
    (_Lazy(r"Can't connect to (?:local )?(?:MySQL|MariaDB) server[^\n]*?\((\d{1,5})\)"),
     "MySQL's (errno) after Can't connect", None, ("can't connect to",)),
    (_Lazy(r"(?m)\((\d{2,5})\)\s*$"), "(N) at the end of a line", None, (")",)),
]
# Where a process on macOS or FreeBSD printed the text: its errno numbers are the BSD ones.
_BSD_HINT = _Lazy(r"/Users/|/opt/homebrew|/Library/|\.framework/|\b(?:[Dd]arwin|macOS|Mac OS X|FreeBSD|OpenBSD)\b")
_EXIT = _Lazy(r"(?i)\b(?:exit (?:status|code)|exited with(?: code)?|returned|\] Error|exit|rc|status|exit_code)"
              r"\s*[:=]?\s*(1[2-5]\d)\b")  # `make: *** [x] Error 141`, `exit 141`, `status=141`
# `echo "${PIPESTATUS[0]}"` or `echo $?`, and the status on a line below it; `echo ${PIPESTATUS[@]}`
# prints one status per stage of the pipeline ("141 0": the first stage died of SIGPIPE)
_STATUS_ECHO = _Lazy(r"(?:PIPESTATUS|\$\?)[^\n]*\n(?:[^\n]*\n){0,3}?[ \t]*(?:\d{1,3}[ \t]+)*?(1[2-5]\d)"
                     r"(?:[ \t]+\d{1,3})*[ \t]*(?:\n|$)")
# "killed by signal 13", "terminated by signal 13", "exited on signal 13", "signal: 13"
_SIGNAL_NUMBER = _Lazy(r"\b(?:[Kk]illed by|[Tt]erminated by|died (?:of|with)|exited on|received|got|by)"
                       r" signal:? (\d{1,2})\b|\bsignal (\d{1,2})\b(?! *(?:handler|mask))")
# Words that put a general errno on a socket, a pipe, a descriptor or non-blocking I/O ("connect: …",
# "read: …", BlockingIOError)
_NETWORK_WORDS = _Lazy(r"(?i)sock|connect|bind|listen|accept|recv|send|read|write|tcp|udp|http|unix|"
                       r"port|host|peer|upstream|proxy|dial|network|conn|pipe|descriptor|block|\bfd\b"
                       # MySQL's client errors 2002 and 2003 (PDO: "SQLSTATE[HY000] [2002] No such file or
                       # directory") end with the errno of connect() to its socket or port
                       r"|\[200[23]\]")
# A process the kernel or a supervisor killed: its memory is not an errno a call returned.
# A kill is SIGKILL's entry: its note says what the kernel does to the process's connections.
_KILLED = _Lazy(r"(?i)\bKilled process \d+|\boom[-_ ]?kill|Out of memory: Kill|(?m:^Killed$)|\bsignal:? 9\b|"
                r"\bSIGKILL\b|\b(?:exit(?:ed)?(?: with)?(?: status| code)?|status)[:= ]\s*137\b")
# A shell's job report: "bash: line 1:  4821 Broken pipe    yes" names the signal by its description.
# bash's job notice after `kill %1` prints the job number instead: "[1]+  Terminated    ./server"
_JOB = _Lazy(r"(?:^|\n)[^\n]*?(?:\b\d+|\[\d+\][+-]?) +([A-Z][a-z]+(?: [a-z]+)*?) {2,}\S")


def _state_counts(text: str) -> dict[str, int]:
    """States a listing counts: `sort | uniq -c` ("  1200 TIME_WAIT") or "TIME_WAIT 1200" / ": 1200"."""
    counts: dict[str, int] = {}
    for m in _STATE_COUNT.finditer(text):
        key = _bare((m.group(2) or m.group(3)).upper())
        counts[key] = counts.get(key, 0) + int(m.group(1) or m.group(4))
    return counts


def _bare(state: str) -> str:
    """A state as the lexicon keys it: CLOSE-WAIT, CLOSE_WAIT -> CLOSEWAIT."""
    return state.replace("-", "").replace("_", "")


def _alone_on_line(text: str, at: int, word: str) -> bool:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start:end if end >= 0 else len(text)].strip().lower() == word.lower()


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
    return not rest or rest[0] in "\n\r)]'\",.;:" or rest == " (" or rest.isspace()


def _number_forms(text: str, lowered: str):
    """The number forms whose literal the text holds (the others' patterns are never compiled)."""
    return [(p, what, platform) for p, what, platform, needs in _NUMBERS if any(n in lowered for n in needs)]


def _strerror_stands(text: str, end: int) -> bool:
    """A C library's message ends its clause, and carries no full stop of its own: a quoted
    sentence "'Connection aborted.'" is an application's words (urllib3's ProtocolError wrapping
    the real error as ('Connection aborted.', RemoteDisconnected(…))), not musl's strerror."""
    return _ends_clause(text, end) and not _quoted_sentence(text, end) and not _PROTOCOL_REFUSAL.match(text, end)


# A refusal by a protocol above TCP, in a C library's words: ssh's "Permission denied (publickey,password)"
# (no way to log in was accepted, not EACCES), MQTT's CONNACK "Connection refused: not authorized" (the
# broker accepted the TCP connection and then refused the client, not ECONNREFUSED)
_PROTOCOL_REFUSAL = _Lazy(r"(?i) \((?:publickey|password|keyboard-interactive|gssapi-with-mic|hostbased)\b"
                          r"|:? (?:not authori[sz]ed|bad user ?name or password|identifier rejected"
                          r"|unacceptable protocol version)")


def _quoted_sentence(text: str, end: int) -> bool:
    return text[end:end + 2] in (".'", '."')


def _context_numbers(text: str, lowered: str | None = None) -> set[int]:
    return {int(m.group(1)) for pattern, _, _ in _number_forms(text, lowered or text.lower())
            for m in pattern.finditer(text) if m.group(1)}


class Evidence(dict):
    """{rule, span, text, detail}: what in the pasted text matched what."""


def _add(found: dict, entry_id: str, score: float, evidence: dict) -> None:
    item = found.setdefault(entry_id, {"id": entry_id, "scores": [], "evidence": []})
    item["scores"].append(score)
    item["evidence"].append(evidence)


def _messages(lexicon: dict, text: str, lowered: str, found: dict) -> dict[str, float]:
    """Every message whose literal fragments appear in the text; returns entry -> best score."""
    pasted_numbers = _context_numbers(text, lowered)
    best: dict[str, float] = {}
    hits_all: list[tuple[str, list[int], float, dict]] = []
    # the error itself comes last ("...: Connection refused"): without it, no match
    rows = lexicon["message_rows"]
    for i, last in enumerate(lexicon["message_lasts"]):
        if last not in lowered:
            continue
        entry_id, message, source, deadline, frags, reason, confidence = rows[i]
        hits = _find_in_order(lowered, [f for f, _ in frags])
        if hits[-1][0] < 0 or _PROTOCOL_REFUSAL.match(text, hits[-1][0] + len(hits[-1][1])):
            continue
        vendor = source.startswith("vocab:")
        # a C library's bare message ends its clause; Windows' sentences are followed by more
        # (.NET appends the endpoint), and a vendor's phrase is matched as a note's is
        if (source in ("glibc", "musl") or source.startswith("glibc:")) and \
                not _strerror_stands(text, hits[-1][0] + len(hits[-1][1])):
            continue  # a bare C-library message ends its clause: not "Out of memory: Killed process"
        weights = dict(frags)
        found_frags = [(at, f) for at, f in hits if at >= 0]
        if len(found_frags) == 1 and not _lone_clause_stands(text, message, source, len(frags), *found_frags[0]):
            continue
        coverage = sum(weights[f] for _, f in found_frags) / sum(weights.values())
        raw = sum(weight(f) for _, f in found_frags)
        if coverage < 0.5 or raw < 8:
            continue
        if source == "note" and pasted_numbers and (own := _context_numbers(message)) \
                and not own & pasted_numbers:
            continue  # same words, another errno number: "(111)" is not "(113)"
        score = 0.45 + 0.5 * coverage * min(1.0, raw / 25)
        if confidence is not None:  # a vendor's phrase that only suggests the entry
            score = min(score, confidence)
        if deadline:
            score -= 0.02  # a kernel message for the same words wins a tie
        start = min(at for at, _ in found_frags)
        end = max(at + len(f) for at, f in found_frags)
        if vendor:
            evidence = Evidence(rule="vocabulary", span=[start, end], text=text[start:end], deadline=bool(deadline),
                                detail=f"{source[6:]}: {message!r}, {reason}")
        else:
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


def _lone_clause_stands(text: str, message: str, source: str, clauses: int, at: int, clause: str) -> bool:
    """Whether one clause of a message, found alone, says the message: it must stand as a clause
    of the text too."""
    if source == "note" and clause.isalpha() and not _alone_on_line(text, at, clause):
        return False  # one word of a note's message ("Terminated") is a shell's whole line, not "RPC that terminated"
    end = at + len(clause)
    if _PROTOCOL_REFUSAL.match(text, end):
        return False  # ssh's "Permission denied (publickey)", MQTT's "Connection refused: not authorized"
    if clause.startswith(("while ", "when ")):
        return False  # nginx's context ("while reading response header from upstream"), not the error
    if _quoted_sentence(text, end) and not message.rstrip().endswith((".", "。")):
        return False  # someone's quoted sentence: urllib3's 'Connection aborted.' (Windows' own end in a full stop)
    # a short last clause of a longer message, inside a sentence of the text: "Try again" of a
    # resolver's message in "Please try again later"
    return not (source == "note" and clauses > 1 and weight(clause) < SHORT_CLAUSE and not _ends_clause(text, end))


def _source(source: str) -> str:
    if source == "note":
        return "as people paste it"
    if source.startswith("glibc:"):
        return f"glibc's translation, {source.split(':', 1)[1]}"
    if source.startswith("windows:"):
        return f"Windows' message, {source.split(':', 1)[1]}"
    return {"glibc": "glibc's strerror", "musl": "musl's strerror"}.get(source, source)


def _names(lexicon: dict, text: str, found: dict) -> None:
    for m in _NAME.finditer(text):
        name = (m.group(1) or m.group(2) or m.group(3)).upper()
        entry_id = lexicon["names"].get(name.removeprefix("WSA") if name.startswith("WSAE") else name)
        if entry_id and (m.group(3) is None or entry_id.startswith("errno:")):
            _add(found, entry_id, 0.85 if m.group(3) is None else 0.7, Evidence(rule="name", span=[m.start(), m.end()], text=m.group(0),
                                                 detail=f"{m.group(0)} names {entry_id}"))  # an atom as written
    _states(lexicon, text, found)
    _signal_jobs(lexicon, text, found)
    sysctl_words = ("tcp", "ip", "nf_conntrack", "somaxconn")
    for m in _SYSCTL.finditer(text) if any(w in text for w in sysctl_words) else ():
        word = m.group(1)
        entry_id = lexicon["sysctls"].get(word)
        if entry_id:
            _add(found, entry_id, 0.7, Evidence(rule="sysctl", span=[m.start(), m.end()], text=word,
                                                detail=f"names the knob {entry_id.split(':', 1)[1]}"))


def _states(lexicon: dict, text: str, found: dict) -> None:
    states: dict[str, list] = {}
    for m in _STATE.finditer(text):
        states.setdefault(_bare(m.group(1).upper()), []).append(m)
    counts = _state_counts(text) if states else {}
    most = max(counts.values(), default=0)
    for key, matches in states.items():
        entry_id = lexicon["states"].get(key)
        if not entry_id:
            continue
        # An ss table is full of ESTAB and LISTEN; only the states that pile up mean trouble.
        common = entry_id in ("state:ESTABLISHED", "state:LISTEN")
        m = matches[0]
        if key in counts and not counts[key]:
            continue  # listed with none ("TIME-WAIT 0"): no pile to name
        if key in counts:  # a listing with counts (uniq -c, "TIME_WAIT 1200"): the largest pile first
            score = 0.2 if common else 0.5 + 0.4 * counts[key] / most
            detail = f"{counts[key]} socket(s) in {entry_id.split(':')[1]}, as the listing counts them"
        else:
            score = 0.2 if common else min(0.9, 0.5 + 0.04 * len(matches))
            detail = f"{len(matches)} socket(s) in {entry_id.split(':')[1]}"
        _add(found, entry_id, score, Evidence(rule="state", span=[m.start(), m.end()], text=m.group(1),
                                              detail=detail))
    for m in _SS_SUMMARY.finditer(text) if "timewait " in text or "synrecv " in text else ():
        state = {"timewait": "state:TIME_WAIT", "synrecv": "state:SYN_RECV"}.get(m.group(1))
        count = int(m.group(2))
        if state and count >= 100:  # a summary line counts them; a pile is what matters
            _add(found, state, 0.75, Evidence(rule="state", span=[m.start(), m.end()], text=m.group(0),
                                              detail=f"ss -s counts {count} sockets in {state[6:]}"))


def _signal_jobs(lexicon: dict, text: str, found: dict) -> None:
    for m in _JOB.finditer(text) if "  " in text else ():
        entry_id = lexicon["signal_titles"].get(m.group(1))
        if entry_id:
            _add(found, entry_id, 0.8, Evidence(
                rule="name", span=[m.start(1), m.end(1)], text=m.group(1),
                detail=f"a shell reports a job killed by {entry_id.split(':')[1]} as {m.group(1)!r}"))


_COUNTER = _Lazy(r"\b((?:TcpExt|IpExt|MPTcpExt|IcmpMsg|Icmp|UdpLite|Udp|Tcp|Ip)[A-Z][A-Za-z0-9]*)\b")
_FIELD_LINE = _Lazy(r"(?m)^[ \t]*([A-Z][A-Za-z0-9]+): (\d+)[ \t]*$")  # netstat -s without a sentence
_NSTAT_VALUE = _Lazy(r"[ \t]+(\d+)")  # nstat: the name, then its value on the line
_REASON = _Lazy(r"\b(SKB_DROP_REASON_|SK_RST_REASON_|reason[:=]? ?\(?)([A-Z][A-Z0-9_]{2,})\b")
_DROP_CONTEXT = _Lazy(r"(?i)kfree_skb|drop|dropwatch|pwru|retis")
_RST_CONTEXT = _Lazy(r"(?i)tcp_send_reset|\breset\b|\brst\b")
_DIGITS = _Lazy(r"(\d+)")


def _without_type_number(name: str, prefix: str) -> str:
    """IcmpMsgInType3 -> IcmpMsgInType: one entry stands for every ICMP type's counter."""
    for direction in ("In", "Out"):
        head = f"{prefix}{direction}Type"
        if name.startswith(head) and name[len(head):].isdigit():
            return head
    return name


def _kernel_words(lexicon: dict, text: str, found: dict) -> None:
    """The kernel's own words: nstat names, netstat -s lines, and the reasons its tracepoints
    (and dropwatch, pwru, retis) print for a drop or a reset."""
    for m in _COUNTER.finditer(text) if any(g in text for g in ("Tcp", "Ip", "Udp", "Icmp")) else ():
        entry_id = lexicon["counter_names"].get(_without_type_number(m.group(1), "IcmpMsg"))
        if entry_id:
            _add(found, entry_id, 0.9, Evidence(rule="counter", span=[m.start(), m.end()], text=m.group(1),
                                                detail=f"nstat's name for {entry_id}"))
            _counted(found, entry_id, _NSTAT_VALUE.match(text, m.end()))
    _netstat_lines(lexicon, text, found)
    _reasons(lexicon, text, found)


def _netstat_lines(lexicon: dict, text: str, found: dict) -> None:
    """netstat -s: its sentences ("5 times the listen queue of a socket overflowed"), and bare
    "Field: N" lines; where groups share a sentence or field, the likelier group answers."""
    spans: set[tuple[int, int]] = set()
    lowered = text.lower()
    # only the sentences whose longest literal part the text holds get a regex
    rows = [row for row in lexicon["netstat"] if row[2] in lowered]
    rank = lexicon["counter_rank"]
    for entry_id, sentence, _, source in sorted(rows, key=lambda r: rank[r[0]]):
        for m in compiled(source).finditer(text):
            if (m.start(), m.end()) in spans:
                continue  # Udp and UdpLite print the same sentence: the likelier group answers
            spans.add((m.start(), m.end()))
            _add(found, entry_id, 0.9, Evidence(rule="counter", span=[m.start(), m.end()], text=m.group(0),
                                                detail=f"netstat -s prints {entry_id} as {sentence!r}"))
            _counted(found, entry_id, _DIGITS.search(m.group(0)))
    for m in _FIELD_LINE.finditer(text):
        ids = lexicon["fields"].get(_without_type_number(m.group(1), ""))
        if ids:
            entry_id = min(ids, key=rank.__getitem__)
            _add(found, entry_id, 0.85, Evidence(rule="counter", span=[m.start(1), m.end(2)],
                                                 text=m.group(0).strip(),
                                                 detail=f"netstat -s prints {entry_id} by its field name"))
            found[entry_id].setdefault("counts", []).append(int(m.group(2)))


def _reasons(lexicon: dict, text: str, found: dict) -> None:
    for m in _REASON.finditer(text) if "reason" in text or "REASON" in text else ():
        end = text.find("\n", m.end())
        line = text[text.rfind("\n", 0, m.start()) + 1:end if end >= 0 else len(text)]
        kinds = ["drop"] if m.group(1) == "SKB_DROP_REASON_" else ["rst"] if m.group(1) == "SK_RST_REASON_" \
            else ["rst", "drop"] if _RST_CONTEXT.search(line) and not _DROP_CONTEXT.search(line) \
            else ["drop", "rst"]
        for rank, kind in enumerate(kinds):
            entry_id = lexicon["reasons"].get(f"{kind}:{m.group(2)}")
            if entry_id:
                _add(found, entry_id, 0.9 - 0.3 * rank, Evidence(
                    rule="reason", span=[m.start(2), m.end(2)], text=m.group(2),
                    detail=f"the kernel's {'drop' if kind == 'drop' else 'reset'} reason {m.group(2)}"))
                break


def _counted(found: dict, entry_id: str, m) -> None:
    if m:
        found[entry_id].setdefault("counts", []).append(int(m.group(1)))


def _counters_by_count(lexicon: dict, found: dict) -> None:
    """Several counters printed with their values (netstat -s, nstat): the largest names what
    happened most and ranks first; at equal values the narrower counter (ListenOverflows) ranks above
    the one that includes it (ListenDrops counts every overflow too): it names the cause."""
    counted = {e: max(item["counts"]) for e, item in found.items() if item.get("counts")}
    if len(counted) < 2:
        return
    most = max(counted.values())
    includes = lexicon["includes"]
    for entry_id, count in counted.items():
        # the largest keeps its score; any smaller one stays visibly below it, however close
        factor = 1.0 if count == most else min(0.5 + 0.4 * count / most, 0.88) / 0.9
        if any(wide == entry_id and counted.get(narrow) == count for wide, narrow in includes):
            factor *= 0.97
        item = found[entry_id]
        item["scores"] = [s * factor if e["rule"] == "counter" else s
                          for s, e in zip(item["scores"], item["evidence"])]


def _vocabulary(lexicon: dict, text: str, found: dict) -> None:
    """Vendors' codes where their formats put them (data/vocab/): Chromium's ERR_*, Envoy's
    flags and reset reasons, HAProxy's termination states, Erlang's {error, Reason} …"""
    for vocabulary, pattern, what, split, needs in lexicon["vocab_forms"]:
        if needs and not any(n in text for n in needs):
            continue  # none of the literals the form needs: no regex to compile
        for m in compiled(pattern).finditer(text):
            start = m.start("term")
            for term in (m.group("term").split(split) if split else [m.group("term")]):
                row = lexicon["vocab_terms"].get(f"{vocabulary}\t{term}")
                at = text.find(term, start)
                if row:
                    entry_id, reason, source, confidence, deadline = row
                    _add(found, entry_id, confidence, Evidence(
                        rule="vocabulary", span=[at, at + len(term)], text=term, deadline=bool(deadline),
                        detail=f"{what}: {term}, {reason} ({source})"))
                start = at + len(term)


def _numbers(lexicon: dict, text: str, found: dict, by_message: dict[str, float]) -> None:
    """An errno number read where it stands, and on the platform the message points to."""
    done: set[int] = set()
    socket = lexicon["socket_errnos"]
    forms = _number_forms(text, text.lower())
    bsd = bool(forms) and bool(_BSD_HINT.search(text))
    for pattern, what, platform in forms:
        for m in pattern.finditer(text):
            if m.group(1) is None or m.start(1) in done or _of_getaddrinfo(text, m):
                continue
            done.add(m.start(1))
            _number(lexicon, m, what, platform, found, by_message, socket, bsd)
    _statuses(lexicon, text, found)


def _of_getaddrinfo(text: str, m) -> bool:
    """Python's `gaierror: [Errno 8] …`: the number is getaddrinfo's code, never an errno (8 is
    ENOEXEC on Linux, EAI_NONAME on macOS); _resolver reads it."""
    return "gaierror" in _line_of(text, m.start()) and m.group(0).startswith("[Errno ")


def _line_of(text: str, at: int) -> str:
    end = text.find("\n", at)
    return text[text.rfind("\n", 0, at) + 1:end if end >= 0 else len(text)]


def _number(lexicon: dict, m, what: str, platform: str | None, found: dict,
            by_message: dict[str, float], socket: dict[str, None], bsd: bool) -> None:
    number = int(m.group(1))
    if abs(number) > 1 << 31:
        return  # no platform's errno; and SQLite could not even take it as a parameter
    numbers = lexicon["errno_numbers"]
    rows = numbers.get(number, [])
    if number < 0:  # -errno from a system call, or a libuv code on Windows
        rows = [r for r in rows if r[1] == "libuv"] or [r for r in numbers.get(-number, []) if r[1] == "linux"]
    platforms: dict[str, list[str]] = {}
    for entry_id, where in rows:
        platforms.setdefault(entry_id, []).append(where)
    span, shown = [m.start(1), m.end(1)], m.group(1)
    agreed = [e for e in platforms if e in by_message]
    if agreed:  # the message says which platform's number this is
        for entry_id in agreed:
            where = ", ".join(platforms[entry_id])
            _add(found, entry_id, 0.8, Evidence(
                rule="number", span=span, text=shown,
                detail=f"{what}: {number} is {entry_id.split(':')[1]} on {where}, as the message says"))
        return
    default = platform or ("windows" if number >= 10000 else "libuv" if number <= -4000 else "linux")
    score = 0.7 if platform else 0.55  # a form only one platform prints says more than a bare number
    linux = [e for e, where in platforms.items() if default in where]
    if default == "linux" and not any(e in socket for e in linux):
        # Linux's meaning is no socket error (54 is EXFULL): a client on macOS or FreeBSD printed it
        for entry_id, where in platforms.items():
            others = [w for w in where if w in ("darwin", "freebsd")]
            if others and entry_id in socket:
                _add(found, entry_id, 0.65 if bsd else 0.45, Evidence(
                    rule="number", span=span, text=shown,
                    detail=f"{what}: {number} is {entry_id.split(':')[1]} on {' and '.join(others)}"
                           f"{' (the text names that system)' if bsd else ''}; on Linux it is no socket error"))
        return
    for entry_id in linux:
        _add(found, entry_id, score, Evidence(
            rule="number", span=span, text=shown,
            detail=f"{what}: {abs(number) if default == 'linux' else number} is "
                   f"{entry_id.split(':')[1]} on {default}"))


def _statuses(lexicon: dict, text: str, found: dict) -> None:
    """A process killed by a signal: a shell's exit status 128 + N, or the signal's number."""
    def signal(number: int, m, group: int, score: float, detail: str) -> None:
        entry_id = lexicon["signal_numbers"].get(number)
        if entry_id:
            _add(found, entry_id, score, Evidence(rule="exit status" if "exit" in detail else "signal",
                                                  span=[m.start(group), m.end(group)], text=m.group(group),
                                                  detail=detail.format(name=entry_id.split(':')[1])))
    statuses = [*_EXIT.finditer(text)] if any(f"1{d}" in text for d in "2345") else []
    if "PIPESTATUS" in text or "$?" in text:
        statuses += _STATUS_ECHO.finditer(text)
    for m in statuses:
        status = int(m.group(1))
        signal(status - 128, m, 1, 0.6, f"exit status {status} = 128 + {status - 128}: killed by {{name}}")
    for m in _SIGNAL_NUMBER.finditer(text) if "ignal" in text else ():
        group = 1 if m.group(1) else 2
        signal(int(m.group(group)), m, group, 0.7, f"signal {m.group(group)} is {{name}} on Linux")


# getaddrinfo's codes where programs print them: Python's gaierror ([Errno -2] on glibc and musl,
# [Errno 8] on macOS, [Errno 11001] on Windows), libuv's errno (-3008) in Node.js, and the names
# (EAI_AGAIN, Node's ENOTFOUND, WSAHOST_NOT_FOUND). Which number means what is the notes' data.
_GAI_NUMBER = _Lazy(r"\[Errno (-?\d{1,6})\]|\berrno[:=]? ?(-3\d{3})\b")  # longer: no code, and SQLite's ints overflow
_GAI_NAME = _Lazy(r"\b(EAI_[A-Z_]+|E[A-Z]{4,}|WSA[A-Z_]{5,})\b")


def _bsd_codes(rows: list, text: str, m, number: int) -> list[tuple[str, str]]:
    """(entry, "darwin and freebsd") for a gaierror's small positive number: a BSD's code."""
    if not (0 < number < 100 and _of_getaddrinfo(text, m)):
        return []
    platforms: dict[str, list[str]] = {}
    for entry_id, platform in rows:
        if platform in ("darwin", "freebsd"):
            platforms.setdefault(entry_id, []).append(platform)
    return [(entry_id, " and ".join(where)) for entry_id, where in platforms.items()]


def _resolver(lexicon: dict, text: str, found: dict, by_message: dict[str, float]) -> None:
    for m in _GAI_NUMBER.finditer(text):
        number = int(m.group(1) or m.group(2))
        rows = lexicon["resolver_numbers"].get(number, [])
        agreed = [r for r in rows if r[0] in by_message]
        # a bare number: glibc's when negative, libuv's at -3000 and below, Windows' from 11000;
        # a small positive one is an errno unless the message says it is macOS's EAI code, or
        # Python calls it a gaierror: then it is the code of a BSD (macOS, FreeBSD, Solaris)
        default = "libuv" if number <= -3000 else "glibc" if number < 0 else "windows" if number > 11000 else None
        chosen = agreed or [r for r in rows if r[1] == default] or _bsd_codes(rows, text, m, number)
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
        row = lexicon["resolver_names"].get(m.group(1))
        if row:  # a program's own name for a code may stand for several (Node's ENOTFOUND): weaker
            _add(found, row[0], 0.85 if row[1] else 0.6, Evidence(
                rule="name", span=[m.start(), m.end()], text=m.group(1), detail=f"{m.group(1)} names {row[0]}"))


def explain(lexicon: dict, text: str, limit: int = 5) -> list[dict]:
    """The entries the text means, best first: [{id, score, evidence, deadline}]. The lexicon
    is tcpkb.query.lexicon.read(conn), or the explain index's copy of it."""
    text = text[:MAX_TEXT]
    # Windows' French and Italian texts use ’; a long message wrapped onto several lines (Windows'
    # own pt-BR and ru texts break their lines) still matches: a line break counts as a space
    lowered = text.lower().replace("\u2019", "'").translate(_AS_SPACE)
    found: dict[str, dict] = {}
    by_message = _messages(lexicon, text, lowered, found)
    _names(lexicon, text, found)
    _kernel_words(lexicon, text, found)
    _counters_by_count(lexicon, found)
    _vocabulary(lexicon, text, found)
    _numbers(lexicon, text, found, by_message)
    _resolver(lexicon, text, found, by_message)
    _listen_queues(text, found)
    _killed(text, found)
    _paraphrased(text, found)
    _dotnet_try_again(text, found)
    _number_after_message(lexicon, text, found)
    _tls_failure_after_message(text, found)
    _general_errnos_guessed(lexicon, found, text)
    # tcpkb explains socket failures: errno codes and signals a socket program does not meet
    # (ENOENT in a file-not-found traceback) are not named, whatever matched.
    quiet = lexicon["quiet"]
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
            out.append({"id": item["id"], "score": score, "evidence": evidence, "deadline": _deadline(evidence)})
    _errno_before_its_knobs(lexicon, out)
    for m in out:
        m["confident"] = m["score"] >= CONFIDENT
    out.sort(key=lambda m: (-m["score"], m["id"]))
    return out[:limit]


def _deadline(evidence: list[dict]) -> bool:
    """An application's deadline when its message (or vendor code) is the longest that matched."""
    said = [e for e in evidence if e["rule"] in ("message", "deadline", "vocabulary")]
    return bool(said) and bool(max(said, key=lambda e: len(e["text"])).get("deadline")
                               or max(said, key=lambda e: len(e["text"]))["rule"] == "deadline")


def _number_after_message(lexicon: dict, text: str, found: dict) -> None:
    """A message that means one errno, then another socket errno's number later on its line
    ("reset reason: connection failure, transport failure reason: delayed connect error: 113"):
    the number is the more precise, so the words weigh less than it."""
    socket = lexicon["socket_errnos"]
    numbers = [(e["span"][0], item["id"]) for item in found.values() if item["id"] in socket
               for e in item["evidence"] if e["rule"] == "number"]
    for item in found.values():
        if not item["id"].startswith("errno:") or any(e["rule"] == "number" for e in item["evidence"]):
            continue
        for i, ev in enumerate(item["evidence"]):
            end = ev["span"][1]
            if ev["rule"] in ("message", "vocabulary") and any(
                    other != item["id"] and at >= end and "\n" not in text[end:at] for at, other in numbers):
                item["scores"][i] *= 0.4


# A TLS failure named after a generic "could not connect" ("reset reason: connection failure,
# transport failure reason: TLS error: … CERTIFICATE_VERIFY_FAILED"): the TCP connection was made
_TLS_FAILURE = _Lazy(r"(?i)\bTLS[ _]error\b|\bSSL routines\b|CERTIFICATE_VERIFY_FAILED|certificate verify failed"
                     r"|\bSSL_do_handshake\b|\bhandshake failure\b")


def _tls_failure_after_message(text: str, found: dict) -> None:
    """A proxy's generic connect failure, then the TLS failure that was its real cause later on the
    same line: the words name no errno any more, so they weigh little (an errno named or numbered
    stays)."""
    if not any(w in text for w in ("TLS", "SSL", "certificate")):
        return
    failures = [m.start() for m in _TLS_FAILURE.finditer(text)]
    for item in found.values():
        if not item["id"].startswith("errno:") or any(e["rule"] in ("name", "number") for e in item["evidence"]):
            continue
        for i, ev in enumerate(item["evidence"]):
            end = ev["span"][1]
            if ev["rule"] in ("message", "vocabulary") and any(
                    at >= end and "\n" not in text[end:at] for at in failures):
                item["scores"][i] *= 0.3


def _dotnet_try_again(text: str, found: dict) -> None:
    """.NET on Linux and macOS reports getaddrinfo's EAI_AGAIN as SocketError.TryAgain
    (NameResolutionPal.Unix.cs), and the exception's text is EAGAIN's strerror, since SocketErrorPal
    maps TryAgain to EAGAIN: "HttpRequestException: Resource temporarily unavailable (host:80)".
    Its sockets retry a real EAGAIN themselves, so in System.Net's exceptions the text is the resolver."""
    item = found.get("errno:EAGAIN")
    if item is None or "System.Net" not in text or not ("SocketException" in text or "HttpRequestException" in text):
        return
    # the words, and .NET's own (11) beside them: that is the errno TryAgain is mapped to
    if not all(e["rule"] == "message" or (e["rule"] == "number" and e["detail"].startswith(".NET"))
               for e in item["evidence"]):
        return
    del found["errno:EAGAIN"]
    for score, ev in zip(item["scores"], item["evidence"]):
        _add(found, "resolver:EAI_AGAIN", score, Evidence(
            rule=ev["rule"], span=ev["span"], text=ev["text"],
            detail=f"{ev['text']!r} in .NET's System.Net exceptions is SocketError.TryAgain: getaddrinfo's "
                   "EAI_AGAIN, printed with EAGAIN's text"))


# ss -l: a listener's Recv-Q is its accept queue (sk_ack_backlog) and Send-Q its backlog
# (sk_max_ack_backlog), as tcp_diag_get_info() reports them; the kernel counts the queue full when
# the first is above the second (sk_acceptq_is_full), and then drops the handshake's last ACK
_SS_LISTENER = _Lazy(r"(?m)^[ \t]*(?:tcp6?[ \t]+)?LISTEN[ \t]+(\d+)[ \t]+(\d+)[ \t]+(\S+)")


def _listen_queues(text: str, found: dict) -> None:
    for m in _SS_LISTENER.finditer(text) if "LISTEN " in text else ():
        queued, backlog = int(m.group(1)), int(m.group(2))
        if queued > backlog:
            _add(found, "counter:TcpExtListenOverflows", 0.8, Evidence(
                rule="counter", span=[m.start(1), m.end(2)], text=text[m.start(1):m.end(2)],
                detail=f"{m.group(3)} listens with {queued} connections waiting for accept() and a backlog of "
                       f"{backlog}: the accept queue is full, so the kernel drops handshakes and counts ListenOverflows"))


def _general_errnos_guessed(lexicon: dict, found: dict, text: str) -> None:
    """The general errnos (asm-generic/errno-base.h, 1 to 34: "No such file or directory",
    "Permission denied") quoted by their message alone in a text that says nothing of a socket
    (gcc's "main.c: No such file or directory", npm's "errno 1") are a guess, not an answer: kept
    under CONFIDENT. Named (EMFILE), in a socket's words or as a Windows Sockets code or message
    (WSAEACCES), they answer as any errno does."""
    general = lexicon["general"]
    if not found.keys() & general.keys():
        return
    # a call on a file (npm's "syscall mkdir", Node's "ENOENT: …, open 'package.json'", Python's
    # "[Errno 13] Permission denied: '/var/log/app.log'"): even named, the errno is a file's
    on_a_file = bool(_FILE_CALL.search(text)) and not _SOCKET_CALL.search(text)
    if _NETWORK_WORDS.search(text) and not on_a_file:
        return
    for item in found.values():
        windows = any("Windows' message" in e["detail"] or "on windows" in e["detail"] for e in item["evidence"])
        if item["id"] in general and not windows and \
                (on_a_file or all(e["rule"] in ("message", "deadline", "number") for e in item["evidence"])):
            item["scores"] = [min(max(item["scores"]), CONFIDENT - 0.05)]


_FILE_CALLS = r"(?:open|openat|mkdir|rmdir|unlink|rename|scandir|stat|lstat|access|chmod|chown|symlink|copyfile|utime)"
_FILE_CALL = _Lazy(r"\bsyscall:? ['\"]?" + _FILE_CALLS + r"\b|, " + _FILE_CALLS + r" '[^'\n]+'"
                   r"|\b(?:FileNotFoundError|IsADirectoryError|NotADirectoryError|FileExistsError)\b"
                   # Go's os.PathError: "stat /bin/hello: no such file or directory"
                   r"|\b(?:open|stat|lstat|mkdir|remove|rename|readlink|chdir|chmod) /[^\s:]*: "
                   r"|\[Errno \d+\] [^\n:]+: '(?:/|[A-Za-z]:\\|\.{1,2}/)")
_SOCKET_CALL = _Lazy(r"\b(?:connect|bind|listen|accept|sendto|recvfrom|socket|getaddrinfo)\b")


# A connection's failure said in a program's own words, within a clause: "The connection was refused
# by the remote host", "connection 0 to localhost:27017 timed out", "connect 10.1.2.3 fail:timeout('timed
# out')". Weaker than any message, code or number, and used only where none named the entry.
_IN_CLAUSE = r"(?:[^.\n;]|\.(?=\S))"  # a character of the same sentence: a dot only inside a name or address
_PARAPHRASES = (
    ("errno:ECONNREFUSED", _Lazy(r"(?i)\bconnection\b" + _IN_CLAUSE + r"{0,40}?\b(?:was|been|is|got) refused\b")),
    ("errno:ECONNRESET", _Lazy(r"(?i)\bconnection\b" + _IN_CLAUSE + r"{0,40}?\b(?:was|been|got) reset\b")),
    ("errno:ETIMEDOUT", _Lazy(r"(?i)\bconnect(?:ion)?\b" + _IN_CLAUSE + r"{0,60}?\btimed out\b"
                              r"|\bconnect(?:ion)?[ _-]?timeout (?:on|occurred|expired|after|exceeded|error|while)\b")),
)


def _paraphrased(text: str, found: dict) -> None:
    lowered = text.lower()
    if "connect" not in lowered:
        return
    for entry_id, pattern in _PARAPHRASES:
        m = None if entry_id in found else pattern.search(text)
        if m:
            _add(found, entry_id, 0.55, Evidence(
                rule="message", span=[m.start(), m.end()], text=m.group(0),
                detail=f"a program's own words for {entry_id.split(':')[1]}"))


def _killed(text: str, found: dict) -> None:
    """A process killed outright (the OOM killer, `kill -9`, a supervisor's last step): SIGKILL,
    and never the ENOMEM a call returns, though memory ran out."""
    if not any(word in text.lower() for word in ("kill", "137", "signal", "out of memory")):
        return
    m = _KILLED.search(text)
    if not m:
        return
    _drop_unless_named(found, "errno:ENOMEM")
    _add(found, "signal:SIGKILL", 0.7, Evidence(
        rule="kill", span=[m.start(), m.end()], text=m.group(0),
        detail="the process was killed outright: SIGKILL, which no handler can catch"))


def _drop_unless_named(found: dict, entry_id: str) -> None:
    item = found.get(entry_id)
    if item and not any(e["rule"] in ("name", "number") for e in item["evidence"]):
        del found[entry_id]


def _errno_before_its_knobs(lexicon: dict, out: list[dict]) -> None:
    """An errno the text names or quotes outranks the knobs its note relates to (and that relate
    to it): the knob is what to turn next, not what happened."""
    errnos = {m["id"]: m["score"] for m in out if m["id"].startswith("errno:")
              and any(e["rule"] in ("name", "message", "number") for e in m["evidence"])}
    if not errnos:
        return
    for m in out:
        if m["id"].split(":")[0] not in ("sysctl", "sockopt"):
            continue
        linked = lexicon["links"].get(m["id"], ())
        above = [errnos[e] for e in linked if e in errnos]
        if above and m["score"] >= max(above):
            m["score"] = round(max(above) - 0.01, 3)


PUBLIC = ("id", "score", "confident", "evidence", "deadline", "title", "summary")  # a match in --json and the API
NO_MATCH = "no entry matches this text with confidence: it does not look like a socket error"


def explained(lexicon: dict, text: str, limit: int = 5) -> list[dict]:
    """explain()'s matches with each entry's title and summaries, for the CLI and the web (the
    whole entry, with its sections, links and proof, is more than a match shows: it is read apart)."""
    out = []
    for m in explain(lexicon, text, limit):
        title, summary, summary_zh = lexicon["entries"][m["id"]][:3]  # the index's records add the card
        out.append({**m, "title": title, "summary": summary, "summary_zh": summary_zh})
    return out


def public(matches: list[dict]) -> dict:
    """The JSON answer, one document whatever matched: {"matches": [{id, score, confident, evidence,
    deadline, title, summary}]}, with "error" when no match is confident."""
    answer: dict = {"matches": [{k: m[k] for k in PUBLIC} for m in matches]}
    if not any(m["confident"] for m in matches):
        answer["error"] = NO_MATCH
    return answer
