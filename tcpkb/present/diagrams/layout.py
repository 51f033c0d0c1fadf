"""Where everything goes: positions, sizes, arrow routes and text fitted to its room.

The state diagram is placed by hand in site/layout/states.json (centres, routes that bend, badge
positions); this module clips arrows to boxes, rounds their corners, keeps opposite arrows apart
and stacks the panel under the picture. The ladder is laid out here whole: lifelines spread over
the width, one row per packet, call, note or state change, down the page.

Every length is in SVG user units (px at the natural size). Text widths are estimated from the
monospace advance, so nothing here needs a font.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from itertools import pairwise

from .model import (
    LEGEND,
    NO_PACKETS,
    CallRow,
    Edge,
    Ladder,
    NoteRow,
    PacketRow,
    PanelEntry,
    StateBox,
    StateDiagram,
    StateRow,
    empty_note,
    hidden_note,
)

# -- text -------------------------------------------------------------------------------------------

MONO_ADVANCE = 0.61  # a monospace character's width, as a fraction of its font size
MIN_FIT_CHARS = 4  # text is never cut shorter than this
ELLIPSIS = "…"


def text_width(text: str, size: float) -> float:
    return len(text) * size * MONO_ADVANCE


def fit_chars(width: float, size: float) -> int:
    """How many monospace characters of font `size` fit in `width` px."""
    return max(MIN_FIT_CHARS, int(width / (size * MONO_ADVANCE)))


def fit(text: str, n: int) -> str:
    """Text on one line, cut to `n` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: max(1, n - 1)].rstrip() + ELLIPSIS


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # the baseline
    text: str
    cls: str = ""
    anchor: str = ""  # "middle" or "end"; "" starts at x
    size: float | None = None  # font size, when not the stylesheet's


ARROWHEAD_LENGTH = 10.0
ARROWHEAD_HALF_WIDTH = 4.2


def arrowhead(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """The corners of an arrowhead with its tip at (x1, y1), pointing away from (x0, y0)."""
    dx, dy = x1 - x0, y1 - y0
    d = math.hypot(dx, dy) or 1.0
    ux, uy = dx / d, dy / d
    bx, by = x1 - ux * ARROWHEAD_LENGTH, y1 - uy * ARROWHEAD_LENGTH
    half = ARROWHEAD_HALF_WIDTH
    return [(x1, y1), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)]


# -- the state diagram ------------------------------------------------------------------------------

BOX_SIZE = (150, 44)  # a state box, when the layout file does not say
BOX_CORNER = 9
NAME_BASELINE = 5  # a one-line name of 13 px, centred in its box
TWO_LINE_NAME_BASELINE = -2  # with a second, smaller line under it ...
SUBTITLE_BASELINE = 13  # ... that line, relative to the box's centre
UNPLACED_MARGIN = 20  # states the layout does not know: a row under the diagram, this far in
UNPLACED_DROP = 10  # ... with its centres this far below the diagram's bottom edge
UNPLACED_ROW = 60  # ... adding this much height
OPPOSITE_GAP = 7  # two arrows between the same states, one each way, run this far off centre
CORNER_RADIUS = 16.0  # bends in a routed arrow
BADGE_AT = 0.5  # a number halfway along its arrow ...
BADGE_AT_OPPOSITE = 0.36  # ... or short of halfway, so a pair's two numbers stand apart
BADGE_RADIUS = 9
ARROW_LABEL_FONT = 10.5  # an arrow's event label (`rcv SYN / snd SYN,ACK`)
ARROW_LABEL_LINE = 12.5  # between the lines of an arrow with several
ARROW_LABEL_GAP = 6  # between an arrow and its label
BADGE_BASELINE = 4  # a digit of 11 px centred in its badge

LEGEND_LEFT = 20  # where the legend sits when the layout file does not say ...
LEGEND_FROM_BOTTOM = 30  # ... this far above the bottom
LEGEND_FONT = 12
LEGEND_SAMPLE = 34  # the sample line, and the width of the sample box
LEGEND_LABEL_GAP = 8
LEGEND_LABEL_X = LEGEND_SAMPLE + LEGEND_LABEL_GAP  # a label, past its sample
LEGEND_ROW = 20  # the second row, below the first
LEGEND_COLUMN = 180  # the second column
LEGEND_BOX_HEIGHT = 16
LEGEND_BOX_CORNER = 4
LEGEND_BASELINE = 4  # 12 px text centred on its sample

