"""A graph as a :class:`~fsmflow.diagrams.Flowchart`: what ``Graph.flowchart()`` draws.

Shapes: start and end are pills, function nodes boxes, barriers diamonds, parallel nodes a
box leading into their branches (grouped) and a join circle out of them, subgraphs a group
holding the child graph's own nodes. Lines: normal edges solid, conditional edges dashed with the
condition's name, fallback and error routes dotted, fan-outs thick (labelled ``send``).
Static interrupt points and retry/timeout settings appear in the node's label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..diagrams import EdgeStyle, Flowchart, FlowEdge, FlowGroup, FlowNode, NodeClass, NodeShape
from ._nodes import BarrierNode, EdgeKind, FunctionNode, Node, ParallelNode, SubgraphNode, type_name

if TYPE_CHECKING:
    from ._graph import Graph

START_ID = "__start__"
END_ID = "__end__"

_EDGE_STYLES = {
    EdgeKind.NORMAL: EdgeStyle.SOLID,
    EdgeKind.CONDITIONAL: EdgeStyle.DASHED,
    EdgeKind.FALLBACK: EdgeStyle.DOTTED,
    EdgeKind.FAN_OUT: EdgeStyle.THICK,
}


def _options_lines(node: Node[Any]) -> list[str]:
    lines = []
    options = node.options
    if options.retry is not None:
        lines.append(f"retry x{options.retry.max_attempts}")
    if options.timeout is not None:
        lines.append(f"timeout {options.timeout:g}s")
    return lines


class _Drawer:
    def __init__(self, highlight: Mapping[str, NodeClass]) -> None:
        self.highlight = highlight
        self.nodes: list[FlowNode] = []
        self.edges: list[FlowEdge] = []
        self.groups: list[FlowGroup] = []

    def _node(self, id: str, lines: list[str], shape: NodeShape, path: str) -> None:
        found = self.highlight.get(path)
        classes = frozenset({found}) if found is not None else frozenset()
        self.nodes.append(FlowNode(id, tuple(lines), shape, classes))

    def draw(self, graph: Graph[Any], prefix: str) -> tuple[str, str]:
        """Draw ``graph``'s nodes and edges with ids under ``prefix``; return the ids an
        edge into the graph and an edge out of it attach to."""
        entries: dict[str, str] = {}
        exits: dict[str, str] = {}
        fan_targets = {e.target for e in graph.edges if e.kind is EdgeKind.FAN_OUT}
        for name, node in graph.nodes.items():
            path = prefix + name
            extra = _options_lines(node)
            if name in graph.interrupt_before:
                extra.append("interrupt before")
            if name in graph.interrupt_after:
                extra.append("interrupt after")
            if isinstance(node, ParallelNode):
                join = f"{path}/join"
                lines = [name, f"parallel ({node.strategy.value})", *extra]
                self._node(path, lines, NodeShape.BOX, path)
                branch_ids: list[str] = []
                for branch in node.branches:
                    branch_id = f"{path}/{branch.name}"
                    self._node(branch_id, [branch.name], NodeShape.ROUNDED, branch_id)
                    self.edges.append(FlowEdge(path, branch_id))
                    self.edges.append(FlowEdge(branch_id, join))
                    branch_ids.append(branch_id)
                self._node(join, ["join"], NodeShape.CIRCLE, join)
                self.groups.append(
                    FlowGroup(f"{path}/branches", f"{name}: branches", tuple(branch_ids))
                )
                entries[name], exits[name] = path, join
            elif isinstance(node, SubgraphNode):
                first = len(self.nodes)
                group_start = len(self.groups)
                entry, exit_ = self.draw(node.graph, path + "/")
                nested = {m for g in self.groups[group_start:] for m in g.members}
                members = tuple(n.id for n in self.nodes[first:] if n.id not in nested)
                group_label = f"{name}: subgraph {node.graph.name}"
                if extra:
                    group_label += f" ({', '.join(extra)})"
                self.groups.append(FlowGroup(path, group_label, members))
                entries[name], exits[name] = entry, exit_
            elif isinstance(node, BarrierNode):
                lines = [name, "barrier"]
                if node.timeout is not None:
                    lines.append(f"after {node.timeout:g}s: {node.default.value}")
                self._node(path, lines + extra, NodeShape.DECISION, path)
                entries[name] = exits[name] = path
            else:
                assert isinstance(node, FunctionNode)
                lines = [name]
                if node.input_type is not None:
                    lines.append(f"per {type_name(node.input_type)}")
                elif name in fan_targets:
                    lines.append("per send")
                self._node(path, lines + extra, NodeShape.BOX, path)
                entries[name] = exits[name] = path
        for edge in graph.edges:
            label: str | None = edge.label
            if edge.kind is EdgeKind.FAN_OUT:
                label = f"send: {label}" if label else "send"
            self.edges.append(
                FlowEdge(exits[edge.source], entries[edge.target], label, _EDGE_STYLES[edge.kind])
            )
        for name, node in graph.nodes.items():
            if isinstance(node, BarrierNode) and node.on_reject is not None:
                self.edges.append(
                    FlowEdge(exits[name], entries[node.on_reject], "reject", EdgeStyle.DOTTED)
                )
            if node.options.on_error is not None:
                self.edges.append(
                    FlowEdge(
                        exits[name], entries[node.options.on_error], "on error", EdgeStyle.DOTTED
                    )
                )
        return entries[graph.start], exits[graph.end]


def draw_graph(
    graph: Graph[Any], *, title: str | None, highlight: Mapping[str, NodeClass]
) -> Flowchart:
    """The flowchart of ``graph`` (see the module docstring); ``highlight`` maps node
    paths (``name``, ``sub/name`` inside a subgraph, ``name/branch`` for a parallel
    branch) to a class."""
    drawer = _Drawer(highlight)
    drawer._node(START_ID, ["start"], NodeShape.TERMINAL, START_ID)
    entry, exit_ = drawer.draw(graph, "")
    drawer._node(END_ID, ["end"], NodeShape.TERMINAL, END_ID)
    drawer.edges.insert(0, FlowEdge(START_ID, entry))
    drawer.edges.append(FlowEdge(exit_, END_ID))
    return Flowchart(
        tuple(drawer.nodes),
        tuple(drawer.edges),
        tuple(drawer.groups),
        title=title if title is not None else graph.name,
    )
