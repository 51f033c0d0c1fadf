"""The Datasette plugin behind `tcpkb serve`: short URLs, entry pages and the lookup API.

Every route answers from the same functions as the CLI (lookup.py, explain.py), so
`/errno/104.json` is `tcpkb errno 104 --json`. The database is immutable, so an answer
never changes while the server runs and is cached in memory after the first request.
"""

from __future__ import annotations

import asyncio
import json
import re
from functools import lru_cache
from html import escape
from urllib.parse import quote

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup

from ..kinds import KINDS
from ..present.terminal import PLAIN_HIT
from ..query import lookup

DB = "tcpkb"  # the database's name in Datasette, whatever the file is called
KIND_PATTERN = "|".join(KINDS)
MARK = ("\x02", "\x03")  # snippet markers: unambiguous, turned into <mark> after escaping


def url_for(entry_id: str) -> str:
    kind, name = entry_id.split(":", 1)
    return f"/{kind}/{quote(name, safe='')}"


# --- answers, computed once per server ---------------------------------------------------------

_answers: dict[tuple, tuple[int, str]] = {}  # (db file, kind, query, platform) -> _answer()
MAX_ANSWERS = 4096


async def lookup_answer(path: str, kind: str, query: str, platform: tuple) -> tuple[int, str]:
    """_answer, computed once per query and off the event loop: a miss's suggestions (difflib
    over every name) can take tens of milliseconds, which would hold up every other request."""
    key = (path, kind, query, platform)
    found = _answers.get(key)
    if found is None:
        found = await asyncio.to_thread(_answer, path, kind, query, platform)
        if len(_answers) < MAX_ANSWERS:
            _answers[key] = found
    return found


def _answer(path: str, kind: str, query: str, platform: tuple) -> tuple[int, str]:
    """(status, JSON text) for a lookup, shaped exactly as the CLI's --json."""
    conn = lookup.connect(path)
    try:
        found = lookup.find(conn, kind, query, **dict(platform))
        return 200, json.dumps(found.as_json(), ensure_ascii=False)
    except lookup.NotFound as e:
        return 404, json.dumps({"error": str(e), "suggestions": e.suggestions}, ensure_ascii=False)
    except lookup.BadQuery as e:
        return 400, json.dumps({"error": str(e)}, ensure_ascii=False)
    finally:
        conn.close()


@lru_cache(maxsize=1024)
def _article(path: str, entry_id: str) -> dict:
    """The shared article's context beyond the JSON: sections, drawings, linked titles."""
    from ..present import page

    conn = lookup.connect(path)
    try:
        return page.article(conn, lookup.entry(conn, entry_id), url_for)
    finally:
        conn.close()


@lru_cache(maxsize=512)
def _runs(path: str, scenario: str) -> list[dict]:
    """A scenario's runs (one per kernel), each drawn as a packet ladder and a timeline."""
    from ..present import diagrams

    conn = lookup.connect(path)
    try:
        out = []
        for r in conn.execute("select scenario, kernel, arch, time, status, duration_ms, trace "
                              "from runs where scenario = ? order by kernel, arch", (scenario,)):
            trace = json.loads(r["trace"]) if r["trace"] else {}
            out.append({**{k: r[k] for k in ("scenario", "kernel", "arch", "time", "status",
                                              "duration_ms")},
                        "ladder": Markup(diagrams.ladder(trace, r["scenario"])),
                        "timeline": diagrams.timeline(trace),
                        "counters": trace.get("counters") or {}})
        return out
    finally:
        conn.close()


@lru_cache(maxsize=4096)
def _search(path: str, words: str, kind: str | None, limit: int) -> tuple[int, dict | None, tuple]:
    """(status, error, results) of `tcpkb search`, computed once per query."""
    conn = lookup.connect(path)
    try:
        results = lookup.search(conn, words, kind, limit, mark=MARK)
    except lookup.BadQuery as e:
        return 400, {"error": str(e)}, ()
    else:
        if not results:
            return 404, {"error": f"nothing matches {words!r}",
                         "suggestions": lookup.suggest(conn, words)}, ()
        return 200, None, tuple(results)
    finally:
        conn.close()


def _platform(kind: str, request) -> tuple:
    """The kind's lookup options given in the query string (?os=darwin) as finder keywords."""
    return tuple((o.keyword, request.args[o.param]) for o in KINDS[kind].options if request.args.get(o.param))


async def _json(status: int, body: str) -> Response:
    return Response(body, status=status, content_type="application/json; charset=utf-8",
                    headers={"Access-Control-Allow-Origin": "*"})


# --- routes ------------------------------------------------------------------------------------

_pages: dict[tuple, bytes] = {}  # (db file, path, what the page depends on) -> rendered HTML
MAX_PAGES = 2048  # about 60 KB each: the cache stays under 150 MB whatever visitors ask