PANEL_GAP = 8  # between the diagram and the panel of a highlighted state's transitions
PANEL_LEFT = 20
PANEL_HEADING_BASELINE = 14
PANEL_HEADING_HEIGHT = 26
PANEL_EMPTY_HEIGHT = 24  # a heading that says "none" has nothing under it to keep apart from
PANEL_BADGE_X = PANEL_LEFT + BADGE_RADIUS
PANEL_BADGE_GAP = 8
PANEL_TEXT_X = PANEL_BADGE_X + BADGE_RADIUS + PANEL_BADGE_GAP
PANEL_TITLE_BASELINE = BADGE_RADIUS + BADGE_BASELINE  # level with the badge's digit
PANEL_TITLE_HEIGHT = 20
PANEL_LINE_BASELINE = 12
PANEL_LINE_HEIGHT = 18  # one line of 12.5 px text
PANEL_LINE_FONT = 12.5
PANEL_ENTRY_GAP = 6
PANEL_BOTTOM = 6

LAYOUT_VERSIONS_CACHED = 4  # the file as read, per path and modification time


@functools.lru_cache(maxsize=LAYOUT_VERSIONS_CACHED)
def _read(path: str, mtime: float) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def layout_path() -> str:
    from ...paths import site_dir

    return os.path.join(site_dir(), "layout", "states.json")


def load_layout() -> dict:
    """The hand-placed coordinates of the state diagram (site/layout/states.json)."""
    path = layout_path()
    return json.loads(_read(path, os.stat(path).st_mtime))  # read again when the file changes


Point = tuple[float, float]


@dataclass
class PlacedEdge:
    edge: Edge
    path: list[tuple]  # ("M", p), ("L", p), ("Q", control, p): a route with rounded corners
    head: list[Point]
    badge: Point | None
    labels: list[Text]  # the arrow's event labels, one line each


def edge_labels(labels: list[str], points: list[Point], cfg: dict) -> list[Text]:
    """Where an arrow's labels go: the layout file's "label": [x, y, anchor] for the first
    line's baseline, else beside the middle of the route's longest leg, on the side the
    arrow was pushed to when it has a twin running back (so each twin keeps its own)."""
    if not labels:
        return []
    if "label" in cfg:
        x, y, *anchor = cfg["label"]
        anchor = anchor[0] if anchor else "middle"
    else:
        a, b = max(pairwise(points), key=lambda ab: math.hypot(ab[1][0] - ab[0][0], ab[1][1] - ab[0][1]))
        dx, dy = b[0] - a[0], b[1] - a[1]
        d = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / d, dx / d  # the side OPPOSITE_GAP pushes a twin to
        mx, my = (a[0] + b[0]) / 2 + nx * ARROW_LABEL_GAP, (a[1] + b[1]) / 2 + ny * ARROW_LABEL_GAP
        if abs(dy) > abs(dx) / 4:  # a sloping arrow: the text starts or ends beside it, clear of it
            anchor = "start" if nx > 0 else "end"
            x, y = mx, my + ARROW_LABEL_FONT / 3
        else:  # a flat one: above or below it
            anchor = "middle"
            x, y = mx, my + (ARROW_LABEL_FONT if ny > 0 else -2) - (len(labels) - 1) * ARROW_LABEL_LINE * (ny <= 0)
    return [Text(x, y + i * ARROW_LABEL_LINE, label, "lb", anchor) for i, label in enumerate(labels)]


@dataclass
class PlacedBox:
    state: StateBox
    x: float  # the rectangle's top left corner
    y: float
    w: float
    h: float
    lines: list[Text]  # the name, and the subtitle (class "sub") under it


@dataclass
class Mark:
    """A legend's sample line, sample box or label, relative to the legend's origin."""

    shape: str  # "line", "rect" or "text"
    x: float
    y: float
    w: float = 0
    h: float = 0
    text: str = ""
    cls: str = ""


@dataclass
class PlacedPanelEntry:
    entry: PanelEntry
    badge: Point
    title: Point
    lines: list[Point]


