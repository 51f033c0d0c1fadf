"""The static docs site (`tcpkb site`): built once from the notes, then every page, link and
anchor checked, every page parsed by a strict HTML5 parser, and the pieces people look for
(Chinese summary, verification, packet ladder, highlighted state) found where they belong."""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tcpkb.kinds import KINDS
from tcpkb.site.generate import MARKER, build_site, entry_path, main

html5lib = pytest.importorskip("html5lib")

HOSTILE = "<script>alert(1)</script> & <b>bold</b>"


class Page(HTMLParser):
    """The ids a page defines and the URLs it refers to (href and src of any element)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.duplicate_ids: set[str] = set()
        self.refs: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                if value in self.ids:
                    self.duplicate_ids.add(value)
                self.ids.add(value)
            elif name in ("href", "src", "xlink:href") and value is not None:
                self.refs.append(value)

    handle_startendtag = handle_starttag


@pytest.fixture(scope="module")
def built(kb_db, tmp_path_factory) -> tuple[Path, str]:
    """One full build, search index included, through `tcpkb site --out`'s own entry point:
    the output directory and what the command printed."""
    out = tmp_path_factory.mktemp("site") / "out"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setenv("TCPKB_DB", str(kb_db))
        assert main(out) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def site(built) -> Path:
    return built[0]


def test_the_command_prints_one_line(built):
    out, printed = built
    assert re.fullmatch(rf"wrote \d+ pages to {re.escape(str(out))} in [\d.]+ s\n", printed), printed


@pytest.fixture(scope="module")
def pages(site) -> dict[str, str]:
    """Every HTML page we wrote (Pagefind's bundle aside), by path relative to the site."""
    found = {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8")
             for p in site.rglob("*.html") if "pagefind" not in p.relative_to(site).parts}
    assert found
    return found


@pytest.fixture(scope="module")
def parsed(pages) -> dict[str, Page]:
    return {path: Page(text) for path, text in pages.items()}




def test_every_entry_has_a_page(db, pages):
    ids = [r[0] for r in db.execute("select id from entries")]
    assert len(ids) > 300
    missing = [i for i in ids if entry_path(i) not in pages]
    assert not missing


def test_every_kind_page_lists_all_its_entries(db, pages, parsed):
    for kind in KINDS:
        page = f"{kind}/index.html"
        assert page in pages, page
        linked = {posixpath.normpath(posixpath.join(kind, ref)) for ref in parsed[page].refs}
        ids = [r[0] for r in db.execute("select id from entries where kind = ?", (kind,))]
        assert ids, kind
        missing = [i for i in ids if entry_path(i) not in linked]
        assert not missing, f"{page} does not link {missing[:5]}"


def test_every_scenario_has_a_page(db, pages):
    names = [r[0] for r in db.execute("select name from scenarios")]
    assert names
    assert not [n for n in names if f"scenario/{n}/index.html" not in pages]
    assert "diagram/index.html" in pages and "search/index.html" in pages and "index.html" in pages


def test_no_broken_internal_links_or_anchors(site, parsed):
    broken = []
    for path, page in parsed.items():
        for ref in page.refs:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("//"):
                broken.append(f"{path}: external URL {ref}")  # the site must work offline
                continue
            if parts.path:
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), unquote(parts.path)))
                if target.startswith("../") or not (site / target).is_file():
                    # a directory link would open a file listing from disk: name index.html
                    broken.append(f"{path}: {ref} -> {target} is not a file")
                    continue
            else:
                target = path
            if parts.fragment:
                if target not in parsed:
                    broken.append(f"{path}: {ref} has a fragment into a non-page")
                elif unquote(parts.fragment) not in parsed[target].ids:
                    broken.append(f"{path}: {ref} -> no id {parts.fragment!r} in {target}")
    assert not broken, "\n".join(broken[:20]) + f"\n({len(broken)} in all)"
    duplicates = {path: page.duplicate_ids for path, page in parsed.items() if page.duplicate_ids}
    assert not duplicates, list(duplicates.items())[:5]


def html5_errors(item: tuple[str, str]) -> str | None:
    path, text = item
    try:
        html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)
    except html5lib.html5parser.ParseError as err:
        return f"{path}: {err}"
    return None


