"""A user's graph as a picture: ``Graph.flowchart()``, Mermaid and DOT, the CLI, and a
run drawn with its position highlighted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fsmflow.cli import main
from fsmflow.diagrams import (
    EdgeStyle,
    NodeClass,
    NodeShape,
    SupportsFlowchart,
    to_dot,
    to_mermaid,
)
from fsmflow.graph import (
    BarrierWaiting,
    GraphBuilder,
    NodeStarted,
    RetryPolicy,
    append,
    execute_stream,
    interrupt,
)

from ._graphs import Counter, counter_builder


@attrs.frozen
class Topic:
    name: str


def agent_graph() -> Any:
    """Every kind of node and edge, for the picture."""

    def needs_research(state: Counter) -> bool:
        return state.n > 0

    def topics(state: Counter) -> list[Topic]:
        return [Topic("a")]

    parts = counter_builder("inner").node("x", lambda s: None).node("y", lambda s: None)
    inner = parts.edge("x", "y").start("x").end("y").build()
    b = counter_builder("agent")
    b.node("plan", lambda s: None, retry=RetryPolicy(max_attempts=3))
    b.parallel("research", {"web": lambda s: None, "docs": lambda s: None})
    b.node("search", lambda t: None, input=Topic).node("draft", lambda s: None)
    b.node("template", lambda s: None).barrier("approval", timeout=60, on_reject="draft")
    b.subgraph("publish", inner, enter=lambda s: s, leave=lambda s, c: {})
    b.edge("plan", "research", when=needs_research).fan_out("plan", "search", topics)
    b.edge("research", "draft").edge("search", "draft").edge("draft", "approval")
    b.fallback("draft", "template").edge("template", "approval").edge("approval", "publish")
    b.interrupt_before("draft")
    return b.start("plan").end("publish").build()


def test_a_graph_draws_every_kind_of_node_and_edge() -> None:
    graph = agent_graph()
    assert isinstance(graph, SupportsFlowchart)
    chart = graph.flowchart()
    nodes = {n.id: n for n in chart.nodes}
    assert nodes["__start__"].shape is NodeShape.TERMINAL
    assert nodes["__end__"].shape is NodeShape.TERMINAL
    assert nodes["plan"].lines == ("plan", "retry x3")
    assert nodes["approval"].shape is NodeShape.DECISION
    assert nodes["approval"].lines == ("approval", "barrier", "after 60s: reject")
    assert nodes["draft"].lines == ("draft", "interrupt before")
    assert nodes["search"].lines == ("search", "per Topic")
    assert nodes["research"].shape is NodeShape.BOX
    assert {"research/web", "research/docs", "research/join"} <= set(nodes)
    edges = {(e.source, e.target): e for e in chart.edges}
    assert edges[("__start__", "plan")].style is EdgeStyle.SOLID
    conditional = edges[("plan", "research")]
    assert conditional.style is EdgeStyle.DASHED and conditional.label == "needs_research"
    fan = edges[("plan", "search")]
    assert fan.style is EdgeStyle.THICK and fan.label == "send: topics"
    assert edges[("research/join", "draft")].style is EdgeStyle.SOLID
    assert edges[("draft", "template")].label == "fallback"
    assert edges[("approval", "draft")].label == "reject"
    assert edges[("approval", "publish/x")].style is EdgeStyle.SOLID  # into the subgraph
    assert ("publish/y", "__end__") in edges
    groups = {g.id: g for g in chart.groups}
    assert groups["publish"].label == "publish: subgraph inner"
    assert groups["publish"].members == ("publish/x", "publish/y")
    assert groups["research/branches"].members == ("research/web", "research/docs")
    text = to_mermaid(graph)
    assert text.startswith('---\ntitle: "agent"\n---\nflowchart TD\n')
    assert 'plan -.->|"needs_research"| research' in text
    assert 'plan ==>|"send: topics"| search' in text
    assert "\\n" not in text
    dot = to_dot(graph)
    assert dot.startswith('digraph "agent" {') and "style=dotted" in dot


def test_error_routes_are_drawn() -> None:
    b = counter_builder().node("a", lambda s: None, on_error="fix", error_key="notes")
    b.node("fix", lambda s: None).node("end", lambda s: None)
    graph = b.edge("a", "end").edge("fix", "end").start("a").end("end").build()
    edges = {(e.source, e.target): e for e in graph.flowchart().edges}
    assert edges[("a", "fix")].label == "on error" and edges[("a", "fix")].style is EdgeStyle.DOTTED


def test_fsmflow_diagram_draws_a_graph(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "tests.graph.test_diagram:AGENT"]) == 0
    out = capsys.readouterr().out
    assert "flowchart TD" in out and 'approval{"approval<br/>barrier' in out
    assert main(["diagram", "tests.graph.test_diagram:AGENT", "--format", "dot"]) == 0
    assert "digraph" in capsys.readouterr().out


async def test_a_running_graph_is_drawn_with_its_position(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow(state: Counter) -> None:
        await trio.sleep(1)

    def ask(state: Counter) -> dict[str, Any]:
        return {"trail": [interrupt("ok?", str)]}

    b = GraphBuilder(Counter, reducers={"trail": append}).node("a", lambda s: None)
    b.node("slow", slow).node("ask", ask).barrier("gate")
    b.edge("a", "slow").edge("slow", "ask").edge("ask", "gate")
    graph = b.start("a").end("gate").build()
    async with execute_stream(graph, Counter()) as run:
        async for event in run:
            chart = run.flowchart()
            classes = {n.id: n.classes for n in chart.nodes if n.classes}
            if isinstance(event, NodeStarted) and event.node == "slow":
                assert classes == {
                    "a": frozenset({NodeClass.DONE}),
                    "slow": frozenset({NodeClass.CURRENT}),
                }
            if isinstance(event, BarrierWaiting):
                assert classes["gate"] == frozenset({NodeClass.WAITING})
                await run.handle.approve(event.barrier_id)
            if type(event).__name__ == "InterruptWaiting":
                assert classes["ask"] == frozenset({NodeClass.WAITING})
                await run.handle.resume("yes")


AGENT = agent_graph()


def test_a_path_in_the_diagram_file(tmp_path: Path) -> None:
    out = tmp_path / "g.mmd"
    assert main(["diagram", "tests.graph.test_diagram:AGENT", "-o", str(out)]) == 0
    assert out.read_text().count("    subgraph g_") == 2
