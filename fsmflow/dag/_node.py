"""The tiny FSM every processor run goes through.

``WAITING -> READY -> RUNNING -> DONE | FAILED | CANCELLED``, or ``WAITING -> SKIPPED |
CANCELLED`` when it never starts. One spec serves every node; only the executor's loop
drives the node machines.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import cache

from ..fsm import FsmBuilder, FsmSpec, Transition, goto
from ._result import NodeState


class NodeEvent(enum.Enum):
    DEPENDENCIES_MET = "dependencies_met"
    START = "start"
    SUCCEED = "succeed"
    FAIL = "fail"
    SKIP = "skip"
    CANCEL = "cancel"


_Handler = Callable[[NodeState, NodeEvent, None], Transition[NodeState, None]]


def _to(target: NodeState) -> _Handler:
    """The handler of every step into ``target``. Transitions are immutable values, so
    each is built once here rather than on every step."""
    transition: Transition[NodeState, None] = goto(target)

    def advance(state: NodeState, event: NodeEvent, ctx: None) -> Transition[NodeState, None]:
        return transition

    return advance


@cache
def node_spec() -> FsmSpec[NodeState, NodeEvent, None, None]:
    """The processor FSM (strict: an impossible step is a bug, not something to ignore)."""
    b = FsmBuilder[NodeState, NodeEvent, None, None](
        states=NodeState, events=NodeEvent, initial=NodeState.WAITING, name="dag processor"
    )
    edges = [
        (NodeState.WAITING, NodeEvent.DEPENDENCIES_MET, NodeState.READY),
        (NodeState.WAITING, NodeEvent.SKIP, NodeState.SKIPPED),
        (NodeState.WAITING, NodeEvent.CANCEL, NodeState.CANCELLED),
        (NodeState.READY, NodeEvent.START, NodeState.RUNNING),
        (NodeState.READY, NodeEvent.CANCEL, NodeState.CANCELLED),
        (NodeState.RUNNING, NodeEvent.SUCCEED, NodeState.DONE),
        (NodeState.RUNNING, NodeEvent.FAIL, NodeState.FAILED),
        (NodeState.RUNNING, NodeEvent.CANCEL, NodeState.CANCELLED),
    ]
    handlers = {target: _to(target) for target in NodeState}
    for source, event, target in edges:
        b.when(source).on(event, handlers[target], to=[target])
    return b.strict().build()