@dataclass
class StatePicture:
    model: StateDiagram
    width: float
    height: float
    edges: list[PlacedEdge]
    boxes: list[PlacedBox]
    legend_at: Point
    legend: list[Mark]
    panel_heading: Point | None
    panel: list[PlacedPanelEntry]


def clip_to_box(cx, cy, hw, hh, tx, ty) -> Point:
    """Where the segment from a box's centre towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    t = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return cx + dx * t, cy + dy * t


def rounded_route(points: list[Point], radius: float = CORNER_RADIUS) -> tuple[list[tuple], Point]:
    """Path commands through `points` with rounded corners, and the last segment's start."""
    commands: list[tuple] = [("M", points[0])]
    last = points[0]
    for a, b, c in zip(points, points[1:], points[2:]):
        l1, l2 = math.hypot(b[0] - a[0], b[1] - a[1]), math.hypot(c[0] - b[0], c[1] - b[1])
        r = min(radius, l1 / 2, l2 / 2)
        if r < 1:  # too short a leg to round
            commands.append(("L", b))
            last = b
            continue
        p = (b[0] - (b[0] - a[0]) / l1 * r, b[1] - (b[1] - a[1]) / l1 * r)
        q = (b[0] + (c[0] - b[0]) / l2 * r, b[1] + (c[1] - b[1]) / l2 * r)
        commands += [("L", p), ("Q", b, q)]
        last = q
    commands.append(("L", points[-1]))
    return commands, last


def point_along(points: list[Point], frac: float) -> Point:
    """The point at fraction `frac` of a polyline's length."""
    segs = [math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in pairwise(points)]
    goal = sum(segs) * frac
    for (a, b), s in zip(pairwise(points), segs):
        if goal <= s and s > 0:
            t = goal / s
            return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
        goal -= s
    return points[-1]


class _StateGeometry:
    """Box centres and sizes from the layout file, with a row for the states it lacks."""

    def __init__(self, model: StateDiagram, lay: dict):
        self.width, self.height = float(lay["width"]), float(lay["height"])
        self.box = lay.get("box", list(BOX_SIZE))
        self.spec = {sid: dict(v) for sid, v in lay["states"].items()}
        self.copies = {sid: [(v["x"], v["y"])] for sid, v in self.spec.items()}
        for c in lay.get("copies", []):  # CLOSED is drawn twice, like in RFC 9293
            if c["id"] in self.copies:
                self.copies[c["id"]].append((c["x"], c["y"]))
        self.routes = lay.get("edges", {})
        if model.unplaced:
            step = (self.width - 2 * UNPLACED_MARGIN) / len(model.unplaced)
            for i, sid in enumerate(model.unplaced):
                self.spec[sid] = {}
                self.copies[sid] = [(UNPLACED_MARGIN + step * (i + 0.5), self.height + UNPLACED_DROP)]
            self.height += UNPLACED_ROW

    def size(self, sid: str) -> tuple[float, float]:
        return self.spec[sid].get("w", self.box[0]), self.spec[sid].get("h", self.box[1])

    def _ends(self, edge: Edge, cfg: dict, via: list[Point]) -> tuple[Point, Point]:
        """Where an arrow leaves its source box and enters its target's."""
        src = self.copies[edge.source][cfg.get("from", 0)]
        if "to" in cfg:
            dst = self.copies[edge.target][cfg["to"]]
        else:  # the nearer copy of the target
            dst = min(self.copies[edge.target],
                      key=lambda p: (math.hypot(p[0] - src[0], p[1] - src[1]), p))
        (w, h), (tw, th) = self.size(edge.source), self.size(edge.target)
        start = (src[0] + cfg["start"][0], src[1] + cfg["start"][1]) if "start" in cfg \
            else clip_to_box(src[0], src[1], w / 2, h / 2, *(via[0] if via else dst))
        end = (dst[0] + cfg["end"][0], dst[1] + cfg["end"][1]) if "end" in cfg \
            else clip_to_box(dst[0], dst[1], tw / 2, th / 2, *(via[-1] if via else src))
        if not via and "start" not in cfg and "end" not in cfg and edge.has_reverse:
            dx, dy = end[0] - start[0], end[1] - start[1]
            d = math.hypot(dx, dy) or 1.0
            ox, oy = -dy / d * OPPOSITE_GAP, dx / d * OPPOSITE_GAP
            start, end = (start[0] + ox, start[1] + oy), (end[0] + ox, end[1] + oy)
        return start, end

    def edge(self, edge: Edge) -> PlacedEdge:
        cfg = self.routes.get(f"{edge.source.split(':')[-1]}>{edge.target.split(':')[-1]}", {})
        via = [tuple(p) for p in cfg.get("via", [])]
        start, end = self._ends(edge, cfg, via)
        points = [start, *via, end]
        path, last = rounded_route(points)
        badge = None
        if edge.number is not None:
            at = cfg.get("at", BADGE_AT_OPPOSITE if edge.has_reverse else BADGE_AT)
            badge = tuple(cfg["badge"]) if "badge" in cfg else point_along(points, at)
        return PlacedEdge(edge, path, arrowhead(last[0], last[1], end[0], end[1]), badge,
                          edge_labels(edge.labels, points, cfg))

    def boxes(self, state: StateBox) -> list[PlacedBox]:
        """One box per copy of the state, its name centred, a subtitle under it if it has one."""
        w, h = self.size(state.id)
        placed = []
        for x, y in self.copies[state.id]:
            if state.subtitle:
                lines = [Text(x, y + TWO_LINE_NAME_BASELINE, state.name, anchor="middle"),
                         Text(x, y + SUBTITLE_BASELINE, state.subtitle, "sub", "middle")]
            else:
                lines = [Text(x, y + NAME_BASELINE, state.name, anchor="middle")]
            placed.append(PlacedBox(state, x - w / 2, y - h / 2, w, h, lines))
        return placed


