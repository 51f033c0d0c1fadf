"""`tcpkb serve`: every route, page and canned query in-process, the API against the CLI, safety."""

from __future__ import annotations

import asyncio
import html
import json
import re
import sqlite3
import subprocess
from pathlib import Path
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
    source = re.search(r'<h2 id="source">.*?<div class="scenario-source">(.*?)</div>\s*\n', page, re.S)
    assert source and f"def {name}" in re.sub(r"<[^>]+>", "", source.group(1))  # highlighted, as the site's
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


def test_explain_json_answers_as_the_cli_on_many_lines(web, cli):
    """/explain.json and `tcpkb explain --json` on a few dozen lines: every family of the
    evaluation and development sets, a no-match and a low-confidence guess among them."""
    from .test_explain import EVAL
    from .test_explain_world import NEGATIVES, VOCABULARY, WINDOWS

    lines = ([e["text"] for e in EVAL[::12]] + [t for t, *_ in WINDOWS[::2] + VOCABULARY[::2]]
             + NEGATIVES[:3] + ["Communications link failure", "[Errno 61]"])
    assert len(lines) >= 36
    for text in lines:
        got = web.json(f"/explain.json?text={quote(text)}")
        assert got == json.loads(cli("explain", text, "--json").stdout), text


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


@pytest.mark.parametrize("path, status", [
    ("/tcpkb/entries?_sort=nope", 400),  # Datasette's own answer was 500
    ("/tcpkb/entries?_sort_desc=nope", 400),
    ("/tcpkb/entries.json?_sort=nope", 400),
    ("/tcpkb/entries?_sort=id&_sort_desc=id", 400),
    ("/tcpkb/entries?_timelimit=x", 400),  # a ValueError from int()
    ("/tcpkb/entries?id__in=%5B", 400),  # a ValueError from json.loads()
    ("/tcpkb/entries?_size=abc", 400),
    ("/tcpkb/entries?_facet=%00", 400),  # SQLite refuses a NUL in the statement
    # a 404 with no exception behind it made rich raise: 500 (raw `..` targets, which this
    # client would resolve, are sent by tests/test_serve_hostile.py)
    ("/nope", 404),
    ("/a\\..\\b", 404),
    ("/nodb/table", 404),
    ("/tcpkb/nope", 404),
])
def test_client_errors_are_4xx_and_print_nothing(web, capfd, path, status):
    r = web.get(path)
    assert r.status_code == status, (path, r.text[:300])
    printed = capfd.readouterr().err
    assert "Traceback" not in printed and "\u256d" not in printed, printed[:2000]  # rich's box


def test_a_limit_only_unicode_calls_a_digit_is_the_default(web):
    plain = web.json("/search.json?q=reset")["results"]
    for limit in ("%C2%B2", "%D9%A3", "-3", "0", "9" * 40, ""):  # ², Arabic-Indic 3
        assert web.json(f"/search.json?q=reset&limit={limit}")["results"] == plain, limit
        assert web.get(f"/search?q=reset&limit={limit}").status_code == 200
    assert len(web.json("/search.json?q=reset&limit=3")["results"]) == 3


def test_a_server_fault_is_one_line_and_a_bare_500(web, capfd, monkeypatch):
    from tcpkb.web import plugin

    def broken(*args):
        raise RuntimeError("a bug")
    monkeypatch.setattr(plugin, "_answer", broken)
    monkeypatch.setattr(plugin, "_answers", {})  # nothing answered from before the bug
    r = web.get("/errno/104")
    assert r.status_code == 500 and "a bug" not in r.text
    printed = capfd.readouterr().err.strip().splitlines()
    assert printed == ["tcpkb serve: 500 on GET '/errno/104': RuntimeError: 'a bug'"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "BREW"])
def test_only_get_and_head_are_answered(web, method):
    r = web.loop.run_until_complete(web.ds.client.request(method, "/errno/104"))
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_the_error_budget_slows_a_flood_of_errors_only():
    from tcpkb.web.errors import ErrorBudget

    budget = ErrorBudget()
    waits = [budget.wait_for("10.0.0.1", now=100.0) for _ in range(int(budget.BURST) + 10)]
    assert waits[:int(budget.BURST)] == [0.0] * int(budget.BURST)  # a burst goes through
    assert waits[-1] == pytest.approx(10 / budget.RATE)  # then each waits for its token
    assert budget.wait_for("10.0.0.2", now=100.0) == 0.0  # another address has its own budget
    assert budget.wait_for("10.0.0.1", now=200.0) == 0.0  # and a budget refills
    for _ in range(10_000):  # the debt is bounded
        last = budget.wait_for("10.0.0.3", now=300.0)
    assert last == budget.MAX_WAIT


def test_the_error_budget_table_stays_bounded(monkeypatch):
    from tcpkb.web.errors import ErrorBudget

    monkeypatch.setattr(ErrorBudget, "MAX_CLIENTS", 50)
    budget = ErrorBudget()
    for i in range(500):
        budget.wait_for(f"10.0.{i // 256}.{i % 256}", now=float(i))
    assert len(budget.tokens) <= 50


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


def test_the_favicon_is_the_sites_own_svg(web):
    from tcpkb.paths import site_dir

    drawn = (Path(site_dir()) / "assets" / "favicon.svg").read_text()
    for path in ("/favicon.ico", "/-/favicon.svg"):  # where browsers ask, and by its name
        r = web.get(path)
        assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
        assert r.text == drawn and "<svg" in r.text


def test_an_entry_page_draws_the_typical_case_first(web):
    page = web.html("/errno/ECONNRESET")
    first = re.search(r'<figure class="ladder" id="ladder-([\w.-]+)"', page)
    assert first and first.group(1) == "close_with_unread_data_sends_rst"


def test_the_state_diagram_keeps_its_links_reachable(web):
    page = web.html("/state/LISTEN")
    svg = page[page.index('<svg xmlns="http://www.w3.org/2000/svg" class="tkd tkd-states"'):]
    svg = svg[:svg.index("</svg>")]
    assert 'role="group"' in svg[:400] and 'role="img"' not in svg
    assert re.search(r'<a href="/state/SYN_RECV" aria-label="SYN-RECEIVED', svg)
