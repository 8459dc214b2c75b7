"""``GraphBuilder``: declare nodes and edges, then ``build()`` a validated graph.

Every problem is collected and reported together by :meth:`GraphBuilder.build`, so one
run of the builder shows everything that is wrong with a definition.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, Self, TypeVar, overload

from ._errors import GraphDefinitionError
from ._graph import Graph
from ._nodes import (
    BarrierApply,
    BarrierDefault,
    BarrierNode,
    Branch,
    Edge,
    EdgeKind,
    FunctionNode,
    Node,
    NodeFn,
    NodeOptions,
    ParallelNode,
    ParallelStrategy,
    SubgraphNode,
    is_async_callable,
)
from ._results import NodeResult
from ._retry import RetryPolicy
from ._state import Delta, Reducer, StateSchema

S = TypeVar("S")
A = TypeVar("A")
T = TypeVar("T")


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
        self._before: set[str] = set()
        self._after: set[str] = set()
        self._problems: list[str] = self._schema.problems()

    def _add(self, node: Node[S]) -> Self:
        if node.name in self._nodes:
            self._problems.append(f"duplicate node name {node.name!r}")
        else:
            self._nodes[node.name] = node
        return self

    def _options(
        self,
        name: str,
        retry: RetryPolicy | None,
        timeout: float | None,
        on_error: str | None,
        error_key: str,
        concurrency: int | None,
    ) -> NodeOptions:
        if timeout is not None and not (
            isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0
        ):
            self._problems.append(
                f"node {name!r}: timeout must be a finite number > 0, not {timeout}"
            )
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            self._problems.append(
                f"node {name!r}: concurrency must be an int >= 1, not {concurrency!r}"
            )
        if on_error is not None and error_key not in self._schema.types:
            self._problems.append(
                f"node {name!r}: on_error puts the error under {error_key!r}, which is not a "
                f"key of {self._schema.state_type.__name__} (add it, typed NodeError | None, "
                "or pass error_key=)"
            )
        return NodeOptions(retry, timeout, on_error, error_key, concurrency)

    @overload
    def node(
        self,
        name: str,
        fn: NodeFn[S],
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        on_error: str | None = None,
        error_key: str = "error",
        concurrency: int | None = None,
    ) -> Self: ...
    @overload
    def node(
        self,
        name: str,
        fn: Callable[[A], NodeResult | Awaitable[NodeResult]],
        *,
        input: type[A],
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        on_error: str | None = None,
        error_key: str = "error",
        concurrency: int | None = None,
    ) -> Self: ...
    def node(
        self,
        name: str,
        fn: Callable[[Any], Any],
        *,
        input: Any = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        on_error: str | None = None,
        error_key: str = "error",
        concurrency: int | None = None,
    ) -> Self:
        """A node running ``fn(state)`` (sync or async); it returns a delta, ``None``,
        a :class:`NodeOutput` or a :class:`Fallback`.

        ``input=T``: the node runs once per fan-out input of type ``T`` instead of on the
        state (reach it with :meth:`fan_out` or ``NodeOutput(goto=[Send(name, arg)])``).
        ``retry`` re-runs it on the errors its policy accepts; ``timeout`` (seconds, async
        nodes only) bounds each attempt; ``on_error`` routes a final failure to that node
        with a :class:`NodeError` under ``error_key`` in the state instead of failing the
        run; ``concurrency`` caps how many fan-out inputs run at once (default: the run's
        ``max_concurrency``).
        """
        is_async = is_async_callable(fn)
        if timeout is not None and not is_async:
            self._problems.append(
                f"node {name!r}: a timeout needs an async function (a sync one cannot be "
                "interrupted)"
            )
        options = self._options(name, retry, timeout, on_error, error_key, concurrency)
        return self._add(FunctionNode(name, fn, is_async, input, options))

    def parallel(
        self,
        name: str,
        branches: Mapping[str, NodeFn[S]] | Iterable[tuple[str, NodeFn[S]]],
        *,
        strategy: ParallelStrategy = ParallelStrategy.FAIL_FAST,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        on_error: str | None = None,
        error_key: str = "error",
    ) -> Self:
        """A node running ``branches`` concurrently, each on its own copy of the state;
        their deltas are applied in branch order (a replace-reduced key set to different
        values by two branches is a :class:`MergeConflict`). Routing ignores what the
        branches ask for: the node follows its edges. ``retry`` and ``timeout`` apply to
        each branch; a branch that succeeded is not run again when the run is resumed
        after another one failed."""
        pairs = list(branches.items() if isinstance(branches, Mapping) else branches)
        names = [n for n, _ in pairs]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            self._problems.append(f"parallel node {name!r}: duplicate branch name {dup!r}")
        if not pairs:
            self._problems.append(f"parallel node {name!r} has no branches")
        built = tuple(Branch(n, fn, is_async_callable(fn)) for n, fn in pairs)
        if timeout is not None and not all(b.is_async for b in built):
            self._problems.append(
                f"parallel node {name!r}: a timeout needs async branches (a sync one cannot "
                "be interrupted)"
            )
        options = self._options(name, retry, timeout, on_error, error_key, None)
        return self._add(ParallelNode(name, built, strategy, options))

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
        ``default`` is applied. A barrier is an interrupt whose value is a decision.
        """
        if timeout is not None and timeout < 0:
            self._problems.append(f"barrier {name!r}: timeout must be >= 0, not {timeout}")
        is_async = apply is not None and is_async_callable(apply)
        return self._add(BarrierNode(name, timeout, default, on_reject, apply, is_async))

    def subgraph(
        self,
        name: str,
        graph: Graph[T],
        *,
        enter: Callable[[S], T],
        leave: Callable[[S, T], Delta],
        timeout: float | None = None,
        on_error: str | None = None,
        error_key: str = "error",
    ) -> Self:
        """A node that runs ``graph`` (with its own state type ``T``): ``enter(state)``
        builds its initial state, and when it completes ``leave(state, child_state)``
        returns the delta applied to this graph's state. Its checkpoints and interrupts are
        part of this run's: an interrupt inside it pauses this run, and a resume
        continues inside it where it paused."""
        options = self._options(name, None, timeout, on_error, error_key, None)
        return self._add(SubgraphNode(name, graph, enter, leave, options))

    def edge(
        self,
        source: str,
        target: str,
        *,
        when: Callable[[S], bool] | None = None,
        label: str | None = None,
    ) -> Self:
        """A normal edge, or a conditional one taken when ``when(state)`` is true.
        Conditional edges are tried in the order they are declared, before the others."""
        if when is None:
            self._edges.append(Edge(source, target, EdgeKind.NORMAL, None, label))
        else:
            shown = label or getattr(when, "__name__", "condition")
            self._edges.append(Edge(source, target, EdgeKind.CONDITIONAL, when, shown))
        return self

    def fan_out(
        self,
        source: str,
        target: str,
        inputs: Callable[[S], Iterable[Any]],
        *,
        label: str | None = None,
    ) -> Self:
        """A dynamic fan-out (LangGraph's ``Send``): after ``source``, ``target`` runs once
        per item of ``inputs(state)``, concurrently, and the run goes on along
        ``target``'s edges once every branch has finished (zero items: at once)."""
        shown = label or getattr(inputs, "__name__", None)
        if shown == "<lambda>":
            shown = None
        self._edges.append(Edge(source, target, EdgeKind.FAN_OUT, None, shown, inputs))
        return self

    def fallback(self, source: str, target: str) -> Self:
        """The edge a :class:`Fallback` result routes along (and the last resort when no
        other edge applies)."""
        self._edges.append(Edge(source, target, EdgeKind.FALLBACK, None, "fallback"))
        return self

    def interrupt_before(self, *names: str) -> Self:
        """Pause the run before each of these nodes runs (resume with no value)."""
        self._before.update(names)
        return self

    def interrupt_after(self, *names: str) -> Self:
        """Pause the run after each of these nodes ran (resume with no value)."""
        self._after.update(names)
        return self

    def start(self, name: str) -> Self:
        self._start = name
        return self

    def end(self, name: str) -> Self:
        """The node after which the run completes."""
        self._end = name
        return self

    def _check_edges(self, problems: list[str], exits: dict[str, set[str]]) -> None:
        nodes = self._nodes
        per_kind: dict[tuple[str, EdgeKind], int] = {}
        for edge in self._edges:
            for role, name in (("source", edge.source), ("target", edge.target)):
                if name not in nodes:
                    problems.append(f"edge {edge.describe()}: unknown {role} node {name!r}")
            if edge.source in nodes and edge.target in nodes:
                exits[edge.source].add(edge.target)
                target = nodes[edge.target]
                if (
                    isinstance(target, FunctionNode)
                    and target.input_type is not None
                    and edge.kind is not EdgeKind.FAN_OUT
                ):
                    problems.append(
                        f"edge {edge.describe()}: {edge.target!r} runs on fan-out inputs "
                        f"(input={getattr(target.input_type, '__name__', target.input_type)}); "
                        "reach it with builder.fan_out() or Send"
                    )
            key = (edge.source, edge.kind)
            per_kind[key] = per_kind.get(key, 0) + 1
        for (source, kind), count in sorted(per_kind.items(), key=lambda i: i[0][0]):
            if kind is not EdgeKind.CONDITIONAL and count > 1:
                problems.append(
                    f"node {source!r} has {count} {kind.value} edges; at most one is allowed "
                    "(run work side by side with builder.parallel or builder.fan_out)"
                )
            if kind is EdgeKind.FAN_OUT and (source, EdgeKind.NORMAL) in per_kind:
                problems.append(
                    f"node {source!r} has a fan-out edge and a normal edge; the normal edge "
                    "would never be taken"
                )

    def build(self) -> Graph[S]:
        """Validate and return the graph; raises :class:`GraphDefinitionError` listing
        every problem."""
        problems = list(self._problems)
        nodes = self._nodes
        if self._start is None:
            problems.append("no start node: call builder.start(NAME)")
        elif self._start not in nodes:
            problems.append(f"start node {self._start!r} is not a node")
        else:
            first = nodes[self._start]
            if isinstance(first, FunctionNode) and first.input_type is not None:
                problems.append(f"start node {self._start!r} runs on fan-out inputs")
        if self._end is None:
            problems.append("no end node: call builder.end(NAME)")
        elif self._end not in nodes:
            problems.append(f"end node {self._end!r} is not a node")
        exits: dict[str, set[str]] = {n: set() for n in nodes}
        self._check_edges(problems, exits)
        for node in nodes.values():
            routes: list[tuple[str, str | None]] = [("on_error", node.options.on_error)]
            if isinstance(node, BarrierNode):
                routes.append(("on_reject", node.on_reject))
            for what, target in routes:
                if target is None:
                    continue
                if target in nodes:
                    exits[node.name].add(target)
                else:
                    kind = "barrier" if what == "on_reject" else "node"
                    problems.append(f"{kind} {node.name!r}: {what} node {target!r} is not a node")
        for what, names in (("interrupt_before", self._before), ("interrupt_after", self._after)):
            for name in sorted(names - set(nodes)):
                problems.append(f"{what}: {name!r} is not a node")
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
        return Graph(
            self._name,
            self._schema,
            nodes,
            edges,
            self._start,
            self._end,
            frozenset(self._before),
            frozenset(self._after),
        )