def legend_marks() -> list[Mark]:
    """Two sample arrows in the first column, a sample Linux-only box and a note in the second."""
    label_at = LEGEND_COLUMN + LEGEND_LABEL_X
    return [Mark("line", 0, 0, LEGEND_SAMPLE),
            Mark("text", LEGEND_LABEL_X, LEGEND_BASELINE, text=LEGEND["rfc"]),
            Mark("line", 0, LEGEND_ROW, LEGEND_SAMPLE, cls="lx"),
            Mark("text", LEGEND_LABEL_X, LEGEND_ROW + LEGEND_BASELINE, text=LEGEND["linux_edge"]),
            Mark("rect", LEGEND_COLUMN, -LEGEND_BOX_HEIGHT / 2, LEGEND_SAMPLE, LEGEND_BOX_HEIGHT,
                 cls="lx"),
            Mark("text", label_at, LEGEND_BASELINE, text=LEGEND["linux_state"]),
            Mark("text", LEGEND_COLUMN, LEGEND_ROW + LEGEND_BASELINE, text=LEGEND["note"],
                 cls="muted")]


def _place_panel(model: StateDiagram, top: float) -> tuple[list[PlacedPanelEntry], float]:
    """The highlighted state's numbered arrows, listed from `top` down; and the bottom."""
    y = top + (PANEL_HEADING_HEIGHT if model.panel else PANEL_EMPTY_HEIGHT)
    placed = []
    for entry in model.panel:
        badge = (PANEL_BADGE_X, y + BADGE_RADIUS)
        title = (PANEL_TEXT_X, y + PANEL_TITLE_BASELINE)
        y += PANEL_TITLE_HEIGHT
        lines = []
        for _ in entry.lines:
            lines.append((PANEL_TEXT_X, y + PANEL_LINE_BASELINE))
            y += PANEL_LINE_HEIGHT
        y += PANEL_ENTRY_GAP
        placed.append(PlacedPanelEntry(entry, badge, title, lines))
    return placed, y


