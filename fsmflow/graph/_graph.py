"""The graph model: nodes, edges, routing and the structure hash.

A :class:`Graph` is immutable once built (use :class:`~fsmflow.graph.GraphBuilder`).
Routing out of a node tries its conditional edges in declaration order, then its normal
edge, then its fallback edge; the first that applies wins.
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from ._errors import ConditionTried, Unrouted
from ._state import StateSchema

S = TypeVar("S")


@attrs.frozen(slots=True)
class NodeOutput:
    """What a node returns when it wants more than "apply this delta, follow the edges".

    ``goto`` names the next node (an edge to it must exist); ``end`` ends the run after
    this node. ``cost`` and ``side_effects`` feed the adaptive checkpoint score;
    ``warning`` is reported as an observed, non-fatal error.
    """

    update: Mapping[str, Any] = attrs.field(factory=dict)
    goto: str | None = None
    end: bool = False
    cost: float = 0.0
    side_effects: bool = False
    warning: str | None = None


@attrs.frozen(slots=True)
class Fallback:
    """A degraded success: apply ``update`` and route along the node's fallback edge."""

    reason: str
    update: Mapping[str, Any] = attrs.field(factory=dict)


#: What a node function may return: a delta, nothing, or one of the result classes.
NodeResult: TypeAlias = NodeOutput | Fallback | Mapping[str, Any] | None
#: A node: a sync or async function of the state.
NodeFn: TypeAlias = Callable[[S], "NodeResult | Awaitable[NodeResult]"]


class EdgeKind(enum.Enum):
    NORMAL = "normal"
    CONDITIONAL = "conditional"
    FALLBACK = "fallback"


@attrs.frozen(slots=True)
class Edge(Generic[S]):
    """An edge; ``condition`` is set for conditional edges only."""

    source: str
    target: str
    kind: EdgeKind
    condition: Callable[[S], bool] | None = attrs.field(default=None, eq=False)
    label: str | None = None

    def describe(self) -> str:
        return f"{self.source}->{self.target}"


class ParallelStrategy(enum.Enum):
    """What a failing branch does to its siblings."""

    #: Cancel the other branches at once and fail with the first error.
    FAIL_FAST = "fail_fast"
    #: Let every branch finish, then fail listing every error.
    COLLECT_ALL = "collect_all"


class BarrierDefault(enum.Enum):
    """What a barrier does when its timeout passes without a decision."""

    APPROVE = "approve"
    REJECT = "reject"
    #: Continue along the barrier's edges without applying a decision.
    SKIP = "skip"


@attrs.frozen(slots=True)
class Approve:
    """Decision: continue along the barrier's edges."""


@attrs.frozen(slots=True)
class Reject:
    """Decision: go to the barrier's ``on_reject`` node, or fail the run without one."""

    reason: str


@attrs.frozen(slots=True)
class Route:
    """Decision with routing data: apply ``update`` and go to ``target`` (an edge to it
    must exist)."""

    target: str
    update: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class Skip:
    """Decision: continue along the edges as if the barrier were not there."""


Decision: TypeAlias = Approve | Reject | Route | Skip


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - a callable object's own method
    )


@attrs.frozen(slots=True)
class FunctionNode(Generic[S]):
    name: str
    fn: NodeFn[S] = attrs.field(eq=False)
    is_async: bool = attrs.field(eq=False)


@attrs.frozen(slots=True)
class Branch(Generic[S]):
    name: str
    fn: NodeFn[S] = attrs.field(eq=False)
    is_async: bool = attrs.field(eq=False)


@attrs.frozen(slots=True)
class ParallelNode(Generic[S]):
    name: str
    branches: tuple[Branch[S], ...]
    strategy: ParallelStrategy


#: Decides what a barrier decision does: returns the node result to apply.
BarrierApply: TypeAlias = Callable[[S, Decision], "NodeResult | Awaitable[NodeResult]"]


