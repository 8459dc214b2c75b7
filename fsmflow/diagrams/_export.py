"""Mermaid, DOT and rendered images of a spec, a machine or a flowchart.

:func:`describe` decides what a state diagram shows. Mermaid source is written by
:mod:`._state_mermaid`; DOT is drawn by ``transitions.extensions.diagrams.GraphMachine`` (a
throwaway machine on a throwaway model, never triggered), which only builds DOT text with
the ``graphviz`` package. Only :func:`render` runs Graphviz's ``dot``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import attrs
import graphviz
from transitions.core import State
from transitions.extensions.diagrams import GraphMachine

from .._flowchart import Flowchart, SupportsFlowchart, flowchart_to_dot, flowchart_to_mermaid
from ._model import (
    ANY_STATE_ID,
    ANY_STATE_LABEL,
    FINAL_ID,
    INITIAL_ID,
    Diagram,
    DiagramSubject,
    describe,
)
from ._state_mermaid import state_diagram

if TYPE_CHECKING:
    from transitions.extensions.diagrams_base import GraphProtocol

_Styles = dict[str, str | dict[str, str | dict[str, Any]]]

_TRANSITIONS_NODE_STYLES = cast(dict[str, dict[str, str]], GraphMachine.style_attributes["node"])

# Node styles by name: transitions' own "default" and "active" (the current state of a
# machine), plus "pseudo" for the "any state" node; Graphviz uses them as node attributes.
_GRAPHVIZ_STYLES: _Styles = {
    "node": {
        "default": dict(_TRANSITIONS_NODE_STYLES["default"]),
        "active": dict(_TRANSITIONS_NODE_STYLES["active"]),
        "pseudo": {
            "shape": "rectangle",
            "style": "dashed,rounded,filled",
            "fillcolor": "white",
            "color": "dimgray",
            "fontcolor": "dimgray",
            "peripheries": "1",
        },
    },
    "edge": {"default": {"color": "black"}},
    "graph": {"default": {"color": "black", "fillcolor": "white", "style": "solid"}},
}

# Backslashes start DOT escapes and a label in <...> would be an HTML label; Graphviz
# decodes these entities in ordinary labels. Graphviz's quoting handles double quotes.
_DOT_ESCAPES = {
    ord("\\"): "\\\\",
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord("\n"): " ",
    ord("\r"): " ",
}


class DiagramToolMissing(RuntimeError):
    """Rendering an image needs Graphviz's ``dot`` executable, and it was not found.

    ``tool`` is the missing executable and ``format`` the format that was asked for. Mermaid
    and DOT source (:func:`to_mermaid`, :func:`to_dot`) never need it.
    """

    def __init__(self, tool: str, format: str) -> None:
        self.tool = tool
        self.format = format
        super().__init__(
            f"rendering a diagram as {format!r} needs Graphviz's {tool!r} executable, which "
            "was not found on PATH; install Graphviz (https://graphviz.org/download/, e.g. "
            "`apt-get install graphviz` or `brew install graphviz`), or use the format "
            "'mermaid' or 'dot', which need no external tool"
        )


def _flowchart(subject: SupportsFlowchart, title: str | None) -> Flowchart:
    chart = subject.flowchart()
    return chart if title is None else attrs.evolve(chart, title=title)


def to_mermaid(subject: DiagramSubject | SupportsFlowchart, *, title: str | None = None) -> str:
    """Mermaid source for a spec, a machine or anything with a flowchart, ending with a
    newline.

    A spec or machine gives a ``stateDiagram-v2``: ``title`` (default: the spec's name)
    goes into the front matter, a state's entry and exit hooks are lines under its name,
    final states lead to the end marker, and for a :class:`StateMachine` the current state
    has the ``current`` class; a bare spec highlights nothing. An object implementing
    :class:`SupportsFlowchart` (a graph, a DAG, a tree) gives a ``flowchart``. The same
    subject always gives the same text.
    """
    if isinstance(subject, SupportsFlowchart):
        return flowchart_to_mermaid(_flowchart(subject, title))
    return state_diagram(describe(subject, title))


def to_dot(subject: DiagramSubject | SupportsFlowchart, *, title: str | None = None) -> str:
    """Graphviz DOT source for a spec, a machine or anything with a flowchart (no Graphviz
    installation needed).

    The title (default: the spec's name) names the graph and labels it; the initial marker
    is a point node with an edge to the initial state, and final states have an edge to an
    end marker (a ringed point); a :class:`StateMachine`'s current state has transitions'
    "active" style. The same subject always gives the same text.
    """
    if isinstance(subject, SupportsFlowchart):
        return flowchart_to_dot(_flowchart(subject, title))
    return _digraph(subject, title).source


def render(
    subject: DiagramSubject | SupportsFlowchart, format: str = "svg", *, title: str | None = None
) -> bytes:
    """The diagram as ``format``: ``"mermaid"`` and ``"dot"`` give UTF-8 source text; any
    Graphviz output format (``"svg"``, ``"png"``, ``"pdf"``, ...) runs Graphviz's ``dot``.

    Raises :class:`DiagramToolMissing` when ``dot`` is not installed and :class:`ValueError`
    for a format that is neither.
    """
    if format == "mermaid":
        return to_mermaid(subject, title=title).encode()
    if format == "dot":
        return to_dot(subject, title=title).encode()
    if format not in graphviz.FORMATS:
        raise ValueError(
            f"unknown diagram format {format!r}; use 'mermaid', 'dot' or a Graphviz output "
            "format such as 'svg' or 'png'"
        )
    source = graphviz.Source(to_dot(subject, title=title))
    try:
        return source.pipe(format=format)
    except graphviz.ExecutableNotFound as exc:
        raise DiagramToolMissing("dot", format) from exc


class _LabelledState(State):
    """A transitions state whose label (what diagrams show) differs from its name (the
    node id)."""

    def __init__(self, name: str, *, label: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.label = label


class _DiagramMachine(GraphMachine):
    state_cls = _LabelledState


class _Model:
    """The object GraphMachine binds ``get_graph`` and its trigger methods to."""

    get_graph: Callable[..., GraphProtocol]


def _digraph(subject: DiagramSubject, title: str | None) -> graphviz.Digraph:
    diagram = describe(subject, title)
    digraph = cast(graphviz.Digraph, _draw(diagram))
    # transitions' Graphviz graphs have no initial or final markers; add UML's filled dot
    # and ringed dot.
    digraph.node(
        INITIAL_ID, label="", shape="point", style="filled", fillcolor="black", width="0.2"
    )
    digraph.edge(INITIAL_ID, diagram.initial)
    if diagram.finals:
        digraph.node(
            FINAL_ID, label="", shape="point", fillcolor="black", width="0.15", peripheries="2"
        )
        for final in diagram.finals:
            digraph.edge(final, FINAL_ID)
    return digraph


def _draw(diagram: Diagram) -> GraphProtocol:
    """Build a GraphMachine for ``diagram`` and return the DOT graph transitions draws.

    Names are made safe for DOT; node ids are safe already. Each edge gets its own trigger,
    so transitions keeps the edges in the diagram's order.
    """
    # Labels are left-aligned lines (DOT's "\l"): the name, then one line per hook in UML's
    # notation, as in the Mermaid output.
    states: list[dict[str, Any]] = [
        {
            "name": node.id,
            "label": r"\l".join(
                [
                    _dot_text(node.name),
                    *(f"entry / {_dot_text(hook)}" for hook in node.entry_hooks),
                    *(f"exit / {_dot_text(hook)}" for hook in node.exit_hooks),
                ]
            ),
        }
        for node in diagram.nodes
    ]
    if diagram.has_any_state:
        states.append({"name": ANY_STATE_ID, "label": ANY_STATE_LABEL})
    transitions = [
        {"trigger": f"e{index}", "source": e.source, "dest": e.target, "label": _dot_text(e.label)}
        for index, e in enumerate(diagram.edges)
    ]
    model = _Model()
    machine = _DiagramMachine(
        model=model,
        states=states,
        transitions=transitions,
        initial=diagram.initial,
        auto_transitions=False,
        show_state_attributes=False,
        graph_engine="graphviz",
    )
    machine.style_attributes = _GRAPHVIZ_STYLES
    graph = machine.model_graphs[id(model)]
    # GraphMachine marks the model's state (the initial one) active; only a running
    # machine's current state should be.
    graph.reset_styling()
    if diagram.has_any_state:
        graph.set_node_style(ANY_STATE_ID, "pseudo")
    if diagram.active is not None:
        graph.set_node_style(diagram.active, "active")
    return model.get_graph(title=_dot_text(diagram.title))


def _dot_text(text: str) -> str:
    return text.translate(_DOT_ESCAPES)