def place_state_diagram(model: StateDiagram, lay: dict) -> StatePicture:
    """The state diagram placed: `lay` is the layout file (load_layout())."""
    geo = _StateGeometry(model, lay)
    edges = [geo.edge(e) for e in model.edges]
    boxes = [b for sid in model.shown for b in geo.boxes(model.states[sid])]
    legend_at = tuple(lay.get("legend", [LEGEND_LEFT, geo.height - LEGEND_FROM_BOTTOM]))
    heading, panel, height = None, [], geo.height
    if model.highlight:
        top = geo.height + PANEL_GAP
        heading = (PANEL_LEFT, top + PANEL_HEADING_BASELINE)
        panel, bottom = _place_panel(model, top)
        height = geo.height + (bottom - geo.height + PANEL_BOTTOM)
    return StatePicture(model, geo.width, height, edges, boxes, legend_at, legend_marks(),
                        heading, panel)


# -- the ladder -------------------------------------------------------------------------------------

LADDER_MIN_WIDTH = 900.0
TIME_GUTTER = 66.0  # the left margin, where each row's time is printed
TIME_PAD = 10  # the times end this far left of the gutter's edge
RIGHT_MARGIN = 10
MIN_SPACING = 190.0  # between lifelines; more lifelines widen the picture instead
TOP_MARGIN = 10.0
LEFT_MARGIN = 10

LABEL_FONT = 12  # packet labels, calls, headings' widths
SMALL_FONT = 11.5  # state pills and notes
CAPTION_FONT = 14
CAPTION_BASELINE = 14
CAPTION_ROW = 26

HEAD_NAME_FONT = 13
HEAD_SUB_FONT = 11
HEAD_PADDING = 10  # above and below a heading's lines, together
HEAD_LINE = 16
HEAD_BASELINE = 18  # the first line's, below the heading's top
HEAD_SIDE_PADDING = 18  # both sides together
HEAD_ROOM = 16  # a heading's text keeps this far from the next lifeline's
HEAD_GAP = 12  # between the headings and the first row
HEAD_CORNER = 6
UNIT_BASELINE = -2  # "ms" over the times, just above the first row

PACKET_ROW = 32
PACKET_LABEL_BASELINE = 12  # the label over the arrow
ARROW_TOP = 18  # an arrow leaves its sender under its label ...
ARROW_SLOPE = 8  # ... and arrives this much lower: time passes on the wire
ARROW_END = ARROW_TOP + ARROW_SLOPE
ARROW_INSET = 1  # the line stops short of the receiver, so the head's tip stays sharp
LABEL_GAP_TOP = 1  # lifelines crossed by a packet's label break from here ...
LABEL_GAP_BOTTOM = 15  # ... to here, below the row's top
LOOP_RISE = 4  # a packet to its own lifeline: a loop out to the right, starting above the arrow
LOOP_REACH = 28
LOOP_TIP_GAP = 2  # the loop's head stops this far from the lifeline
LOOP_BACK = 24  # the return leg stops inside the arrowhead, short of its tip
LOOP_LABEL_X = 34  # the label, just right of the loop
LOOP_LABEL_DROP = 4
TIME_BASELINE = -2  # a packet's time, level with the arrow's end

CALL_ROW = 26
CALL_BOX_TOP = 3
CALL_BOX_HEIGHT = 20
CALL_BASELINE = 17
CALL_PADDING = 14  # both sides together
CALL_CORNER = 4
CALL_MAX_CHARS = 72
CALL_ROOM = 24  # a call box keeps this much of the row's width free
CALL_LEFT_CLEARANCE = 2  # a box pushed in from the edges keeps clear of the times ...
CALL_RIGHT_CLEARANCE = 4  # ... and of the right edge
BAR_WIDTH = 8  # a call in progress: a bar on its lifeline from the call to its result

PILL_ROW = 23
PILL_TOP = 2
PILL_HEIGHT = 18
PILL_BASELINE = 15
PILL_PADDING = 14
PILL_CORNER = PILL_HEIGHT / 2  # round ends
PILL_ROOM = 18  # a pill keeps this far from the next lifeline's

NOTE_ROW = 19
NOTE_TOP = 2
NOTE_BASELINE = 13
NOTE_BOTTOM = 17
NOTE_ROOM = 16
EMPTY_NOTE_ROW = 22  # "no packets captured"
EMPTY_NOTE_BASELINE = 12
HIDDEN_NOTE_FONT = 13  # "… 3 more packets not drawn"
HIDDEN_NOTE_ROW = 26
HIDDEN_NOTE_BASELINE = 16
NOTHING_ROW = 24  # "no packets captured and no steps recorded"
NOTHING_BASELINE = 14

