"""The static site in a real browser: Debian's Chromium driven by Playwright, the site served over a
loopback HTTP server under a URL prefix. Search, follow links, look at the ladder, the phone width
and the dark theme, and leave screenshots (in $TCPKB_SCREENSHOTS, or a temporary directory)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 15_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); never `playwright install`",
                allow_module_level=True)


@pytest.fixture(scope="module")
def base_url(site_base_url):
    """The site built once per session (conftest.py), every page under /docs/."""
    return site_base_url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"], timeout=TIMEOUT_MS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("TCPKB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_page(browser, **options):
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.js_errors = errors
    return page


def test_search_broken_pipe_lands_on_epipe_then_sigpipe_then_the_diagram(browser, base_url, shots):
    page = new_page(browser, viewport={"width": 1200, "height": 900})
    try:
        page.goto(base_url + "index.html")
        page.screenshot(path=shots / "index.png")
        box = page.locator(".pagefind-ui__search-input")
        box.fill("broken pipe")
        first = page.locator(".pagefind-ui__result").first
        first.wait_for()
        page.screenshot(path=shots / "search-broken-pipe.png")
        # the best result for the words people paste is the errno itself
        assert first.locator("a.pagefind-ui__result-link").first.inner_text().strip() == "EPIPE"
        first.locator("a.pagefind-ui__result-link").first.click()
        page.wait_for_url(re.compile(r"/docs/errno/EPIPE/"))
        assert page.locator("h1").inner_text() == "EPIPE"
        page.screenshot(path=shots / "epipe-top.png")

        ladder = page.locator("figure.ladder svg").first
        ladder.scroll_into_view_if_needed()
        assert ladder.is_visible()
        size = ladder.bounding_box()
        assert size and size["width"] > 200 and size["height"] > 100, size
        page.locator("figure.ladder").first.screenshot(path=shots / "epipe-ladder.png")

        page.get_by_role("link", name="SIGPIPE", exact=True).first.click()
        page.wait_for_url(re.compile(r"/docs/signal/SIGPIPE/index.html$"))
        assert page.locator("h1").inner_text() == "SIGPIPE"

        page.get_by_role("link", name="State diagram", exact=True).first.click()
        page.wait_for_url(re.compile(r"/docs/diagram/index.html$"))
        diagram = page.locator("figure.diagram svg").first
        assert diagram.is_visible() and diagram.bounding_box()["width"] > 300
        page.screenshot(path=shots / "state-diagram.png", full_page=True)
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def search_ui(page, query: str) -> list[str]:
    """Type a query into Pagefind's UI and return the result pages' URLs, best first."""
    page.fill(".pagefind-ui__search-input:visible", query)
    page.wait_for_function("""q => {
        const shown = [...document.querySelectorAll("#search > div")].find(d => !d.hidden) || document;
        const message = shown.querySelector(".pagefind-ui__message");
        const results = [...shown.querySelectorAll(".pagefind-ui__result")];
        return message && message.textContent.includes(q) && results.length > 0
            && results.every(r => r.querySelector(".pagefind-ui__result-title a"));
    }""", arg=query)
    return page.eval_on_selector_all(  # each result's first link is the page; the rest are its sections
        "#search > div:not([hidden]) .pagefind-ui__result", "rs => rs.map(r => r.querySelector('a.pagefind-ui__result-link').getAttribute('href'))")


def test_search_finds_identifiers_whole_and_in_parts_and_filters_by_kind(browser, base_url):
    page = new_page(browser)
    try:
        page.goto(base_url + "search/index.html")
        for query, expected in [("SO_REUSEADDR", "/sockopt/SO_REUSEADDR/"), ("reuseaddr", "/sockopt/SO_REUSEADDR/"),
                                ("ECONNRESET", "/errno/ECONNRESET/"), ("connection reset by peer", "/errno/ECONNRESET/"),
                                ("tcp_fin_timeout", "/sysctl/net.ipv4.tcp_fin_timeout/"),
                                ("fin timeout", "/sysctl/net.ipv4.tcp_fin_timeout/"), ("ewouldblock", "/errno/EAGAIN/")]:
            urls = search_ui(page, query)
            assert any(expected in u for u in urls[:3]), (query, urls[:5])
            assert all(u.startswith("/docs/") for u in urls), urls
        # the kind filter, through Pagefind's own API
        only = page.evaluate("""async () => {
            const pf = await import(new URL("../pagefind/pagefind.js", location.href).href);
            const r = await pf.search("reset", {filters: {kind: "errno"}});
            const all = await pf.search("reset");
            const top = await Promise.all(r.results.slice(0, 10).map(x => x.data()));
            return {total: r.results.length, all: all.results.length, kinds: top.map(d => d.filters.kind)};
        }""")
        assert 0 < only["total"] < only["all"], only
        assert all(k == ["errno"] for k in only["kinds"]), only
        # the query from the header's plain GET form is run on arrival
        page.goto(base_url + "search/index.html?q=SIGPIPE")
        page.locator(".pagefind-ui__result").first.wait_for()
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_phone_width_has_no_horizontal_scroll(browser, base_url, shots):
    page = new_page(browser, viewport={"width": 360, "height": 740}, device_scale_factor=2)
    try:
        for path in ("index.html", "errno/EPIPE/index.html", "errno/index.html", "state/TIME_WAIT/index.html",
                     "diagram/index.html", "scenario/second_write_after_peer_close_fails_with_epipe/index.html",
                     "sysctl/net.ipv4.tcp_fin_timeout/index.html"):
            page.goto(base_url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} is {width}px wide at a 360px viewport"
        page.goto(base_url + "errno/EPIPE/index.html")
        page.screenshot(path=shots / "phone-epipe.png")
        page.locator("figure.ladder").first.scroll_into_view_if_needed()
        page.screenshot(path=shots / "phone-epipe-ladder.png")
    finally:
        page.context.close()


def test_dark_theme_has_a_dark_background(browser, base_url, shots):
    page = new_page(browser, viewport={"width": 1100, "height": 900}, color_scheme="dark")
    try:
        page.goto(base_url + "state/TIME_WAIT/index.html")
        rgb = page.evaluate("getComputedStyle(document.body).backgroundColor")
        r, g, b = (int(x) for x in re.findall(r"\d+", rgb)[:3])
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 60, rgb
        text = page.evaluate("getComputedStyle(document.body).color")
        assert sum(int(x) for x in re.findall(r"\d+", text)[:3]) > 450, text
        page.screenshot(path=shots / "dark-time-wait.png")
        page.goto(base_url + "errno/EPIPE/index.html")
        page.locator("figure.ladder").first.scroll_into_view_if_needed()
        page.screenshot(path=shots / "dark-epipe-ladder.png")
        page.goto(base_url + "index.html")
        search_ui(page, "time wait")
        page.screenshot(path=shots / "dark-index-search.png")
    finally:
        page.context.close()


def test_readable_without_javascript(browser, base_url):
    page = new_page(browser, java_script_enabled=False)
    try:
        page.goto(base_url + "errno/EPIPE/index.html")
        assert page.locator("h1").inner_text() == "EPIPE"
        assert page.locator("figure.ladder svg").first.is_visible()
        assert page.locator("#causes").is_visible()
        page.goto(base_url + "index.html")
        assert page.locator("#search form").is_visible()  # the plain search form stands in for the UI
    finally:
        page.context.close()


def test_chinese_search_finds_the_socket_errors(browser, base_url):
    """Chinese words are searched in the Chinese index (Pagefind splits its index by language):
    connection, reset, pipe and timeout find the errors that mean them among the first three."""
    page = new_page(browser)
    try:
        page.goto(base_url + "search/index.html")
        for query, expected in [("连接", "/errno/ECONNRESET/"), ("重置", "/errno/ECONNRESET/"),
                                ("管道", "/errno/EPIPE/"), ("超时", "/errno/ETIMEDOUT/")]:
            urls = search_ui(page, query)
            assert any(expected in u for u in urls[:3]), (query, urls[:5])
            assert all(u.startswith("/docs/") for u in urls), urls
        # back to English in the same box: the English index answers again
        urls = search_ui(page, "broken pipe")
        assert "/errno/EPIPE/" in urls[0], urls[:3]
        page.goto(base_url + "search/index.html?q=" + "超时")  # the header form's plain GET
        page.locator(".pagefind-ui__result").first.wait_for()
        assert "/errno/ETIMEDOUT/" in " ".join(page.eval_on_selector_all(
            ".pagefind-ui__result a.pagefind-ui__result-link", "as => as.slice(0, 3).map(a => a.href)"))
        assert not page.js_errors, page.js_errors
    finally:
        page.context.close()


def test_kind_pages_filter_their_rows(browser, base_url):
    page = new_page(browser, viewport={"width": 390, "height": 844})
    try:
        page.goto(base_url + "errno/index.html")
        rows = page.locator("#errno-table tbody tr:not(.group)")
        total = rows.count()
        box = page.get_by_label("Filter errors")
        box.fill("reset")
        visible = page.locator("#errno-table tbody tr:not(.group):visible")
        names = visible.locator("th a").all_inner_texts()
        assert "ECONNRESET" in names and 0 < len(names) < total, names
        assert page.locator("form.kind-filter output").inner_text() == f"{len(names)} of {total} shown"
        box.fill("")
        assert visible.count() == total
    finally:
        page.context.close()
    page = new_page(browser, java_script_enabled=False)
    try:  # without JavaScript there is no box, and every row shows
        page.goto(base_url + "errno/index.html")
        assert not page.locator("form.kind-filter").is_visible()
        assert page.locator("#errno-table tbody tr:not(.group):visible").count() > 100
    finally:
        page.context.close()
