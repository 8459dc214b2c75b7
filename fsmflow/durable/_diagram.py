"""A workflow's FSM drawn as a flowchart: one node per state, one edge per declared
target, labelled with the event (self-loops of ``stay`` handlers are left out)."""

from __future__ import annotations

from typing import Any

from ..diagrams import EdgeStyle, Flowchart, FlowEdge, FlowNode, NodeShape
from ..fsm import FsmSpec, HandlerKind, variant_name

_FINAL = {"COMPLETED", "FAILED", "COMPENSATED", "COMPENSATION_FAILED", "CANCELLED", "DEAD_LETTERED"}
_FAILURE_EVENTS = {"StepFailed", "UndoFailed", "GiveUp", "CancelRequested"}


def spec_flowchart(spec: FsmSpec[Any, Any, Any, Any], *, title: str | None = None) -> Flowchart:
    nodes = []
    for state in spec.states.variants:
        name = variant_name(state)
        if name.startswith("UNDO_"):
            shape = NodeShape.ROUNDED
        elif name in _FINAL or name == "PENDING":
            shape = NodeShape.TERMINAL
        elif name in ("SLEEPING", "WAITING"):
            shape = NodeShape.DECISION
        else:
            shape = NodeShape.BOX
        nodes.append(FlowNode.of(name, shape=shape))
    edges = []
    seen = set()
    for handler in spec.handlers:
        if handler.kind is HandlerKind.WILDCARD:
            continue  # GiveUp (to DEAD_LETTERED) applies everywhere; drawn once below
        if handler.source is None or not handler.targets:
            continue
        source = variant_name(handler.source)
        event = variant_name(handler.event) if handler.event is not None else "timeout"
        for target in handler.targets:
            key = (source, variant_name(target), event)
            if key in seen:
                continue
            seen.add(key)
            style = EdgeStyle.DOTTED if event in _FAILURE_EVENTS else EdgeStyle.SOLID
            edges.append(FlowEdge(source, variant_name(target), event, style))
    for state in spec.states.variants:
        name = variant_name(state)
        if name.startswith("RUN_") or name in ("PENDING", "SLEEPING", "WAITING"):
            edges.append(FlowEdge(name, "DEAD_LETTERED", "GiveUp", EdgeStyle.DOTTED))
            break
    return Flowchart(tuple(nodes), tuple(edges), title=title, direction="TD")
