"""Flowcharts: the one picture model of every engine that is not a bare state machine.

It lives at the bottom of the package (it needs nothing but attrs) so that every layer,
the supervisor's trees included, can describe itself without importing the diagrams
layer; :mod:`fsmflow.diagrams` re-exports it and draws from it.

A graph executor's nodes and edges, a DAG's processors, a supervision tree's children:
each engine describes itself as a :class:`Flowchart` (nodes with multi-line labels and a
shape, edges with an optional label and a line style, optional groups, a set of node
classes such as ``current``), and this module alone turns that description into Mermaid
``flowchart`` or Graphviz DOT source. An object that can describe itself this way
implements :class:`SupportsFlowchart`; :func:`~fsmflow.diagrams.to_mermaid`,
:func:`~fsmflow.diagrams.to_dot`, :func:`~fsmflow.diagrams.render` and ``fsmflow diagram``
accept it wherever they accept a spec.

Rules the renderers keep, and that callers may rely on:

* Output is deterministic: nodes, edges and groups appear in the order given.
* Node ids must be unique; an edge or group naming an unknown node id raises
  :class:`ValueError` when the chart is built, naming the id.
* Labels are text, never markup: every character that would end a statement, start a
  comment or be read as HTML is escaped. Each entry of :attr:`FlowNode.lines` is drawn
  as its own line.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Protocol, runtime_checkable

import attrs


class NodeShape(enum.Enum):
    """How a node is drawn."""

    #: A rectangle: an ordinary step.
    BOX = "box"
    #: A rectangle with rounded corners: a step that transforms data, a child process.
    ROUNDED = "rounded"
    #: A pill: the start or the end of a flow.
    TERMINAL = "terminal"
    #: A diamond: a decision or a barrier waiting for one.
    DECISION = "decision"
    #: A circle: a pure junction (fan-out or fan-in).
    CIRCLE = "circle"
    #: A box with double vertical edges: a sub-flow (a subgraph, a nested tree).
    SUBROUTINE = "subroutine"


class EdgeStyle(enum.Enum):
    """How an edge is drawn."""

    SOLID = "solid"
    #: Conditional or optional paths.
    DASHED = "dashed"
    #: Fallback and error paths.
    DOTTED = "dotted"
    #: The path a run actually took.
    THICK = "thick"


class NodeClass(enum.Enum):
    """Highlights a node can carry; each has one fixed style in both outputs."""

    #: Where a running machine, run or tree is now.
    CURRENT = "current"
    #: Finished successfully.
    DONE = "done"
    #: Failed or stopped by an error.
    FAILED = "failed"
    #: Not running (stopped, skipped, never reached).
    MUTED = "muted"
    #: Waiting for someone outside (a barrier, an interrupt).
    WAITING = "waiting"


_STYLES: dict[NodeClass, dict[str, str]] = {
    NodeClass.CURRENT: {"fill": "#fff3c4", "stroke": "#c77c00", "width": "3px"},
    NodeClass.DONE: {"fill": "#e3f4e1", "stroke": "#2e7d32", "width": "1px"},
    NodeClass.FAILED: {"fill": "#fde2e1", "stroke": "#c62828", "width": "2px"},
    NodeClass.MUTED: {"fill": "#f2f2f2", "stroke": "#9e9e9e", "width": "1px"},
    NodeClass.WAITING: {"fill": "#e6eefc", "stroke": "#1a56c4", "width": "2px"},
}


@attrs.frozen
class FlowNode:
    """One node: its id (unique in the chart), its label lines and how it is drawn."""

    id: str
    #: The label, one entry per drawn line; the first is the node's name.
    lines: tuple[str, ...]
    shape: NodeShape = NodeShape.BOX
    classes: frozenset[NodeClass] = frozenset()

    @classmethod
    def of(
        cls,
        id: str,
        *lines: str,
        shape: NodeShape = NodeShape.BOX,
        classes: frozenset[NodeClass] = frozenset(),
    ) -> FlowNode:
        """A node labelled ``lines`` (or its id when no line is given)."""
        return cls(id, lines or (id,), shape, classes)


@attrs.frozen
class FlowEdge:
    """An edge from one node id to another, with an optional label."""

    source: str
    target: str
    label: str | None = None
    style: EdgeStyle = EdgeStyle.SOLID


@attrs.frozen
class FlowGroup:
    """A labelled box around some nodes (a parallel block, a subgraph)."""

    id: str
    label: str
    members: tuple[str, ...]


def _check_references(chart: Flowchart) -> None:
    known: set[str] = set()
    for node in chart.nodes:
        if node.id in known:
            raise ValueError(f"flowchart node id {node.id!r} is used twice")
        known.add(node.id)
    for edge in chart.edges:
        for end in (edge.source, edge.target):
            if end not in known:
                raise ValueError(
                    f"flowchart edge {edge.source!r} -> {edge.target!r} names unknown node {end!r}"
                )
    for group in chart.groups:
        for member in group.members:
            if member not in known:
                raise ValueError(f"flowchart group {group.id!r} names unknown node {member!r}")


@attrs.frozen
class Flowchart:
    """A directed picture: nodes, edges, optional groups, a title and a direction.

    Built once and rendered with :func:`flowchart_to_mermaid` or
    :func:`flowchart_to_dot` (or through ``to_mermaid`` / ``to_dot`` / ``render``).
    """

    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]
    groups: tuple[FlowGroup, ...] = ()
    title: str | None = None
    #: ``"TD"`` (top down) or ``"LR"`` (left to right).
    direction: str = attrs.field(default="TD")

    @direction.validator
    def _check_direction(self, _: object, value: str) -> None:
        if value not in ("TD", "LR"):
            raise ValueError(f"flowchart direction must be 'TD' or 'LR', not {value!r}")

    def __attrs_post_init__(self) -> None:
        _check_references(self)

    def flowchart(self) -> Flowchart:
        """The chart itself: a chart is drawable wherever a :class:`SupportsFlowchart`
        is."""
        return self


@runtime_checkable
class SupportsFlowchart(Protocol):
    """Anything that can describe itself as a :class:`Flowchart`: a graph, a DAG, a
    supervision tree, a running graph run or tree (whose current nodes are highlighted)."""

    def flowchart(self) -> Flowchart:
        """The picture of this object now."""
        ...


# -- Mermaid ------------------------------------------------------------------------------

_MERMAID_SHAPES = {
    NodeShape.BOX: ("[", "]"),
    NodeShape.ROUNDED: ("(", ")"),
    NodeShape.TERMINAL: ("([", "])"),
    NodeShape.DECISION: ("{", "}"),
    NodeShape.CIRCLE: ("((", "))"),
    NodeShape.SUBROUTINE: ("[[", "]]"),
}
_MERMAID_ARROWS = {
    EdgeStyle.SOLID: "-->",
    EdgeStyle.DASHED: "-.->",
    EdgeStyle.DOTTED: "-.->",
    EdgeStyle.THICK: "==>",
}
# Mermaid has one broken-line arrow (drawn dotted); dashed edges get longer dashes.
_MERMAID_DASHED = "stroke-dasharray:8 5"
# Inside a quoted Mermaid label these characters would end the string, start an entity
# or be read as HTML; Mermaid decodes "#<code>;" entities.
_MERMAID_ESCAPES = {ord(c): f"#{ord(c)};" for c in '"#<>&'} | {
    ord("\n"): " ",
    ord("\r"): " ",
    ord("\t"): " ",
}
_PLAIN_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# Words Mermaid's flowchart parser reads as keywords (case-insensitively).
_MERMAID_RESERVED = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click", "default"}
)


def _mermaid_ids(chart: Flowchart) -> dict[str, str]:
    """Mermaid-safe ids: a plain identifier stays, anything else becomes ``n<index>``."""
    ids: dict[str, str] = {}
    for index, node in enumerate(chart.nodes):
        plain = _PLAIN_ID.match(node.id) and node.id.lower() not in _MERMAID_RESERVED
        ids[node.id] = node.id if plain and not node.id.startswith("n_") else f"n_{index}"
    return ids


def _mermaid_label(lines: tuple[str, ...]) -> str:
    return "<br/>".join(line.translate(_MERMAID_ESCAPES) for line in lines)


def flowchart_to_mermaid(chart: Flowchart) -> str:
    """Mermaid ``flowchart`` source for ``chart``, ending with a newline."""
    ids = _mermaid_ids(chart)
    out: list[str] = []
    if chart.title:
        out += ["---", f"title: {json.dumps(chart.title, ensure_ascii=False)}", "---"]
    out.append(f"flowchart {chart.direction}")
    grouped = {member for group in chart.groups for member in group.members}
    for node in chart.nodes:
        if node.id not in grouped:
            out.append("    " + _mermaid_node(node, ids))
    for index, group in enumerate(chart.groups):
        out.append(f'    subgraph g_{index}["{_mermaid_label((group.label,))}"]')
        by_id = {node.id: node for node in chart.nodes}
        out += ["        " + _mermaid_node(by_id[member], ids) for member in group.members]
        out.append("    end")
    for edge in chart.edges:
        arrow = _MERMAID_ARROWS[edge.style]
        label = f'|"{_mermaid_label((edge.label,))}"|' if edge.label else ""
        out.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    dashed = [str(i) for i, edge in enumerate(chart.edges) if edge.style is EdgeStyle.DASHED]
    if dashed:
        out.append(f"    linkStyle {','.join(dashed)} {_MERMAID_DASHED}")
    for cls in NodeClass:
        members = [ids[node.id] for node in chart.nodes if cls in node.classes]
        if not members:
            continue
        style = _STYLES[cls]
        out.append(
            f"    classDef {cls.value} fill:{style['fill']},stroke:{style['stroke']},"
            f"stroke-width:{style['width']},color:#000"
        )
        out.append(f"    class {','.join(members)} {cls.value}")
    return "\n".join(out) + "\n"


def _mermaid_node(node: FlowNode, ids: dict[str, str]) -> str:
    opening, closing = _MERMAID_SHAPES[node.shape]
    return f'{ids[node.id]}{opening}"{_mermaid_label(node.lines)}"{closing}'


# -- DOT ----------------------------------------------------------------------------------

_DOT_SHAPES = {
    NodeShape.BOX: ("box", ""),
    NodeShape.ROUNDED: ("box", "rounded"),
    NodeShape.TERMINAL: ("box", "rounded"),
    NodeShape.DECISION: ("diamond", ""),
    NodeShape.CIRCLE: ("circle", ""),
    NodeShape.SUBROUTINE: ("box", ""),
}
_DOT_EDGE_STYLES = {
    EdgeStyle.SOLID: "",
    EdgeStyle.DASHED: "style=dashed",
    EdgeStyle.DOTTED: "style=dotted",
    EdgeStyle.THICK: "penwidth=2.5",
}


def _dot_quote(text: str) -> str:
    """A DOT double-quoted string; ``\\n`` inside ``text`` is not special, lines are
    joined by the caller with DOT's own ``\\n`` escape."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _dot_label(lines: tuple[str, ...]) -> str:
    quoted = [_dot_quote(line)[1:-1] for line in lines]
    return '"' + "\\n".join(quoted) + '"'


