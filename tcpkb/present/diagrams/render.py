"""SVG text from the placed pictures.

Every text that comes from the data goes through escape(). Colours come from the stylesheet and
currentColor, never from presentation attributes, so a light or a dark page reads the picture.
The class names here are the ones the stylesheet below and the pages' CSS style.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from .layout import (
    BADGE_BASELINE,
    BADGE_RADIUS,
    BAR_WIDTH,
    BOX_CORNER,
    CALL_CORNER,
    LEGEND_BOX_CORNER,
    LEGEND_FONT,
    PANEL_LINE_FONT,
    HEAD_CORNER,
    PILL_CORNER,
    Head,
    LadderPicture,
    Mark,
    PlacedBox,
    PlacedCall,
    PlacedEdge,
    PlacedNote,
    PlacedPacket,
    PlacedPill,
    StatePicture,
    Text,
)

STYLE = """
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
.tkd .labels text{font-size:10.5px;paint-order:stroke;stroke:var(--bg,Canvas);stroke-width:3px;stroke-linejoin:round}
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
.tkd .drop{font-size:11.5px;fill:#8a5a00;font-weight:600}
.tkd .time{font-size:11px;opacity:.62}
.tkd .time.step{opacity:.4}
@media (prefers-color-scheme:dark){
.tkd{--tkd-a:var(--tkd-accent,#f59e0b)}
.tkd .pk.data{color:#3fb950}.tkd .pk.syn{color:#58a6ff}.tkd .pk.fin{color:#bc8cff}
.tkd .pk.rst{color:#ff7b72}.tkd .pk.icmp{color:#d29922}
.tkd .err,.tkd text.err,.tkd tspan.err,.tkd .fail{fill:#ff7b72}
.tkd .drop{fill:#d29922}
.tkd .state rect{fill:rgba(88,166,255,.16);stroke:#58a6ff}
.tkd .st.hl rect{fill:rgba(245,158,11,.22)}
}
"""


NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text) -> str:
    """Text or an attribute value, escaped, with characters XML cannot carry replaced."""
    return html.escape(NOT_XML.sub("\ufffd", str(text)), quote=True)


def num(v: float) -> str:
    """A coordinate as short, stable text."""
    return f"{v:.1f}".removesuffix(".0")


def svg(width: float, height: float, label: str, body: list[str], kind: str, role: str = "img") -> str:
    """role "img" for a picture read as a whole; "group" for one holding links, which an
    "img" would hide from keyboards and screen readers (its children are presentational)."""
    w, h = num(width), num(height)
    # a drawing whose parts are links (the state diagram's states) is a group, so the keyboard and
    # a screen reader reach each link; an image role would hide them
    role = "group" if any("<a " in part for part in body) else "img"
    return "".join([
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="tkd {kind}" viewBox="0 0 {w} {h}" '
         f'style="max-width:{w}px;width:100%;height:auto" role="{role}" aria-label="{escape(label)}">'),
        f"<title>{escape(label)}</title><style>{STYLE}</style>",
        *body,
        "</svg>",
    ])


def text(t: Text, inner: str | None = None) -> str:
    """<text> with its attributes in a fixed order; `inner` is markup, else t.text is escaped."""
    attrs = (f' class="{t.cls}"' if t.cls else "") + f' x="{num(t.x)}" y="{num(t.y)}"' + \
        (f' text-anchor="{t.anchor}"' if t.anchor else "") + \
        (f' font-size="{num(t.size)}"' if t.size is not None else "")
    return f"<text{attrs}>{escape(t.text) if inner is None else inner}</text>"


def polygon(points) -> str:
    return '<polygon points="' + " ".join(f"{num(x)},{num(y)}" for x, y in points) + '"/>'


def rect(x: float, y: float, w: float, h: float, corner: float, cls: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    return (f'<rect{attrs} x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" '
            f'rx="{num(corner)}"/>')


def path_data(commands: list[tuple]) -> str:
    out = []
    for op, *points in commands:
        out.append(op + " ".join(f"{num(x)},{num(y)}" for x, y in points))
    return "".join(out)


# -- the state diagram ------------------------------------------------------------------------------

def badge(x: float, y: float, number: int) -> str:
    return (f'<g class="badge"><circle cx="{num(x)}" cy="{num(y)}" r="{num(BADGE_RADIUS)}"/>'
            f'<text x="{num(x)}" y="{num(y + BADGE_BASELINE)}" text-anchor="middle">'
            f"{number}</text></g>")


def edge(placed: PlacedEdge) -> str:
    e = placed.edge
    cls = "tr" + ("" if e.rfc else " lx") + (f" {e.emphasis}" if e.emphasis else "")
    tip = f"<title>{escape(e.tooltip)}</title>" if e.tooltip is not None else ""
    return f'<g class="{cls}">{tip}<path d="{path_data(placed.path)}"/>{polygon(placed.head)}</g>'


def state_box(box: PlacedBox, href: Callable[[str], str] | None) -> str:
    s = box.state
    cls = "st" + (" hl" if s.highlighted else "") + (" lx" if s.linux_only else "")
    g = (f'<g class="{cls}" data-state="{escape(s.id)}"><title>{escape(s.tip)}</title>'
         # a space between the lines: read aloud (and by axe) as "CLOSED CLOSE", not "CLOSEDCLOSE"
         + rect(box.x, box.y, box.w, box.h, BOX_CORNER) + " ".join(map(text, box.lines)) + "</g>")
    return f'<a href="{escape(href(s.id))}" aria-label="{escape(s.tip)}">{g}</a>' if href is not None else g


def legend_mark(m: Mark) -> str:
    cls = f' class="{m.cls}"' if m.cls else ""
    if m.shape == "line":
        return (f'<line{cls} x1="{num(m.x)}" y1="{num(m.y)}" x2="{num(m.x + m.w)}" '
                f'y2="{num(m.y + m.h)}"/>')
    if m.shape == "rect":
        return rect(m.x, m.y, m.w, m.h, LEGEND_BOX_CORNER, m.cls)
    return (f'<text x="{num(m.x)}" y="{num(m.y)}" font-size="{num(LEGEND_FONT)}"{cls}>'
            f"{escape(m.text)}</text>")


def legend(pic: StatePicture) -> str:
    x, y = pic.legend_at
    return (f'<g class="legend" transform="translate({num(x)},{num(y)})">'
            + "".join(map(legend_mark, pic.legend)) + "</g>")


def panel(pic: StatePicture) -> list[str]:
    """The highlighted state's transitions, each under its arrow's number."""
    x, y = pic.panel_heading
    out = [f'<text class="hd" x="{num(x)}" y="{num(y)}">{escape(pic.model.panel_title)}</text>']
    for p in pic.panel:
        out.append(badge(*p.badge, p.entry.number) +
                   f'<text class="hd" x="{num(p.title[0])}" y="{num(p.title[1])}">'
                   f"{escape(p.entry.title)}</text>")
        for (short, full, linux), (lx, ly) in zip(p.entry.lines, p.lines):
            tag = ' <tspan class="muted" font-style="italic">(Linux)</tspan>' if linux else ""
            out.append(f'<text x="{num(lx)}" y="{num(ly)}" font-size="{num(PANEL_LINE_FONT)}">'
                       f"<title>{escape(full)}</title>{escape(short)}{tag}</text>")
    return out


def state_diagram_svg(pic: StatePicture, href: Callable[[str], str] | None) -> str:
    badges = [badge(*p.badge, p.edge.number) for p in pic.edges if p.badge is not None]
    labels = [text(t) for p in pic.edges for t in p.labels]
    body = ['<g class="edges">', *map(edge, pic.edges), "</g>",
            '<g class="labels">', *labels, "</g>",
            '<g class="states">', *(state_box(b, href) for b in pic.boxes), "</g>",
            *badges, legend(pic)]
    if pic.panel_heading is not None:
        body += ['<g class="panel">', *panel(pic), "</g>"]
    return svg(pic.width, pic.height, pic.model.label, body, "tkd-states",
               "img" if href is None else "group")


# -- the ladder -------------------------------------------------------------------------------------

def head(h: Head) -> str:
    return ('<g class="head mono">' + rect(h.x, h.y, h.w, h.h, HEAD_CORNER)
            + "".join(map(text, h.lines)) + "</g>")


def packet(p: PlacedPacket) -> str:
    label = text(p.label, f'{escape(p.prefix)}<tspan class="fl">{escape(p.flags)}</tspan> '
                          f"{escape(p.rest)}")
    if p.loop is not None:
        x, y, reach, drop, back = p.loop
        shape = f'<path d="M{num(x)},{num(y)}h{num(reach)}v{num(drop)}h{num(-back)}"/>'
    else:
        x1, y1, x2, y2 = p.line
        shape = f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}"/>'
    cls = " ".join(("pk", *p.tags))
    return f'<g class="{cls} mono">{shape}{polygon(p.head)}{label}</g>'


def call(c: PlacedCall) -> str:
    spans = " ".join(f'<tspan class="{tag}">{escape(part)}</tspan>' if tag == "err" else escape(part)
                     for part, tag in c.parts)
    x, y = c.label
    return (f'<g class="call mono"><title>{escape(c.title)}</title>'
            + rect(c.x, c.y, c.w, c.h, CALL_CORNER)
            + f'<text x="{num(x)}" y="{num(y)}" text-anchor="middle">{spans}</text></g>')


def pill(p: PlacedPill) -> str:
    return f'<g class="{p.tag} mono">' + rect(p.x, p.y, p.w, p.h, PILL_CORNER) + text(p.label) + "</g>"


def note(n: PlacedNote) -> str:
    tail = f'<tspan class="{n.tail_tag}">{escape(n.tail)}</tspan>' if n.tail else ""
    return (f'<text class="{n.tag} mono" x="{num(n.x)}" y="{num(n.y)}">'
            f"<title>{escape(n.title)}</title>{escape(n.shown)}{tail}</text>")


ROW_RENDERERS = {PlacedPacket: packet, PlacedCall: call, PlacedPill: pill, PlacedNote: note,
                 Text: text}


def ladder_svg(pic: LadderPicture) -> str:
    body = [text(pic.caption)] if pic.caption else []
    body += [*map(head, pic.heads), *([text(pic.unit)] if pic.unit else [])]
    lifelines = [f'<line class="life" x1="{num(x)}" y1="{num(y0)}" x2="{num(x)}" y2="{num(y1)}"/>'
                 for x, y0, y1 in pic.lifelines]
    bars = [f'<rect class="act" x="{num(b.x)}" y="{num(b.y)}" width="{num(BAR_WIDTH)}" '
            f'height="{num(b.h)}"/>' for b in pic.bars]
    rows = [ROW_RENDERERS[type(r)](r) for r in pic.rows]
    return svg(pic.width, pic.height, pic.model.label, [*body, *lifelines, *bars, *rows],
               "tkd-ladder")
