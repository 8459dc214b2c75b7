"""What nodes return and what barriers are told: node results, fan-out sends, decisions.

A node returns a delta (a mapping), ``None``, a :class:`NodeOutput` (a delta plus where
to go) or a :class:`Fallback`. ``NodeOutput(goto=[Send(node, arg), ...])`` fans out: the
next step runs ``node`` once per :class:`Send`, concurrently, each on its own ``arg``.
A barrier is resumed with a :class:`Decision`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

A = TypeVar("A")


@attrs.frozen(slots=True)
class Send(Generic[A]):
    """One branch of a dynamic fan-out: run ``node`` with ``arg`` as its input.

    The node was declared with ``input=`` the type of ``arg`` (or, without ``input=``,
    ``arg`` is a state of the graph's own type). Branches of one fan-out run
    concurrently under the node's concurrency limit, and their deltas merge through the
    reducers in the order the sends were given.
    """

    node: str
    arg: A


@attrs.frozen(slots=True)
class FanOut:
    """Where a fan-out goes: ``node`` runs once per send (zero sends: none run, and the
    run goes on along ``node``'s edges)."""

    node: str
    sends: tuple[Send[Any], ...]


@attrs.frozen(slots=True)
class NodeOutput:
    """What a node returns when it wants more than "apply this delta, follow the edges".

    ``goto`` names the next node (an edge to it must exist), or is a sequence of
    :class:`Send` to fan out to (an empty sequence follows the edges); ``end`` ends the
    run after this node. ``cost`` and ``side_effects`` feed the adaptive checkpoint
    score; ``warning`` is reported as an observed, non-fatal error.
    """

    update: Mapping[str, Any] = attrs.field(factory=dict)
    goto: str | Sequence[Send[Any]] | None = None
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


@attrs.frozen(slots=True)
class NodeError:
    """The error a node's ``on_error`` route puts in the state (under its ``error_key``)."""

    node: str
    #: The exception's class name.
    type: str
    message: str
    attempts: int = 1


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
DECISION_TYPES = (Approve, Reject, Route, Skip)
