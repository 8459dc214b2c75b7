"""Nodes and edges: what a graph is made of, as the builder records them.

Node kinds: a function node (on the state, or on a fan-out input when it declares
``input=``), a parallel node (branches side by side), a barrier (a human decision) and a
subgraph node (another graph with its own state). Each carries its
:class:`NodeOptions` (retries, timeout, error route, fan-out concurrency).
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import attrs

from ._results import Decision, NodeResult
from ._retry import RetryPolicy
from ._state import Delta

if TYPE_CHECKING:
    from ._graph import Graph

S = TypeVar("S")

#: A node: a sync or async function of the state.
NodeFn: TypeAlias = Callable[[S], "NodeResult | Awaitable[NodeResult]"]


class EdgeKind(enum.Enum):
    NORMAL = "normal"
    CONDITIONAL = "conditional"
    FALLBACK = "fallback"
    #: A dynamic fan-out: ``fan(state)`` lists the inputs the target runs on.
    FAN_OUT = "fan_out"


@attrs.frozen(slots=True)
class Edge(Generic[S]):
    """An edge; ``condition`` is set for conditional edges, ``fan`` for fan-out edges."""

    source: str
    target: str
    kind: EdgeKind
    condition: Callable[[S], bool] | None = attrs.field(default=None, eq=False)
    label: str | None = None
    fan: Callable[[S], Iterable[Any]] | None = attrs.field(default=None, eq=False)

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


def is_async_callable(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - a callable object's own method
    )


@attrs.frozen(slots=True)
class NodeOptions:
    """How a node's work runs: retries, a timeout per attempt, an error route and the
    concurrency of a fan-out into it."""

    retry: RetryPolicy | None = None
    timeout: float | None = None
    on_error: str | None = None
    error_key: str = "error"
    concurrency: int | None = None


NO_OPTIONS = NodeOptions()


@attrs.frozen(slots=True)
class FunctionNode(Generic[S]):
    name: str
    fn: Callable[[Any], Any] = attrs.field(eq=False)
    is_async: bool = attrs.field(eq=False)
    #: The type of a fan-out input; ``None``: the node runs on the state.
    input_type: Any = None
    options: NodeOptions = NO_OPTIONS


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
    options: NodeOptions = NO_OPTIONS


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
    options: NodeOptions = NO_OPTIONS


@attrs.frozen(slots=True)
class SubgraphNode(Generic[S]):
    """A node that runs another graph: ``enter(state)`` builds the child's initial state,
    ``leave(state, child_final_state)`` the delta the parent applies."""

    name: str
    graph: Graph[Any]
    enter: Callable[[S], Any] = attrs.field(eq=False)
    leave: Callable[[S, Any], Delta] = attrs.field(eq=False)
    options: NodeOptions = NO_OPTIONS


Node: TypeAlias = FunctionNode[S] | ParallelNode[S] | BarrierNode[S] | SubgraphNode[S]


def type_name(tp: Any) -> str:
    return str(getattr(tp, "__qualname__", tp))


def describe_node(node: Node[Any]) -> dict[str, Any]:
    described: dict[str, Any]
    if isinstance(node, FunctionNode):
        described = {"kind": "function"}
        if node.input_type is not None:
            described["input"] = type_name(node.input_type)
    elif isinstance(node, ParallelNode):
        described = {
            "kind": "parallel",
            "branches": [b.name for b in node.branches],
            "strategy": node.strategy.value,
        }
    elif isinstance(node, SubgraphNode):
        described = {"kind": "subgraph", "graph": node.graph.hash}
    else:
        described = {
            "kind": "barrier",
            "timeout": node.timeout,
            "default": node.default.value,
            "on_reject": node.on_reject,
            "custom": node.apply is not None,
        }
    if node.options.on_error is not None:
        described["on_error"] = [node.options.on_error, node.options.error_key]
    return described


def extra_targets(node: Node[Any]) -> frozenset[str]:
    extra: set[str] = set()
    if isinstance(node, BarrierNode) and node.on_reject is not None:
        extra.add(node.on_reject)
    if node.options.on_error is not None:
        extra.add(node.options.on_error)
    return frozenset(extra)
