"""One facts model for every face: the CLI's --json, the Datasette JSON, the Datasette page and the
static page show the same facts for every entry, and links between entries resolve in both."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import pytest

from tcpkb.kinds.base import fact_text, kernels_text
from tcpkb.site.generate import build_site, entry_path

from .test_serve import Client


@pytest.fixture(scope="module")
def web(kb_db):
    client = Client(kb_db)
    yield client
    client.loop.close()


@pytest.fixture(scope="module")
def site(kb_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("faces") / "site"
    build_site(kb_db, out, search=False)
    return out


def visible_text(page: str) -> str:
    """A page's text as a reader sees it: tags gone, entities decoded, spaces collapsed."""
    page = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"</?(a|code|span|strong|em|mark|var)\b[^>]*>", "", page)  # inline: no break
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def shown(f: dict) -> list[str]:
    """What a reader must find for a fact: its label and each value (per kernel where they differ)."""
    if f.get("kernels"):
        return [f["label"]] + [f"{k['value']} on {kernels_text(k['kernels'])}" for k in f["kernels"]]
    return [f["label"], fact_text(f)]


def url(entry_id: str) -> str:
    kind, name = entry_id.split(":", 1)
    return f"/{kind}/{quote(name, safe='')}"


def test_every_entry_shows_the_same_facts_in_every_face(db, cli, web, site):
    ids = [r[0] for r in db.execute("select id from entries order by id")]
    assert len(ids) > 300
    for entry_id in ids:
        answer = json.loads(cli("show", entry_id, "--json").stdout)
        facts = answer["facts"]
        assert facts, f"{entry_id} has no facts"
        assert web.json(url(entry_id) + ".json")["facts"] == facts, entry_id
        pages = {"datasette": visible_text(web.html(url(entry_id))),
                 "site": visible_text((site / entry_path(entry_id)).read_text(encoding="utf-8"))}
        for face, text in pages.items():
            for expected in [s for f in facts for s in shown(f)]:
                assert " ".join(expected.split()) in text, f"{entry_id} on {face}: {expected!r}"


def test_terminal_shows_the_same_facts(db, cli):
    for entry_id in ("errno:ECONNRESET", "sysctl:net.ipv4.tcp_rmem", "sockopt:TCP_KEEPIDLE",
                     "state:TIME_WAIT", "call:connect", "flag:RST", "signal:SIGPIPE"):
        answer = json.loads(cli("show", entry_id, "--json").stdout)
        text = " ".join(cli("show", entry_id).stdout.split())
        for f in answer["facts"]:
            for expected in shown(f):
                assert " ".join(expected.split()) in text or f.get("kernels"), (entry_id, expected)


def test_a_socket_options_default_links_to_its_knob_in_both_faces(db, web, site):
    rows = db.execute("select id, default_from from sockopts where default_from is not null").fetchall()
    assert len(rows) >= 5
    for entry_id, knob in rows:
        assert knob.startswith("sysctl:") and db.execute("select 1 from entries where id = ?", (knob,)).fetchone()
        page = web.html(url(entry_id))
        assert f'href="{url(knob)}"' in page, entry_id
        assert web.get(url(knob)).status_code == 200
        static = (site / entry_path(entry_id)).read_text(encoding="utf-8")
        target = "../../" + entry_path(knob)
        assert f'href="{target}"' in static, entry_id
        assert (site / entry_path(knob)).is_file()


def test_every_link_inside_facts_resolves(db, cli, site):
    """Facts link to entries (a call's errors, an errno's calls, a state's transitions …); each exists."""
    known = {r[0] for r in db.execute("select id from entries")}
    for (entry_id,) in db.execute("select id from entries"):
        answer = json.loads(cli("show", entry_id, "--json").stdout)
        for f in answer["facts"]:
            for part in f["value"]:
                if isinstance(part, dict):
                    assert part["id"] in known, (entry_id, part)
                    assert (site / entry_path(part["id"])).is_file()


def test_the_kernel_matrix_is_the_same_in_both_faces(db, web, site):
    from tcpkb.query.matrix import matrix

    expected = json.loads(json.dumps(matrix(db)))
    assert web.json("/kernels.json") == expected
    assert expected["kernels"], "no results loaded"
    pages = [visible_text(web.html("/kernels")),
             visible_text((site / "kernels" / "index.html").read_text(encoding="utf-8"))]
    for text in pages:
        for k in expected["kernels"]:
            assert k["kernel"] in text
        for f in expected["facts"]:
            assert f["name"] in text
        for s in expected["scenarios"]:
            assert s["scenario"] in text


