"""The SVG diagrams of the web faces: the state diagram and the packet ladders of real runs."""

from __future__ import annotations

import copy
import html
import json
import re
import xml.etree.ElementTree as ET

import pytest

from tcpkb.present import diagrams
from tcpkb.present.diagrams.model import readable_call
from tcpkb.present.diagrams import (
    MAX_ARROWS,
    ladder,
    load_layout,
    short_event,
    state_diagram,
    timeline,
)

SVG = "{http://www.w3.org/2000/svg}"
BYTES_SHOWN = re.compile(r"(?<![\w'\"])b'[^']*'")  # a Python bytes literal, as in b'\x01\x00'

EPIPE_RUN = "second_write_after_peer_close_fails_with_epipe"
BIG_RUN = "reuseport_listeners_share_connections"


# -- fixtures and helpers ---------------------------------------------------------------------



@pytest.fixture(scope="module")
def transitions(db) -> list[dict]:
    return [dict(r) for r in db.execute("select * from transitions")]


@pytest.fixture(scope="module")
def runs(db) -> dict[str, dict]:
    """A recorded trace of every scenario (a run skipped before its lab existed has none)."""
    return {r["scenario"]: json.loads(r["trace"])
            for r in db.execute("select scenario, trace from runs where trace is not null "
                                "and json_extract(trace, '$.steps') is not null order by kernel")}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == SVG + "svg"
    return root


def classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter() if cls in classes(g)]


def text_of(el: ET.Element) -> str:
    """The visible text of an element, without its <title> tooltip."""
    parts = []

    def walk(e):
        if e.tag == SVG + "title":
            if e.tail:
                parts.append(e.tail)
            return
        if e.text:
            parts.append(e.text)
        for c in e:
            walk(c)
        if e.tail and e is not el:
            parts.append(e.tail)

    walk(el)
    return "".join(parts)


def column_x(root: ET.Element) -> dict[str, float]:
    """Lifeline x of each column, read from the header boxes."""
    out = {}
    for g in groups(root, "head"):
        name = next(t for t in g.iter(SVG + "text") if "name" in classes(t))
        out[name.text] = float(name.get("x"))
    return out


def pills(root: ET.Element) -> list[tuple[str, float]]:
    return [(text_of(g.find(SVG + "text")), float(g.find(SVG + "text").get("x")))
            for g in groups(root, "state")]


def arrows(root: ET.Element) -> list[ET.Element]:
    return groups(root, "pk")


# -- the layout ---------------------------------------------------------------------------------

def test_layout_places_every_state_of_the_transitions_and_states_tables(db, transitions):
    placed = load_layout()["states"]
    used = {t[k] for t in transitions for k in ("from_state", "to_state")}
    assert used, "the transitions table is empty"
    assert not used - set(placed), f"states missing from site/layout/states.json: {used - set(placed)}"
    known = {r["id"] for r in db.execute("select id from states")}
    assert not known - set(placed), f"states missing from the layout: {known - set(placed)}"


def test_layout_labels_are_the_states_tables_spellings(db):
    placed = load_layout()["states"]
    for r in db.execute("select id, name, rfc from states"):
        box = placed[r["id"]]
        if r["rfc"]:
            assert box["label"] == r["rfc"], r["id"]
            assert box.get("linux") == (r["name"] if r["name"] != r["rfc"] else None), r["id"]
        else:
            assert box["label"] == r["name"] and box.get("linux_only"), r["id"]


def test_layout_boxes_do_not_overlap():
    lay = load_layout()
    w, h = lay["box"]
    boxes = [(v["x"], v["y"]) for v in lay["states"].values()] + \
            [(c["x"], c["y"]) for c in lay.get("copies", [])]
    for i, (x1, y1) in enumerate(boxes):
        assert w / 2 <= x1 <= lay["width"] - w / 2 and h / 2 <= y1 <= lay["height"] - h / 2
        for x2, y2 in boxes[i + 1:]:
            assert abs(x1 - x2) >= w + 20 or abs(y1 - y2) >= h + 20, (x1, y1, x2, y2)


def test_layout_routes_name_real_transitions(transitions):
    pairs = {(t["from_state"].split(":")[1], t["to_state"].split(":")[1]) for t in transitions}
    for key in load_layout().get("edges", {}):
        assert tuple(key.split(">")) in pairs, f"route for a transition that does not exist: {key}"


