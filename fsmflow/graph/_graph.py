"""The graph model: nodes, edges, routing and the structure hash.

A :class:`Graph` is immutable once built (use :class:`~fsmflow.graph.GraphBuilder`).
Routing out of a node tries its conditional edges in declaration order, then its fan-out
edge, then its normal edge, then its fallback edge; the first that applies wins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..diagrams import Flowchart
from ._diagram import draw_graph
from ._errors import ConditionTried, EdgeFailed, Unrouted
from ._interrupts import BarrierId
from ._nodes import BarrierNode, Edge, EdgeKind, Node, describe_node, extra_targets
from ._results import FanOut, Send
from ._state import StateSchema

if TYPE_CHECKING:
    from ..diagrams import NodeClass

S = TypeVar("S")


_ROUTE_ORDER = {
    EdgeKind.CONDITIONAL: 0,
    EdgeKind.FAN_OUT: 1,
    EdgeKind.NORMAL: 2,
    EdgeKind.FALLBACK: 3,
}


class Graph(Generic[S]):
    """A validated graph over state type ``S``. Build it with ``GraphBuilder``.

    A graph draws itself (:meth:`flowchart`), so ``fsmflow diagram MODULE:GRAPH`` and
    :func:`fsmflow.diagrams.to_mermaid` accept it.
    """

    def __init__(
        self,
        name: str,
        schema: StateSchema[S],
        nodes: Mapping[str, Node[S]],
        edges: tuple[Edge[S], ...],
        start: str,
        end: str,
        interrupt_before: frozenset[str] = frozenset(),
        interrupt_after: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.schema = schema
        self.nodes: dict[str, Node[S]] = dict(nodes)
        self.edges = edges
        self.start = start
        self.end = end
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        out: dict[str, list[Edge[S]]] = {n: [] for n in self.nodes}
        for edge in edges:
            out[edge.source].append(edge)
        #: Outgoing edges per node, in routing order (stable within a kind).
        self.routes: dict[str, tuple[Edge[S], ...]] = {
            n: tuple(sorted(es, key=lambda e: _ROUTE_ORDER[e.kind])) for n, es in out.items()
        }
        #: Where each node may go: its edges' targets, a barrier's ``on_reject`` and an
        #: ``on_error`` route.
        self.targets: dict[str, frozenset[str]] = {
            n: frozenset(e.target for e in es) | extra_targets(self.nodes[n])
            for n, es in out.items()
        }
        self.barriers = tuple(n for n, node in self.nodes.items() if isinstance(node, BarrierNode))
        self.structure = self._structure()
        text = json.dumps(self.structure, sort_keys=True, separators=(",", ":"))
        self.hash = hashlib.sha256(text.encode()).hexdigest()

    @property
    def state_type(self) -> type[S]:
        return self.schema.state_type

    def _structure(self) -> dict[str, Any]:
        """What the structure hash covers: names, kinds, edges, start, end, reducers and
        interrupt points — not the functions' code, so it is the same in every process
        running this definition."""
        return {
            "start": self.start,
            "end": self.end,
            "state": self.schema.state_type.__qualname__,
            "reducers": {k: r.name for k, r in sorted(self.schema.reducers.items())},
            "nodes": {name: describe_node(n) for name, n in sorted(self.nodes.items())},
            "edges": [[e.source, e.target, e.kind.value, e.label] for e in self.edges],
            "interrupt_before": sorted(self.interrupt_before),
            "interrupt_after": sorted(self.interrupt_after),
        }

    def fallback_target(self, node: str) -> str | None:
        for edge in self.routes[node]:
            if edge.kind is EdgeKind.FALLBACK:
                return edge.target
        return None

    def route(self, node: str, state: S) -> str | FanOut:
        """Where to go after ``node``: the first conditional edge whose condition holds,
        else the fan-out edge (the sends it lists), else the normal edge, else the
        fallback edge. Raises :class:`Unrouted` when none applies and
        :class:`EdgeFailed` (naming the node and the edge) when a condition or a fan-out
        function raises."""
        tried: list[ConditionTried] = []
        for edge in self.routes[node]:
            condition = edge.condition
            if condition is None:
                if edge.fan is None:
                    return edge.target
                try:
                    sends = tuple(Send(edge.target, arg) for arg in edge.fan(state))
                    return FanOut(edge.target, sends)
                except Exception as exc:
                    raise EdgeFailed(node, edge.describe(), edge.label, exc) from exc
            try:
                matched = bool(condition(state))
            except Exception as exc:
                raise EdgeFailed(node, edge.describe(), edge.label, exc) from exc
            if matched:
                return edge.target
            tried.append(ConditionTried(edge.describe(), edge.label, False))
        raise Unrouted(node, tried)

    def flowchart(
        self,
        *,
        title: str | None = None,
        highlight: Mapping[str, NodeClass] | None = None,
    ) -> Flowchart:
        """The graph as a picture: start and end, every node (barriers as diamonds,
        subgraphs with their own nodes inside, parallel branches grouped, fan-out targets
        marked), normal edges solid, conditional ones dashed with their condition's name,
        fallback and error routes dotted, fan-outs thick, static interrupt points named.
        ``highlight`` marks nodes (a run's current node, a waiting barrier)."""
        return draw_graph(self, title=title, highlight=highlight or {})

    def barrier_ids_text(self) -> str:
        return ", ".join(map(repr, self.barriers)) or "none"

    def check_barrier_target(self, target: BarrierId | str) -> None:
        """Raise ``ValueError`` listing this graph's barriers when ``target`` names none."""
        node = target.node if isinstance(target, BarrierId) else target
        if node not in self.barriers:
            raise ValueError(
                f"{str(target)!r} is not a barrier of graph {self.name!r}; its barriers are "
                f"{self.barrier_ids_text()}"
            )

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes, hash {self.hash[:12]}>"


def describe_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two graph structures (as :attr:`Graph.structure` gives
    them), one line per change: nodes added, removed or changed, edges added or removed,
    start, end, state type, reducers and interrupt points."""
    changes: list[str] = []
    for field in ("start", "end", "state"):
        if saved.get(field) != current.get(field):
            changes.append(f"{field}: {saved.get(field)!r} -> {current.get(field)!r}")
    old_nodes: Mapping[str, Any] = saved.get("nodes", {})
    new_nodes: Mapping[str, Any] = current.get("nodes", {})
    for name in sorted(set(old_nodes) | set(new_nodes)):
        if name not in new_nodes:
            changes.append(f"node {name!r} removed")
        elif name not in old_nodes:
            changes.append(f"node {name!r} added")
        elif old_nodes[name] != new_nodes[name]:
            changes.append(f"node {name!r} changed: {old_nodes[name]} -> {new_nodes[name]}")
    old_edges = {tuple(e) for e in saved.get("edges", [])}
    new_edges = {tuple(e) for e in current.get("edges", [])}
    for edge in sorted(old_edges - new_edges, key=str):
        changes.append(f"edge {edge[0]}->{edge[1]} ({edge[2]}) removed")
    for edge in sorted(new_edges - old_edges, key=str):
        changes.append(f"edge {edge[0]}->{edge[1]} ({edge[2]}) added")
    for field in ("reducers", "interrupt_before", "interrupt_after"):
        if saved.get(field) != current.get(field):
            changes.append(f"{field}: {saved.get(field)} -> {current.get(field)}")
    return changes
