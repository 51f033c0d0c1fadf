"""`tcpkb serve`: every route, page and canned query in-process, the API against the CLI, safety."""

from __future__ import annotations

import asyncio
import html
import json
import re
import sqlite3
import subprocess
from urllib.parse import quote

import pytest

from tcpkb.present.page import keyboard_scrollable
from tcpkb.query import lookup
from tcpkb.build.database import build
from tcpkb.web.serve import SETTINGS, make_datasette, metadata

HOSTILE = "<script>alert(1)</script>"


class Client:
    """Datasette's in-process client on one event loop for the module."""

    def __init__(self, db):
        self.ds = make_datasette(db)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.ds.invoke_startup())

    def get(self, path: str, **kw):
        return self.loop.run_until_complete(self.ds.client.get(path, **kw))

    def json(self, path: str, status: int = 200):
        r = self.get(path)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/json")
        return r.json()

    def html(self, path: str, status: int = 200) -> str:
        r = self.get(path)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        return r.text


@pytest.fixture(scope="module")
def web(kb_db):
    client = Client(kb_db)
    yield client
    client.loop.close()


# --- metadata ------------------------------------------------------------------------------------

def test_every_table_and_column_has_a_description(db):
    tables = metadata()["databases"]["tcpkb"]["tables"]
    names = [r[0] for r in db.execute(
        "select name from sqlite_master where type = 'table' and name not like 'search_fts%'")]
    missing = []
    for t in names:
        described = tables.get(t, {})
        if not described.get("description"):
            missing.append(t)
        for (col,) in [(r[1],) for r in db.execute(f"pragma table_info([{t}])")]:
            if not described.get("columns", {}).get(col):
                missing.append(f"{t}.{col}")
    assert not missing, f"no description in tcpkb/metadata.yaml for: {missing}"
    assert not set(tables) - set(names), "metadata describes tables the build does not write"


def test_the_site_is_read_only_and_bounded(web):
    ds = web.ds
    db = ds.get_database("tcpkb")
    assert db.is_mutable is False  # Datasette's -i: immutable, never written
    for key, value in SETTINGS.items():
        assert ds.setting(key) == value
    assert web.get("/tcpkb?sql=select+1").status_code == 403  # no arbitrary SQL
    assert web.get("/tcpkb/entries?_where=1%3D1").status_code == 403  # nor through _where
    assert web.get("/tcpkb.db").status_code in (403, 404)  # no download
    rows = web.json("/tcpkb/messages.json?_size=max&_shape=array")
    assert len(rows) == SETTINGS["max_returned_rows"]
    r = web.loop.run_until_complete(web.ds.client.post("/tcpkb/entries", data={"id": "x"}))
    assert r.status_code == 405
    assert "Disallow: /tcpkb" in web.get("/robots.txt").text


def test_facets_and_full_text_search_are_wired(web):
    data = web.json("/tcpkb/entries.json?_facet=kind&_size=0")
    kinds = {f["value"]: f["count"] for f in data["facet_results"]["kind"]["results"]}
    assert kinds["errno"] > 100 and set(kinds) == set(lookup.KIND_NAMES)
    rows = web.json("/tcpkb/search.json?_search=connection+reset&_shape=array&_size=max")
    assert "errno:ECONNRESET" in [r["id"] for r in rows]
    assert web.get("/-/search?q=connection+reset").status_code == 200  # datasette-search-all


# --- canned queries ------------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("errno_by_number?number=104", ["errno:ECONNRESET"]),
    ("errno_by_number?number=54", ["errno:EXFULL"]),
    ("errno_by_number?number=54&platform=darwin", ["errno:ECONNRESET"]),
    ("errno_by_number?number=10054&platform=Windows", ["errno:ECONNRESET"]),
    ("errno_by_number?number=-4077&platform=libuv", ["errno:ECONNRESET"]),
    ("errno_by_number?number=abc", []),
    ("errno_by_name?name=ewouldblock", ["errno:EAGAIN"]),
    ("entry?id=state:TIME_WAIT", ["state:TIME_WAIT"]),
    ("explain?text=write:+Broken+pipe", ["errno:EPIPE", "signal:SIGPIPE"]),
    ("explain?text=", []),
])
def test_canned_queries(web, query, expected):
    name, _, args = query.partition("?")
    rows = web.json(f"/tcpkb/{name}.json?{args}&_shape=array")
    assert [r["id"] for r in rows][:len(expected) or None] == expected


def test_canned_search_escapes_fts_syntax_and_highlights(web):
    rows = web.json("/tcpkb/search_entries.json?q=connection+reset&_shape=array")
    assert rows[0]["id"] == "errno:ECONNRESET"
    assert "<mark>reset</mark>" in rows[0]["snippet"].lower()
    for q in ['"', 'x"y', "NEAR(", "a OR", "*", "-", "", "(("]:  # FTS5 syntax is searched for, never parsed
        assert web.get(f"/tcpkb/search_entries.json?q={quote(q)}").status_code == 200
    page = web.html("/tcpkb/search_entries?q=connection+reset")
    cell = re.search(r'<td class="col-snippet">(.*?)</td>', page, re.S).group(1)
    assert "<mark>reset</mark>" in cell.lower() and "&lt;mark&gt;" not in cell


