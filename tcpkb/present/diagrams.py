"""SVG pictures for the web faces: the TCP state diagram and the packet ladder of a scenario run.

Both return a self-contained inline <svg> string: deterministic (same input, same bytes), valid
XML, scaled by viewBox, coloured with currentColor and classes so a light or a dark page reads it.
Every text that comes from the data goes through html.escape. Standard library only.

Classes the pages may restyle (all under the root class "tkd"):
  state diagram: .st (a state box), .st.hl (the highlighted one), .st.lx (Linux-only state),
    .tr (a transition arrow), .tr.lx (Linux-only: dashed), .tr.hl / .tr.dim, .badge;
  ladder: .life (lifeline), .pk (+ .syn .fin .rst .data .icmp) for packets, .call, .err,
    .state (state pill), .gone, .note, .fail, .act (a call in progress).
The CSS custom property --tkd-accent sets the highlight colour.
"""

from __future__ import annotations

import functools
import html
import json
import math
import os
import re
from collections.abc import Callable
from itertools import pairwise

__all__ = ["ladder", "state_diagram", "timeline"]

MAX_ARROWS = 60  # packets drawn in one ladder; the rest are counted at the bottom
MAX_COLUMNS = 6  # lifelines in one ladder; further sockets become annotations

_STYLE = """
.tkd{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif;--tkd-a:var(--tkd-accent,#d97706)}
.tkd text{fill:currentColor}
.tkd .mono,.tkd .mono text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
.tkd .muted{opacity:.68}
.tkd .cap{font-weight:600}
.tkd .st rect{fill:rgba(128,128,128,.10);stroke:currentColor;stroke-width:1.3}
.tkd .st.lx rect{stroke-dasharray:5 3}
.tkd .st text{font-weight:600;font-size:13px}
.tkd .st text.sub{font-weight:400;font-size:11px;opacity:.72}
.tkd .st.hl rect{fill:rgba(217,119,6,.22);stroke:var(--tkd-a);stroke-width:2.6}
.tkd a .st:hover rect{fill:rgba(128,128,128,.24)}
.tkd a .st.hl:hover rect{fill:rgba(217,119,6,.34)}
.tkd .tr path{fill:none;stroke:currentColor;stroke-width:1.3}
.tkd .tr polygon{fill:currentColor;stroke:none}
.tkd .tr{opacity:.62}
.tkd .tr.lx path{stroke-dasharray:6 4}
.tkd .tr.dim{opacity:.2}
.tkd .tr.hl{opacity:1}
.tkd .tr.hl path{stroke:var(--tkd-a);stroke-width:2.4}
.tkd .tr.hl polygon{fill:var(--tkd-a)}
.tkd .tr:hover{opacity:1}
.tkd .badge circle{fill:var(--tkd-a);stroke:none}
.tkd .badge text{fill:#000;font-size:11px;font-weight:700}
.tkd .panel .hd{font-weight:600;font-size:13.5px}
.tkd .legend line{stroke:currentColor;stroke-width:1.4}
.tkd .legend line.lx{stroke-dasharray:6 4}
.tkd .legend rect{fill:rgba(128,128,128,.10);stroke:currentColor}
.tkd .legend rect.lx{stroke-dasharray:5 3}
.tkd .life{stroke:currentColor;stroke-width:1.2;opacity:.35}
.tkd .head rect{fill:rgba(128,128,128,.10);stroke:currentColor;stroke-width:1.1}
.tkd .head .name{font-weight:700;font-size:13px}
.tkd .pk line,.tkd .pk path{stroke:currentColor;stroke-width:1.5;fill:none}
.tkd .pk polygon{fill:currentColor}
.tkd .pk text{font-size:12px}
.tkd .pk .fl{font-weight:700}
.tkd .pk.data{color:#1a7f37}.tkd .pk.syn{color:#0969da}.tkd .pk.fin{color:#8250df}
.tkd .pk.rst{color:#cf222e}.tkd .pk.icmp{color:#9a6700}
.tkd .call rect{fill:rgba(128,128,128,.13);stroke:currentColor;stroke-opacity:.45}
.tkd .call text{font-size:12px}
.tkd .err{fill:#cf222e;font-weight:700}
.tkd text.err,.tkd tspan.err{fill:#cf222e}
.tkd .act{fill:rgba(128,128,128,.22);stroke:currentColor;stroke-opacity:.45}
.tkd .state rect{fill:rgba(9,105,218,.13);stroke:#0969da;stroke-width:1.1}
.tkd .state text{font-size:11.5px;font-weight:600}
.tkd .state.gone rect{fill:none;stroke:currentColor;stroke-dasharray:3 2;stroke-opacity:.55}
.tkd .state.gone text{font-weight:400;opacity:.7}
.tkd .note{font-size:11.5px;font-style:italic;opacity:.78}
.tkd .fail{font-size:11.5px;fill:#cf222e;font-weight:600}
.tkd .time{font-size:11px;opacity:.62}
.tkd .time.step{opacity:.4}
@media (prefers-color-scheme:dark){
.tkd{--tkd-a:var(--tkd-accent,#f59e0b)}
.tkd .pk.data{color:#3fb950}.tkd .pk.syn{color:#58a6ff}.tkd .pk.fin{color:#bc8cff}
.tkd .pk.rst{color:#ff7b72}.tkd .pk.icmp{color:#d29922}
.tkd .err,.tkd text.err,.tkd tspan.err,.tkd .fail{fill:#ff7b72}
.tkd .state rect{fill:rgba(88,166,255,.16);stroke:#58a6ff}
.tkd .st.hl rect{fill:rgba(245,158,11,.22)}
}
"""