async def cached_html(datasette, request, render, depends: tuple = ()) -> Response:
    """The page for this URL, rendered once: the database is immutable and the pages hold
    nothing per visitor. Only `depends` of the query string counts, so made-up parameters
    cannot fill the cache."""
    key = (datasette.get_database(DB).path, request.path, depends)
    body = _pages.get(key)
    if body is None:
        body = (await render()).encode()
        if len(_pages) < MAX_PAGES:
            _pages[key] = body
    return Response(body, content_type="text/html; charset=utf-8")


async def entry_route(datasette, request):
    kind, name, fmt = (request.url_vars["kind"], request.url_vars["name"],
                       request.url_vars.get("format"))
    path = datasette.get_database(DB).path
    status, body = await lookup_answer(path, kind, name, _platform(kind, request))
    if fmt:
        return await _json(status, body)
    answer = json.loads(body)
    if status != 200:
        return Response.html(await datasette.render_template(
            "tcpkb_missing.html", {"kind": kind, "query": name, "answer": answer, "url_for": url_for},
            request=request), status=status)
    # a flag combination (S., SYN+ACK) is an answer without a note of its own: it names flags
    article = dict(_article(path, answer["id"])) if answer.get("id") else {
        "sections": [], "diagram": None, "incoming": [], "ladders": [], "more_ladders": [], "entries": {},
        "chinese_messages": []}
    article["e"] = answer  # with this query's notes (how 54?os=darwin was read)
    platform = _platform(kind, request)
    query = "&".join(f"{k.rstrip('_')}={quote(v)}" for k, v in platform)
    context = {**article, **_urls(), "db_name": DB, "asked": name if name.lstrip("-").isdigit() else None,
               "json_url": request.path + ".json" + (f"?{query}" if query else "")}
    return await cached_html(datasette, request, lambda: datasette.render_template(
        "tcpkb_entry.html", context, request=request), platform)


def _urls() -> dict:
    """How the shared templates link, on this site."""
    from ..present.page import template_globals

    return {"entry_url": url_for, "scenario_url": lambda name: f"/scenario/{quote(name, safe='')}",
            "kind_url": lambda kind: f"/{kind}", "diagram_url": "/state", **template_globals()}


async def scenario_route(datasette, request):
    """One scenario: its claim, the entries it proves, and the trace of each run."""
    name, fmt = request.url_vars["name"], request.url_vars.get("format")
    db = datasette.get_database(DB)
    rows = await db.execute("select name, module, level, claim, needs, timeout_s, source from scenarios "
                            "where name = ?", [name])
    if not rows:
        error = {"error": f"no scenario {name!r}", "suggestions": []}
        if fmt:
            return await _json(404, json.dumps(error))
        return Response.html(await datasette.render_template(
            "tcpkb_missing.html", {"kind": "scenario", "query": name, "answer": error,
                                   "url_for": url_for}, request=request), status=404)
    scenario = dict(rows.first())
    scenario["proves"] = [dict(r) for r in await db.execute(
        "select entry_id, verdict from scenario_entries where scenario = ? order by rowid", [name])]
    if fmt:  # the recorded runs as they are stored, traces included
        runs = await db.execute("select kernel, arch, time, status, reason, duration_ms, trace "
                                "from runs where scenario = ? order by kernel, arch", [name])
        scenario["runs"] = [{**dict(r), "trace": json.loads(r["trace"]) if r["trace"] else None}
                            for r in runs]
        return await _json(200, json.dumps(scenario, ensure_ascii=False))
    path = db.path
    from ..present.page import scenario_source

    source = scenario_source(scenario.pop("source"))
    return await cached_html(datasette, request, lambda: datasette.render_template(
        "tcpkb_scenario.html", {"scenario": scenario, "source": source, "runs": _runs(path, name), "url_for": url_for},
        request=request))


async def kind_route(datasette, request):
    """A kind's list: the same table as the static site's kind page, or its entries as JSON."""
    kind = request.url_vars["kind"]
    path = datasette.get_database(DB).path
    if request.url_vars.get("format"):
        rows = await datasette.get_database(DB).execute(
            "select id, name, title, summary from entries where kind = ? order by name", [kind])
        return await _json(200, json.dumps([dict(r) for r in rows], ensure_ascii=False))
    return await cached_html(datasette, request, lambda: datasette.render_template(
        "tcpkb_kind.html", {"kind": KINDS[kind], "rows": _kind_rows(path, kind), "diagram": None,
                            **_urls()}, request=request))


@lru_cache(maxsize=64)
def _kind_rows(path: str, kind: str) -> list:
    from ..present.page import inlinks, kind_rows

    conn = lookup.connect(path)
    try:
        return kind_rows(kind, lookup.list_kind(conn, kind), inlinks(conn))
    finally:
        conn.close()