GAP_SLACK = 2  # a lifeline this close to a label's end still passes behind it
LIFELINE_CLEARANCE = 1  # between a lifeline and what interrupts it
BOTTOM_PADDING = 6  # lifelines run on below the last row
BOTTOM_MARGIN = 8


@dataclass
class Head:
    x: float  # the box's top left
    y: float
    w: float
    h: float
    lines: list[Text]


@dataclass
class PlacedPacket:
    tags: tuple[str, ...]
    prefix: str
    flags: str
    rest: str
    label: Text  # where the label goes; its text is prefix, flags and rest
    head: list[Point]
    line: tuple[float, float, float, float] | None  # (x1, y1, x2, y2) between two lifelines
    loop: tuple[float, float, float, float, float] | None  # (x, y, reach, drop, back)


@dataclass
class PlacedCall:
    x: float  # the box's top left
    y: float
    w: float
    h: float
    label: Point
    parts: list[tuple[str, str]]  # (text, "err" or "ok" or "")
    title: str


@dataclass
class PlacedPill:
    tag: str
    x: float
    y: float
    w: float
    h: float
    label: Text


@dataclass
class PlacedNote:
    tag: str
    x: float
    y: float
    shown: str
    tail: str  # the call's result after the note
    tail_tag: str
    title: str


@dataclass
class Bar:
    x: float
    y: float
    h: float


@dataclass
class LadderPicture:
    model: Ladder
    width: float
    height: float
    caption: Text | None
    heads: list[Head]
    unit: Text | None  # "ms" over the times
    lifelines: list[tuple[float, float, float]]  # (x, y from, y to)
    bars: list[Bar]
    rows: list  # placed rows and the texts between them, in drawing order