@attrs.frozen(slots=True)
class BarrierNode(Generic[S]):
    name: str
    timeout: float | None
    default: BarrierDefault
    on_reject: str | None
    apply: BarrierApply[S] | None = attrs.field(eq=False)
    is_async: bool = attrs.field(eq=False)


Node: TypeAlias = FunctionNode[S] | ParallelNode[S] | BarrierNode[S]


def _describe_node(node: Node[Any]) -> dict[str, Any]:
    if isinstance(node, FunctionNode):
        return {"kind": "function"}
    if isinstance(node, ParallelNode):
        return {
            "kind": "parallel",
            "branches": [b.name for b in node.branches],
            "strategy": node.strategy.value,
        }
    return {
        "kind": "barrier",
        "timeout": node.timeout,
        "default": node.default.value,
        "on_reject": node.on_reject,
        "custom": node.apply is not None,
    }


def _reject_target(node: Node[Any]) -> frozenset[str]:
    if isinstance(node, BarrierNode) and node.on_reject is not None:
        return frozenset({node.on_reject})
    return frozenset()


class Graph(Generic[S]):
    """A validated graph over state type ``S``. Build it with ``GraphBuilder``."""

    def __init__(
        self,
        name: str,
        schema: StateSchema[S],
        nodes: Mapping[str, Node[S]],
        edges: tuple[Edge[S], ...],
        start: str,
        end: str,
    ) -> None:
        self.name = name
        self.schema = schema
        self.nodes: dict[str, Node[S]] = dict(nodes)
        self.edges = edges
        self.start = start
        self.end = end
        out: dict[str, list[Edge[S]]] = {n: [] for n in self.nodes}
        for edge in edges:
            out[edge.source].append(edge)
        order = {EdgeKind.CONDITIONAL: 0, EdgeKind.NORMAL: 1, EdgeKind.FALLBACK: 2}
        #: Outgoing edges per node, in routing order (stable within a kind).
        self.routes: dict[str, tuple[Edge[S], ...]] = {
            n: tuple(sorted(es, key=lambda e: order[e.kind])) for n, es in out.items()
        }
        #: Where each node may go: its edges' targets and a barrier's ``on_reject``.
        self.targets: dict[str, frozenset[str]] = {
            n: frozenset(e.target for e in es) | _reject_target(self.nodes[n])
            for n, es in out.items()
        }
        self.barriers = tuple(n for n, node in self.nodes.items() if isinstance(node, BarrierNode))
        self.hash = self._structure_hash()

    @property
    def state_type(self) -> type[S]:
        return self.schema.state_type

    def _structure_hash(self) -> str:
        """SHA-256 of the structure (names, kinds, edges, start, end) — not of the
        functions' code, so it is the same in every process running this definition."""
        structure = {
            "start": self.start,
            "end": self.end,
            "state": self.schema.state_type.__qualname__,
            "reducers": {k: r.name for k, r in sorted(self.schema.reducers.items())},
            "nodes": {name: _describe_node(n) for name, n in sorted(self.nodes.items())},
            "edges": [[e.source, e.target, e.kind.value, e.label] for e in self.edges],
        }
        text = json.dumps(structure, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def fallback_target(self, node: str) -> str | None:
        for edge in self.routes[node]:
            if edge.kind is EdgeKind.FALLBACK:
                return edge.target
        return None

    def route(self, node: str, state: S) -> str:
        """The next node after ``node``: the first conditional edge whose condition holds,
        else the normal edge, else the fallback edge; raises :class:`Unrouted`."""
        edges = self.routes[node]
        for edge in edges:
            if edge.condition is None or edge.condition(state):
                return edge.target
        raise Unrouted(
            node,
            [
                ConditionTried(e.describe(), e.label, bool(e.condition and e.condition(state)))
                for e in edges
            ],
        )

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes, hash {self.hash[:12]}>"