# -- the state diagram --------------------------------------------------------------------------

def test_state_diagram_is_accessible_scalable_svg(transitions):
    svg = state_diagram(transitions)
    root = parse(svg)
    assert root.get("role") == "img" and root.get("aria-label")
    assert root.find(SVG + "title") is not None
    assert re.fullmatch(r"0 0 \d+(\.\d)? \d+(\.\d)?", root.get("viewBox"))
    assert "width:100%" in root.get("style") and "max-width:" in root.get("style")
    assert "prefers-color-scheme:dark" in svg
    # colours come from the stylesheet and currentColor, never from presentation attributes
    assert not re.search(r'\s(fill|stroke)="(?!none)', svg)
    assert svg == state_diagram(copy.deepcopy(transitions)), "not deterministic"


def test_state_diagram_merges_parallel_transitions_and_dashes_linux_only(transitions):
    root = parse(state_diagram(transitions))
    pairs: dict[tuple, list] = {}
    for t in transitions:
        pairs.setdefault((t["from_state"], t["to_state"]), []).append(t)
    edges = groups(root, "tr")
    assert len(edges) == len(pairs)
    dashed = sum(1 for g in edges if "lx" in classes(g))
    assert dashed == sum(1 for rows in pairs.values() if not any(r["rfc"] for r in rows))
    assert 0 < dashed < len(pairs)
    # without a highlight every arrow explains itself in a tooltip
    tips = "\n".join(g.find(SVG + "title").text for g in edges)
    for t in transitions:
        assert " ".join(t["event"].split()) in tips


def test_state_diagram_without_href_has_no_links(transitions):
    assert "<a " not in state_diagram(transitions)


def test_rfc_arrows_are_labelled_as_in_rfc_9293_figure_5(transitions):
    root = parse(state_diagram(transitions))
    written = [text_of(t) for t in groups(root, "labels")[0].iter(SVG + "text")]
    expected = {(t["from_state"], t["to_state"], t["cause"] + (f" / snd {t['send']}" if t["send"] else ""))
                for t in transitions if t["rfc"]}  # one line per arrow and label
    assert sorted(written) == sorted(label for *_, label in expected)
    for label in ("rcv SYN / snd SYN,ACK", "rcv SYN,ACK / snd ACK", "rcv ACK of SYN",
                  "close() / snd FIN", "rcv FIN / snd ACK", "rcv ACK of FIN", "timeout (60 s)"):
        assert label in written, label
    # Linux's own transitions stay off the arrows: their words are in the tooltips
    tips = "\n".join(g.find(SVG + "title").text for g in groups(root, "tr"))
    for t in transitions:
        if not t["rfc"]:
            assert t["cause"] + ": " in tips or t["cause"] + " / snd" in tips
    assert "orphan gets data" not in written