def test_canned_explain_matches_the_cli(web, cli):
    text = "recv() failed (104: Connection reset by peer)"
    rows = web.json(f"/tcpkb/explain.json?text={quote(text)}&_shape=array")
    expected = json.loads(cli("explain", text, "--json").stdout)["matches"]
    assert [(r["id"], r["score"]) for r in rows] == [(m["id"], m["score"]) for m in expected]


# --- short URLs: the JSON is the CLI's ------------------------------------------------------------

@pytest.mark.parametrize("path, args", [
    ("/errno/104", ["errno", "104"]),
    ("/errno/ECONNRESET", ["errno", "ECONNRESET"]),
    ("/errno/econnreset", ["errno", "econnreset"]),
    ("/errno/54?os=darwin", ["errno", "54", "--os", "darwin"]),
    ("/errno/131?arch=mips", ["errno", "131", "--arch", "mips"]),
    ("/errno/-4077", ["errno", "-4077"]),
    ("/signal/141", ["signal", "141"]),
    ("/state/TIME_WAIT", ["state", "TIME_WAIT"]),
    ("/state/time-wait", ["state", "time-wait"]),
    ("/flag/S.", ["flag", "S."]),
    ("/claim/second-write-after-peer-close-gets-epipe", ["show", "claim:second-write-after-peer-close-gets-epipe"]),
    ("/sysctl/net.ipv4.tcp_fin_timeout", ["sysctl", "net.ipv4.tcp_fin_timeout"]),
    ("/sockopt/SO_LINGER", ["sockopt", "SO_LINGER"]),
    ("/call/sendmsg", ["call", "sendmsg"]),
])
def test_short_urls_answer_as_the_cli_does(web, cli, path, args):
    base, _, query = path.partition("?")
    got = web.json(f"{base}.json" + (f"?{query}" if query else ""))
    expected = json.loads(cli(*args, "--json").stdout)
    # a knob's `live` value is the machine running the CLI; a server does not publish its own
    expected.pop("live", None)
    assert got == expected
    page = web.html(path)
    heading = expected["title"] if expected["kind"] == "claim" else expected["name"]
    assert re.search(r"<h1[^>]*>" + re.escape(html.escape(heading)) + "</h1>", page)


@pytest.mark.parametrize("path, args, status", [
    ("/errno/99999", ["errno", "99999"], 404),
    ("/state/NOPE", ["state", "NOPE"], 404),
    ("/sysctl/tcp_fin_timout", ["sysctl", "tcp_fin_timout"], 404),
])
def test_misses_answer_as_the_cli_does(web, cli, path, args, status):
    got = web.json(f"{path}.json", status)
    expected = json.loads(cli(*args, "--json").stdout)
    assert got == expected
    page = web.html(path, status)
    for s in expected["suggestions"]:
        assert f'href="{"/" + s.replace(":", "/", 1)}"' in page


def test_made_up_parameters_neither_change_nor_fill_the_page_cache(web):
    from tcpkb.web import plugin

    first = web.html("/errno/54?os=darwin")
    before = len(plugin._pages)
    for i in range(20):
        assert web.html(f"/errno/54?os=darwin&junk={i}") == first
    assert len(plugin._pages) == before
    assert 'href="/errno/54.json?os=darwin"' in first


def test_a_bad_platform_is_a_bad_request(web):
    assert "unknown platform" in web.json("/errno/104.json?os=plan9", 400)["error"]


def test_every_entry_has_a_page_and_a_json_twin(web, db):
    ids = [r[0] for r in db.execute("select id from entries order by id")]
    for entry_id in ids:
        kind, name = entry_id.split(":", 1)
        got = web.json(f"/{kind}/{quote(name, safe='')}.json")
        assert got["id"] == entry_id
        page = web.html(f"/{kind}/{quote(name, safe='')}")
        assert 'lang="zh-Hans"' in page and 'id="verification"' in page


def test_an_entry_page_shows_the_note_its_links_and_its_proof(web, db):
    page = web.html("/errno/EPIPE")
    for (section,) in db.execute("select html from sections where entry_id = 'errno:EPIPE'"):
        # the build's HTML, not re-rendered: only its code blocks take the keyboard's focus
        assert keyboard_scrollable(section) in page
    assert 'href="/signal/SIGPIPE"' in page
    assert "second_write_after_peer_close_fails_with_epipe" in page
    assert "<svg" in page and "EPIPE" in page  # a packet ladder of a run that proves it
    zh = db.execute("select summary_zh from entries where id = 'errno:EPIPE'").fetchone()[0]
    assert zh in page


def test_a_state_page_draws_the_state_machine_with_the_state_lit(web):
    page = web.html("/state/TIME_WAIT")
    figure = re.search(r'<figure class="diagram"[^>]*>(.*?)</figure>', page, re.S).group(1)
    assert 'class="st hl"' in figure and 'href="/state/CLOSE_WAIT"' in figure


