"""Every page type of both web faces, read by axe-core in Debian's Chromium: at a phone's width
(390 px) and a desktop's (1366 px), in the light and the dark theme. No critical or serious
violation, no sideways scroll, every drawing's text at 10 px or more, a skip link to <main>, and
Chinese text marked as Chinese.

axe-core comes from its npm package (`npm install --prefix tests`, as .ci/run does), injected by
Playwright. One browser tab per face is reused; the four looks of a page are had by resizing and
by emulating the colour scheme, not by loading it again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
LOOKS = [(width, scheme) for width in (390, 1366) for scheme in ("light", "dark")]
# A theme changes colours only: in the dark, the rules that read colours are enough (every rule
# runs in the light), which halves the time of the slowest part on a 2-core CI machine.
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
BLOCKING = ("critical", "serious")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); never `playwright install`",
                allow_module_level=True)
if not AXE.is_file():
    pytest.skip("axe-core is missing: npm install --prefix tests", allow_module_level=True)

# One entry of every kind: the one most notes link to, so the page is a full one.
MOST_LINKED = """select e.id from entries e left join links l on l.dst = e.id where e.kind = ?
                 group by e.id order by count(l.dst) desc, e.id limit 1"""
SCENARIO = "select scenario from scenario_entries where entry_id = 'errno:ECONNRESET' order by rowid limit 1"


def kinds() -> tuple[str, ...]:
    from tcpkb.kinds import MODULES

    return MODULES


def entry_paths(db) -> dict[str, str]:
    out = {}
    for kind in kinds():
        row = db.execute(MOST_LINKED, (kind,)).fetchone()
        assert row, f"no entry of kind {kind}"
        out[kind] = row[0].split(":", 1)[1]
    return out


STATIC = [f"entry:{k}" for k in kinds()] + ["kind", "search", "diagram", "scenario", "scenarios", "kernels", "home"]
DATASETTE = [f"entry:{k}" for k in kinds()] + ["kind", "search", "explain", "scenario", "kernels", "home",
                                                "database", "table", "row", "canned-query"]


def static_path(page: str, db) -> str:
    if page.startswith("entry:"):
        kind = page.split(":", 1)[1]
        return f"{kind}/{entry_paths(db)[kind]}/index.html"
    return {"kind": "errno/index.html", "search": "search/index.html?q=reset", "diagram": "diagram/index.html",
            "scenario": f"scenario/{db.execute(SCENARIO).fetchone()[0]}/index.html",
            "scenarios": "scenario/index.html", "kernels": "kernels/index.html", "home": "index.html"}[page]


def datasette_path(page: str, db) -> str:
    if page.startswith("entry:"):
        kind = page.split(":", 1)[1]
        return f"/{kind}/{entry_paths(db)[kind]}"
    return {"kind": "/errno", "search": "/search?q=connection+reset", "explain": "/explain?text=write%3A+Broken+pipe",
            "scenario": f"/scenario/{db.execute(SCENARIO).fetchone()[0]}", "kernels": "/kernels", "home": "/",
            "database": "/tcpkb", "table": "/tcpkb/entries?_size=20", "row": "/tcpkb/errno/errno:ECONNRESET",
            "canned-query": "/tcpkb/errno_by_number?number=54&platform=darwin"}[page]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def tab(browser):
    """One tab for every page of the module: resized and re-themed, never reopened."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.js_errors = errors
    yield page
    context.close()


SMALLEST_DRAWN_TEXT = """() => {
    let smallest = Infinity;
    for (const svg of document.querySelectorAll("figure svg")) {
        const box = svg.viewBox && svg.viewBox.baseVal;
        if (!box || !box.width || !svg.getBoundingClientRect().width) continue;
        const scale = svg.getBoundingClientRect().width / box.width;
        for (const t of svg.querySelectorAll("text")) {
            if (!t.textContent.trim()) continue;
            smallest = Math.min(smallest, parseFloat(getComputedStyle(t).fontSize) * scale);
        }
    }
    return smallest;
}"""

UNMARKED_CHINESE = """() => {
    const han = /[\\u3400-\\u9fff]/, out = [];
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) {
        const node = walk.currentNode, owner = node.parentElement;
        if (!han.test(node.textContent) || owner.closest("script, style, svg")) continue;
        const lang = (owner.closest("[lang]") || document.documentElement).getAttribute("lang") || "";
        if (!/^(zh|ja|ko)(-|$)/i.test(lang)) out.push(node.textContent.trim().slice(0, 40));
    }
    return out;
}"""


def read_page(tab, url: str, ready: str | None = None) -> list[str]:
    """Load a page, then read it in each look; the problems found, one line each."""
    tab.goto(url)
    if ready:
        tab.locator(ready).first.wait_for()
    problems = []
    assert tab.evaluate("document.documentElement.lang") == "en"
    assert tab.locator("a.skip[href='#main']").count() == 1 and tab.locator("main#main").count() == 1
    assert "width=device-width" in tab.get_attribute("meta[name=viewport]", "content")
    problems += [f"Chinese text not marked lang=zh: {t!r}" for t in tab.evaluate(UNMARKED_CHINESE)]
    tab.add_script_tag(path=str(AXE))
    for width, scheme in LOOKS:
        tab.set_viewport_size({"width": width, "height": 900})
        tab.emulate_media(color_scheme=scheme)
        options = {"resultTypes": ["violations"]}
        if scheme == "dark":
            options["runOnly"] = {"type": "rule", "values": COLOUR_RULES}
        result = tab.evaluate("options => axe.run(document, options)", options)
        for v in result["violations"]:
            if v["impact"] in BLOCKING:
                targets = [n["target"] for n in v["nodes"][:3]]
                problems.append(f"{width}px {scheme}: {v['impact']} {v['id']} ({len(v['nodes'])}): {targets}")
        wide = tab.evaluate("document.documentElement.scrollWidth")
        if wide > width:
            problems.append(f"{width}px {scheme}: the page scrolls sideways ({wide}px wide)")
        if width == 390 and (small := tab.evaluate(SMALLEST_DRAWN_TEXT)) < 9.95:
            problems.append(f"{width}px: a drawing's text is {small:.1f}px")
    tab.emulate_media(color_scheme="light")
    return problems


@pytest.mark.parametrize("page", STATIC)
def test_static_site_page_reads_everywhere(tab, site_base_url, db, page):
    ready = ".pagefind-ui__result" if page == "search" else None
    problems = read_page(tab, site_base_url + static_path(page, db), ready)
    assert not problems, "\n".join(problems)
    assert not tab.js_errors, tab.js_errors


@pytest.mark.parametrize("page", DATASETTE)
def test_datasette_page_reads_everywhere(tab, served, db, page):
    problems = read_page(tab, served + datasette_path(page, db))
    assert not problems, "\n".join(problems)


def test_diagram_states_are_links_a_keyboard_reaches(tab, site_base_url):
    tab.goto(site_base_url + "diagram/index.html")
    svg = tab.locator("figure.diagram svg").first
    assert svg.get_attribute("role") != "img"  # an image's parts are hidden from assistive technology
    links = svg.locator("a")
    assert links.count() >= 10
    tab.keyboard.press("Tab")  # the skip link comes first
    assert tab.evaluate("document.activeElement.className") == "skip"
    for _ in range(60):  # then through the header to the diagram's first state
        tab.keyboard.press("Tab")
        if tab.evaluate("!!document.activeElement.closest('figure.diagram svg')"):
            break
    else:
        pytest.fail("no state of the diagram takes the keyboard's focus")
    outline = tab.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused state shows no outline"
