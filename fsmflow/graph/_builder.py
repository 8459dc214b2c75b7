"""``GraphBuilder``: declare nodes and edges, then ``build()`` a validated graph.

Every problem is collected and reported together by :meth:`GraphBuilder.build`, so one
run of the builder shows everything that is wrong with a definition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Self, TypeVar

from ._errors import GraphDefinitionError
from ._graph import (
    BarrierApply,
    BarrierDefault,
    BarrierNode,
    Branch,
    Edge,
    EdgeKind,
    FunctionNode,
    Graph,
    Node,
    NodeFn,
    ParallelNode,
    ParallelStrategy,
    _is_async,
)
from ._state import Reducer, StateSchema

S = TypeVar("S")


class GraphBuilder(Generic[S]):
    """Builds a :class:`Graph` over ``state_type`` (an attrs class or a ``TypedDict``)::

        b = GraphBuilder(State, name="agent", reducers={"notes": append})
        b.node("plan", plan).node("act", act)
        b.edge("plan", "act").start("plan").end("act")
        graph = b.build()

    Keys without a reducer are replaced by updates.
    """

    def __init__(
        self,
        state_type: type[S],
        *,
        name: str = "graph",
        reducers: Mapping[str, Reducer] | None = None,
    ) -> None:
        self._schema = StateSchema(state_type, reducers or {})
        self._name = name
        self._nodes: dict[str, Node[S]] = {}
        self._edges: list[Edge[S]] = []
        self._start: str | None = None
        self._end: str | None = None
        self._problems: list[str] = []

    def _add(self, node: Node[S]) -> Self:
        if node.name in self._nodes:
            self._problems.append(f"duplicate node name {node.name!r}")
        else:
            self._nodes[node.name] = node
        return self

    def node(self, name: str, fn: NodeFn[S]) -> Self:
        """A node running ``fn(state)`` (sync or async); it returns a delta, ``None``,
        a :class:`NodeOutput` or a :class:`Fallback`."""
        return self._add(FunctionNode(name, fn, _is_async(fn)))

    def parallel(
        self,
        name: str,
        branches: Mapping[str, NodeFn[S]] | Iterable[tuple[str, NodeFn[S]]],
        *,
        strategy: ParallelStrategy = ParallelStrategy.FAIL_FAST,
    ) -> Self:
        """A node running ``branches`` concurrently, each on its own copy of the state;
        their deltas are applied in branch order (a replace-reduced key set to different
        values by two branches is a :class:`MergeConflict`). Routing ignores what the
        branches ask for: the node follows its edges."""
        pairs = list(branches.items() if isinstance(branches, Mapping) else branches)
        names = [n for n, _ in pairs]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            self._problems.append(f"parallel node {name!r}: duplicate branch name {dup!r}")
        if not pairs:
            self._problems.append(f"parallel node {name!r} has no branches")
        built = tuple(Branch(n, fn, _is_async(fn)) for n, fn in pairs)
        return self._add(ParallelNode(name, built, strategy))

    def barrier(
        self,
        name: str,
        *,
        timeout: float | None = None,
        default: BarrierDefault = BarrierDefault.REJECT,
        on_reject: str | None = None,
        apply: BarrierApply[S] | None = None,
    ) -> Self:
        """A human-in-the-loop node: the run pauses until a decision arrives.

        Without ``apply``: :class:`Approve` and :class:`Skip` follow the edges,
        :class:`Reject` goes to ``on_reject`` (or fails the run), :class:`Route` applies its
        update and goes to its target. With ``apply(state, decision)`` that function
        decides, returning a node result. After ``timeout`` seconds without a decision,
        ``default`` is applied.
        """
        if timeout is not None and timeout < 0:
            self._problems.append(f"barrier {name!r}: timeout must be >= 0, not {timeout}")
        is_async = apply is not None and _is_async(apply)
        return self._add(BarrierNode(name, timeout, default, on_reject, apply, is_async))

    def edge(
        self,
        source: str,
        target: str,
        *,
        when: Callable[[S], bool] | None = None,
        label: str | None = None,
    ) -> Self:
        """A normal edge, or a conditional one taken when ``when(state)`` is true.
        Conditional edges are tried in the order they are declared, before the normal
        edge."""
        if when is None:
            self._edges.append(Edge(source, target, EdgeKind.NORMAL, None, label))
        else:
            shown = label or getattr(when, "__name__", "condition")
            self._edges.append(Edge(source, target, EdgeKind.CONDITIONAL, when, shown))
        return self

    def fallback(self, source: str, target: str) -> Self:
        """The edge a :class:`Fallback` result routes along (and the last resort when no
        other edge applies)."""
        self._edges.append(Edge(source, target, EdgeKind.FALLBACK, None, "fallback"))
        return self

    def start(self, name: str) -> Self:
        self._start = name
        return self

    def end(self, name: str) -> Self:
        """The node after which the run completes."""
        self._end = name
        return self

    def build(self) -> Graph[S]:
        """Validate and return the graph; raises :class:`GraphDefinitionError` listing
        every problem."""
        problems = list(self._problems)
        nodes = self._nodes
        if self._start is None:
            problems.append("no start node: call builder.start(NAME)")
        elif self._start not in nodes:
            problems.append(f"start node {self._start!r} is not a node")
        if self._end is None:
            problems.append("no end node: call builder.end(NAME)")
        elif self._end not in nodes:
            problems.append(f"end node {self._end!r} is not a node")
        exits: dict[str, set[str]] = {n: set() for n in nodes}
        per_kind: dict[tuple[str, EdgeKind], int] = {}
        for edge in self._edges:
            for role, name in (("source", edge.source), ("target", edge.target)):
                if name not in nodes:
                    problems.append(f"edge {edge.describe()}: unknown {role} node {name!r}")
            if edge.source in nodes and edge.target in nodes:
                exits[edge.source].add(edge.target)
            key = (edge.source, edge.kind)
            per_kind[key] = per_kind.get(key, 0) + 1
        for (source, kind), count in sorted(per_kind.items(), key=lambda i: i[0][0]):
            if kind is not EdgeKind.CONDITIONAL and count > 1:
                problems.append(
                    f"node {source!r} has {count} {kind.value} edges; at most one is allowed "
                    "(run work side by side with builder.parallel)"
                )
        for node in nodes.values():
            if isinstance(node, BarrierNode) and node.on_reject is not None:
                if node.on_reject in nodes:
                    exits[node.name].add(node.on_reject)
                else:
                    problems.append(
                        f"barrier {node.name!r}: on_reject node {node.on_reject!r} is not a node"
                    )
        if self._start in nodes:
            reached = {self._start}
            queue = deque([self._start])
            while queue:
                for target in exits[queue.popleft()]:
                    if target not in reached:
                        reached.add(target)
                        queue.append(target)
            for name in nodes:
                if name not in reached:
                    problems.append(f"node {name!r} is unreachable from the start {self._start!r}")
        for name, targets in exits.items():
            if not targets and name != self._end:
                problems.append(
                    f"node {name!r} has no way out and is not the end node; add an edge"
                )
        if problems:
            raise GraphDefinitionError(self._name, problems)
        assert self._start is not None and self._end is not None
        edges: tuple[Edge[Any], ...] = tuple(self._edges)
        return Graph(self._name, self._schema, nodes, edges, self._start, self._end)
