"""What a diagram shows, worked out from a spec before any diagram engine is involved.

The rules, which the docs and tests rely on:

* Every declared state is a node, in declaration order, labelled with its variant name and
  listing its entry and exit hooks by name.
* An edge leads from a state to each target a handler declared with ``to=``, labelled with
  the event variant's name. Several handlers between the same two states share one edge
  that carries all their labels, in registration order.
* A handler without ``to=`` may go anywhere: its edge leads to one extra node,
  :data:`ANY_STATE_LABEL` ("any state"), drawn dashed.
* A ``from_any()`` handler is drawn from every state where it would run, that is every
  state without its own handler for that event.
* A timeout is an edge labelled ``after <seconds>s``; the ``on_unhandled`` handler is an
  edge labelled ``unhandled`` from every state where some event would reach it.
* ``stay()`` leaves the state without a transition, so it draws nothing.
* A state that no edge leaves for another state (it has no handler, or its handlers only
  stay or come back to it) is *final*: the diagram marks it with an edge to an end marker.

Node ids are the variant names when these are plain ASCII identifiers that no diagram
language reserves; otherwise they are derived (``s_`` plus the name with other characters
replaced by ``_``, made unique). Labels always show the real names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeAlias

import attrs

from ..fsm import FsmSpec, HandlerKind, HandlerSpec, StateMachine, Variant, variant_name

#: What a diagram can be drawn from: a spec, or a running machine (its state is highlighted).
DiagramSubject: TypeAlias = FsmSpec[Any, Any, Any, Any] | StateMachine[Any, Any, Any, Any]

#: The label of the node that handlers without declared targets lead to.
ANY_STATE_LABEL = "any state"
#: The label of edges drawn for the ``on_unhandled`` handler.
UNHANDLED_LABEL = "unhandled"

# Node ids never start with "_", so these cannot collide with a state's id.
ANY_STATE_ID = "_any_state"
INITIAL_ID = "_initial"
FINAL_ID = "_final"

_PLAIN_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# Words Mermaid's stateDiagram lexer (case-insensitively) or DOT treat as keywords.
_RESERVED = frozenset(
    {
        "class",
        "classdef",
        "click",
        "default",
        "direction",
        "end",
        "hide",
        "note",
        "scale",
        "state",
        "statediagram",
        "style",
        "digraph",
        "edge",
        "graph",
        "node",
        "strict",
        "subgraph",
    }
)


@attrs.frozen
class Node:
    """One declared state."""

    id: str
    name: str
    entry_hooks: tuple[str, ...]
    exit_hooks: tuple[str, ...]


@attrs.frozen
class Edge:
    """The possible moves from ``source`` to ``target`` (node ids): one label per handler
    (the event's name, ``after <seconds>s`` or ``unhandled``), in registration order."""

    source: str
    target: str
    labels: tuple[str, ...]

    @property
    def label(self) -> str:
        """The labels on one line, joined with ``" | "``."""
        return " | ".join(self.labels)


@attrs.frozen
class Diagram:
    """Everything an exporter draws, with stable (declaration and registration) order."""

    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    #: Id of the node the initial marker points at (the spec's initial variant).
    initial: str
    #: Id of the node to highlight as current, for a running machine.
    active: str | None
    #: Whether some edge leads to the "any state" node.
    has_any_state: bool
    #: Ids of the final states (no edge leads from them to another node), in node order.
    finals: tuple[str, ...]


def describe(subject: DiagramSubject, title: str | None) -> Diagram:
    """The :class:`Diagram` of a spec or machine; ``title`` defaults to the spec's name.

    Raises :class:`TypeError` for anything that is neither an ``FsmSpec`` nor a
    ``StateMachine``.
    """
    if isinstance(subject, StateMachine):
        spec: FsmSpec[Any, Any, Any, Any] = subject.spec
        active: Variant | None = subject.state_variant
    elif isinstance(subject, FsmSpec):
        spec = subject
        active = None
    else:
        raise TypeError(
            f"a diagram is drawn from an FsmSpec or a StateMachine, not {type(subject).__name__}"
        )
    variants = spec.states.variants
    ids = dict(zip(variants, node_ids(variant_name(v) for v in variants), strict=True))
    nodes = tuple(
        Node(
            id=ids[v],
            name=variant_name(v),
            entry_hooks=tuple(h.name for h in spec.entry_hooks if h.state is v),
            exit_hooks=tuple(h.name for h in spec.exit_hooks if h.state is v),
        )
        for v in variants
    )
    # (source, target) -> labels; dicts keep the first-seen order of edges and labels.
    moves: dict[tuple[str, str], dict[str, None]] = {}
    for state in variants:
        for handler in spec.handlers:
            if not _applies(spec, handler, state):
                continue
            targets = (
                (ANY_STATE_ID,)
                if handler.targets is None
                else tuple(dict.fromkeys(ids[t] for t in handler.targets))
            )
            for target in targets:
                moves.setdefault((ids[state], target), {})[_label(handler)] = None
    edges = tuple(Edge(source, target, tuple(labels)) for (source, target), labels in moves.items())
    leaving = {e.source for e in edges if e.target != e.source}
    return Diagram(
        title=spec.name if title is None else title,
        nodes=nodes,
        edges=edges,
        initial=ids[spec.initial],
        active=None if active is None else ids[active],
        has_any_state=any(e.target == ANY_STATE_ID for e in edges),
        finals=tuple(node.id for node in nodes if node.id not in leaving),
    )


def node_ids(names: Iterable[str]) -> list[str]:
    """Ids that Mermaid and DOT accept unquoted, one per name, unique, in order."""
    taken: set[str] = set()
    ids: list[str] = []
    for name in names:
        base = name
        if not _PLAIN_ID.match(name) or name.lower() in _RESERVED:
            base = "s_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        candidate, counter = base, 2
        while candidate in taken:
            candidate, counter = f"{base}_{counter}", counter + 1
        taken.add(candidate)
        ids.append(candidate)
    return ids


def _applies(spec: FsmSpec[Any, Any, Any, Any], handler: HandlerSpec, state: Variant) -> bool:
    """Whether ``handler`` can run while the machine is in ``state``."""
    kind = handler.kind
    if kind is HandlerKind.EVENT or kind is HandlerKind.TIMEOUT:
        return handler.source is state
    if kind is HandlerKind.WILDCARD:
        return spec.handler_for(state, handler.event) is handler
    return any(spec.handler_for(state, event) is handler for event in spec.events.variants)


def _label(handler: HandlerSpec) -> str:
    if handler.kind is HandlerKind.TIMEOUT:
        return f"after {handler.seconds:g}s"
    if handler.kind is HandlerKind.UNHANDLED:
        return UNHANDLED_LABEL
    return variant_name(handler.event)