def flowchart_to_dot(chart: Flowchart) -> str:
    """Graphviz DOT source for ``chart``, ending with a newline (no Graphviz needed)."""
    ids = {node.id: f"n{index}" for index, node in enumerate(chart.nodes)}
    out = [f"digraph {_dot_quote(chart.title or 'flowchart')} {{"]
    out.append(f"    rankdir={'TB' if chart.direction == 'TD' else 'LR'};")
    if chart.title:
        out.append(f"    label={_dot_quote(chart.title)}; labelloc=t; fontname=Helvetica;")
    out.append('    node [fontname=Helvetica, style=filled, fillcolor="#ffffff"];')
    out.append("    edge [fontname=Helvetica, fontsize=10];")
    grouped = {member for group in chart.groups for member in group.members}
    for node in chart.nodes:
        if node.id not in grouped:
            out.append("    " + _dot_node(node, ids))
    by_id = {node.id: node for node in chart.nodes}
    for index, group in enumerate(chart.groups):
        out.append(f"    subgraph cluster_{index} {{")
        out.append(f"        label={_dot_quote(group.label)}; style=dashed;")
        out += ["        " + _dot_node(by_id[member], ids) for member in group.members]
        out.append("    }")
    for edge in chart.edges:
        attributes = [a for a in (_DOT_EDGE_STYLES[edge.style],) if a]
        if edge.label:
            attributes.append(f"label={_dot_quote(edge.label)}")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        out.append(f"    {ids[edge.source]} -> {ids[edge.target]}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_node(node: FlowNode, ids: dict[str, str]) -> str:
    shape, extra_style = _DOT_SHAPES[node.shape]
    styles = ["filled", *([extra_style] if extra_style else [])]
    attributes = [f"label={_dot_label(node.lines)}", f"shape={shape}"]
    if node.shape is NodeShape.SUBROUTINE:
        attributes.append("peripheries=2")
    # The first class in NodeClass order wins when a node carries several.
    chosen = next((cls for cls in NodeClass if cls in node.classes), None)
    if chosen is not None:
        style = _STYLES[chosen]
        attributes.append(f'fillcolor="{style["fill"]}", color="{style["stroke"]}"')
        attributes.append(f"penwidth={style['width'].removesuffix('px')}")
    attributes.append(f'style="{",".join(styles)}"')
    return f"{ids[node.id]} [{', '.join(attributes)}];"
