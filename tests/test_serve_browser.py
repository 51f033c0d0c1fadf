"""A person's path through `tcpkb serve` in a real browser: Debian's Chromium, headless.

Search "connection reset" from the home page, open ECONNRESET, and see what a reader sees.
Screenshots go to $TCPKB_SCREENSHOTS (or the test's temporary directory).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no {CHROMIUM}: apt-get install chromium (never `playwright install`)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("TCPKB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_search_connection_reset_then_read_econnreset(served, browser, shots):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(served + "/")
    page.fill("#tcpkb-q", "connection reset")
    page.screenshot(path=shots / "serve-home.png")
    page.press("#tcpkb-q", "Enter")
    page.wait_for_url("**/search?q=connection+reset")
    first = page.locator("ol.tcpkb-results li").first
    assert first.locator("a").inner_text() == "ECONNRESET"  # the entry's name, with its title beside it
    assert "Connection reset by peer" in first.inner_text()
    assert first.locator("mark").count() >= 1  # the words are highlighted in the snippet
    page.screenshot(path=shots / "serve-search.png")

    first.locator("a").click()
    page.wait_for_url("**/errno/ECONNRESET")
    assert page.locator("h1").inner_text() == "ECONNRESET"
    assert page.locator("p.subtitle").inner_text() == "Connection reset by peer"
    assert "RST" in page.locator("p.summary").first.inner_text()
    assert page.locator("p.summary.zh").is_visible()
    facts = page.locator("dl.facts").inner_text()
    assert "104" in facts and "10054" in facts  # the number, and on Windows
    assert page.locator(".body h2").count() >= 3  # the note's sections, rendered
    assert page.locator("table.verification tbody tr").count() >= 1
    ladder = page.locator("figure.ladder svg").first
    assert ladder.is_visible()
    box = ladder.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100
    page.screenshot(path=shots / "serve-econnreset.png", full_page=True)
    # Datasette's reset takes list markers and code frames away: the article puts them back
    assert page.evaluate("getComputedStyle(document.querySelector('.body ul li')).listStyleType") == "disc"
    assert page.evaluate("getComputedStyle(document.querySelector('.body pre')).borderTopStyle") == "solid"
    assert page.locator("nav.toc a").count() >= 4  # the section menu

    page.click("ul.links a[href='/errno/EPIPE']")
    page.wait_for_url("**/errno/EPIPE")
    assert page.locator("h1").inner_text() == "EPIPE"
    page.close()


def test_pages_read_on_a_phone_and_in_the_dark(served, browser, shots):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    page.goto(served + "/state/TIME_WAIT")
    assert page.locator("h1").inner_text() == "TIME_WAIT"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    r, g, b = [int(x) for x in background[background.index("(") + 1:-1].split(",")[:3]]
    assert r + g + b < 150, background  # dark
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the diagram scrolls in its frame
    frame = page.locator("figure.diagram")
    assert page.evaluate("f => f.scrollWidth > f.clientWidth", frame.element_handle())
    frame.focus()  # a keyboard reaches its other side too
    page.keyboard.press("End")
    page.screenshot(path=shots / "serve-time-wait-phone-dark.png", full_page=True)
    ctx.close()