async def search_route(datasette, request):
    """`tcpkb search --json` over HTTP, and a results page whose hits link to entry pages."""
    words, kind = request.args.get("q", ""), request.args.get("kind") or None
    limit = bounded_int(request.args.get("limit", ""), default=20, high=500)

    status, error, results = _search(datasette.get_database(DB).path, words, kind, limit)
    results = [dict(r) for r in results]  # the cached answer is shared: copy before adding to it
    if request.url_vars.get("format"):
        if error:
            return await _json(status, json.dumps(error, ensure_ascii=False))
        # the hits between « », as `tcpkb search --json` gives them
        plain = [{**r, "snippet": r["snippet"].replace(MARK[0], PLAIN_HIT[0]).replace(MARK[1], PLAIN_HIT[1])}
                 for r in results]
        return await _json(200, json.dumps({"query": words, "results": plain}, ensure_ascii=False))
    titles = await _titles(datasette, [r["id"] for r in results])
    for r in results:
        r["snippet_html"] = marked(unmarkdown(r["snippet"]))
        r["title"] = titles.get(r["id"], "")
    if not words.strip():  # the empty search page is a form, not an error
        status, error = 200, None
    return Response.html(await datasette.render_template(
        "tcpkb_search.html", {"q": words, "kind": kind or "", "results": results, "error": error,
                              "kinds": tuple(KINDS), "url_for": url_for}, request=request),
        status=status)


async def explain_route(datasette, request):
    """`tcpkb explain --json` over HTTP: ?text=<the error line>."""
    from ..query.explain import explained, public
    from ..query.lexicon import of_database

    text = request.args.get("text", "")
    error = None if text.strip() else "give the error text as ?text="
    matches = []
    if not error:
        matches = await datasette.get_database(DB).execute_fn(lambda conn: explained(of_database(conn), text))
    if request.url_vars.get("format"):
        if error:
            return await _json(400, json.dumps({"error": error}))
        return await _json(200, json.dumps(public(matches), ensure_ascii=False))
    return Response.html(await datasette.render_template(
        "tcpkb_explain.html", {"text": text, "matches": matches, "url_for": url_for},
        request=request))


async def kernels_route(datasette, request):
    """What differs between the kernels verified: /kernels and its .json twin."""
    from ..query.matrix import matrix

    answer = await datasette.get_database(DB).execute_fn(matrix)
    if request.url_vars.get("format"):
        return await _json(200, json.dumps(answer, ensure_ascii=False))
    return await cached_html(datasette, request, lambda: datasette.render_template(
        "tcpkb_kernels_page.html", {"matrix": answer, **_urls()}, request=request))


async def home_route(datasette, request):
    return Response.html(await datasette.render_template(
        "tcpkb_index.html", {"db": DB, "description": Markup(datasette.metadata("description_html") or "")},
        request=request))


async def favicon_route(datasette, request):
    """The favicon both faces show (site/assets/favicon.svg), where a browser asks for one."""
    return Response(favicon(), content_type="image/svg+xml",
                    headers={"Cache-Control": "max-age=86400"})


@lru_cache(maxsize=1)
def favicon() -> str:
    from pathlib import Path

    from ..paths import site_dir

    return (Path(site_dir()) / "assets" / "favicon.svg").read_text()


