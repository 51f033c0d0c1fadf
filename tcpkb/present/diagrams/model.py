"""What the diagrams show, read from the data, with no geometry.

The state diagram: which states, which arrows (parallel transitions merged), their tooltips, and
for a highlighted state the numbered arrows and the panel that lists them. The packet ladder: the
lifelines (one per endpoint, sockets folded onto the lifeline sharing their address), the packets
with tcpdump-like labels and relative sequence numbers, the calls, notes and state changes, as
rows in the order they are drawn. The timeline: the same trace as a table.

Tags such as "err", "fail" or "gone" name what a thing is; render.py turns them into classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ARROWS = 60  # packets drawn in one ladder; the rest are counted at the bottom
MAX_COLUMNS = 6  # lifelines in one ladder; further sockets become annotations

SHORT_EVENT_LIMIT = 110  # characters of a transition's event in the highlight panel
SEQUENCE_SPACE = 1 << 32  # TCP sequence numbers wrap here

LEGEND = {  # the legend's words; the marks beside them are drawn by render.py
    "rfc": "RFC 9293 transition",
    "linux_edge": "Linux only",
    "linux_state": "Linux-only state",
    "note": "CLOSED is drawn twice, as in RFC 9293 Figure 5; several transitions between two "
            "states share one arrow",
}


def one_line(text) -> str:
    """Text with every run of whitespace made one space."""
    return " ".join(str(text).split())


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


# -- the state diagram ---------------------------------------------------------------------------

def short_event(event: str, limit: int = SHORT_EVENT_LIMIT) -> str:
    """A transition's event cut to its first clause and to `limit` characters."""
    text = one_line(event or "")
    text = text.split("; ")[0].rstrip(" ;,.")
    if len(text) > limit:
        cut = text[: limit - 1]
        if " " in cut[limit // 2:]:  # end on a word when one ends in the second half
            cut = cut[: cut.rfind(" ")]
        text = cut.rstrip(" ,;(") + "…"
    return text


def is_rfc(transition: dict) -> bool:
    return bool(int(transition.get("rfc") or 0))


def arrow_label(transition: dict) -> str:
    """A transition as RFC 9293's Figure 5 labels an arrow: `rcv SYN / snd SYN,ACK`."""
    cause = one_line(transition.get("cause") or short_event(transition.get("event") or "", 24))
    return cause + (f" / snd {transition['send']}" if transition.get("send") else "")


@dataclass(frozen=True)
class StateBox:
    """A state as the diagram names it: the RFC spelling, and Linux's under it when it differs."""

    id: str
    name: str
    linux: str | None
    linux_only: bool
    highlighted: bool

    @property
    def subtitle(self) -> str | None:
        """The second line of the box: Linux's spelling, or that only Linux has the state."""
        return self.linux or ("Linux only" if self.linux_only else None)

    @property
    def tip(self) -> str:
        """The box's name for tooltips and screen readers: its visible words first, in their order
        (WCAG's label in name), then what they mean."""
        return self.name + (f", {self.linux} on Linux" if self.linux else "") + \
            (", Linux only" if self.linux_only else "")


@dataclass
class Edge:
    """One arrow: every transition from `source` to `target`."""

    source: str
    target: str
    transitions: list[dict]
    rfc: bool  # solid when at least one transition is in RFC 9293, dashed when all are Linux's
    emphasis: str  # "hl" for the highlighted state's arrows, "dim" for the others, else ""
    number: int | None  # the badge of a highlighted arrow
    tooltip: str | None  # the transitions, one per line; none on a dimmed arrow
    has_reverse: bool  # an arrow runs back between the same states: draw the two apart
    labels: list[str]  # written on the arrow: its RFC transitions' arrow_label(); none with a highlight


@dataclass
class PanelEntry:
    number: int
    title: str  # "FIN-WAIT-2 → TIME-WAIT"
    lines: list[tuple[str, str, bool]]  # (short text, full event, Linux only)


@dataclass
class StateDiagram:
    states: dict[str, StateBox]  # every state known: the layout's order, then unplaced ones
    unplaced: list[str]  # states of the transitions the layout file does not place (sorted)
    shown: list[str]  # the states drawn as boxes
    edges: list[Edge]  # the arrows, in layout order (a transition to itself has none)
    highlight: str | None
    panel_title: str  # "" without a highlight
    panel: list[PanelEntry]
    label: str  # for the title and aria-label


def states_used(transitions: list[dict]) -> list[str]:
    used: list[str] = []
    for t in transitions:
        for key in ("from_state", "to_state"):
            if t[key] not in used:
                used.append(t[key])
    return used


def _state_boxes(placed: dict[str, dict], unplaced: list[str], highlight) -> dict[str, StateBox]:
    """placed: the layout file's states (id -> label, linux, linux_only), in its order."""
    spelled = {**placed, **{sid: {"label": sid.split(":", 1)[-1]} for sid in unplaced}}
    return {sid: StateBox(sid, v.get("label") or sid.split(":", 1)[-1], v.get("linux"),
                          bool(v.get("linux_only")), sid == highlight)
            for sid, v in spelled.items()}


def _merged(transitions: list[dict], rank: dict[str, int]) -> dict[tuple[str, str], list[dict]]:
    """Transitions by (from, to), in layout order, each pair's rows by position then event."""
    pairs: dict[tuple[str, str], list[dict]] = {}
    for t in transitions:
        pairs.setdefault((t["from_state"], t["to_state"]), []).append(t)
    for rows in pairs.values():
        rows.sort(key=lambda t: (t.get("position") if t.get("position") is not None else 0,
                                 str(t.get("event") or "")))
    return {k: pairs[k] for k in sorted(pairs, key=lambda p: (rank[p[0]], rank[p[1]]))}


def _numbered(pairs, highlight: str | None, rank) -> dict[tuple[str, str], int]:
    """The highlighted state's arrows numbered: out of it first, then into it, in layout order."""
    if not highlight:
        return {}
    out = [k for k in pairs if k[0] == highlight]
    into = sorted((k for k in pairs if k[1] == highlight and k[0] != highlight),
                  key=lambda p: (rank[p[0]], rank[p[1]]))
    return {k: i + 1 for i, k in enumerate(out + into)}


def _edge_tooltip(source: StateBox, target: StateBox, rows: list[dict]) -> str:
    lines = [f"{source.name} → {target.name}"] + [
        f"• {arrow_label(t)}: " + one_line(t.get("event") or "")
        + ("" if is_rfc(t) else " (Linux)") for t in rows]
    return "\n".join(lines)


def _edges(pairs, numbers, states: dict[str, StateBox], highlight) -> list[Edge]:
    edges = []
    for (a, b), rows in pairs.items():
        if a == b:
            continue
        lit = (a, b) in numbers
        emphasis = ("hl" if lit else "dim") if highlight else ""
        # as in RFC 9293's figure, the RFC's transitions are written on their arrow; Linux's
        # own (dashed) are told in the tooltip, where there is room for them. With a state
        # highlighted, its arrows carry numbers instead, and the panel under the picture the words
        labels = [] if highlight else list(dict.fromkeys(arrow_label(t) for t in rows if is_rfc(t)))
        edges.append(Edge(a, b, rows, any(is_rfc(t) for t in rows), emphasis, numbers.get((a, b)),
                          _edge_tooltip(states[a], states[b], rows) if lit or not highlight else None,
                          (b, a) in pairs, labels))
    return edges


def panel_line(t: dict) -> str:
    """`rcv FIN / snd ACK: peer's FIN arrives`, the whole within SHORT_EVENT_LIMIT characters."""
    label = arrow_label(t)
    return f"{label}: {short_event(t.get('event'), SHORT_EVENT_LIMIT - len(label) - 2)}"


def _panel(pairs, numbers, states: dict[str, StateBox]) -> list[PanelEntry]:
    entries = []
    for (a, b), number in numbers.items():
        lines = [(panel_line(t), one_line(t.get("event") or ""), not is_rfc(t)) for t in pairs[(a, b)]]
        entries.append(PanelEntry(number, f"{states[a].name} → {states[b].name}", lines))
    return entries


def state_diagram_model(transitions: list[dict], highlight: str | None,
                        placed: dict[str, dict]) -> StateDiagram:
    """What the state diagram shows; `placed` is the layout file's states, in its order."""
    used = states_used(transitions)
    unplaced = sorted(s for s in used if s not in placed)  # drawn in a row under the rest
    known = [*placed, *unplaced]
    hl = highlight if highlight in known else None
    states = _state_boxes(placed, unplaced, hl)
    rank = {sid: i for i, sid in enumerate(known)}
    pairs = _merged(transitions, rank)
    numbers = _numbered(pairs, hl, rank)
    title, label = "", "TCP state diagram"
    if hl:
        box = states[hl]
        title = f"Transitions of {box.name}" + (f" ({box.linux})" if box.linux else "")
        title += "" if numbers else ": none"
        label += f", {box.name} highlighted"
    return StateDiagram(states, unplaced, [s for s in known if s in used or s == hl],
                        _edges(pairs, numbers, states, hl), hl, title,
                        _panel(pairs, numbers, states), label)


# -- reading a trace -----------------------------------------------------------------------------

ICMP4 = {0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded"}
UNREACHABLE4 = {0: "net", 1: "host", 2: "protocol", 3: "port", 4: "frag needed",
                9: "net prohibited", 10: "host prohibited", 13: "filtered"}
ICMP6 = {1: "unreachable", 2: "packet too big", 3: "time exceeded", 128: "echo request",
         129: "echo reply", 133: "router solicitation", 134: "router advertisement",
         135: "neighbor solicitation", 136: "neighbor advertisement"}
NAMED_CALL = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*=\s*(.*)$")
ADDRESS = re.compile(r"^\[?([^\[\]]*?)\]?:(\d+)$")
MAPPED_V4 = "::ffff:"
WILDCARDS = ("0.0.0.0", "::", "")


def is_tcp(p: dict) -> bool:
    return (p.get("proto") or "tcp") == "tcp" and p.get("flags") is not None


def is_opening_syn(p: dict) -> bool:
    return is_tcp(p) and "S" in p["flags"] and "." not in p["flags"]


def split_address(text) -> tuple[str, int] | None:
    """("1.2.3.4", 80) from "1.2.3.4:80", "[::1]:80" or "::ffff:1.2.3.4:80"."""
    m = ADDRESS.match(str(text or ""))
    if not m:
        return None
    ip = m.group(1)
    if ip.startswith(MAPPED_V4) and "." in ip:
        ip = ip[len(MAPPED_V4):]
    return ip, int(m.group(2))


def relative_numbers(packets: list[dict]) -> list[tuple[int, int | None] | None]:
    """(seq, ack) of each TCP packet relative to its direction's initial sequence number,
    like Wireshark's relative numbers: the first SYN of a connection has seq 0. A new SYN on
    the same four-tuple (a reused port) starts a new numbering. A direction whose SYN was not
    captured (a stray segment) keeps its absolute numbers."""
    base: dict[tuple, int] = {}
    out = []
    for p in packets:
        if not is_tcp(p):
            out.append(None)
            continue
        fwd = (p.get("src"), p.get("sport"), p.get("dst"), p.get("dport"))
        rev = (fwd[2], fwd[3], fwd[0], fwd[1])
        seq, ack, flags = int(p.get("seq") or 0), int(p.get("ack") or 0), p["flags"]
        if "S" in flags:
            if fwd in base and base[fwd] != seq and "." not in flags:
                base.pop(rev, None)  # a new connection on the same four-tuple
            base[fwd] = seq
        rel_ack = (ack - base.get(rev, 0)) % SEQUENCE_SPACE if "." in flags else None
        out.append(((seq - base.get(fwd, 0)) % SEQUENCE_SPACE, rel_ack))
    return out


def _icmp_label(p: dict) -> tuple[str, str, tuple[str, ...]]:
    proto = str(p.get("proto") or "?").upper()
    kind, code = p.get("type"), p.get("code")
    v6 = ":" in str(p.get("src") or "")
    name = (ICMP6 if v6 else ICMP4).get(kind) if isinstance(kind, int) else None
    if name == "unreachable" and not v6:
        name += f" ({UNREACHABLE4.get(code, f'code {code}')})"
    elif name == "unreachable":
        name += f" (code {code})"
    return (f"{proto}{'v6' if v6 and proto == 'ICMP' else ''}", name or f"type {kind} code {code}",
            ("icmp",))


def packet_label(p: dict, rel) -> tuple[str, str, tuple[str, ...]]:
    """(flags, rest of the label, tags) of one captured packet; tags say what it carries."""
    if not is_tcp(p):
        return _icmp_label(p)
    flags = p["flags"]
    seq, ack = rel
    length = int(p.get("len") or 0)
    rest = f"seq {seq}" + (f" ack {ack}" if ack is not None else "") + \
        (f" len {length}" if length else "")
    tags = (("data",) if length else ()) + tuple(
        tag for letter, tag in (("S", "syn"), ("F", "fin"), ("R", "rst")) if letter in flags)
    return flags, rest, tags


def step_text(step: dict) -> str:
    """A step's call, note or expectation, with any bytes it quotes made readable."""
    return readable_call(str(step.get("call") or step.get("note") or step.get("expect") or ""))


# A Python bytes literal as the lab recorded a call's argument: b'x' or b"it's" (not the b of
# a quoted key such as {'b': 1}, nor the end of a word)
BYTES_LITERAL = re.compile(r"(?<![\w'\"])(?:b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*")')
# How setsockopt's value reads, by option: the C structure's fields (socket(7)) or the text
OPTION_VALUES = {
    "SO_LINGER": ("ii", "{{l_onoff={}, l_linger={}}}"),
    "SO_RCVTIMEO": ("qq", "{{tv_sec={}, tv_usec={}}}"),
    "SO_SNDTIMEO": ("qq", "{{tv_sec={}, tv_usec={}}}"),
}


def readable_bytes(value: bytes, option: str = "") -> str:
    """A call's bytes argument as a person reads it: the option's structure, text in quotes,
    a native int, or the bytes in hex, never a Python literal."""
    import struct

    if option in OPTION_VALUES:
        fmt, shape = OPTION_VALUES[option]
        if len(value) == struct.calcsize(fmt):
            return shape.format(*struct.unpack(fmt, value))
    text = value.rstrip(b"\0")
    if text and all(32 <= c < 127 for c in text):
        return '"' + text.decode() + '"'
    if option and len(value) == 4:
        return str(int.from_bytes(value, "little", signed=True))
    return "0x" + value.hex(" ") if value else '""'


def readable_call(text: str) -> str:
    """A recorded call with its bytes arguments made readable. setsockopt's label already
    spells the value when it holds braces (`SO_LINGER {1, 0}`): then the bytes are left out."""
    import ast

    option = ""
    m = re.match(r"(?:\w+\.)?setsockopt\((\w+)", text)
    if m:
        option = m.group(1)

    def one(lit: re.Match) -> str:
        try:
            value = ast.literal_eval(lit.group(0))
        except (ValueError, SyntaxError):
            return lit.group(0)
        return readable_bytes(value, option)

    first = BYTES_LITERAL.search(text)
    if option and first and "{" in text[:first.start()]:
        text = re.sub(r", (?:" + BYTES_LITERAL.pattern + r")(?=\)$)", "", text)
    return BYTES_LITERAL.sub(one, text)


def step_kind(step: dict) -> str:
    return "call" if "call" in step else "expect" if "expect" in step else "note"


def socket_of_lab_call(step: dict) -> tuple[str, str] | None:
    """`listener = socket(AF_INET, SOCK_STREAM)` recorded by the lab: (name, call)."""
    if step.get("actor") != "lab" or "call" not in step:
        return None
    m = NAMED_CALL.match(str(step["call"]))
    return (m.group(1), m.group(2)) if m else None


def call_result(step: dict) -> tuple[str, str] | None:
    """("→ EPIPE", "err") or ("→ 5", "ok"); None when the call returned nothing recorded."""
    if step.get("errno"):
        return f"→ {step['errno']}", "err"
    if step.get("result") is None:
        return None
    return f"→ {readable_call(str(step['result']))}", "ok"


def t_ms(item: dict) -> float:
    return float(item.get("t_ms") or 0)


class TraceModel:
    """A trace read for drawing: its sockets, the packets drawn and the lifelines they run
    between, and which lifeline each socket's calls and states go on. Shared by the ladder and
    the timeline, so both order the sockets alike."""

    def __init__(self, trace: dict, cap: int = MAX_ARROWS):
        self.steps = list(trace.get("steps") or [])
        self.events = list(trace.get("events") or [])  # the kernel's tracepoints, where recorded
        packets = sorted(trace.get("packets") or [], key=t_ms)
        self.rel = relative_numbers(packets)
        self.packets = packets
        self.drawn = packets[:cap]
        self.hidden = len(packets) - len(self.drawn)
        self.cut = t_ms(self.drawn[-1]) if self.hidden else None  # steps after it are not drawn
        self.info = trace.get("sockets") or {}
        self._sockets()
        self._endpoints()
        self.cols = self._opener_columns()
        self.addrs = self._column_addresses()
        self._fold_sockets()
        self.order = self._socket_order()

    def _sockets(self) -> None:
        """Socket names in order of first appearance, and which of them did something."""
        names: list[str] = list(self.info)
        active: list[str] = []

        def see(n, act=True):
            if n and n != "lab":
                if n not in names:
                    names.append(n)
                if act and n not in active:
                    active.append(n)

        for s in self.steps:
            lab = socket_of_lab_call(s)
            if lab:
                see(lab[0])
            see(s.get("actor"))
            for n in sorted(s.get("states") or {}):
                see(n)
        self.names, self.active = names, active

    def _endpoints(self) -> None:
        """Each drawn packet's (from, to) lifeline. An ICMP's endpoint is the socket that sent
        or received TCP from its address; many anonymous ports collapse to one per address."""
        ips: dict[str, set] = {}
        for p in self.drawn:
            if is_tcp(p):
                ips.setdefault(str(p.get("from")), set()).add(str(p.get("src")))
                ips.setdefault(str(p.get("to")), set()).add(str(p.get("dst")))

        def end_of(p, side) -> str:
            n = str(p.get(side))
            if is_tcp(p):
                return n
            owners = sorted(k for k, v in ips.items() if n in v)
            return owners[0] if len(owners) == 1 else n

        raw = [(end_of(p, "from"), end_of(p, "to")) for p in self.drawn]
        ends = list(dict.fromkeys(n for pair in raw for n in pair))
        self.collapsed: dict[str, str] = {}
        if len(ends) > MAX_COLUMNS:  # many anonymous addresses: one column per IP
            for n in ends:
                a = split_address(n)
                if n not in self.names and n != "peer" and a:
                    self.collapsed[n] = f"{a[0]}:*"
        self.ends = [(self.collapsed.get(f, f), self.collapsed.get(t, t)) for f, t in raw]

    def _opener_columns(self) -> list[str]:
        """The packets' endpoints, the opener of each conversation left of its partner."""
        first: dict[frozenset, tuple[str, str]] = {}
        syn: dict[frozenset, tuple[str, str]] = {}
        for (f, t), p in zip(self.ends, self.drawn):
            key = frozenset((f, t))
            first.setdefault(key, (f, t))
            if is_opening_syn(p):
                syn.setdefault(key, (f, t))
        return list(dict.fromkeys(n for key, pair in first.items() for n in syn.get(key, pair)))

    def _column_addresses(self) -> dict[str, list[tuple[str, int]]]:
        """Where each column's packets came from and went to, and its socket's local address:
        a socket sharing one of them is drawn on that column."""
        addrs: dict[str, list[tuple[str, int]]] = {c: [] for c in self.cols}
        for (f, t), p in zip(self.ends, self.drawn):
            if is_tcp(p):
                for c, ip, port in ((f, p.get("src"), p.get("sport")),
                                    (t, p.get("dst"), p.get("dport"))):
                    a = split_address(f"{ip}:{port}")
                    if a and a not in addrs[c]:
                        addrs[c].append(a)
        for c in self.cols:
            local = split_address((self.info.get(c) or {}).get("local"))
            if local and local not in addrs[c]:
                addrs[c].append(local)
        return addrs

    def _column_sharing_address(self, name: str) -> str | None:
        local = split_address((self.info.get(name) or {}).get("local"))
        if not local:
            return None
        wild = local[0] in WILDCARDS
        for c in self.cols:
            if any(a[1] == local[1] and (wild or a[0] == local[0]) for a in self.addrs[c]):
                return c
        return None

    def _fold_sockets(self) -> None:
        """home: the column of every socket drawn; folded: the sockets drawn on another's."""
        home: dict[str, str] = {c: c for c in self.cols if c in self.names}
        folded: dict[str, list[str]] = {c: [] for c in self.cols}
        homeless: list[str] = []
        for n in self.active:
            if n in home:
                continue
            target = self._column_sharing_address(n)
            if target is not None:
                home[n] = target
                folded[target].append(n)
            else:
                homeless.append(n)
        for n in homeless:  # the others have a lifeline of their own while there is room
            if len(self.cols) >= MAX_COLUMNS:
                break
            self.cols.append(n)
            home[n] = n
            folded[n] = []
            self.addrs.setdefault(n, [])
        self.home, self.folded = home, folded

    def _socket_order(self) -> list[str]:
        """Sockets column by column (its own socket, then those folded onto it), then the rest
        that did something."""
        order: list[str] = []
        for c in self.cols:
            for n in ([c] if c in self.names else []) + self.folded.get(c, []):
                if n not in order:
                    order.append(n)
        return order + [n for n in self.names if n not in order and n in self.active]

    def sub_label(self, c: str) -> str:
        """The address under a column's name."""
        if c.endswith(":*"):
            return f"{len(set(self.addrs.get(c, [])))} addresses"
        if split_address(c):
            return ""
        local = (self.info.get(c) or {}).get("local")
        if local:
            return str(local)
        a = self.addrs.get(c) or []
        if len(a) == 1:
            return f"{a[0][0]}:{a[0][1]}"
        if a and len({x[0] for x in a}) == 1:
            return a[0][0]
        return ""

    def header_lines(self, c: str) -> list[tuple[str, str]]:
        """A column's heading: (text, "name" or "muted") lines."""
        lines = [(c, "name")]
        sub = self.sub_label(c)
        if sub:
            lines.append((sub, "muted"))
        if self.folded.get(c):
            lines.append(("+ " + ", ".join(self.folded[c]), "muted"))
        return lines


# -- the ladder's rows ---------------------------------------------------------------------------

@dataclass
class PacketRow:
    source: str
    target: str
    prefix: str  # ":port " on a collapsed column, whose port the lifeline does not say
    flags: str
    rest: str
    tags: tuple[str, ...]
    t_ms: float


@dataclass
class CallRow:
    column: str
    text: str
    result: tuple[str, str] | None
    t_ms: float | None  # None on the box that opens a call still in progress
    opens: int | None = None  # the step whose call this box opens ...
    closes: int | None = None  # ... and the step whose result this box shows


@dataclass
class NoteRow:
    tag: str  # "note", "fail" for a failed expectation, "drop" for a packet the kernel dropped
    text: str
    result: tuple[str, str] | None = None


@dataclass
class StateRow:
    pills: list[tuple[str, str, str]]  # (column, label, tag: "state" or "state gone")


Row = PacketRow | CallRow | NoteRow | StateRow


@dataclass
class Ladder:
    caption: str
    columns: list[str]
    headers: dict[str, list[tuple[str, str]]]
    rows: list[Row]
    packets: int  # captured, drawn or not
    hidden_packets: int
    hidden_steps: int
    steps_drawn: int
    label: str  # for the title and aria-label


# Rows at one instant: the packets, then the step recorded then (a step is recorded when its call
# returns), then the states it saw; a call box opened at a step's time follows all of those.
AT_PACKET, AT_STEP, AT_STATES, AT_CALL_OPENING = 1, 2, 3, 4


def reset_reason(p: dict, resets: list[dict]) -> str | None:
    """The reason the kernel gave for a captured RST: the tcp_send_reset event of the same
    ports, traced at most a millisecond after the packet crossed the device (the tracepoint
    fires once the reset is sent) or before it."""
    if "R" not in (p.get("flags") or ""):
        return None
    near = [e for e in resets if (e.get("sport"), e.get("dport")) == (p.get("sport"), p.get("dport"))
            and e.get("reason") and -50 <= e["t_ms"] - t_ms(p) <= 1]
    return min(near, key=lambda e: abs(e["t_ms"] - t_ms(p)))["reason"] if near else None


def _drop_rows(m: TraceModel) -> list[tuple[tuple, Row]]:
    """Each packet the kernel dropped for the scenario, at its time, with the reason."""
    rows = []
    drops = [x for x in m.events if x["event"] == "kfree_skb" and (m.cut is None or x["t_ms"] <= m.cut)]
    for i, e in enumerate(drops):
        where = (e.get("location") or "").split("+")[0]
        rows.append(((e["t_ms"], AT_PACKET, 10_000 + i),
                     NoteRow("drop", f"✗ dropped by the kernel: {e.get('reason', '?')}"
                                     + (f" in {where}()" if where else ""))))
    return rows


def _packet_rows(m: TraceModel) -> list[tuple[tuple, Row]]:
    rows = []
    collapsed = set(m.collapsed.values())
    resets = [e for e in m.events if e["event"] == "tcp_send_reset"]
    for i, (p, (f, t)) in enumerate(zip(m.drawn, m.ends)):
        flags, rest, tags = packet_label(p, m.rel[i])
        if reason := reset_reason(p, resets):
            rest = f"{rest} reason {reason}".strip()
        prefix = ""
        if f in collapsed or t in collapsed:
            port = p.get("sport") if f.endswith(":*") else p.get("dport")
            prefix = f":{port} " if port is not None else ""
        rows.append(((t_ms(p), AT_PACKET, i), PacketRow(f, t, prefix, flags, rest, tags, t_ms(p))))
    return rows


def _step_rows(m: TraceModel, i: int, s: dict, barrier: float, packet_times) -> list[tuple]:
    """A step's call box (two boxes when packets went by during the call), note or failure."""
    t = t_ms(s)
    lab = socket_of_lab_call(s)
    who, text = lab if lab else (s.get("actor"), step_text(s))
    col = m.home.get(who) if who and who != "lab" else None
    prefix = f"{who}: " if col is not None and col != who else ""
    if "call" in s:
        res = call_result(s)
        during = [x for x in packet_times if barrier < x <= t]
        if col is not None and during and not lab:
            return [((barrier, AT_CALL_OPENING, i), CallRow(col, prefix + text + " …", None, None, opens=i)),
                    ((t, AT_STEP, i), CallRow(col, "", res or ("→ ok", "ok"), t, closes=i))]
        if col is not None:
            return [((t, AT_STEP, i), CallRow(col, prefix + text, res, t))]
        return [((t, AT_STEP, i), NoteRow("note", f"{who}: {text}", res))]
    if "expect" in s:  # passing expectations are left to the timeline
        return [((t, AT_STEP, i), NoteRow("fail", f"✗ expected: {text}"))] if s.get("ok") is False else []
    return [((t, AT_STEP, i), NoteRow("note", text))]


def _state_rows(m: TraceModel, i: int, s: dict, last: dict[str, str]) -> list[tuple]:
    """The states that changed at a step, as pills on their lifelines; a lifeline with two
    changes at once (a socket and one folded onto it) gets a second row."""
    changes: dict[str, list[tuple[str, str]]] = {}
    for n in m.order:
        st = (s.get("states") or {}).get(n)
        if st is None or last.get(n) == st:
            continue
        last[n] = st
        c = m.home.get(n)
        if c is None:
            continue
        label = st if c == n else f"{n}: {st}"
        changes.setdefault(c, []).append((label, "state gone" if st == "gone" else "state"))
    depth = max((len(v) for v in changes.values()), default=0)
    return [((t_ms(s), AT_STATES, i, k), StateRow([(c, *v[k]) for c, v in changes.items() if len(v) > k]))
            for k in range(depth)]


def ladder_model(trace: dict, caption: str = "") -> Ladder:
    """The ladder's rows, ordered by time (see AT_PACKET)."""
    m = TraceModel(trace)
    kept = m.steps if m.cut is None else [s for s in m.steps if t_ms(s) <= m.cut]
    keyed = _packet_rows(m) + _drop_rows(m)
    last: dict[str, str] = {}
    barrier = -1.0  # the time of the previous step
    packet_times = [t_ms(p) for p in m.drawn]
    for i, s in enumerate(kept):
        keyed += _step_rows(m, i, s, barrier, packet_times)
        barrier = max(barrier, t_ms(s))
        keyed += _state_rows(m, i, s, last)
    keyed.sort(key=lambda r: r[0])
    n = len(m.packets)
    label = (caption + ": " if caption else "") + f"packet ladder, {plural(n, 'packet')}" + \
        (" between " + ", ".join(m.cols) if m.cols else "")
    return Ladder(caption, m.cols, {c: m.header_lines(c) for c in m.cols}, [r for _, r in keyed],
                  n, m.hidden, len(m.steps) - len(kept), len(kept), label)


NO_PACKETS = "no packets captured"


def hidden_note(ladder: Ladder) -> str:
    """"… 3 more packets and 1 later step not drawn", or "" when everything is drawn."""
    more = []
    if ladder.hidden_packets:
        more.append(plural(ladder.hidden_packets, "more packet"))
    if ladder.hidden_steps:
        more.append(plural(ladder.hidden_steps, "later step"))
    return f"… {' and '.join(more)} not drawn" if more else ""


def empty_note(ladder: Ladder) -> str:
    """The only line of a ladder with no lifelines and no steps."""
    return f"{NO_PACKETS if not ladder.packets else ''} and no steps recorded"


# -- the timeline --------------------------------------------------------------------------------

def _result_text(step: dict, kind: str) -> str:
    if kind != "call":
        return ""
    if step.get("errno"):
        return str(step.get("error") or "")
    return "" if step.get("result") is None else readable_call(str(step["result"]))


def timeline(trace: dict) -> dict:
    """The trace as a table: {"sockets": [names in the ladder's column order],
    "rows": [{"t_ms", "actor", "what", "result", "errno", "ok", "states", "kind"}]}.

    what: the call, note or expectation text; result: the call's result as text (for a failed
    call, the error's message); errno: the errno name of a failed call, else None; ok: an
    expectation's outcome, None for calls and notes; states: each socket's state at that step
    ("" when unknown); kind: "call", "note" or "expect" (an addition to the brief's keys)."""
    m = TraceModel(trace)
    socks = list(m.order) + [n for n in m.names if n not in m.order and
                             any(n in (s.get("states") or {}) for s in m.steps)]
    rows = []
    for s in m.steps:
        kind = step_kind(s)
        states = s.get("states") or {}
        rows.append({
            "t_ms": float(s.get("t_ms") or 0.0),
            "actor": str(s.get("actor") or ""),
            "what": step_text(s),
            "result": _result_text(s, kind),
            "errno": s.get("errno") or None,
            "ok": s.get("ok") if kind == "expect" else None,
            "states": [str(states.get(n, "")) for n in socks],
            "kind": kind,
        })
    return {"sockets": socks, "rows": rows}