class _LadderLayout:
    """Lays a ladder out top to bottom; `y` is the top of the next row."""

    def __init__(self, ladder: Ladder):
        self.ladder = ladder
        cols = ladder.columns
        n = len(cols)
        spacing = max(MIN_SPACING, (LADDER_MIN_WIDTH - TIME_GUTTER - RIGHT_MARGIN) / max(n, 1)) \
            if n else 0.0
        self.width = max(LADDER_MIN_WIDTH, TIME_GUTTER + RIGHT_MARGIN + spacing * n)
        if n:  # lifelines spread over the whole width
            spacing = (self.width - TIME_GUTTER - RIGHT_MARGIN) / n
        self.spacing = spacing
        self.xs = {c: TIME_GUTTER + spacing * (i + 0.5) for i, c in enumerate(cols)}
        self.pill_chars = fit_chars(spacing - PILL_ROOM, LABEL_FONT)  # pills may share a row
        self.call_chars = min(CALL_MAX_CHARS,  # a call box has its row to itself
                              fit_chars(self.width - TIME_GUTTER - CALL_ROOM, LABEL_FONT))
        self.note_chars = fit_chars(self.width - TIME_GUTTER - NOTE_ROOM, SMALL_FONT)
        self.time_x = TIME_GUTTER - TIME_PAD
        self.y = TOP_MARGIN
        self.gaps: dict[str, list[tuple[float, float]]] = {c: [] for c in cols}
        self.opened: dict[int, tuple[str, float]] = {}  # calls in progress: (column, bar top)
        self.caption: Text | None = None
        self.unit: Text | None = None
        self.rows: list = []
        self.bars: list[Bar] = []

    def gap_under(self, x0: float, x1: float, y0: float, y1: float, skip=()) -> None:
        """Lifelines between x0 and x1 pass behind what is drawn from y0 to y1."""
        for c, x in self.xs.items():
            if c not in skip and x0 - GAP_SLACK <= x <= x1 + GAP_SLACK:
                self.gaps[c].append((y0, y1))

    def time(self, t: float, baseline: float, cls: str = "time") -> Text:
        return Text(self.time_x, baseline, f"{t:.3f}", cls, "end")

    def place_caption(self) -> None:
        if self.ladder.caption:
            shown = fit(self.ladder.caption, fit_chars(self.width - 2 * LEFT_MARGIN, CAPTION_FONT))
            self.caption = Text(LEFT_MARGIN, self.y + CAPTION_BASELINE, shown, "cap",
                                size=CAPTION_FONT)
            self.y += CAPTION_ROW

    def heads(self) -> list[Head]:
        """A box over each lifeline with its name, address and the sockets folded onto it."""
        top, chars = self.y, fit_chars(self.spacing - HEAD_ROOM, LABEL_FONT)
        lines = self.ladder.headers
        height = max((HEAD_PADDING + HEAD_LINE * len(lines[c]) for c in self.ladder.columns),
                     default=0.0)
        heads = []
        for c in self.ladder.columns:
            x = self.xs[c]
            shown = [(fit(text, chars), cls) for text, cls in lines[c]]
            w = max(len(text) for text, _ in shown) * LABEL_FONT * MONO_ADVANCE + HEAD_SIDE_PADDING
            heads.append(Head(x - w / 2, top, w, height, [
                Text(x, top + HEAD_BASELINE + HEAD_LINE * k, text, cls, "middle",
                     HEAD_NAME_FONT if cls == "name" else HEAD_SUB_FONT)
                for k, (text, cls) in enumerate(shown)]))
        self.y = top + height + HEAD_GAP
        if heads:
            self.unit = Text(self.time_x, self.y + UNIT_BASELINE, "ms", "time unit", "end")
        return heads

    def packet(self, r: PacketRow) -> None:
        y = self.y
        x0, x1 = self.xs[r.source], self.xs[r.target]
        y0, y1 = y + ARROW_TOP, y + ARROW_END
        if x0 == x1:  # to itself (two names for one address): a small loop
            loop = (x0, y0 - LOOP_RISE, LOOP_REACH, y1 - y0 + LOOP_RISE, LOOP_BACK)
            head = arrowhead(x0 + LOOP_REACH, y1, x0 + LOOP_TIP_GAP, y1)
            label = Text(x0 + LOOP_LABEL_X, y0 + LOOP_LABEL_DROP, "")
            self.rows.append(PlacedPacket(r.tags, r.prefix, r.flags, r.rest, label, head, None, loop))
        else:
            sign = 1 if x1 > x0 else -1
            mid = (x0 + x1) / 2
            label = Text(mid, y + PACKET_LABEL_BASELINE, "", anchor="middle")
            line = (x0, y0, x1 - sign * ARROW_INSET, y1)
            self.rows.append(PlacedPacket(r.tags, r.prefix, r.flags, r.rest, label,
                                          arrowhead(x0, y0, x1, y1), line, None))
            half = text_width(f"{r.prefix}{r.flags} {r.rest}", LABEL_FONT) / 2
            self.gap_under(mid - half, mid + half, y + LABEL_GAP_TOP, y + LABEL_GAP_BOTTOM,
                           skip=(r.source, r.target))
        self.rows.append(self.time(r.t_ms, y1 + TIME_BASELINE))
        self.y += PACKET_ROW

    def call_parts(self, r: CallRow) -> list[tuple[str, str]]:
        """The call and its result, the call cut first so the result stays whole."""
        parts = ([(r.text, "")] if r.text else []) + ([r.result] if r.result else [])
        if len(" ".join(p for p, _ in parts)) > self.call_chars:
            if r.result and r.text:
                keep = max(MIN_FIT_CHARS, self.call_chars - len(r.result[0]) - 1)
                parts[0] = (fit(r.text, keep), "")
            else:
                parts[0] = (fit(parts[0][0], self.call_chars), parts[0][1])
        return parts

    def call(self, r: CallRow) -> None:
        y = self.y
        parts = self.call_parts(r)
        w = text_width(" ".join(p for p, _ in parts), LABEL_FONT) + CALL_PADDING
        x = min(max(self.xs[r.column], TIME_GUTTER + w / 2 + CALL_LEFT_CLEARANCE),
                self.width - w / 2 - CALL_RIGHT_CLEARANCE)
        top = y + CALL_BOX_TOP
        title = " ".join(([r.text] if r.text else []) + ([r.result[0]] if r.result else []))
        self.rows.append(PlacedCall(x - w / 2, top, w, CALL_BOX_HEIGHT, (x, y + CALL_BASELINE),
                                    parts, title))
        self.gap_under(x - w / 2, x + w / 2, top, top + CALL_BOX_HEIGHT)
        if r.opens is not None:
            self.opened[r.opens] = (r.column, top + CALL_BOX_HEIGHT)
        if r.closes is not None and r.closes in self.opened:
            self.bar(*self.opened.pop(r.closes), top)
        if r.t_ms is not None:
            self.rows.append(self.time(r.t_ms, y + CALL_BASELINE, "time step"))
        self.y += CALL_ROW

    def bar(self, column: str, y_open: float, y_close: float) -> None:
        self.bars.append(Bar(self.xs[column] - BAR_WIDTH / 2, y_open, max(0.0, y_close - y_open)))

    def pills(self, r: StateRow) -> None:
        y = self.y
        for c, label, tag in r.pills:
            x = self.xs[c]
            shown = fit(label, self.pill_chars)
            w = text_width(shown, SMALL_FONT) + PILL_PADDING
            self.rows.append(PlacedPill(tag, x - w / 2, y + PILL_TOP, w, PILL_HEIGHT,
                                        Text(x, y + PILL_BASELINE, shown, anchor="middle")))
            self.gaps[c].append((y + PILL_TOP, y + PILL_TOP + PILL_HEIGHT))
        self.y += PILL_ROW

    def note(self, r: NoteRow) -> None:
        y = self.y
        tail = f" {r.result[0]}" if r.result else ""
        shown = fit(r.text, self.note_chars - len(tail))
        self.rows.append(PlacedNote(r.tag, TIME_GUTTER, y + NOTE_BASELINE, shown, tail,
                                    r.result[1] if r.result else "", r.text + tail))
        self.gap_under(TIME_GUTTER, TIME_GUTTER + text_width(shown + tail, SMALL_FONT),
                       y + NOTE_TOP, y + NOTE_BOTTOM)
        self.y += NOTE_ROW

    def line(self, x: float, baseline: float, row: float, text: str, size=None) -> None:
        """A note of its own row, outside the lifelines' story."""
        self.rows.append(Text(x, self.y + baseline, text, "note", size=size))
        self.y += row

    def ending(self) -> None:
        """Close the bars of calls still in progress at the cut, and say what is not drawn."""
        for _, (c, y_open) in sorted(self.opened.items()):
            self.bar(c, y_open, self.y)
        note = hidden_note(self.ladder)
        if note:
            self.line(TIME_GUTTER, HIDDEN_NOTE_BASELINE, HIDDEN_NOTE_ROW, note, HIDDEN_NOTE_FONT)
        if not self.ladder.columns and not self.ladder.steps_drawn:
            self.line(LEFT_MARGIN, NOTHING_BASELINE, NOTHING_ROW, empty_note(self.ladder))

    def lifelines(self, top: float, bottom: float) -> list[tuple[float, float, float]]:
        """Each lifeline from `top` to `bottom`, interrupted wherever something is drawn over it."""
        lines = []
        for c, x in self.xs.items():
            cur = top
            for g0, g1 in sorted(self.gaps[c]):
                if g1 <= cur:
                    continue
                if g0 - LIFELINE_CLEARANCE > cur:
                    lines.append((x, cur, g0 - LIFELINE_CLEARANCE))
                cur = max(cur, g1 + LIFELINE_CLEARANCE)
            if cur < bottom:
                lines.append((x, cur, bottom))
        return lines


def place_ladder(ladder: Ladder) -> LadderPicture:
    lay = _LadderLayout(ladder)
    lay.place_caption()
    heads = lay.heads()
    top = lay.y
    if not ladder.packets and (ladder.columns or ladder.steps_drawn):
        lay.line(TIME_GUTTER, EMPTY_NOTE_BASELINE, EMPTY_NOTE_ROW, NO_PACKETS)
    place = {PacketRow: lay.packet, CallRow: lay.call, StateRow: lay.pills, NoteRow: lay.note}
    for row in ladder.rows:
        place[type(row)](row)
    lay.ending()
    bottom = lay.y + BOTTOM_PADDING
    return LadderPicture(ladder, lay.width, bottom + BOTTOM_MARGIN, lay.caption, heads, lay.unit,
                         lay.lifelines(top, bottom), lay.bars, lay.rows)