def test_scenario_pages_show_each_run(web, db):
    name = "second_write_after_peer_close_fails_with_epipe"
    page = web.html(f"/scenario/{name}")
    assert '<a href="/errno/EPIPE">EPIPE</a>' in page and "<svg" in page  # linked by name, not id
    data = web.json(f"/scenario/{name}.json")
    assert data["runs"][0]["trace"]["packets"] and {"entry_id": "errno:EPIPE", "verdict": None} in data["proves"]
    assert web.json("/scenario/nope.json", 404)["error"] == "no scenario 'nope'"
    web.html("/scenario/nope", 404)
    for (scenario,) in db.execute("select name from scenarios"):  # every one renders
        web.html(f"/scenario/{quote(scenario)}")


def test_kind_pages_list_every_entry(web, db):
    for kind in lookup.KIND_NAMES:
        page = web.html(f"/{kind}")
        rows = web.json(f"/{kind}.json")
        n = db.execute("select count(*) from entries where kind = ?", (kind,)).fetchone()[0]
        assert len(rows) == n and page.count('<tr id="') == n


def test_search_and_explain_routes(web, cli):
    got = web.json("/search.json?q=connection+reset")
    expected = json.loads(cli("search", "connection", "reset", "--json").stdout)
    assert got == expected
    assert "nothing matches" in web.json("/search.json?q=zzqqxx", 404)["error"]
    page = web.html("/search?q=connection+reset")
    assert '<a href="/errno/ECONNRESET">ECONNRESET</a>' in page and "<mark>" in page  # by name, not id
    text = "write: broken pipe"
    assert web.json(f"/explain.json?text={quote(text)}") == json.loads(cli("explain", text, "--json").stdout)
    assert 'href="/errno/EPIPE"' in web.html(f"/explain?text={quote(text)}")
    assert web.json("/explain.json?text=", 400)["error"]


def test_home_page_counts_come_from_the_database(web, db):
    page = web.html("/")
    n = db.execute("select count(*) from entries where kind = 'sysctl'").fetchone()[0]
    assert re.search(rf'<a href="/sysctl">sysctl</a> <span class="count">{n}</span>', page)
    assert 'action="/search"' in page


# --- hostile input --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    f"/errno/{quote(HOSTILE, safe='')}",
    f"/search?q={quote(HOSTILE)}",
    f"/search?q=reset&kind={quote(HOSTILE)}",
    f"/explain?text={quote(HOSTILE)}",
    f"/tcpkb/search_entries?q={quote(HOSTILE)}",
    f"/tcpkb/explain?text={quote(HOSTILE)}",
    f"/tcpkb/entries?kind={quote(HOSTILE)}",
])
def test_no_query_parameter_can_inject_script(web, path):
    r = web.get(path)
    assert r.status_code in (200, 400, 404)
    assert HOSTILE not in r.text and "<script>alert" not in r.text


def test_no_note_can_inject_script(base_kb, tmp_path, monkeypatch):
    note = base_kb / "errno" / "ECONNRESET.md"
    text = note.read_text()
    text = re.sub(r"^title: .*$", f"title: 'Reset {HOSTILE}'", text, count=1, flags=re.M)
    text = text.replace("## Meaning\n", f"## Meaning\n\n{HOSTILE} <img src=x onerror=alert(2)>\n"
                        f"[link](javascript:alert(3))\n", 1)
    note.write_text(text)
    monkeypatch.setenv("TCPKB_RESULTS", str(tmp_path / "no-results"))
    db = tmp_path / "hostile.db"
    build(base_kb, db)
    client = Client(db)
    try:
        for path in ("/errno/ECONNRESET", "/errno", "/search?q=reset", "/tcpkb/entries",
                     "/tcpkb/entries/errno:ECONNRESET"):
            page = client.get(path).text
            assert HOSTILE not in page and "<img src=x" not in page, path
            assert 'href="javascript:' not in page, path
        assert "&lt;script&gt;" in client.get("/errno/ECONNRESET").text
    finally:
        client.loop.close()
    with sqlite3.connect(db) as c:  # the title was stored as written, and escaped only on output
        assert HOSTILE in c.execute("select title from entries where id = 'errno:ECONNRESET'").fetchone()[0]


# --- a real server --------------------------------------------------------------------------------

def test_readme_curl_examples_run_against_a_real_server(served, cli):
    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    lines = [line for block in re.findall(r"```sh\n(.+?)\n```", readme, re.S)
             for line in block.splitlines() if line.startswith("curl ")]
    assert len(lines) >= 5, "the README documents the JSON API with curl examples"
    for line in lines:
        command = line.replace("http://127.0.0.1:8001", served)
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, (line, done.stderr)
        assert json.loads(done.stdout), line
    first = subprocess.run(lines[0].replace("http://127.0.0.1:8001", served), shell=True,
                           capture_output=True, text=True, timeout=30)
    assert json.loads(first.stdout) == json.loads(cli("errno", "104", "--json").stdout)