# -- small helpers ---------------------------------------------------------------------------

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _e(text) -> str:
    """Text or an attribute value, escaped, with characters XML cannot carry replaced."""
    return html.escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


def _n(v: float) -> str:
    """A coordinate as short, stable text."""
    return f"{v:.1f}".removesuffix(".0")


def _chars(width: float, size: float) -> int:
    """How many monospace characters of font `size` fit in `width` px."""
    return max(4, int(width / (size * 0.61)))


def _fit(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: max(1, n - 1)].rstrip() + "…"


def _svg(width: float, height: float, label: str, body: list[str], kind: str) -> str:
    w, h = _n(width), _n(height)
    return "".join([
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="tkd {kind}" viewBox="0 0 {w} {h}" '
         f'style="max-width:{w}px;width:100%;height:auto" role="img" aria-label="{_e(label)}">'),
        f"<title>{_e(label)}</title><style>{_STYLE}</style>",
        *body,
        "</svg>",
    ])


def _head(x0, y0, x1, y1, size=10.0, half=4.2) -> str:
    """An arrowhead polygon at (x1, y1), pointing away from (x0, y0)."""
    dx, dy = x1 - x0, y1 - y0
    d = math.hypot(dx, dy) or 1.0
    ux, uy = dx / d, dy / d
    bx, by = x1 - ux * size, y1 - uy * size
    pts = [(x1, y1), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)]
    return '<polygon points="' + " ".join(f"{_n(x)},{_n(y)}" for x, y in pts) + '"/>'


# -- the state diagram -----------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _load_layout(path: str, mtime: float) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def layout_path() -> str:
    from ..paths import site_dir

    return os.path.join(site_dir(), "layout", "states.json")


def load_layout() -> dict:
    """The hand-placed coordinates of the state diagram (site/layout/states.json)."""
    path = layout_path()
    return json.loads(_load_layout(path, os.stat(path).st_mtime))


