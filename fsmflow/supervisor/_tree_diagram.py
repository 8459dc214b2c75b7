"""A supervision tree as a :class:`~fsmflow.diagrams.Flowchart`.

The tree is a subroutine node naming its strategy and intensity; each child hangs below
it, numbered in start order, with its restart type; once the tree has run, each child's
state is written under it and highlighted (running, restarting, stopped, abandoned), and
the tree's own state too. A child that is itself a tree is drawn as a subroutine node
with its own children below it, to any depth. A pool draws its first
:data:`POOL_CHILDREN_DRAWN` children and sums up the rest in one node, so the picture of
a pool of thousands stays readable.

Imported by ``TreeBase.flowchart()`` when called, because this module needs the tree
classes (to tell a pool and a nested tree apart) and they are defined beside it.
"""

from __future__ import annotations

from .._flowchart import Flowchart, FlowEdge, FlowNode, NodeClass, NodeShape
from ._records import ExitKind
from ._tree_base import TreeBase
from ._tree_context import Child
from ._tree_pool import SupervisorPool
from ._tree_states import (
    Escalating,
    Failed,
    Restarting,
    Running,
    ShuttingDown,
    Starting,
    Stopped,
    TreeState,
)
from ._tree_values import AutoShutdown, ChildState

#: How many children of a pool are drawn one by one.
POOL_CHILDREN_DRAWN = 12

_CHILD_CLASSES = {
    ChildState.RUNNING: NodeClass.CURRENT,
    ChildState.RESTARTING: NodeClass.WAITING,
    ChildState.ABANDONED: NodeClass.FAILED,
}


def tree_flowchart(tree: TreeBase) -> Flowchart:
    """The picture of ``tree`` now (see the module docstring)."""
    nodes: list[FlowNode] = []
    edges: list[FlowEdge] = []
    _draw_tree(tree, "tree", None, nodes, edges)
    return Flowchart(tuple(nodes), tuple(edges), title=f"supervision tree {tree.name}")


def _draw_tree(
    tree: TreeBase,
    node_id: str,
    as_child: Child | None,
    nodes: list[FlowNode],
    edges: list[FlowEdge],
) -> None:
    ctx = tree.context
    ran = ctx.used
    classes: frozenset[NodeClass] = frozenset()
    if as_child is None:
        lines = [tree.name]
    else:
        # As a child: what its parent knows first, then what kind of tree it is.
        lines = [as_child.spec.id, _restart_line(as_child)]
        if ran or as_child.run is not None:
            lines.append(_child_state_line(as_child))
            classes = _child_classes(as_child)
        if as_child.spec.id != tree.name:
            lines.append(f"tree {tree.name}")
    intensity = tree.intensity
    lines.append(
        f"{tree.strategy_label}, at most {intensity.max_restarts} restarts in {intensity.period:g}s"
    )
    if tree.auto_shutdown is not AutoShutdown.NEVER:
        lines.append(f"auto_shutdown: {tree.auto_shutdown.value}")
    if isinstance(tree, SupervisorPool):
        template = tree.template
        line = f"children {template.name}-*: {template.restart.value}"
        lines.append(line + (", significant" if template.significant else ""))
    if as_child is None and ran:
        lines.append(f"state: {type(tree.state).__name__}")
        classes = _tree_classes(tree.state)
    nodes.append(FlowNode(node_id, tuple(lines), NodeShape.SUBROUTINE, classes))

    children = list(ctx.children.values())
    shown = children[:POOL_CHILDREN_DRAWN] if ctx.pooled else children
    for position, child in enumerate(shown, start=1):
        child_node = f"{node_id}/{child.spec.id}"
        edges.append(FlowEdge(node_id, child_node, None if ctx.pooled else str(position)))
        supervisor = None if child.run is None else child.run.supervisor
        if isinstance(supervisor, TreeBase):
            _draw_tree(supervisor, child_node, child, nodes, edges)
        else:
            nodes.append(_child_node(child_node, child, ran))
    hidden = children[len(shown) :]
    if hidden:
        counts: dict[ChildState, int] = {}
        for child in hidden:
            counts[child.state()] = counts.get(child.state(), 0) + 1
        summary = ", ".join(f"{n} {state.value}" for state, n in counts.items())
        more_node = f"{node_id}/+more"
        nodes.append(FlowNode(more_node, (f"{len(hidden)} more", summary), NodeShape.ROUNDED))
        edges.append(FlowEdge(node_id, more_node))


def _child_node(node_id: str, child: Child, ran: bool) -> FlowNode:
    lines = [child.spec.id, _restart_line(child)]
    if not ran:
        return FlowNode(node_id, tuple(lines), NodeShape.ROUNDED)
    lines.append(_child_state_line(child))
    return FlowNode(node_id, tuple(lines), NodeShape.ROUNDED, _child_classes(child))


def _restart_line(child: Child) -> str:
    line = child.spec.restart.value
    if child.spec.significant:
        line += ", significant"
    return line


def _child_state_line(child: Child) -> str:
    state = child.state()
    restarts = max(child.starts - 1, 0)
    line = state.value
    if state is ChildState.STOPPED and child.last_outcome is not None:
        line += f" ({child.last_outcome.exit.value})"
    if restarts:
        line += f", {restarts} restart{'s' if restarts > 1 else ''}"
    return line


def _child_classes(child: Child) -> frozenset[NodeClass]:
    state = child.state()
    if state is ChildState.STOPPED:
        failed = child.last_outcome is not None and child.last_outcome.exit is ExitKind.FAILED
        return frozenset({NodeClass.FAILED if failed else NodeClass.MUTED})
    return frozenset({_CHILD_CLASSES[state]})


def _tree_classes(state: TreeState) -> frozenset[NodeClass]:
    match state:
        case Running():
            return frozenset({NodeClass.CURRENT})
        case Starting() | Restarting() | ShuttingDown() | Escalating():
            return frozenset({NodeClass.WAITING})
        case Stopped():
            return frozenset({NodeClass.DONE})
        case Failed():
            return frozenset({NodeClass.FAILED})
