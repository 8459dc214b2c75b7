"""The built docs site in headless Chromium with the network off: every page loads only
from the site itself, every diagram renders, and no label shows escape debris.

Set ``FSMFLOW_SITE_SCREENSHOTS=DIR`` to save a PNG of every page with diagrams and of each
of its diagrams (to look at the layout, which no assertion can judge).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .chromium import Browser, Page

# Material draws a diagram into a closed shadow root; open it so the test can read it.
OPEN_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
    return attachShadow.call(this, Object.assign({}, init, {mode: "open"}));
};
"""

# What each rendered diagram looks like: its size, its label texts, whether Mermaid drew
# its error picture instead.
DIAGRAMS = """
Array.from(document.querySelectorAll("div.mermaid")).map((host) => {
    const svg = host.shadowRoot && host.shadowRoot.querySelector("svg");
    if (!svg) return null;
    const box = svg.getBoundingClientRect();
    const labels = Array.from(
        svg.querySelectorAll(".nodeLabel, .edgeLabel, .label, text, title, .titleText")
    ).map((e) => e.textContent.trim()).filter((t) => t);
    return {
        width: box.width,
        height: box.height,
        error: svg.getAttribute("aria-roledescription") === "error"
            || /Syntax error/.test(svg.textContent),
        type: svg.getAttribute("aria-roledescription"),
        labels: labels,
        text: svg.textContent,
    };
})
"""

# The page's visible text outside code blocks (where Mermaid source may be shown on
# purpose).
PROSE = """
(() => {
    const body = document.body.cloneNode(true);
    body.querySelectorAll("pre, code, script, style").forEach((e) => e.remove());
    return body.textContent;
})()
"""

RAW_SOURCE = re.compile(r"stateDiagram-v2|flowchart (?:TD|LR|TB)")
# Debris of escaping gone wrong: a literal backslash-n, an entity code Mermaid did not
# decode (#60;), an HTML entity or tag shown as text.
DEBRIS = re.compile(r"\\n|#\d+;|&(?:lt|gt|amp|quot|#\d+);|<br\s*/?>")


def site_pages(site_dir: Path) -> list[str]:
    """Every HTML page of the site, as a path relative to its root."""
    return sorted(
        str(path.relative_to(site_dir))
        for path in site_dir.rglob("*.html")
        if "assets" not in path.relative_to(site_dir).parts
    )


def diagrams_in(html: str) -> int:
    return html.count('<pre class="mermaid">')


def test_the_site_has_pages_with_diagrams(site_dir: Path) -> None:
    pages = site_pages(site_dir)
    with_diagrams = [p for p in pages if diagrams_in((site_dir / p).read_text("utf-8"))]
    assert "index.html" in with_diagrams
    assert "getting-started/index.html" in with_diagrams
    assert len(with_diagrams) >= 6
    # The renderer ships with the site.
    assert (site_dir / "assets/javascripts/mermaid.min.js").stat().st_size > 1_000_000


@pytest.fixture
def page(browser: Browser) -> Page:
    tab = browser.new_page()
    tab.add_init_script(OPEN_SHADOW_ROOTS)
    return tab


def load_and_render(page: Page, url: str, expected: int) -> list[dict[str, Any]]:
    """Load ``url`` and wait until its ``expected`` diagrams rendered (or fail saying
    which stayed source)."""
    page.goto(url)
    try:
        page.wait_for(
            f"document.querySelectorAll('div.mermaid').length === {expected} && "
            "Array.from(document.querySelectorAll('div.mermaid'))"
            ".every((d) => d.shadowRoot && d.shadowRoot.querySelector('svg'))",
            timeout=30,
        )
    except Exception as exc:
        left = page.evaluate(
            "Array.from(document.querySelectorAll('pre')).map((p) => p.textContent)"
            ".filter((t) => /stateDiagram-v2|flowchart/.test(t)).map((t) => t.slice(0, 80))"
        )
        pytest.fail(f"{url}: diagrams not rendered ({exc}); still source: {left}")
    diagrams: list[dict[str, Any]] = page.evaluate(DIAGRAMS)
    return diagrams


def test_every_page_renders_its_diagrams_offline(
    site_dir: Path, site_url: str, page: Page, tmp_path: Path
) -> None:
    screenshots = os.environ.get("FSMFLOW_SITE_SCREENSHOTS")
    origin = urlsplit(site_url).netloc
    problems: list[str] = []
    rendered = 0
    for relative in site_pages(site_dir):
        expected = diagrams_in((site_dir / relative).read_text("utf-8"))
        url = site_url + relative
        diagrams = load_and_render(page, url, expected)
        rendered += len(diagrams)
        for index, diagram in enumerate(diagrams):
            where = f"{relative} diagram {index + 1}"
            if diagram["error"]:
                problems.append(f"{where}: Mermaid drew an error: {diagram['text'][:200]}")
            if not (diagram["width"] > 50 and diagram["height"] > 20):
                problems.append(f"{where}: drawn {diagram['width']}x{diagram['height']}")
            if not diagram["labels"]:
                problems.append(f"{where}: no labels")
            debris = [label for label in diagram["labels"] if DEBRIS.search(label)]
            if debris:
                problems.append(f"{where}: labels with escape debris: {debris[:5]}")
        prose = page.evaluate(PROSE)
        if RAW_SOURCE.search(prose):
            problems.append(f"{relative}: raw diagram source in the page text")
        foreign = [u for u in page.collect_requests() if urlsplit(u).scheme in ("http", "https")]
        foreign = [u for u in foreign if urlsplit(u).netloc != origin]
        if foreign:
            problems.append(f"{relative}: requested outside the site: {foreign}")
        if screenshots and expected:
            name = relative.replace("/", "_").removesuffix(".html")
            Path(screenshots).mkdir(parents=True, exist_ok=True)
            page.screenshot(Path(screenshots) / f"{name}.png")
            for index in range(expected):
                shot = Path(screenshots) / f"{name}.{index + 1}.png"
                page.screenshot(shot, selector="div.mermaid", index=index)
    assert not problems, json.dumps(problems, indent=2)
    assert rendered >= 10


def test_snippets_were_included(site_dir: Path) -> None:
    # A block snippet line that was not replaced by its file shows as a paragraph of its
    # own; the getting started page carries the whole example program.
    leftovers = [
        p for p in site_pages(site_dir) if "<p>--8&lt;--" in (site_dir / p).read_text("utf-8")
    ]
    assert not leftovers
    page = (site_dir / "getting-started/index.html").read_text("utf-8")
    for shown in ("Turnstile", "initial_context", "test_a_coin_lets_one_person_through"):
        assert shown in page