def short_event(event: str, limit: int = 110) -> str:
    """A transition's event cut to its first clause and to `limit` characters."""
    text = " ".join(str(event or "").split())
    text = text.split("; ")[0].rstrip(" ;,.")
    if len(text) > limit:
        cut = text[: limit - 1]
        if " " in cut[limit // 2:]:
            cut = cut[: cut.rfind(" ")]
        text = cut.rstrip(" ,;(") + "…"
    return text


def _clip(cx, cy, hw, hh, tx, ty):
    """Where the segment from a box's centre towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    t = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return cx + dx * t, cy + dy * t


def _rounded(points: list[tuple[float, float]], radius: float = 16.0) -> tuple[str, tuple]:
    """An SVG path through `points` with rounded corners, and the last segment's start."""
    d = [f"M{_n(points[0][0])},{_n(points[0][1])}"]
    last = points[0]
    for i in range(1, len(points) - 1):
        (ax, ay), (bx, by), (cx, cy) = points[i - 1], points[i], points[i + 1]
        l1, l2 = math.hypot(bx - ax, by - ay), math.hypot(cx - bx, cy - by)
        r = min(radius, l1 / 2, l2 / 2)
        if r < 1:
            d.append(f"L{_n(bx)},{_n(by)}")
            last = (bx, by)
            continue
        p = (bx - (bx - ax) / l1 * r, by - (by - ay) / l1 * r)
        q = (bx + (cx - bx) / l2 * r, by + (cy - by) / l2 * r)
        d.append(f"L{_n(p[0])},{_n(p[1])}Q{_n(bx)},{_n(by)} {_n(q[0])},{_n(q[1])}")
        last = q
    end = points[-1]
    d.append(f"L{_n(end[0])},{_n(end[1])}")
    return "".join(d), last


def _along(points, frac: float):
    """The point at fraction `frac` of a polyline's length."""
    segs = [math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in pairwise(points)]
    goal = sum(segs) * frac
    for (a, b), s in zip(pairwise(points), segs):
        if goal <= s and s > 0:
            t = goal / s
            return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
        goal -= s
    return points[-1]


def state_diagram(transitions: list[dict], highlight: str | None = None,
                  href: Callable[[str], str] | None = None) -> str:
    """The TCP state diagram as SVG.

    transitions: rows of the `transitions` table (from_state, to_state, position, event, send,
    side, rfc). Transitions between the same two states are merged into one arrow, solid when
    at least one of them is in RFC 9293 (rfc=1), dashed when all are Linux-only.
    highlight: a state id; the state is drawn highlighted, its arrows emphasised and numbered,
    and a panel under the diagram lists each numbered arrow's transitions (event shortened,
    "/ send" when something is sent). Other arrows are faint and carry no text at all.
    Without highlight every arrow carries its transitions as a hover tooltip (<title>).
    href(state_id) -> URL: each state box becomes a link.
    """
    lay = load_layout()
    width, height = float(lay["width"]), float(lay["height"])
    bw, bh = lay.get("box", [150, 44])
    nodes = {sid: dict(v) for sid, v in lay["states"].items()}
    copies: dict[str, list[tuple[float, float]]] = {sid: [(v["x"], v["y"])] for sid, v in nodes.items()}
    for c in lay.get("copies", []):
        if c["id"] in copies:
            copies[c["id"]].append((c["x"], c["y"]))

    used = []
    for t in transitions:
        for k in ("from_state", "to_state"):
            if t[k] not in used:
                used.append(t[k])
    missing = sorted(s for s in used if s not in nodes)
    if missing:  # a state the layout does not know yet: a row under the diagram, never a crash
        step = (width - 40) / len(missing)
        for i, sid in enumerate(missing):
            name = sid.split(":", 1)[-1]
            nodes[sid] = {"x": 20 + step * (i + 0.5), "y": height + 10, "label": name}
            copies[sid] = [(nodes[sid]["x"], nodes[sid]["y"])]
        height += 60
    rank = {sid: i for i, sid in enumerate(nodes)}

    def name(sid: str) -> str:
        return nodes[sid].get("label") or sid.split(":", 1)[-1]

    pairs: dict[tuple[str, str], list[dict]] = {}
    for t in transitions:
        pairs.setdefault((t["from_state"], t["to_state"]), []).append(t)
    for rows in pairs.values():
        rows.sort(key=lambda t: (t.get("position") if t.get("position") is not None else 0,
                                 str(t.get("event") or "")))
    keys = sorted(pairs, key=lambda p: (rank[p[0]], rank[p[1]]))

    hl = highlight if highlight in nodes else None
    # highlighted arrows: out of the state first, then into it, each in layout order
    marked = [k for k in keys if hl and k[0] == hl] + \
             sorted((k for k in keys if hl and k[1] == hl and k[0] != hl),
                    key=lambda p: (rank[p[0]], rank[p[1]]))
    number = {k: i + 1 for i, k in enumerate(marked)}
    routes = lay.get("edges", {})

    edges_svg, badges = [], []
    for a, b in keys:
        if a == b:
            continue
        rows = pairs[(a, b)]
        cfg = routes.get(f"{a.split(':')[-1]}>{b.split(':')[-1]}", {})
        src = copies[a][cfg.get("from", 0)]
        if "to" in cfg:
            dst = copies[b][cfg["to"]]
        else:  # the nearer copy of the target (CLOSED is drawn twice, like in RFC 9293)
            dst = min(copies[b], key=lambda p: (math.hypot(p[0] - src[0], p[1] - src[1]), p))
        via = [tuple(p) for p in cfg.get("via", [])]
        hw, hh = nodes[a].get("w", bw) / 2, nodes[a].get("h", bh) / 2
        thw, thh = nodes[b].get("w", bw) / 2, nodes[b].get("h", bh) / 2
        aim0 = via[0] if via else dst
        aim1 = via[-1] if via else src
        start = (src[0] + cfg["start"][0], src[1] + cfg["start"][1]) if "start" in cfg \
            else _clip(src[0], src[1], hw, hh, *aim0)
        end = (dst[0] + cfg["end"][0], dst[1] + cfg["end"][1]) if "end" in cfg \
            else _clip(dst[0], dst[1], thw, thh, *aim1)
        if not via and "start" not in cfg and "end" not in cfg and (b, a) in pairs:
            dx, dy = end[0] - start[0], end[1] - start[1]
            d = math.hypot(dx, dy) or 1.0
            ox, oy = -dy / d * 7, dx / d * 7
            start, end = (start[0] + ox, start[1] + oy), (end[0] + ox, end[1] + oy)
        points = [start, *via, end]
        path, last = _rounded(points)
        rfc = any(int(t.get("rfc") or 0) for t in rows)
        cls = "tr" + ("" if rfc else " lx")
        if hl:
            cls += " hl" if (a, b) in number else " dim"
        tip = ""
        if not hl or (a, b) in number:
            lines = [f"{name(a)} → {name(b)}"] + [
                "• " + " ".join(str(t.get("event") or "").split())
                + (f" / {t['send']}" if t.get("send") else "")
                + ("" if int(t.get("rfc") or 0) else " (Linux)") for t in rows]
            tip = f"<title>{_e(chr(10).join(lines))}</title>"
        edges_svg.append(f'<g class="{cls}">{tip}<path d="{path}"/>'
                         f"{_head(last[0], last[1], end[0], end[1])}</g>")
        if (a, b) in number:
            at = cfg.get("at", 0.36 if (b, a) in pairs else 0.5)  # a pair's badges apart
            bx, by = tuple(cfg["badge"]) if "badge" in cfg else _along(points, at)
            badges.append(f'<g class="badge"><circle cx="{_n(bx)}" cy="{_n(by)}" r="9"/>'
                          f'<text x="{_n(bx)}" y="{_n(by + 4)}" text-anchor="middle">'
                          f"{number[(a, b)]}</text></g>")

    boxes = []
    for sid, node in nodes.items():
        if sid not in used and sid != hl:
            continue
        w, h = node.get("w", bw), node.get("h", bh)
        linux = node.get("linux")
        cls = "st" + (" hl" if sid == hl else "") + (" lx" if node.get("linux_only") else "")
        tip = name(sid) + (f" (Linux: {linux})" if linux else "") + \
            (" (Linux only)" if node.get("linux_only") else "")
        for x, y in copies[sid]:
            parts = [(f'<g class="{cls}" data-state="{_e(sid)}"><title>{_e(tip)}</title>'
                      f'<rect x="{_n(x - w / 2)}" y="{_n(y - h / 2)}" width="{_n(w)}" '
                      f'height="{_n(h)}" rx="9"/>')]
            if linux or node.get("linux_only"):
                sub = linux or "Linux only"
                parts.append(f'<text x="{_n(x)}" y="{_n(y - 2)}" text-anchor="middle">'
                             f"{_e(name(sid))}</text>"
                             f'<text class="sub" x="{_n(x)}" y="{_n(y + 13)}" '
                             f'text-anchor="middle">{_e(sub)}</text>')
            else:
                parts.append(f'<text x="{_n(x)}" y="{_n(y + 5)}" text-anchor="middle">'
                             f"{_e(name(sid))}</text>")
            parts.append("</g>")
            g = "".join(parts)
            if href is not None:
                g = f'<a href="{_e(href(sid))}">{g}</a>'
            boxes.append(g)

    legend = []
    lx, ly = lay.get("legend", [20, height - 30])
    legend.append(
        f'<g class="legend" transform="translate({_n(lx)},{_n(ly)})">'
        '<line x1="0" y1="0" x2="34" y2="0"/><text x="42" y="4" font-size="12">RFC 9293 transition</text>'
        '<line class="lx" x1="0" y1="20" x2="34" y2="20"/>'
        '<text x="42" y="24" font-size="12">Linux only</text>'
        '<rect class="lx" x="180" y="-8" width="34" height="16" rx="4"/>'
        '<text x="222" y="4" font-size="12">Linux-only state</text>'
        '<text x="180" y="24" font-size="12" class="muted">CLOSED is drawn twice, as in RFC 9293 '
        'Figure 5; several transitions between two states share one arrow</text></g>')

    panel, extra = [], 0.0
    if hl:
        y = height + 8
        head = f"Transitions of {name(hl)}" + (f" ({nodes[hl]['linux']})" if nodes[hl].get("linux") else "")
        if not marked:
            panel.append(f'<text class="hd" x="20" y="{_n(y + 14)}">{_e(head)}: none</text>')
            y += 24
        else:
            panel.append(f'<text class="hd" x="20" y="{_n(y + 14)}">{_e(head)}</text>')
            y += 26
            for k in marked:
                a, b = k
                panel.append(f'<g class="badge"><circle cx="29" cy="{_n(y + 9)}" r="9"/>'
                             f'<text x="29" y="{_n(y + 13)}" text-anchor="middle">{number[k]}</text></g>'
                             f'<text class="hd" x="46" y="{_n(y + 13)}">{_e(name(a))} → {_e(name(b))}</text>')
                y += 20
                for t in pairs[k]:
                    text = short_event(t.get("event"))
                    if t.get("send"):
                        text += f" / {t['send']}"
                    full = " ".join(str(t.get("event") or "").split())
                    tag = "" if int(t.get("rfc") or 0) else \
                        ' <tspan class="muted" font-style="italic">(Linux)</tspan>'
                    panel.append(f'<text x="46" y="{_n(y + 12)}" font-size="12.5">'
                                 f"<title>{_e(full)}</title>{_e(text)}{tag}</text>")
                    y += 18
                y += 6
        extra = y - height + 6

    label = "TCP state diagram" + (f", {name(hl)} highlighted" if hl else "")
    body = ['<g class="edges">', *edges_svg, "</g>", '<g class="states">', *boxes, "</g>",
            *badges, *legend]
    if panel:
        body += ['<g class="panel">', *panel, "</g>"]
    return _svg(width, height + extra, label, body, "tkd-states")


# -- the packet ladder -----------------------------------------------------------------------

_ICMP4 = {0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded"}
_UNREACH4 = {0: "net", 1: "host", 2: "protocol", 3: "port", 4: "frag needed", 9: "net prohibited",
             10: "host prohibited", 13: "filtered"}
_ICMP6 = {1: "unreachable", 2: "packet too big", 3: "time exceeded", 128: "echo request",
          129: "echo reply", 133: "router solicitation", 134: "router advertisement",
          135: "neighbor solicitation", 136: "neighbor advertisement"}
_NAMED = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*=\s*(.*)$")
_ADDR = re.compile(r"^\[?([^\[\]]*?)\]?:(\d+)$")


def _is_tcp(p: dict) -> bool:
    return (p.get("proto") or "tcp") == "tcp" and p.get("flags") is not None


def _split_addr(text) -> tuple[str, int] | None:
    m = _ADDR.match(str(text or ""))
    if not m:
        return None
    ip = m.group(1)
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip[7:]
    return ip, int(m.group(2))


def _relative(packets: list[dict]) -> list[tuple[int, int | None] | None]:
    """(seq, ack) of each TCP packet relative to its direction's initial sequence number,
    like Wireshark's relative numbers: the first SYN of a connection has seq 0. A new SYN on
    the same four-tuple (a reused port) starts a new numbering. A direction whose SYN was not
    captured (a stray segment) keeps its absolute numbers."""
    base: dict[tuple, int] = {}
    out = []
    for p in packets:
        if not _is_tcp(p):
            out.append(None)
            continue
        fwd = (p.get("src"), p.get("sport"), p.get("dst"), p.get("dport"))
        rev = (fwd[2], fwd[3], fwd[0], fwd[1])
        seq, ack, flags = int(p.get("seq") or 0), int(p.get("ack") or 0), p["flags"]
        if "S" in flags:
            if fwd in base and base[fwd] != seq and "." not in flags:
                base.pop(rev, None)  # a new connection on the same four-tuple
            base[fwd] = seq
        rel_ack = None
        if "." in flags:
            rel_ack = (ack - base.get(rev, 0)) % (1 << 32)
        out.append(((seq - base.get(fwd, 0)) % (1 << 32), rel_ack))
    return out


def _packet_label(p: dict, rel) -> tuple[str, str, str]:
    """(flags, rest of the label, css classes) of one captured packet."""
    if not _is_tcp(p):
        kind = str(p.get("proto") or "?").upper()
        t, c = p.get("type"), p.get("code")
        v6 = ":" in str(p.get("src") or "")
        name = (_ICMP6 if v6 else _ICMP4).get(t) if isinstance(t, int) else None
        if name == "unreachable" and not v6:
            name += f" ({_UNREACH4.get(c, f'code {c}')})"
        elif name == "unreachable":
            name += f" (code {c})"
        text = name or f"type {t} code {c}"
        return (f"{kind}{'v6' if v6 and kind == 'ICMP' else ''}", text, "pk icmp")
    flags = p["flags"]
    seq, ack = rel
    length = int(p.get("len") or 0)
    rest = f"seq {seq}"
    if ack is not None:
        rest += f" ack {ack}"
    if length:
        rest += f" len {length}"
    cls = "pk"
    if length:
        cls += " data"
    if "S" in flags:
        cls += " syn"
    if "F" in flags:
        cls += " fin"
    if "R" in flags:
        cls += " rst"
    return flags, rest, cls


def _step_text(step: dict) -> str:
    return str(step.get("call") or step.get("note") or step.get("expect") or "")


def _step_kind(step: dict) -> str:
    return "call" if "call" in step else "expect" if "expect" in step else "note"


def _socket_of_lab_call(step: dict) -> tuple[str, str] | None:
    """`listener = socket(AF_INET, SOCK_STREAM)` recorded by the lab: (name, call)."""
    if step.get("actor") != "lab" or "call" not in step:
        return None
    m = _NAMED.match(str(step["call"]))
    return (m.group(1), m.group(2)) if m else None


def _result(step: dict) -> tuple[str, str] | None:
    if step.get("errno"):
        return f"→ {step['errno']}", "err"
    if step.get("result") is None:
        return None
    return f"→ {step['result']}", "ok"


class _Model:
    """Columns of a ladder and the socket -> column mapping, shared by ladder() and timeline()."""

    def __init__(self, trace: dict, cap: int = MAX_ARROWS):
        self.steps = list(trace.get("steps") or [])
        packets = sorted(trace.get("packets") or [], key=lambda p: float(p.get("t_ms") or 0))
        self.rel = _relative(packets)
        self.packets = packets
        self.drawn = packets[:cap]
        self.hidden = len(packets) - len(self.drawn)
        self.cut = float(self.drawn[-1].get("t_ms") or 0) if self.hidden else None
        self.info = trace.get("sockets") or {}
        self._sockets()
        self._endpoints()
        self._columns()

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
            lab = _socket_of_lab_call(s)
            if lab:
                see(lab[0])
            see(s.get("actor"))
            for n in sorted(s.get("states") or {}):
                see(n)
        self.names, self.active = names, active

    def _endpoints(self) -> None:
        socks = set(self.names)
        ips: dict[str, set] = {}
        for p in self.drawn:
            if _is_tcp(p):
                ips.setdefault(str(p.get("from")), set()).add(str(p.get("src")))
                ips.setdefault(str(p.get("to")), set()).add(str(p.get("dst")))
        ends = []

        def end_of(p, side) -> str:
            n = str(p.get(side))
            if _is_tcp(p):
                return n
            owners = sorted(k for k, v in ips.items() if n in v)
            return owners[0] if len(owners) == 1 else n

        raw = [(end_of(p, "from"), end_of(p, "to")) for p in self.drawn]
        for f, t in raw:
            for n in (f, t):
                if n not in ends:
                    ends.append(n)
        self.collapsed: dict[str, str] = {}
        if len(ends) > MAX_COLUMNS:  # many anonymous addresses: one column per IP
            for n in ends:
                a = _split_addr(n)
                if n not in socks and n != "peer" and a:
                    self.collapsed[n] = f"{a[0]}:*"
        self.ends = [(self.collapsed.get(f, f), self.collapsed.get(t, t)) for f, t in raw]

    def _columns(self) -> None:
        cols: list[str] = []
        first: dict[frozenset, tuple[str, str]] = {}
        syn: dict[frozenset, tuple[str, str]] = {}
        for (f, t), p in zip(self.ends, self.drawn):
            key = frozenset((f, t))
            first.setdefault(key, (f, t))
            if _is_tcp(p) and "S" in p["flags"] and "." not in p["flags"]:
                syn.setdefault(key, (f, t))
        for key, pair in first.items():  # the opener of each conversation left of its partner
            for n in syn.get(key, pair):
                if n not in cols:
                    cols.append(n)
        # where the packets of a column came from and went to, for folding sockets onto it
        addrs: dict[str, list[tuple[str, int]]] = {c: [] for c in cols}
        for (f, t), p in zip(self.ends, self.drawn):
            if _is_tcp(p):
                for c, ip, port in ((f, p.get("src"), p.get("sport")), (t, p.get("dst"), p.get("dport"))):
                    a = _split_addr(f"{ip}:{port}")
                    if a and a not in addrs[c]:
                        addrs[c].append(a)
        for c in cols:
            local = _split_addr((self.info.get(c) or {}).get("local"))
            if local and local not in addrs[c]:
                addrs[c].append(local)
        self.addrs = addrs
        home: dict[str, str] = {c: c for c in cols if c in self.names}
        folded: dict[str, list[str]] = {c: [] for c in cols}
        extra: list[str] = []
        for n in self.active:
            if n in home:
                continue
            local = _split_addr((self.info.get(n) or {}).get("local"))
            target = None
            if local and cols:
                wild = local[0] in ("0.0.0.0", "::", "")
                for c in cols:
                    if any(a[1] == local[1] and (wild or a[0] == local[0]) for a in addrs[c]):
                        target = c
                        break
            if target is not None:
                home[n] = target
                folded[target].append(n)
            else:
                extra.append(n)
        for n in extra:  # the others have a lifeline of their own while there is room
            if len(cols) >= MAX_COLUMNS:
                break
            cols.append(n)
            home[n] = n
            folded[n] = []
            addrs.setdefault(n, [])
        self.cols, self.home, self.folded = cols, home, folded
        order = []
        for c in cols:
            for n in ([c] if c in self.names else []) + folded.get(c, []):
                if n not in order:
                    order.append(n)
        order += [n for n in self.names if n not in order and n in self.active]
        self.order = order

    def sub_label(self, c: str) -> str:
        """The address under a column's name."""
        if _split_addr(c) or c.endswith(":*"):
            if c.endswith(":*"):
                ports = {a for a in self.addrs.get(c, [])}
                return f"{len(ports)} addresses"
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


def ladder(trace: dict, caption: str = "") -> str:
    """A packet ladder (sequence diagram) of one scenario run, as SVG.

    One lifeline per endpoint that sends or receives packets (the opener of the first
    conversation on the left); sockets without packets of their own are drawn on the lifeline
    that shares their local address (a listener on its accepted socket's), else on a lifeline
    of their own (up to MAX_COLUMNS), else as annotations. One arrow per packet in time order,
    labelled with its flags as tcpdump prints them, relative seq/ack (the first SYN has seq 0),
    len when > 0, and the time in ms in the left margin. A call is drawn as a box on its
    socket's lifeline with its result or errno. Steps are recorded when a call returns, so when
    packets were captured between the previous recorded step and a call's return, the call's
    box opens after that step, a bar runs down beside those packets, and a second box shows the
    result: the picture reads call -> packets -> result -> state change.
    State changes (steps' "states") are pills on the lifeline at the row where they are seen.
    Lab notes and failed expectations are one-line annotations; passing expectations are left
    to timeline(). At most MAX_ARROWS packets are drawn: the rest are counted at the bottom.
    """
    m = _Model(trace)
    steps = m.steps
    if m.cut is not None:
        kept = [s for s in steps if float(s.get("t_ms") or 0) <= m.cut]
    else:
        kept = steps
    hidden_steps = len(steps) - len(kept)
    cols = m.cols
    ncol = len(cols)

    # geometry
    gutter = 66.0
    spacing = max(190.0, (900.0 - gutter - 10) / max(ncol, 1)) if ncol else 0.0
    width = max(900.0, gutter + 10 + spacing * ncol)
    if ncol:
        spacing = (width - gutter - 10) / ncol
    xs = {c: gutter + spacing * (i + 0.5) for i, c in enumerate(cols)}
    box_chars = _chars(spacing - 18, 12)  # a state pill: several may share a row
    call_chars = min(72, _chars(width - gutter - 24, 12))  # a call box has its row to itself
    note_chars = _chars(width - gutter - 16, 11.5)

    # rows: (key, row); key orders by time, then packets before the steps recorded at that time
    rows: list[tuple[tuple, dict]] = []
    for i, (p, (f, t)) in enumerate(zip(m.drawn, m.ends)):
        flags, rest, cls = _packet_label(p, m.rel[i])
        pre = ""
        if f in m.collapsed.values() or t in m.collapsed.values():
            port = p.get("sport") if f.endswith(":*") else p.get("dport")
            pre = f":{port} " if port is not None else ""
        rows.append(((float(p.get("t_ms") or 0), 1, i),
                     {"type": "arrow", "from": f, "to": t, "flags": flags, "rest": rest, "pre": pre,
                      "cls": cls, "t": float(p.get("t_ms") or 0)}))
    last: dict[str, str] = {}
    barrier = -1.0
    ptimes = [float(p.get("t_ms") or 0) for p in m.drawn]
    for i, s in enumerate(kept):
        t = float(s.get("t_ms") or 0)
        actor = s.get("actor")
        lab = _socket_of_lab_call(s)
        who, text = (lab if lab else (actor, _step_text(s)))
        col = m.home.get(who) if who and who != "lab" else None
        prefix = f"{who}: " if col is not None and col != who else ""
        if "call" in s:
            res = _result(s)
            window = [x for x in ptimes if barrier < x <= t]
            if col is not None and window and not lab:
                rows.append(((barrier, 4, i), {"type": "call", "col": col, "text": prefix + text + " …",
                                               "res": None, "t": None, "open": i}))
                rows.append(((t, 2, i), {"type": "call", "col": col, "text": "", "t": t, "close": i,
                                         "res": res or ("→ ok", "ok")}))
            elif col is not None:
                rows.append(((t, 2, i), {"type": "call", "col": col, "text": prefix + text,
                                         "res": res, "t": t}))
            else:
                rows.append(((t, 2, i), {"type": "note", "cls": "note", "text": f"{who}: {text}",
                                         "res": res, "t": t}))
        elif "expect" in s:
            if s.get("ok") is False:
                rows.append(((t, 2, i), {"type": "note", "cls": "fail",
                                         "text": f"✗ expected: {text}", "t": t}))
        else:
            rows.append(((t, 2, i), {"type": "note", "cls": "note", "text": text, "t": t}))
        barrier = max(barrier, t)
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
        for k in range(depth):
            items = [(c, v[k]) for c, v in changes.items() if len(v) > k]
            rows.append(((t, 3, i, k), {"type": "state", "items": items}))
    rows.sort(key=lambda r: r[0])

    # layout
    body: list[str] = []
    y = 10.0
    if caption:
        body.append(f'<text class="cap" x="10" y="{_n(y + 14)}" font-size="14">'
                    f"{_e(_fit(caption, _chars(width - 20, 14)))}</text>")
        y += 26
    head_top = y
    head_h = 0.0
    heads = []
    for c in cols:
        x = xs[c]
        lines = [(c, "name")]
        sub = m.sub_label(c)
        if sub:
            lines.append((sub, "muted"))
        if m.folded.get(c):
            lines.append(("+ " + ", ".join(m.folded[c]), "muted"))
        h = 10 + 16 * len(lines)
        head_h = max(head_h, h)
        heads.append((c, x, lines))
    if not cols:
        head_h = 0.0
    for c, x, lines in heads:
        n = _chars(spacing - 16, 12)
        wtext = max(len(_fit(t, n)) for t, _ in lines) * 12 * 0.61 + 18
        body.append(f'<g class="head mono"><rect x="{_n(x - wtext / 2)}" y="{_n(head_top)}" '
                    f'width="{_n(wtext)}" height="{_n(head_h)}" rx="6"/>')
        for k, (t, cls) in enumerate(lines):
            size = 13 if cls == "name" else 11
            body.append(f'<text class="{cls}" x="{_n(x)}" y="{_n(head_top + 18 + 16 * k)}" '
                        f'text-anchor="middle" font-size="{size}">{_e(_fit(t, n))}</text>')
        body.append("</g>")
    y = head_top + head_h + 12
    if cols:
        body.append(f'<text class="time unit" x="{_n(gutter - 10)}" y="{_n(y - 2)}" '
                    'text-anchor="end">ms</text>')
    top = y
    gaps: dict[str, list[tuple[float, float]]] = {c: [] for c in cols}
    opened: dict[int, tuple[str, float]] = {}
    bars: list[str] = []
    drawn_rows: list[str] = []

    def gap_under(x0: float, x1: float, y0: float, y1: float, skip=()):
        for c in cols:
            if c not in skip and x0 - 2 <= xs[c] <= x1 + 2:
                gaps[c].append((y0, y1))

    if not m.packets and (cols or kept):
        drawn_rows.append(f'<text class="note" x="{_n(gutter)}" y="{_n(y + 12)}">'
                          "no packets captured</text>")
        y += 22
    for _, r in rows:
        kind = r["type"]
        if kind == "arrow":
            x0, x1 = xs[r["from"]], xs[r["to"]]
            y0, y1 = y + 18, y + 26
            label = f"{r['pre']}{r['flags']} {r['rest']}"
            lw = len(label) * 12 * 0.61
            mid = (x0 + x1) / 2
            g = [f'<g class="{r["cls"]} mono">']
            if x0 == x1:  # to itself (two names for one address): a small loop
                g.append(f'<path d="M{_n(x0)},{_n(y0 - 4)}h28v{_n(y1 - y0 + 4)}h-24"/>'
                         + _head(x0 + 28, y1, x0 + 2, y1))
                mid, anchor_x = x0 + 34, x0 + 34
                g.append(f'<text x="{_n(anchor_x)}" y="{_n(y0 + 4)}">'
                         f'{_e(r["pre"])}<tspan class="fl">{_e(r["flags"])}</tspan> {_e(r["rest"])}</text>')
            else:
                sgn = 1 if x1 > x0 else -1
                g.append(f'<line x1="{_n(x0)}" y1="{_n(y0)}" x2="{_n(x1 - sgn * 1)}" y2="{_n(y1)}"/>'
                         + _head(x0, y0, x1, y1))
                g.append(f'<text x="{_n(mid)}" y="{_n(y + 12)}" text-anchor="middle">'
                         f'{_e(r["pre"])}<tspan class="fl">{_e(r["flags"])}</tspan> {_e(r["rest"])}</text>')
                gap_under(mid - lw / 2, mid + lw / 2, y + 1, y + 15, skip=(r["from"], r["to"]))
            g.append("</g>")
            drawn_rows.append("".join(g))
            drawn_rows.append(f'<text class="time" x="{_n(gutter - 10)}" y="{_n(y1 - 2)}" '
                              f'text-anchor="end">{r["t"]:.3f}</text>')
            y += 32
        elif kind == "call":
            x = xs[r["col"]]
            parts = []
            if r["text"]:
                parts.append((r["text"], ""))
            if r["res"]:
                parts.append((r["res"][0], r["res"][1]))
            total = " ".join(p for p, _ in parts)
            if len(total) > call_chars and r["res"] and r["text"]:
                keep = max(4, call_chars - len(r["res"][0]) - 1)
                parts[0] = (_fit(r["text"], keep), "")
            elif len(total) > call_chars:
                parts[0] = (_fit(parts[0][0], call_chars), parts[0][1])
            shown = " ".join(p for p, _ in parts)
            bwid = len(shown) * 12 * 0.61 + 14
            x = min(max(x, gutter + bwid / 2 + 2), width - bwid / 2 - 4)
            h = 20
            full = " ".join(p for p, _ in ([(r["text"], "")] if r["text"] else []) +
                            ([r["res"]] if r["res"] else []))
            spans = " ".join(f'<tspan class="{c}">{_e(p)}</tspan>' if c == "err" else _e(p)
                             for p, c in parts)
            drawn_rows.append(f'<g class="call mono"><title>{_e(full)}</title>'
                              f'<rect x="{_n(x - bwid / 2)}" y="{_n(y + 3)}" width="{_n(bwid)}" '
                              f'height="{h}" rx="4"/><text x="{_n(x)}" y="{_n(y + 17)}" '
                              f'text-anchor="middle">{spans}</text></g>')
            gap_under(x - bwid / 2, x + bwid / 2, y + 3, y + 3 + h)
            if "open" in r:
                opened[r["open"]] = (r["col"], y + 3 + h)
            if "close" in r and r["close"] in opened:
                c, y_open = opened.pop(r["close"])
                bars.append(f'<rect class="act" x="{_n(xs[c] - 4)}" y="{_n(y_open)}" width="8" '
                            f'height="{_n(max(0.0, y + 3 - y_open))}"/>')
            if r["t"] is not None:
                drawn_rows.append(f'<text class="time step" x="{_n(gutter - 10)}" y="{_n(y + 17)}" '
                                  f'text-anchor="end">{r["t"]:.3f}</text>')
            y += 26
        elif kind == "state":
            for c, (label, cls) in r["items"]:
                x = xs[c]
                shown = _fit(label, box_chars)
                pw = len(shown) * 11.5 * 0.61 + 14
                drawn_rows.append(f'<g class="{cls} mono"><rect x="{_n(x - pw / 2)}" y="{_n(y + 2)}" '
                                  f'width="{_n(pw)}" height="18" rx="9"/>'
                                  f'<text x="{_n(x)}" y="{_n(y + 15)}" text-anchor="middle">'
                                  f"{_e(shown)}</text></g>")
                gaps[c].append((y + 2, y + 20))
            y += 23
        elif kind == "note":
            res = r.get("res")
            tail = f" {res[0]}" if res else ""
            shown = _fit(r["text"], note_chars - len(tail))
            tw = len(shown + tail) * 11.5 * 0.61
            tail_svg = (f'<tspan class="{res[1]}">{_e(tail)}</tspan>' if res else "")
            drawn_rows.append(f'<text class="{r["cls"]} mono" x="{_n(gutter)}" y="{_n(y + 13)}">'
                              f"<title>{_e(r['text'] + tail)}</title>{_e(shown)}{tail_svg}</text>")
            gap_under(gutter, gutter + tw, y + 2, y + 17)
            y += 19
    for _i, (c, y_open) in sorted(opened.items()):  # a call still open at the cut: bar to the end
        bars.append(f'<rect class="act" x="{_n(xs[c] - 4)}" y="{_n(y_open)}" width="8" '
                    f'height="{_n(max(0.0, y - y_open))}"/>')
    if m.hidden or hidden_steps:
        more = []
        if m.hidden:
            more.append(f"{m.hidden} more packet{'s' if m.hidden != 1 else ''}")
        if hidden_steps:
            more.append(f"{hidden_steps} later step{'s' if hidden_steps != 1 else ''}")
        drawn_rows.append(f'<text class="note" x="{_n(gutter)}" y="{_n(y + 16)}" font-size="13">'
                          f"… {_e(' and '.join(more))} not drawn</text>")
        y += 26
    if not cols and not kept:
        drawn_rows.append(f'<text class="note" x="10" y="{_n(y + 14)}">'
                          f"{'no packets captured' if not m.packets else ''} and no steps recorded</text>")
        y += 24
    bottom = y + 6
    lifelines = []
    for c in cols:
        x = xs[c]
        cur = top
        for g0, g1 in sorted(gaps[c]):
            if g1 <= cur:
                continue
            if g0 - 1 > cur:
                lifelines.append(f'<line class="life" x1="{_n(x)}" y1="{_n(cur)}" '
                                 f'x2="{_n(x)}" y2="{_n(g0 - 1)}"/>')
            cur = max(cur, g1 + 1)
        if cur < bottom:
            lifelines.append(f'<line class="life" x1="{_n(x)}" y1="{_n(cur)}" '
                             f'x2="{_n(x)}" y2="{_n(bottom)}"/>')
    n = len(m.packets)
    label = (caption + ": " if caption else "") + \
        f"packet ladder, {n} packet{'s' if n != 1 else ''}" + \
        (" between " + ", ".join(cols) if cols else "")
    return _svg(width, bottom + 8, label, [*body, *lifelines, *bars, *drawn_rows], "tkd-ladder")


def timeline(trace: dict) -> dict:
    """The trace as a table: {"sockets": [names in the ladder's column order],
    "rows": [{"t_ms", "actor", "what", "result", "errno", "ok", "states", "kind"}]}.

    what: the call, note or expectation text; result: the call's result as text (for a failed
    call, the error's message); errno: the errno name of a failed call, else None; ok: an
    expectation's outcome, None for calls and notes; states: each socket's state at that step
    ("" when unknown); kind: "call", "note" or "expect" (an addition to the brief's keys)."""
    m = _Model(trace)
    socks = list(m.order) + [n for n in m.names if n not in m.order and
                             any(n in (s.get("states") or {}) for s in m.steps)]
    rows = []
    for s in m.steps:
        kind = _step_kind(s)
        if kind == "call":
            if s.get("errno"):
                result = str(s.get("error") or "")
            else:
                result = "" if s.get("result") is None else str(s["result"])
        else:
            result = ""
        states = s.get("states") or {}
        rows.append({
            "t_ms": float(s.get("t_ms") or 0.0),
            "actor": str(s.get("actor") or ""),
            "what": _step_text(s),
            "result": result,
            "errno": s.get("errno") or None,
            "ok": s.get("ok") if kind == "expect" else None,
            "states": [str(states.get(n, "")) for n in socks],
            "kind": kind,
        })
    return {"sockets": socks, "rows": rows}
