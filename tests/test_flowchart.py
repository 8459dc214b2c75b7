"""The flowchart model every non-FSM engine draws itself with, and its two renderers."""

from __future__ import annotations

import pytest

from fsmflow.cli import main
from fsmflow.dag import DagBuilder, Intent
from fsmflow.diagrams import (
    EdgeStyle,
    Flowchart,
    FlowEdge,
    FlowGroup,
    FlowNode,
    NodeClass,
    NodeShape,
    SupportsFlowchart,
    flowchart_to_dot,
    flowchart_to_mermaid,
    resolve_target,
    to_dot,
    to_mermaid,
)


def _chart() -> Flowchart:
    return Flowchart(
        nodes=(
            FlowNode.of("start", "START", shape=NodeShape.TERMINAL),
            FlowNode.of("plan", "plan", "retry: 3 attempts", classes=frozenset({NodeClass.DONE})),
            FlowNode.of("a b", 'say "hi" <b>', classes=frozenset({NodeClass.CURRENT})),
            FlowNode.of("end", "END", shape=NodeShape.TERMINAL),
        ),
        edges=(
            FlowEdge("start", "plan"),
            FlowEdge("plan", "a b", "needs_tool?", EdgeStyle.DASHED),
            FlowEdge("a b", "end", style=EdgeStyle.DOTTED),
        ),
        groups=(FlowGroup("par", "parallel", ("a b",)),),
        title="agent",
    )


def test_mermaid_lines_shapes_groups_and_classes() -> None:
    text = flowchart_to_mermaid(_chart())
    assert text.startswith('---\ntitle: "agent"\n---\nflowchart TD\n')
    assert 'start(["START"])' in text
    # Each label line is its own drawn line; no literal backslash-n anywhere.
    assert 'plan["plan<br/>retry: 3 attempts"]' in text
    assert "\\n" not in text
    # Ids that are not plain identifiers or are Mermaid keywords are replaced.
    assert 'n_2["say #34;hi#34; #60;b#62;"]' in text
    assert 'n_3(["END"])' in text
    assert 'subgraph g_0["parallel"]' in text
    assert 'plan -.->|"needs_tool?"| n_2' in text
    assert "class n_2 current" in text
    assert "class plan done" in text


def test_dot_output_is_valid_looking_and_escaped() -> None:
    text = flowchart_to_dot(_chart())
    assert text.startswith('digraph "agent" {')
    assert 'label="plan\\nretry: 3 attempts"' in text
    assert 'label="say \\"hi\\" <b>"' in text
    assert "subgraph cluster_0" in text
    assert 'n1 -> n2 [style=dashed, label="needs_tool?"];' in text
    assert text.rstrip().endswith("}")


@pytest.mark.parametrize(
    ("nodes", "edges", "groups", "message"),
    [
        ((FlowNode.of("a"), FlowNode.of("a")), (), (), "node id 'a' is used twice"),
        ((FlowNode.of("a"),), (FlowEdge("a", "b"),), (), "unknown node 'b'"),
        ((FlowNode.of("a"),), (), (FlowGroup("g", "g", ("z",)),), "group 'g' names unknown"),
    ],
)
def test_bad_charts_name_the_culprit(
    nodes: tuple[FlowNode, ...],
    edges: tuple[FlowEdge, ...],
    groups: tuple[FlowGroup, ...],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        Flowchart(nodes, edges, groups)


def test_direction_is_checked() -> None:
    with pytest.raises(ValueError, match="direction"):
        Flowchart((), (), direction="BT")


def _dag() -> object:
    builder = DagBuilder[str]()
    builder.add("parse", lambda inp: inp.payload, intent=Intent.TRANSFORM)
    builder.add("count", lambda inp: len(inp.payload), after=["parse"])
    return builder.build()


def test_a_dag_is_drawable_through_the_common_functions() -> None:
    dag = _dag()
    assert isinstance(dag, SupportsFlowchart)
    assert resolve_target(dag, "mod:DAG") is dag
    mermaid = to_mermaid(dag, title="pipeline")
    assert 'title: "pipeline"' in mermaid
    assert "parse --> count" in mermaid
    assert "n0 -> n1;" in to_dot(dag)


def test_cli_draws_a_dag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "examples.document_pipeline:build_pipeline"]) == 0
    out = capsys.readouterr().out
    assert "flowchart LR" in out
    assert "parse --> word_stats" in out
    assert main(["diagram", "examples.document_pipeline:build_pipeline", "-f", "dot"]) == 0
    assert "digraph" in capsys.readouterr().out


def test_dashed_and_dotted_edges_differ_in_mermaid() -> None:
    text = flowchart_to_mermaid(_chart())
    # Edge 1 is dashed (conditional): longer dashes than Mermaid's dotted arrow.
    assert "    linkStyle 1 stroke-dasharray:8 5\n" in text
    assert text.count("linkStyle") == 1


def test_highlight_classes_set_a_dark_text_colour() -> None:
    # Light fills keep dark text even on a dark page theme.
    text = flowchart_to_mermaid(_chart())
    assert "classDef current fill:#fff3c4,stroke:#c77c00,stroke-width:3px,color:#000" in text


def test_a_chart_is_drawable_itself() -> None:
    chart = _chart()
    assert isinstance(chart, SupportsFlowchart)
    assert chart.flowchart() is chart
    assert to_mermaid(chart) == flowchart_to_mermaid(chart)
    assert resolve_target(chart, "mod:CHART") is chart
