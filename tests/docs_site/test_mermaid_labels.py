"""What fsmflow writes as Mermaid is what a reader sees: the site's own Mermaid (the pinned
copy the docs ship) draws awkward names character for character, one line per label line,
with no escape debris, for state diagrams and flowcharts alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_diagrams import WEIRD_NAMES, Door, door_spec, weird_spec

from fsmflow.diagrams import (
    EdgeStyle,
    Flowchart,
    FlowEdge,
    FlowGroup,
    FlowNode,
    NodeClass,
    NodeShape,
    flowchart_to_mermaid,
    to_mermaid,
)

from .chromium import Browser, Page
from .test_site import DEBRIS

# Every label's lines as drawn (HTML labels: a <br> is a line break), the node and edge
# counts, and whether Mermaid drew its error picture.
RENDER = """
(async (source) => {
    const host = document.createElement("div");
    document.body.appendChild(host);
    const {svg} = await mermaid.render("d" + document.body.children.length, source);
    host.innerHTML = svg;
    const drawn = host.querySelector("svg");
    const lines = (e) => {
        const texts = Array.from(e.querySelectorAll("foreignObject")).map(
            (f) => f.firstElementChild ? f.firstElementChild.innerText : f.textContent);
        if (!texts.length) texts.push(e.textContent);
        return texts.join("\\n").split("\\n").map((l) => l.trim()).filter((l) => l);
    };
    return {
        error: drawn.getAttribute("aria-roledescription") === "error",
        nodes: Array.from(drawn.querySelectorAll("g.node")).map((n) => ({
            id: n.id,
            lines: lines(n),
            style: (n.querySelector("rect, path, polygon, circle") || n).getAttribute("style"),
        })),
        edgeLabels: Array.from(drawn.querySelectorAll("g.edgeLabel")).map(lines),
        paths: Array.from(drawn.querySelectorAll("path.flowchart-link, path.transition"))
            .map((p) => getComputedStyle(p).strokeDasharray),
        title: (drawn.querySelector(".flowchartTitleText, .statediagramTitleText, text")
            || {textContent: ""}).textContent,
    };
})
"""


@pytest.fixture(scope="module")
def mermaid_page(
    browser: Browser, site_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Page:
    """A blank local page with the site's Mermaid loaded and initialised."""
    root = tmp_path_factory.mktemp("mermaid-page")
    shutil.copy(site_dir / "assets/javascripts/mermaid.min.js", root / "mermaid.min.js")
    (root / "index.html").write_text(
        '<!doctype html><meta charset="utf-8"><body><script src="mermaid.min.js"></script>'
        "<script>mermaid.initialize({startOnLoad: false});</script></body>",
        encoding="utf-8",
    )
    page = browser.new_page()
    page.goto((root / "index.html").as_uri())
    return page


def render(page: Page, source: str) -> dict[str, Any]:
    drawn: dict[str, Any] = page.evaluate(f"{RENDER}({json.dumps(source)})")
    assert not drawn["error"], source
    return drawn


def node_lines(drawn: dict[str, Any]) -> list[list[str]]:
    return [node["lines"] for node in drawn["nodes"]]


def test_state_diagram_names_are_drawn_verbatim(mermaid_page: Page) -> None:
    drawn = render(mermaid_page, to_mermaid(weird_spec()))
    lines = node_lines(drawn)
    titles = [node[0] for node in lines if node]
    for name in WEIRD_NAMES:
        assert name in titles, (name, titles)
    # The hook is its own line under the state's name.
    assert ["<b>", 'entry / hook "q" <locals>'] in lines
    labels = [line for node in lines for line in node] + [
        line for edge in drawn["edgeLabels"] for line in edge
    ]
    assert "go;now" in labels and "<x>" in labels
    assert not [label for label in labels if DEBRIS.search(label)]


def test_state_diagram_hooks_finals_and_highlight(mermaid_page: Page) -> None:
    drawn = render(mermaid_page, to_mermaid(door_spec().new_machine(Door.OPEN)))
    lines = node_lines(drawn)
    assert ["OPEN", "entry / creak", "exit / slam"] in lines
    assert ["any state"] in lines
    edge_labels = drawn["edgeLabels"]
    assert ["after 5s"] in edge_labels
    nodes = drawn["nodes"]
    assert isinstance(nodes, list)
    current = [n for n in nodes if n["style"] and "#fff3c4" in n["style"]]
    assert [n["lines"][0] for n in current] == ["OPEN"]
    # BROKEN only leads to "any state": not final. No state of the door is final, so
    # the only round pseudo-states are the start (and no end) marker.
    assert not any("end" in n["id"] for n in nodes)


def test_flowchart_lines_shapes_groups_and_styles(mermaid_page: Page) -> None:
    chart = Flowchart(
        nodes=(
            FlowNode.of("start", "START", shape=NodeShape.TERMINAL),
            FlowNode.of("plan", "plan", "retry: 3 attempts", classes=frozenset({NodeClass.DONE})),
            FlowNode.of("a b", 'say "hi" <b>', "50% & #1;", classes=frozenset({NodeClass.CURRENT})),
            FlowNode.of("gate", "approve?", shape=NodeShape.DECISION),
            FlowNode.of("sub", "subgraph", shape=NodeShape.SUBROUTINE),
            FlowNode.of("end", "END", shape=NodeShape.TERMINAL),
        ),
        edges=(
            FlowEdge("start", "plan"),
            FlowEdge("plan", "a b", "needs_tool? (x > 1)", EdgeStyle.DASHED),
            FlowEdge("a b", "gate", style=EdgeStyle.THICK),
            FlowEdge("gate", "sub", "yes"),
            FlowEdge("gate", "end", "on error", EdgeStyle.DOTTED),
            FlowEdge("sub", "end"),
        ),
        groups=(FlowGroup("par", "parallel: a|b", ("a b", "gate")),),
        title='agent "v2"',
    )
    drawn = render(mermaid_page, flowchart_to_mermaid(chart))
    lines = node_lines(drawn)
    for node in chart.nodes:
        assert list(node.lines) in lines, (node.lines, lines)
    edge_labels = [" ".join(label) for label in drawn["edgeLabels"]]
    for edge in chart.edges:
        if edge.label:
            assert edge.label in edge_labels
    assert drawn["title"] == 'agent "v2"'
    paths = drawn["paths"]
    assert isinstance(paths, list) and len(paths) == len(chart.edges)
    # Solid, dashed (conditional) and dotted (fallback) edges all look different.
    assert len({paths[0], paths[1], paths[4]}) == 3, paths