def test_arrow_labels_are_legible_and_clear_of_boxes_and_each_other(transitions):
    from tcpkb.present.diagrams.layout import ARROW_LABEL_FONT, place_state_diagram, text_width
    from tcpkb.present.diagrams.model import state_diagram_model

    lay = load_layout()
    pic = place_state_diagram(state_diagram_model(transitions, None, lay["states"]), lay)
    assert ARROW_LABEL_FONT >= 10

    def extent(t):
        w = text_width(t.text, ARROW_LABEL_FONT)
        x0 = t.x - {"middle": w / 2, "end": w}.get(t.anchor, 0)
        return x0, t.y - ARROW_LABEL_FONT * 0.8, x0 + w, t.y + ARROW_LABEL_FONT * 0.2

    def overlap(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    labels = [(t.text, extent(t)) for e in pic.edges for t in e.labels]
    assert labels
    boxes = [(b.state.id, (b.x, b.y, b.x + b.w, b.y + b.h)) for b in pic.boxes]
    for text, box in labels:
        assert 0 <= box[0] and box[2] <= pic.width, f"{text!r} leaves the picture"
        for sid, state_box in boxes:
            assert not overlap(box, state_box), f"{text!r} covers {sid}"
    for i, (a, box_a) in enumerate(labels):
        for b, box_b in labels[i + 1:]:
            assert not overlap(box_a, box_b), f"{a!r} covers {b!r}"


def test_state_links_are_reachable_not_inside_an_image(transitions):
    root = parse(state_diagram(transitions, "state:LISTEN", href=lambda s: f"/state/{s}"))
    assert root.get("role") == "group" and root.get("aria-label")  # an img hides its links
    links = list(root.iter(SVG + "a"))
    assert links and all(a.get("aria-label") for a in links)
    assert not [el for el in root.iter() if el.get("role") == "img" and el.find(f".//{SVG}a") is not None]
    assert parse(state_diagram(transitions)).get("role") == "img"  # no links: a picture


def test_every_transition_needs_a_short_cause(base_kb):
    from tcpkb.lint import lint

    note = base_kb / "state" / "ESTABLISHED.md"
    original = note.read_text()
    note.write_text(original.replace('cause: "rcv RST", ', ""))
    assert any("each item needs `cause`" in p.message for p in lint(base_kb))
    note.write_text(original.replace('cause: "rcv RST"', 'cause: "an RST arrives from the peer at last"'))
    assert any("`cause` labels an arrow" in p.message for p in lint(base_kb))
    note.write_text(original.replace('cause: "rcv RST"', 'cause: "rcv RST / x"'))
    assert any("`cause` labels an arrow" in p.message for p in lint(base_kb))
    note.write_text(original)
    assert not lint(base_kb)


@pytest.mark.parametrize("highlight", sorted({
    "state:ESTABLISHED", "state:SYN_SENT", "state:SYN_RECV", "state:FIN_WAIT1", "state:FIN_WAIT2",
    "state:CLOSE_WAIT", "state:CLOSING", "state:LAST_ACK", "state:TIME_WAIT", "state:CLOSE",
    "state:LISTEN", "state:NEW_SYN_RECV", "state:BOUND_INACTIVE"}))
def test_highlight_labels_its_own_transitions_only(transitions, highlight):
    svg = state_diagram(transitions, highlight=highlight, href=lambda s: f"/state/{s}?x=1&y=2")
    root = parse(svg)
    states = {t[k] for t in transitions for k in ("from_state", "to_state")}
    assert highlight in states
    # a link per state (CLOSED has two boxes, both linked), with the href escaped
    links = [a.get("href") for a in root.iter(SVG + "a")]
    assert {f"/state/{s}?x=1&y=2" for s in states} == set(links)
    assert "?x=1&amp;y=2" in svg
    # the state itself is highlighted, nothing else
    hl = [g for g in groups(root, "st") if "hl" in classes(g)]
    assert hl and {g.get("data-state") for g in hl} == {highlight}
    mine = [t for t in transitions if highlight in (t["from_state"], t["to_state"])]
    others = [t for t in transitions if t not in mine]
    pairs = {(t["from_state"], t["to_state"]) for t in mine}
    assert len([g for g in groups(root, "tr") if "hl" in classes(g)]) == len(pairs)
    assert len([g for g in groups(root, "tr") if "dim" in classes(g)]) == \
        len({(t["from_state"], t["to_state"]) for t in others})
    assert len(groups(root, "badge")) == 2 * len(pairs)  # on the arrow and in the panel
    panel = text_of(groups(root, "panel")[0])
    for t in mine:  # each line starts as RFC 9293's figure labels an arrow: `rcv FIN / snd ACK: …`
        label = t["cause"] + (f" / snd {t['send']}" if t["send"] else "") + ": "
        assert label in panel, label
    mine_text = " ".join(" ".join(t["event"].split()) for t in mine)
    for t in others:
        full = " ".join(t["event"].split())
        if full not in mine_text:
            assert html.escape(full) not in svg, f"{highlight}: shows {full!r}"
            assert short_event(full) not in panel or short_event(full) in mine_text


def test_time_wait_highlight_names_its_timer(transitions):
    svg = state_diagram(transitions, highlight="state:TIME_WAIT")
    panel = text_of(groups(parse(svg), "panel")[0])
    assert "TIME-WAIT timer expires after TCP_TIMEWAIT_LEN (60 s)" in panel
    assert "FIN-WAIT-2 → TIME-WAIT" in panel and "rcv FIN / snd ACK: peer's FIN arrives" in panel
    assert "listen() (passive open)" not in svg  # CLOSED -> LISTEN is not TIME-WAIT's


def test_short_event_keeps_the_first_clause_and_a_word_boundary():
    assert short_event("TIME-WAIT timer expires after TCP_TIMEWAIT_LEN (60 s); the entry is freed") \
        == "TIME-WAIT timer expires after TCP_TIMEWAIT_LEN (60 s)"
    long = "word " * 60
    cut = short_event(long, limit=50)
    assert len(cut) <= 50 and cut.endswith("…") and not cut.endswith(" …")


def test_hostile_text_in_transitions_is_escaped(transitions):
    evil = [{"from_state": "state:LISTEN", "to_state": "state:CLOSE", "position": 9,
             "event": "<script>alert(1)</script> & co", "send": "<b>R</b>", "side": "both", "rfc": 0},
            {"from_state": "state:<img src=x>", "to_state": "state:LISTEN", "position": 0,
             "event": "a \"quoted\" & 'odd' \x00 event", "send": "", "side": "both", "rfc": 0}]
    for hl in ("state:LISTEN", "state:<img src=x>", None):
        svg = state_diagram(transitions + evil, highlight=hl, href=lambda s: f"/s/{s}\"><script>")
        parse(svg)
        assert "<script" not in svg and "<b>" not in svg and "<img" not in svg
        if hl != "state:<img src=x>":
            assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in svg
        assert "a &quot;quoted&quot; &amp; &#x27;odd&#x27; \ufffd event" in svg
    # a state the layout does not know is still drawn, below the diagram
    root = parse(state_diagram(transitions + evil))
    assert "state:<img src=x>" in {g.get("data-state") for g in groups(root, "st")}


# -- the ladder -----------------------------------------------------------------------------------

@pytest.mark.parametrize("recorded, shown", [
    (r"setsockopt(SO_LINGER {1, 0}, b'\x01\x00\x00\x00\x00\x00\x00\x00')", "setsockopt(SO_LINGER {1, 0})"),
    (r"setsockopt(SO_LINGER, b'\x01\x00\x00\x00\x05\x00\x00\x00')",
     "setsockopt(SO_LINGER, {l_onoff=1, l_linger=5})"),
    (r"setsockopt(SO_RCVTIMEO, b'\x02\x00\x00\x00\x00\x00\x00\x00@\r\x03\x00\x00\x00\x00\x00')",
     "setsockopt(SO_RCVTIMEO, {tv_sec=2, tv_usec=200000})"),
    (r"setsockopt(SO_BINDTODEVICE, b'tcpkbdown')", 'setsockopt(SO_BINDTODEVICE, "tcpkbdown")'),
    (r"setsockopt(TCP_NODELAY, b'\x01\x00\x00\x00')", "setsockopt(TCP_NODELAY, 1)"),
    ("send(b'first')", 'send("first")'),
    ("dgram.sendto(b'x', /tmp/a.sock)", 'dgram.sendto("x", /tmp/a.sock)'),
    (r"send(b'\xff\x00')", "send(0xff 00)"),
    ("recv(5)", "recv(5)"),
    ("accepted: {'a': 1, 'b': 2, 'c': 3}", "accepted: {'a': 1, 'b': 2, 'c': 3}"),
])
def test_calls_show_values_not_python_bytes(recorded, shown):
    assert readable_call(recorded) == shown


def test_the_linger_ladder_reads_its_option(runs):
    svg = ladder(runs["linger_zero_abort_sends_rst_with_ack"])
    assert "setsockopt(SO_LINGER {1, 0})" in html.unescape(svg)
    assert not BYTES_SHOWN.search(" ".join(parse(svg).itertext()))


def test_epipe_ladder_tells_the_story(runs):
    trace = runs[EPIPE_RUN]
    svg = ladder(trace, caption="EPIPE <run>")
    root = parse(svg)
    assert "EPIPE &lt;run&gt;" in svg
    packets = trace["packets"]
    drawn = arrows(root)
    assert len(drawn) == len(packets)
    flags = [next(t for t in a.iter(SVG + "tspan") if "fl" in classes(t)).text for a in drawn]
    assert flags == [p["flags"] for p in packets]
    assert flags[0] == "S" and flags[-1] == "R"
    assert "seq 0" in text_of(drawn[0]).split(" ack")[0]
    assert text_of(drawn[1]).endswith("seq 0 ack 1")  # the SYN,ACK: its own ISN, our SYN acked
    write = next(i for i, p in enumerate(packets) if p.get("len") == 5)
    assert "len 5" in text_of(drawn[write])  # the 5-byte write
    assert "rst" in classes(drawn[-1]) and "syn" in classes(drawn[0])
    # times in the margin
    times = [t.text for t in root.iter(SVG + "text") if classes(t) == {"time"}]
    assert times == [f"{p['t_ms']:.3f}" for p in packets]
    # the initiator of the first SYN is on the left
    x = column_x(root)
    assert x["client"] < x["server"]
    # the states, on their sockets' lifelines
    found = pills(root)
    cw = [px for label, px in found if label == "CLOSE_WAIT"]
    assert cw and all(abs(px - x["server"]) < abs(px - x["client"]) for px in cw)
    fw = [px for label, px in found if label == "FIN_WAIT1"]
    # on loopback the FIN's ACK can come back before close() returns: FIN_WAIT1 is drawn when recorded
    recorded = any((s.get("states") or {}).get("client") == "FIN_WAIT1" for s in trace["steps"])
    assert bool(fw) == recorded
    assert all(abs(px - x["client"]) < abs(px - x["server"]) for px in fw)
    assert ("listener: LISTEN", x["server"]) in found  # folded onto the socket sharing its address
    # the failing call, with its errno, on the server's lifeline
    calls = [g for g in groups(root, "call") if "EPIPE" in text_of(g)]
    assert len(calls) == 2  # the second and the third send()
    for g in calls:
        err = [t for t in g.iter(SVG + "tspan") if "err" in classes(t)]
        assert err and err[0].text == "→ EPIPE"
        cx = float(g.find(SVG + "text").get("x"))
        assert abs(cx - x["server"]) < abs(cx - x["client"])
    # down the page: the FIN, then CLOSE_WAIT, then the RST, then the first EPIPE
    def y_of(g):
        return float(g.find(SVG + "text").get("y"))

    fin_y = y_of(drawn[3])
    cw_y = min(y_of(g) for g in groups(root, "state") if text_of(g) == "CLOSE_WAIT")
    rst_y = y_of(drawn[-1])
    assert fin_y < cw_y < rst_y < min(y_of(g) for g in calls)


def test_every_run_renders_to_valid_svg_and_a_matching_timeline(runs):
    assert len(runs) > 100
    for name, trace in runs.items():
        before = json.dumps(trace, sort_keys=True)
        svg = ladder(trace, caption=name)
        root = parse(svg)
        assert json.dumps(trace, sort_keys=True) == before, f"{name}: trace modified"
        assert svg == ladder(copy.deepcopy(trace), caption=name), f"{name}: not deterministic"
        assert root.get("viewBox") and root.get("role") == "img"
        assert len(arrows(root)) == min(len(trace.get("packets") or []), MAX_ARROWS), name
        if not trace.get("packets"):
            assert "no packets captured" in svg, name
        table = timeline(trace)
        assert len(table["rows"]) == len(trace["steps"]), name
        assert len(set(table["sockets"])) == len(table["sockets"])
        for row, step in zip(table["rows"], trace["steps"]):
            assert len(row["states"]) == len(table["sockets"])
            assert row["t_ms"] == step["t_ms"] and row["actor"] == step["actor"]
            assert row["what"] == readable_call(step.get("call") or step.get("note") or step.get("expect"))
            assert not BYTES_SHOWN.search(row["what"]), (name, row["what"])
            assert row["errno"] == step.get("errno")
            assert isinstance(row["result"], str)
            for sock, state in zip(table["sockets"], row["states"]):
                assert state == step["states"].get(sock, "")
        assert not BYTES_SHOWN.search(" ".join(root.itertext())), name
        json.dumps(table)  # plain data, ready for a template


def test_tun_and_icmp_runs_put_the_peer_and_the_icmp_on_real_lifelines(runs):
    root = parse(ladder(runs["unacked_syn_ack_leaves_syn_recv"]))
    x = column_x(root)
    assert x["peer"] < x["listener"]  # the peer sent the first SYN
    root = parse(ladder(runs["icmp_host_unreachable_fails_connect"]))
    assert set(column_x(root)) == {"client", "peer"}  # the ICMP's addresses are those two
    icmp = [a for a in arrows(root) if "icmp" in classes(a)]
    assert len(icmp) == 1 and "unreachable (host)" in text_of(icmp[0])
    assert any("EHOSTUNREACH" in text_of(g) for g in groups(root, "call"))


def test_stray_segment_keeps_absolute_numbers(runs):
    root = parse(ladder(runs["stray_ack_gets_bare_rst"]))
    ack, rst = (text_of(a) for a in arrows(root))
    assert ack.endswith("ack 123456789") and rst.endswith("seq 123456789")


def test_huge_trace_is_capped(runs):
    trace = runs[BIG_RUN]
    assert len(trace["packets"]) > MAX_ARROWS
    svg = ladder(trace)
    root = parse(svg)
    assert len(arrows(root)) == MAX_ARROWS
    hidden = len(trace["packets"]) - MAX_ARROWS
    assert f"… {hidden} more packets" in svg
    assert len(column_x(root)) <= diagrams.MAX_COLUMNS  # 40 client ports share one lifeline

    def synthetic(n):
        pk = []
        for i in range(n):
            a, b = ("client", "server") if i % 2 == 0 else ("server", "client")
            pk.append({"from": a, "to": b, "flags": "P." if i else "S", "seq": 1000 + i, "ack": 7,
                       "len": 10, "t_ms": i * 0.5, "src": "127.0.0.1", "dst": "127.0.0.1",
                       "sport": 1 if a == "client" else 2, "dport": 2 if a == "client" else 1,
                       "proto": "tcp"})
        return {"steps": [{"actor": "client", "call": "send()", "result": 1, "t_ms": 300.0,
                           "states": {"client": "ESTABLISHED"}}],
                "packets": pk, "sockets": {"client": {"local": "127.0.0.1:1", "remote": None}}}

    svg = ladder(synthetic(1000))
    assert len(arrows(parse(svg))) == MAX_ARROWS
    assert "… 940 more packets and 1 later step not drawn" in svg
    assert len(arrows(parse(ladder(synthetic(1))))) == 1


def test_empty_and_odd_traces_still_render():
    for trace in ({}, {"steps": [], "packets": [], "sockets": {}},
                  {"steps": [{"actor": "lab", "note": "nothing", "t_ms": 1.0, "states": {}}]},
                  {"packets": [{"from": "a", "to": "b", "proto": "icmp", "t_ms": 0, "src": "::1",
                                "dst": "::1", "type": 133, "code": 0}]},
                  {"packets": [{"from": "a", "to": "a", "flags": "R", "seq": 1, "ack": 0,
                                "len": 0, "t_ms": 0}],
                   "steps": [{"actor": "ghost", "call": "close()", "t_ms": 0.1, "states": None}]}):
        svg = ladder(trace)
        parse(svg)
        table = timeline(trace)
        assert len(table["rows"]) == len(trace.get("steps") or [])
    assert "no packets captured" in ladder({})
    assert "router solicitation" in ladder({"packets": [{"from": "fe80::1", "to": "ff02::2",
                                                         "proto": "icmp", "src": "fe80::1",
                                                         "dst": "ff02::2", "type": 133,
                                                         "code": 0, "t_ms": 1}]})


def test_relative_numbers_restart_with_a_new_syn_on_the_same_ports():
    def p(frm, flags, seq, ack, t):
        c2s = frm == "c"
        return {"from": "c" if c2s else "s", "to": "s" if c2s else "c", "flags": flags, "seq": seq,
                "ack": ack, "len": 0, "t_ms": t, "proto": "tcp", "src": "10.0.0.1", "dst": "10.0.0.1",
                "sport": 5 if c2s else 6, "dport": 6 if c2s else 5}
    trace = {"packets": [p("c", "S", 100, 0, 1), p("s", "S.", 900, 101, 2), p("c", ".", 101, 901, 3),
                         p("c", "S", 5000, 0, 4), p("s", "S.", 70, 5001, 5), p("c", ".", 5001, 71, 6),
                         p("c", "F.", 5001, 71, 7)]}
    labels = [text_of(a) for a in arrows(parse(ladder(trace)))]
    assert labels[:3] == ["S seq 0", "S. seq 0 ack 1", ". seq 1 ack 1"]
    assert labels[3:] == ["S seq 0", "S. seq 0 ack 1", ". seq 1 ack 1", "F. seq 1 ack 1"]


def test_hostile_text_in_a_trace_is_escaped():
    trace = {"sockets": {"<img src=x>": {"local": "1.2.3.4:5", "remote": None}},
             "steps": [{"actor": "<img src=x>", "call": "send(b'<script>')", "errno": "E<&>",
                        "error": "</svg>", "t_ms": 1.0, "states": {"<img src=x>": "<b>"}},
                       {"actor": "lab", "note": "a & b <script>", "t_ms": 2.0, "states": {}},
                       {"actor": "lab", "expect": "<i>", "ok": False, "t_ms": 3.0, "states": {}}],
             "packets": [{"from": "<img src=x>", "to": "peer&co", "flags": "<S>", "seq": 1,
                          "ack": 2, "len": 3, "t_ms": 0.5, "src": "1.2.3.4", "dst": "5.6.7.8",
                          "sport": 5, "dport": 9, "proto": "tcp"}]}
    svg = ladder(trace, caption="<script>alert(1)</script>")
    parse(svg)
    for raw in ("<script", "<img", "<b>", "<i>", "E<&>", "<S>"):
        assert raw not in svg, raw
    assert svg.count("</svg>") == 1 and svg.endswith("</svg>")
    assert "&lt;img src=x&gt;" in svg and "E&lt;&amp;&gt;" in svg and "✗ expected: &lt;i&gt;" in svg


# -- the timeline ---------------------------------------------------------------------------------

def test_timeline_of_the_epipe_run(runs):
    trace = runs[EPIPE_RUN]
    table = timeline(trace)
    assert table["sockets"][:2] == ["client", "server"] and "listener" in table["sockets"]
    rows = table["rows"]
    sends = [r for r in rows if r["what"].startswith('send("second"') and r["kind"] == "call"]
    assert len(sends) == 1
    send = sends[0]
    assert send["errno"] == "EPIPE" and send["result"] == "Broken pipe" and send["ok"] is None
    assert send["kind"] == "call" and send["actor"] == "server"
    assert send["states"][table["sockets"].index("server")] == "CLOSE"
    first = next(r for r in rows if r["what"].startswith('send("first"') and r["kind"] == "call")
    assert first["result"] == "5" and first["errno"] is None
    expects = [r for r in rows if r["kind"] == "expect"]
    assert expects and all(r["ok"] is True for r in expects)
    notes = [r for r in rows if r["kind"] == "note"]
    assert notes and all(r["ok"] is None and r["result"] == "" for r in notes)
    cw = [r for r in rows if r["states"][table["sockets"].index("server")] == "CLOSE_WAIT"]
    assert cw and cw[0]["what"] == "close()" and cw[0]["actor"] == "client"


def test_a_reset_on_the_ladder_carries_the_kernels_reason_and_a_drop_is_drawn():
    from tcpkb.present.diagrams.model import NoteRow, PacketRow, ladder_model

    trace = {"steps": [], "sockets": {"client": {"local": "127.0.0.1:10300", "remote": "127.0.0.1:10301"}},
             "packets": [{"proto": "tcp", "src": "127.0.0.1", "sport": 10300, "dst": "127.0.0.1",
                          "dport": 10301, "flags": "S", "seq": 1, "ack": 0, "t_ms": 1.0},
                         {"proto": "tcp", "src": "127.0.0.1", "sport": 10301, "dst": "127.0.0.1",
                          "dport": 10300, "flags": "R.", "seq": 0, "ack": 2, "t_ms": 1.2}],
             "events": [{"event": "tcp_send_reset", "t_ms": 1.21, "sport": 10301, "dport": 10300,
                         "reason": "NO_SOCKET"},
                        {"event": "kfree_skb", "t_ms": 1.22, "reason": "NO_SOCKET",
                         "location": "tcp_v4_rcv+0x99/0x1400"}]}
    rows = ladder_model(trace).rows
    rst = next(r for r in rows if isinstance(r, PacketRow) and "R" in r.flags)
    assert rst.rest.endswith("reason NO_SOCKET")
    syn = next(r for r in rows if isinstance(r, PacketRow) and r.flags == "S")
    assert "reason" not in syn.rest
    drop = next(r for r in rows if isinstance(r, NoteRow) and r.tag == "drop")
    assert "NO_SOCKET" in drop.text and "tcp_v4_rcv()" in drop.text
