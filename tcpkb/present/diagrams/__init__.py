"""SVG pictures for the web faces: the TCP state diagram and the packet ladder of a scenario run.

Both return a self-contained inline <svg> string: deterministic (same input, same bytes), valid
XML, scaled by viewBox, coloured with currentColor and classes so a light or a dark page reads it.
Every text that comes from the data goes through html.escape. Standard library only.

Three steps, one module each: model.py reads the data (which states, arrows, packets, calls and
state changes; no geometry), layout.py places them (every dimension a named constant) and
render.py writes the SVG.

Classes the pages may restyle (all under the root class "tkd"):
  state diagram: .st (a state box), .st.hl (the highlighted one), .st.lx (Linux-only state),
    .tr (a transition arrow), .tr.lx (Linux-only: dashed), .tr.hl / .tr.dim, .badge;
  ladder: .life (lifeline), .pk (+ .syn .fin .rst .data .icmp) for packets, .call, .err,
    .state (state pill), .gone, .note, .fail, .act (a call in progress).
The CSS custom property --tkd-accent sets the highlight colour.
"""

from __future__ import annotations

from collections.abc import Callable

from .layout import load_layout, place_ladder, place_state_diagram
from .model import MAX_ARROWS, MAX_COLUMNS, ladder_model, short_event, state_diagram_model, timeline
from .render import ladder_svg, state_diagram_svg

# What the faces call. MAX_ARROWS, MAX_COLUMNS, load_layout and short_event are importable from
# here too: the tests check the pictures against them.
__all__ = ["ladder", "state_diagram", "timeline"]


def state_diagram(transitions: list[dict], highlight: str | None = None,
                  href: Callable[[str], str] | None = None) -> str:
    """The TCP state diagram as SVG.

    transitions: rows of the `transitions` table (from_state, to_state, position, event, send,
    side, rfc). Transitions between the same two states are merged into one arrow, solid when
    at least one of them is in RFC 9293 (rfc=1), dashed when all are Linux-only.
    highlight: a state id; the state is drawn highlighted, its arrows emphasised and numbered,
    and a panel under the diagram lists each numbered arrow's transitions (event shortened,
    "/ send" when something is sent). Other arrows are faint and carry no text at all.
    Without highlight every arrow carries its transitions as a hover tooltip (<title>), and each
    solid arrow its RFC 9293 transitions written as Figure 5 writes them (`rcv SYN / snd
    SYN,ACK`: a transition's cause, then what it sends), placed by the layout file or beside
    the arrow's longest leg. The panel's lines start with the same words.
    href(state_id) -> URL: each state box becomes a link, and the picture is a labelled group
    rather than an image, so the links stay reachable by keyboard and screen reader.
    """
    lay = load_layout()
    model = state_diagram_model(transitions, highlight, lay["states"])
    return state_diagram_svg(place_state_diagram(model, lay), href)


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
    return ladder_svg(place_ladder(ladder_model(trace, caption)))