def test_every_page_is_valid_html5(pages):
    # Every page, not a sample. html5lib is slow, so the pages are shared across the cores, and an
    # inline SVG already checked on one page (a ladder is on its scenario page and on up to three
    # entry pages) is checked again only as an empty <svg></svg>.
    from concurrent.futures import ProcessPoolExecutor

    seen: set[str] = set()

    def once(match: re.Match) -> str:
        svg = match.group(0)
        if svg in seen:
            return "<svg></svg>"
        seen.add(svg)
        return svg

    items = [(path, re.sub(r"<svg\b.*?</svg>", once, text, flags=re.DOTALL)) for path, text in sorted(pages.items())]
    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        errors = [e for e in pool.map(html5_errors, items, chunksize=16) if e]
    assert not errors, "\n".join(errors[:10])


def test_every_page_has_doctype_lang_charset_viewport(pages):
    for path, text in pages.items():
        head = text[:600]
        assert head.startswith("<!doctype html>"), path
        assert '<html lang="en">' in head, path
        assert '<meta charset="utf-8">' in head, path
        assert 'name="viewport"' in head, path
        assert "<title>" in head, path


def test_epipe_page_has_chinese_summary_verification_and_ladder(db, pages):
    text = pages["errno/EPIPE/index.html"]
    zh = db.execute("select summary_zh from entries where id = 'errno:EPIPE'").fetchone()[0]
    assert re.search(r'<p class="[^"]*" lang="zh-Hans">' + re.escape(zh), text)
    table = text[text.index('<table class="verification">'):]
    assert "second_write_after_peer_close_fails_with_epipe" in table
    assert 'class="ok">passed' in table
    ladder = text[text.index('<figure class="ladder"'):]
    assert ladder.lstrip().find("<svg") != -1 and ladder.index("<svg") < ladder.index("</figure>")
    # sections carry their slug as id, so #causes links work
    assert '<h2 id="causes">Causes</h2>' in text
    assert '<table class="timeline">' in text


def test_time_wait_page_shows_the_diagram_with_time_wait_highlighted(pages):
    text = pages["state/TIME_WAIT/index.html"]
    svg = text[text.index('<figure class="diagram"'):]
    svg = svg[svg.index("<svg"):svg.index("</svg>")]
    # the highlighted box is the one that links to this very page
    links = re.findall(r'<a href="([^"]+)"[^>]*>\s*<g class="([^"]*)"', svg)
    highlighted = [href for href, cls in links if "hl" in cls.split()]
    assert highlighted == ["../../state/TIME_WAIT/index.html"], highlighted


def test_every_entry_page_is_indexed_with_its_kind(db, pages):
    for entry_id, kind in db.execute("select id, kind from entries"):
        text = pages[entry_path(entry_id)]
        assert "<main id=\"main\" data-pagefind-body>" in text, entry_id
        assert re.search(r'data-pagefind-filter="kind">' + kind + "<", text), entry_id
        assert 'data-pagefind-meta="title"' in text, entry_id


def test_pagefind_index_exists(site):
    for name in ("pagefind.js", "pagefind-ui.js", "pagefind-ui.css", "pagefind-entry.json"):
        assert (site / "pagefind" / name).is_file(), name
    assert list((site / "pagefind" / "index").iterdir())
    assert list((site / "pagefind" / "filter").iterdir())  # the kind filter