def article_of(page: str) -> str:
    """The shared <article> of an entry page, as the face rendered it."""
    start = page.index('<article class="entry')
    return page[start:page.index("</article>", start) + len("</article>")]


def outline(article: str) -> list[str]:
    """What the article is made of: its section menu, headings, lists and tables, in order."""
    return re.findall(r'<nav class="toc"|<h[1-3][^>]*>[^<]*|<(?:ul|ol|table|dl|pre)\b[^>]*>', article)


@pytest.mark.parametrize("entry_id", ["errno:ECONNRESET", "state:TIME_WAIT", "sysctl:net.ipv4.tcp_fin_timeout",
                                      "call:shutdown", "claim:time-wait-lasts-2msl"])
def test_one_article_in_both_faces(web, site, entry_id):
    """Both faces render the same article: the same section menu, headings, lists, tables and code
    blocks, with related entries by name and a state's ways in as a table, not as raw data."""
    datasette = article_of(web.html(url(entry_id)))
    static = article_of((site / entry_path(entry_id)).read_text(encoding="utf-8"))
    assert outline(datasette) == outline(static), entry_id
    assert '<nav class="toc"' in datasette and '<dl class="facts">' in datasette
    related = re.search(r'<h2 id="related">.*?</section>', datasette, re.S).group(0)
    links = re.findall(r'<a href="[^"]+">([^<]+)</a>', related)
    assert links and not [t for t in links if re.fullmatch(r"[a-z]+:\S+", t)], links  # names, not ids
    if entry_id.startswith("state:"):
        assert '<table class="transitions">' in datasette and "[{" not in visible_text(datasette)


def test_the_same_number_elsewhere_names_each_platform(web):
    page = visible_text(web.html("/errno/54"))
    assert "on macOS and FreeBSD 54 is ECONNRESET" in page or "on macOS, FreeBSD" in page, page[:2000]
    assert "The same number also means" not in page
    # 104 read on Linux: the line names the other platforms only, never Linux itself
    banner = re.search(r'<p class="query-note elsewhere">(.*?)</p>', web.html("/errno/104"), re.S).group(1)
    assert "on macOS 104 is" in visible_text(banner) and "on Linux 104" not in visible_text(banner), banner


def test_search_and_explain_show_names_and_plain_snippets(web):
    page = web.html("/search?q=connection+reset")
    items = re.findall(r'<li><a href="(/[a-z]+/[^"]+)">([^<]+)</a>(.*?)</li>', page, re.S)
    assert items and items[0][:2] == ("/errno/ECONNRESET", "ECONNRESET"), items[:2]
    assert "Connection reset by peer" in items[0][2]  # its title beside the name
    assert not [name for _, name, _ in items if ":" in name]
    snippets = re.findall(r'<p class="snippet">(.*?)</p>', page, re.S)
    assert snippets and not [s for s in snippets if "`" in s], snippets
    explained = web.html("/explain?text=write%3A+Broken+pipe")
    assert re.search(r'<h2><a href="/errno/EPIPE">EPIPE</a>', explained), explained[-3000:]


def test_the_tables_show_summaries_and_link_to_the_notes(web):
    page = web.html("/tcpkb/entries?_size=20")
    assert page.count("the note on its page") == 40  # body_md and body_html, 20 rows
    assert "## Meaning" not in page and "<h2" not in page.split('<table class="rows-and-columns"')[1]
    data = web.json("/tcpkb/entries.json?id=errno:ECONNRESET&_shape=array")
    assert data[0]["body_md"].startswith("## ")  # the API keeps every byte
    database = web.html("/tcpkb")
    assert "`" not in visible_text(database)


def test_errno_and_signal_lists_put_socket_entries_first(web, site, db):
    for kind in ("errno", "signal"):
        socket = {r[0] for r in db.execute(f"select id from {'errno' if kind == 'errno' else 'signals'} where socket")}
        assert socket, kind
        for page in (web.html(f"/{kind}"), (site / kind / "index.html").read_text(encoding="utf-8")):
            names = re.findall(r'<tr id="([^"]+)"><th scope="row">', page)
            ids = [f"{kind}:{n}" for n in names]
            flags = [i in socket for i in ids]
            assert flags == sorted(flags, reverse=True) and flags[0] and not flags[-1], (kind, ids[:5])
            # within the socket group, the entry most notes link to comes first
            linked = dict(db.execute("select dst, count(*) from links group by dst").fetchall())
            top = max(linked.get(i, 0) for i in socket)
            assert linked.get(ids[0], 0) == top, (kind, ids[:3], top)
            assert 'class="kind-filter"' in page and "<label for=" in page
