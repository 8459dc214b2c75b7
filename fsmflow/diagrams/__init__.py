"""Diagrams of every engine: Mermaid and DOT source, and rendered images.

:func:`to_mermaid` and :func:`to_dot` turn an :class:`~fsmflow.fsm.FsmSpec` (or a running
:class:`~fsmflow.fsm.StateMachine`, whose current state is highlighted) into a state
diagram; neither needs Graphviz installed. :func:`render` also produces SVG, PNG and the
other Graphviz formats by running Graphviz's ``dot``.

What a state diagram shows: every declared state, its entry and exit hooks as lines under
its name (``entry / send_reminder``), the initial marker on the spec's initial variant, an
edge to the end marker from every final state (one no edge leaves), one edge per declared
target labelled with the event (``after 5s`` for a timeout, ``unhandled`` for the
unhandled handler), wildcard handlers from every state where they apply, and an "any
state" node for handlers that declared no ``to=``. Output is deterministic, so generated
docs can be checked in, and no label ever carries a literal ``\\n``.

Engines that are not a bare state machine (the graph executor, the DAG executor,
supervision trees) describe themselves as a :class:`Flowchart` through
:class:`SupportsFlowchart`; the same functions draw them as a Mermaid ``flowchart`` or DOT.

The ``fsmflow diagram MODULE:ATTR`` command and ``python -m fsmflow.diagrams._docs`` (which
regenerates the docs' diagrams) find what to draw with :func:`load_target`.
"""

from .._flowchart import (
    EdgeStyle,
    Flowchart,
    FlowEdge,
    FlowGroup,
    FlowNode,
    NodeClass,
    NodeShape,
    SupportsFlowchart,
    flowchart_to_dot,
    flowchart_to_mermaid,
)
from ._export import DiagramToolMissing, render, to_dot, to_mermaid
from ._model import ANY_STATE_LABEL, UNHANDLED_LABEL, DiagramSubject
from ._targets import DiagramTargetError, load_target, resolve_target

__all__ = [
    "ANY_STATE_LABEL",
    "UNHANDLED_LABEL",
    "DiagramSubject",
    "DiagramTargetError",
    "DiagramToolMissing",
    "EdgeStyle",
    "FlowEdge",
    "FlowGroup",
    "FlowNode",
    "Flowchart",
    "NodeClass",
    "NodeShape",
    "SupportsFlowchart",
    "flowchart_to_dot",
    "flowchart_to_mermaid",
    "load_target",
    "render",
    "resolve_target",
    "to_dot",
    "to_mermaid",
]
