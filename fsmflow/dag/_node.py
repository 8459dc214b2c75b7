"""The tiny FSM every processor run goes through.

``WAITING -> READY -> RUNNING -> DONE | FAILED | CANCELLED``, or ``WAITING -> SKIPPED |
CANCELLED`` when it never starts. One spec serves every node; only the executor's loop
drives the node machines.
"""

from __future__ import annotations

import enum
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


_TARGET = {
    NodeEvent.DEPENDENCIES_MET: NodeState.READY,
    NodeEvent.START: NodeState.RUNNING,
    NodeEvent.SUCCEED: NodeState.DONE,
    NodeEvent.FAIL: NodeState.FAILED,
    NodeEvent.SKIP: NodeState.SKIPPED,
    NodeEvent.CANCEL: NodeState.CANCELLED,
}


def _advance(state: NodeState, event: NodeEvent, ctx: None) -> Transition[NodeState, None]:
    return goto(_TARGET[event])


@cache
def node_spec() -> FsmSpec[NodeState, NodeEvent, None, None]:
    """The processor FSM (strict: an impossible step is a bug, not something to ignore)."""
    b = FsmBuilder[NodeState, NodeEvent, None, None](
        states=NodeState, events=NodeEvent, initial=NodeState.WAITING, name="dag processor"
    )
    b.when(NodeState.WAITING).on(NodeEvent.DEPENDENCIES_MET, _advance, to=[NodeState.READY])
    b.when(NodeState.WAITING).on(NodeEvent.SKIP, _advance, to=[NodeState.SKIPPED])
    b.when(NodeState.WAITING).on(NodeEvent.CANCEL, _advance, to=[NodeState.CANCELLED])
    b.when(NodeState.READY).on(NodeEvent.START, _advance, to=[NodeState.RUNNING])
    b.when(NodeState.READY).on(NodeEvent.CANCEL, _advance, to=[NodeState.CANCELLED])
    running = b.when(NodeState.RUNNING)
    running.on(NodeEvent.SUCCEED, _advance, to=[NodeState.DONE])
    running.on(NodeEvent.FAIL, _advance, to=[NodeState.FAILED])
    running.on(NodeEvent.CANCEL, _advance, to=[NodeState.CANCELLED])
    return b.strict().build()