def test_hostile_strings_are_escaped_and_a_rebuild_replaces_the_site(kb_db, tmp_path):
    db = tmp_path / "hostile.db"
    shutil.copy(kb_db, db)
    with sqlite3.connect(db) as conn:
        conn.execute("update entries set title = ?, summary = ?, summary_zh = ? where id = 'errno:EPIPE'",
                     (HOSTILE, HOSTILE, HOSTILE))
        conn.execute("update scenarios set claim = ?", (HOSTILE,))
        conn.execute("update messages set text = ? where entry_id = 'errno:EPIPE'", (HOSTILE,))
        conn.execute("update transitions set event = ? where to_state = 'state:TIME_WAIT'", (HOSTILE,))
        conn.execute("update verifications set claim = ?", (HOSTILE,))
        # a call in a recorded trace: the timeline table and the ladder both show it
        conn.execute("update runs set trace = replace(trace, 'close()', ?)", (HOSTILE,))
    out = tmp_path / "site"
    out.mkdir()  # an empty directory is fine to build into
    build_site(db, out, search=False)
    assert (out / MARKER).exists()
    stale = out / "errno" / "ENOTANERROR" / "index.html"
    stale.parent.mkdir()
    stale.write_text("old")
    counts = build_site(db, out, search=False)  # a rebuild replaces the previous build whole
    assert counts["pages"] > 500 and counts["entries"] > 300
    assert not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.")]  # no staging left behind

    epipe = (out / "errno/EPIPE/index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(" in epipe
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text, page
        assert "<b>bold" not in text, page
    assert "&lt;script&gt;" in (out / "state/TIME_WAIT/index.html").read_text(encoding="utf-8")
    scenario = (out / "scenario/second_write_after_peer_close_fails_with_epipe/index.html").read_text(encoding="utf-8")
    assert scenario.count("&lt;script&gt;alert(1)") >= 3  # the claim, the timeline and the ladder


def test_bad_output_is_one_line_and_non_zero(kb_db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(a_file) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and "Traceback" not in err

    assert main(a_file / "below") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err

    # a directory with someone's files in it is never replaced
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(precious) == 2
    assert (precious / "notes.txt").read_text() == "keep me"
    assert "not empty" in capsys.readouterr().err


def test_unwritable_output_is_refused(kb_db, monkeypatch, capsys):
    monkeypatch.setenv("TCPKB_DB", str(kb_db))
    # /proc refuses new directories even to root
    assert main(Path("/proc/tcpkb-site-test")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot" in err and "Traceback" not in err


def departures(db, scenario: str) -> int:
    """What a run changed from a default socket on a default kernel with a real peer: needs
    beyond a namespace (a TUN peer, a knob), sysctls it set, setsockopt() calls it made."""
    import json

    needs = db.execute("select needs from scenarios where name = ?", (scenario,)).fetchone()[0] or ""
    run = db.execute("select trace from runs where scenario = ? order by time desc limit 1",
                     (scenario,)).fetchone()
    trace = json.loads(run[0]) if run and run[0] else {}
    calls = [str(s.get("call") or "") for s in trace.get("steps") or []]
    return (sum(1 for n in needs.split() if n != "netns") + len(trace.get("sysctls") or {})
            + sum(1 for c in calls if "setsockopt(" in c))


def test_the_first_ladder_of_an_entry_is_its_typical_case(db, pages):
    first = {}
    for path, text in pages.items():
        if m := re.search(r'<figure class="ladder" id="ladder-([\w.-]+)"', text):
            first[path] = m.group(1)
    assert first["errno/ECONNRESET/index.html"] == "close_with_unread_data_sends_rst"
    assert first["errno/ECONNREFUSED/index.html"] == "connect_to_closed_port_refused"
    for entry_id, in db.execute("select id from entries"):
        path = entry_path(entry_id)
        if path not in first:
            continue
        shown = re.findall(r'<figure class="ladder" id="ladder-([\w.-]+)"', pages[path])
        assert departures(db, first[path]) == min(departures(db, s) for s in shown), entry_id


def test_scenario_pages_show_their_source_highlighted(db, pages):
    text = pages["scenario/close_with_unread_data_sends_rst/index.html"]
    source = text[text.index('<h2 id="source">'):]
    source = source[:source.index("</pre>")]
    assert '<pre tabindex="0" class="highlight"><code class="language-python">' in source  # the keyboard scrolls it
    assert '<span class="nf">close_with_unread_data_sends_rst</span>' in source  # Pygments' tokens
    plain = html5lib.parse(source, namespaceHTMLElements=False)
    words = "".join(plain.itertext())
    assert "@scenario(" in words and "def close_with_unread_data_sends_rst(lab):" in words
    claim = db.execute("select claim from scenarios where name = 'close_with_unread_data_sends_rst'").fetchone()[0]
    assert claim.split()[0] in words  # the decorator's claim, as written in the module
    without = [n for n, in db.execute("select name from scenarios where source is null")]
    assert not without, without[:5]
    for name, in db.execute("select name from scenarios"):
        assert '<h2 id="source">' in pages[f"scenario/{name}/index.html"], name


def test_every_page_has_the_favicon(site, pages, parsed):
    import xml.etree.ElementTree as ET

    icon = site / "assets" / "favicon.svg"
    root = ET.fromstring(icon.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox") == "0 0 32 32"
    for path, text in pages.items():
        m = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', text)
        assert m, path
        assert (site / posixpath.normpath(posixpath.join(posixpath.dirname(path), m.group(1)))).is_file(), path


def test_the_diagram_page_labels_arrows_and_lists_each_cause(db, pages):
    text = pages["diagram/index.html"]
    labels = text[text.index('<g class="labels">'):]
    labels = labels[:labels.index("</g>")]
    assert "rcv SYN / snd SYN,ACK" in labels and "close() / snd FIN" in labels
    table = text[text.index('<table class="transitions">'):]
    for cause, in db.execute("select distinct cause from transitions"):
        assert f"<code>{cause}</code>" in table.replace("&#39;", "'"), cause