async def css_route(datasette, request):
    return Response(stylesheet(), content_type="text/css; charset=utf-8",
                    headers={"Cache-Control": "max-age=3600"})


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The static site's stylesheet (both faces look alike), then the Datasette frame's own rules."""
    from pathlib import Path

    from ..present.styles import stylesheet as shared

    frame = (Path(__file__).parent / "templates" / "tcpkb.css").read_text()
    return f"{shared()}\n{frame}"


def bounded_int(text: str, default: int, high: int) -> int:
    """A positive count from the query string, or the default: `²` and `٣` pass isdigit()
    but are no count a visitor means, so only ASCII digits are read."""
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or int(text) < 1:
        return default
    return min(int(text), high)


async def _titles(datasette, ids: list[str]) -> dict[str, str]:
    """{id: title} of the entries a results page names."""
    if not ids:
        return {}
    rows = await datasette.get_database(DB).execute(
        f"select id, title from entries where id in ({','.join('?' * len(ids))})", ids)
    return {r["id"]: r["title"] for r in rows}


MARKDOWN = [(re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # [text](url) -> text
            (re.compile(r"`+|\*\*|__"), ""),                   # code spans, strong
            (re.compile(r"(^|\s)#{1,6}\s+"), r"\1")]            # headings


def unmarkdown(text: str) -> str:
    """A snippet of a note's markdown as the words a reader sees: no backticks, link targets,
    emphasis marks or heading hashes."""
    for pattern, replacement in MARKDOWN:
        text = pattern.sub(replacement, text)
    return text


def marked(text: str) -> Markup:
    """Escape a snippet, then turn its markers into <mark>: no text can become markup."""
    return Markup(escape(text).replace(MARK[0], "<mark>").replace(MARK[1], "</mark>"))


# --- hooks -------------------------------------------------------------------------------------

@hookimpl
def register_routes():
    name = r"(?P<name>[^/]+?)(?P<format>\.json)?"
    return [
        (r"^/$", home_route),
        (r"^/-/tcpkb\.css$", css_route),
        (r"^/(favicon\.ico|-/favicon\.svg)$", favicon_route),  # before Datasette's own PNG
        (r"^/search(?P<format>\.json)?$", search_route),
        (r"^/explain(?P<format>\.json)?$", explain_route),
        (r"^/kernels(?P<format>\.json)?$", kernels_route),
        (rf"^/(?P<kind>{KIND_PATTERN})(?P<format>\.json)?$", kind_route),
        (rf"^/(?P<kind>{KIND_PATTERN})/{name}$", entry_route),
        (rf"^/scenario/{name}$", scenario_route),
    ]


@hookimpl
def asgi_wrapper():
    """Requests the site will not serve are answered before Datasette sees them (errors.guard)."""
    from . import errors

    return errors.guard


@hookimpl(hookwrapper=True)
def handle_exception(datasette, request, exception):
    """Every error Datasette answers goes through errors.quiet_error instead of its own
    handler, which prints a rich traceback per request and answers 500 for bad parameters."""
    from . import errors

    outcome = yield
    others = [r for r in outcome.get_result() if not errors.is_datasette_default(r)]
    outcome.force_result(others + [errors.quiet_error(datasette, request, exception)])


@hookimpl
def extra_css_urls():
    return ["/-/tcpkb.css"]


@hookimpl
def prepare_connection(conn, database, datasette):
    """tcpkb_explain(text): explain's matches as JSON, for the `explain` canned query."""
    if database != DB:
        return

    path = datasette.get_database(DB).path

    def tcpkb_explain(text):
        from ..query.explain import explained, public
        from ..query.lexicon import of_database

        if not text or not str(text).strip():
            return json.dumps({"matches": []})
        own = lookup.connect(path)  # a second connection: the calling one is busy with the query
        try:
            return json.dumps(public(explained(of_database(own), str(text))), ensure_ascii=False)
        finally:
            own.close()

    conn.create_function("tcpkb_explain", 1, tcpkb_explain, deterministic=True)


# a note's prose in the tables: (table, column) -> the column holding the entry it belongs to
PROSE = {("entries", "body_md"): "id", ("entries", "body_html"): "id",
         ("sections", "markdown"): "entry_id", ("sections", "html"): "entry_id"}


def _language(row, column: str, table: str | None) -> str | None:
    """The language of a cell that is not English: the Chinese summaries, and the messages
    glibc translates (source glibc:zh_CN -> zh-CN), so a screen reader and a search engine
    read them as what they are."""
    if column == "summary_zh":
        return "zh-Hans"
    if table == "messages" and column == "text" and (row["source"] or "").startswith("glibc:"):
        return row["source"].split(":", 1)[1].replace("_", "-")
    return None


@hookimpl
def render_cell(row, value, column, table, database):
    """Entry ids link to their pages; search snippets show their highlights, nothing else. A
    note's body is read on its entry page: in a table it is a link there with its length (whole
    bodies made the entries table 52,000 px tall); the JSON keeps every byte."""
    if database != DB or not isinstance(value, str):
        return None
    if lang := _language(row, column, table):
        return Markup(f'<span lang="{lang}">{escape(value)}</span>')
    if (table, column) in PROSE:
        entry_id = row[PROSE[(table, column)]]
        anchor = f"#{quote(row['slug'])}" if table == "sections" else ""
        what = "the section" if table == "sections" else "the note"
        return Markup(f'<a href="{escape(url_for(entry_id) + anchor)}">{what} on its page</a> '
                      f'<span class="muted">({len(value):,} characters of '
                      f'{"HTML" if column.endswith("html") else "markdown"})</span>')
    if column in ("id", "entry_id", "src", "dst", "errno_id", "call_id", "from_state", "to_state") \
            and ":" in value and value.split(":", 1)[0] in KINDS:
        return Markup(f'<a href="{escape(url_for(value))}">{escape(value)}</a>')
    if column == "snippet" and table is None:
        return Markup(escape(value).replace("&lt;mark&gt;", "<mark>").replace("&lt;/mark&gt;", "</mark>"))
    return None
