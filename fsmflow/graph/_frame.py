"""Where a run stands between steps, and what its next step already has.

A :class:`Frame` is the part of a checkpoint that is not the state: the node (or the
fan-out sends) the next step runs, the writes of that step's tasks that already finished
(*pending writes*: a resumed run does not run them again), the values its interrupts were
resumed with, the interrupts it waits on, and the saved runs of subgraphs paused inside
it. Frames are encoded to JSON with the graph's types and decoded strictly; a frame
decoded without a graph (``fsmflow runs``) keeps its typed parts in their JSON form, so it
can be changed (a decision recorded) and written back unchanged.

:func:`release` is the one place a value meets the interrupt it answers — in a live run,
when resuming from a store, and from the shell alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..store import DecodeError
from ._interrupts import BarrierId, Interrupt, InterruptId, InterruptKind, Stored
from ._nodes import FunctionNode, SubgraphNode
from ._results import Approve, Decision, Reject, Route, Send, Skip
from ._state import Delta

if TYPE_CHECKING:
    from cattrs import Converter

    from ._graph import Graph


@attrs.define(slots=True)
class ChildRun:
    """A subgraph's run saved inside its parent's frame (it paused, or a checkpoint was
    taken while it ran)."""

    state: Any
    step: int
    occurrences: dict[str, int]
    frame: Frame


@attrs.define(slots=True)
class Frame:
    """The position of a run and the progress of its next step."""

    #: The node the next step runs (``None``: the run completed). For a fan-out step, the
    #: node the sends run (they all share it).
    next_node: str | None
    #: The inputs of a fan-out step, or ``None``.
    sends: tuple[Send[Any], ...] | None = None
    #: ``interrupt_before`` of the next node was already resumed.
    released: bool = False
    #: Task key -> delta of the next step's tasks that already finished.
    writes: dict[str, Delta] = attrs.field(factory=dict)
    #: Task key -> the values its interrupts were resumed with, in order.
    resumes: dict[str, list[Any]] = attrs.field(factory=dict)
    #: What the run waits on (empty while it runs).
    interrupts: list[Interrupt] = attrs.field(factory=list)
    #: Task key -> a subgraph's saved run.
    children: dict[str, ChildRun] = attrs.field(factory=dict)
    #: A pending ``interrupt_after`` of the node that just ran.
    after: Interrupt | None = None

    def clear_step(self) -> None:
        """Forget the progress of the step that just committed."""
        if self.writes:
            self.writes = {}
        if self.resumes:
            self.resumes = {}
        if self.children:
            self.children = {}
        self.released = False

    @property
    def next_nodes(self) -> tuple[str, ...]:
        if self.next_node is None:
            return ()
        return (self.next_node,)


# -- releasing interrupts ------------------------------------------------------------------


def find_pending(frame: Frame, target: InterruptId | BarrierId | str | None) -> list[Interrupt]:
    """The pending interrupts ``target`` addresses: an interrupt id, a barrier id, a
    barrier node name (every pending occurrence) or the id's text; ``None``: all."""
    pending = list(frame.interrupts)
    if frame.after is not None and frame.after not in pending:
        pending.append(frame.after)
    if target is None:
        return pending
    if isinstance(target, InterruptId):
        return [i for i in pending if i.id == target]
    if isinstance(target, BarrierId):
        return [i for i in pending if i.barrier_id == target and not i.id.path]
    return [
        i
        for i in pending
        if str(i.id) == target
        or (i.barrier_id is not None and not i.id.path and i.barrier_id.node == target)
        or (i.barrier_id is not None and str(i.barrier_id) == target)
    ]


def release(frame: Frame, interrupt: Interrupt, value: Any) -> None:
    """Record ``value`` as the answer to ``interrupt`` (pending in ``frame``, or in a
    subgraph's frame inside it) and stop waiting on it."""
    frame.interrupts = [i for i in frame.interrupts if i.id != interrupt.id]
    _record(frame, interrupt, interrupt.id.path, value)


def _record(frame: Frame, interrupt: Interrupt, path: tuple[str, ...], value: Any) -> None:
    if path:
        child = frame.children.get(interrupt.id.task)
        if child is None:  # the subgraph's run was not saved: nothing to continue
            return
        inner = attrs.evolve(interrupt, id=attrs.evolve(interrupt.id, path=path[1:]))
        child.frame.interrupts = [i for i in child.frame.interrupts if i.id != inner.id]
        _record(child.frame, inner, path[1:], value)
        return
    kind = interrupt.kind
    task = interrupt.id.task
    if kind is InterruptKind.CALL:
        values = frame.resumes.setdefault(task, [])
        del values[interrupt.id.index :]
        values.append(value)
    elif kind is InterruptKind.BARRIER:
        frame.resumes[task] = [value]
    elif kind is InterruptKind.BEFORE:
        frame.released = True
    else:
        frame.after = None


# -- decisions ---------------------------------------------------------------------------


def encode_decision(decision: Decision, converter: Converter, graph: Graph[Any]) -> Any:
    if isinstance(decision, Approve):
        return {"decision": "approve"}
    if isinstance(decision, Skip):
        return {"decision": "skip"}
    if isinstance(decision, Reject):
        return {"decision": "reject", "reason": decision.reason}
    return {
        "decision": "route",
        "target": decision.target,
        "update": encode_delta(decision.update, converter, graph),
    }


def decode_decision(raw: Any, converter: Converter, graph: Graph[Any], where: str) -> Decision:
    """A decision from its stored form; raises ``DecodeError`` naming ``where``."""
    try:
        kind = raw["decision"]
        if kind == "approve":
            return Approve()
        if kind == "skip":
            return Skip()
        if kind == "reject":
            return Reject(_text(raw["reason"]))
        if kind == "route":
            update = decode_delta(raw.get("update", {}), converter, graph, where)
            return Route(_text(raw["target"]), update)
    except (KeyError, TypeError) as exc:
        raise DecodeError(where, "Decision", f"{type(exc).__name__}: {exc}") from exc
    raise DecodeError(where, "Decision", f"unknown decision {kind!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


# -- encoding ----------------------------------------------------------------------------


def encode_delta(delta: Delta, converter: Converter, graph: Graph[Any]) -> dict[str, Any]:
    update_type = graph.schema.update_type
    return {k: converter.unstructure(v, update_type(k)) for k, v in delta.items()}


def decode_delta(raw: Any, converter: Converter, graph: Graph[Any], where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise DecodeError(where, "delta", f"expected an object, got {type(raw).__name__}")
    schema = graph.schema
    out = {}
    for key, value in raw.items():
        if key not in schema.types:
            raise DecodeError(where, "delta", f"{key!r} is not a key of the state")
        try:
            out[key] = converter.structure(value, schema.update_type(key))
        except Exception as exc:
            raise DecodeError(where, f"delta[{key!r}]", str(exc)) from exc
    return out


def encode_value(value: Any, converter: Converter, graph: Graph[Any] | None) -> Any:
    """A resume value or payload in its stored form."""
    if isinstance(value, Stored):
        return {"stored": value.value}
    if isinstance(value, Approve | Reject | Route | Skip) and graph is not None:
        return {"decision": encode_decision(value, converter, graph)}
    return {"value": converter.unstructure(value)}


def _decode_value(raw: Any) -> Any:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise TypeError("a stored value is an object with one of stored, decision, value")
    ((kind, inner),) = raw.items()
    if kind not in ("stored", "value", "decision"):
        raise TypeError(f"unknown stored value kind {kind!r}")
    return Stored(inner)


def encode_interrupt(interrupt: Interrupt, converter: Converter) -> dict[str, Any]:
    ident = interrupt.id
    return {
        "node": ident.node,
        "step": ident.step,
        "task": ident.task,
        "index": ident.index,
        "path": list(ident.path),
        "kind": interrupt.kind.value,
        "payload": encode_value(interrupt.payload, converter, None),
        "barrier": None
        if interrupt.barrier_id is None
        else [interrupt.barrier_id.node, interrupt.barrier_id.occurrence],
        "timeout": interrupt.timeout,
    }


def decode_interrupt(raw: Mapping[str, Any]) -> Interrupt:
    ident = InterruptId(
        _text(raw["node"]),
        int(raw["step"]),
        _text(raw["task"]),
        int(raw["index"]),
        tuple(_text(p) for p in raw["path"]),
    )
    barrier = raw.get("barrier")
    payload = _decode_value(raw["payload"])
    timeout = raw.get("timeout")
    return Interrupt(
        ident,
        InterruptKind(raw["kind"]),
        payload.value,
        None if barrier is None else BarrierId(_text(barrier[0]), int(barrier[1])),
        None if timeout is None else float(timeout),
    )


def encode_frame(frame: Frame, converter: Converter, graph: Graph[Any] | None) -> dict[str, Any]:
    """The stored form of ``frame``; with ``graph`` ``None`` every typed part must still be
    in its stored form (a frame decoded without a graph)."""
    sends = None
    if frame.sends is not None:
        sends = [
            {
                "node": s.node,
                "arg": s.arg.value
                if isinstance(s.arg, Stored)
                else converter.unstructure(s.arg, send_input_type(_typed(graph), s.node)),
            }
            for s in frame.sends
        ]
    children = {}
    for task, child in frame.children.items():
        child_graph = _child_graph(graph, frame.next_node)
        children[task] = {
            "state": child.state.value
            if isinstance(child.state, Stored)
            else converter.unstructure(child.state, _typed(child_graph).schema.state_type),
            "step": child.step,
            "occurrences": dict(child.occurrences),
            "frame": encode_frame(child.frame, converter, child_graph),
        }
    writes = {
        t: d.value if isinstance(d, Stored) else encode_delta(d, converter, _typed(graph))
        for t, d in frame.writes.items()
    }
    return {
        "next_node": frame.next_node,
        "sends": sends,
        "released": frame.released,
        "writes": writes,
        "resumes": {
            t: [encode_value(v, converter, graph) for v in values]
            for t, values in frame.resumes.items()
        },
        "interrupts": [encode_interrupt(i, converter) for i in frame.interrupts],
        "children": children,
        "after": None if frame.after is None else encode_interrupt(frame.after, converter),
    }


def _typed(graph: Graph[Any] | None) -> Graph[Any]:
    if graph is None:
        raise AssertionError("a frame with typed parts needs its graph to be encoded")
    return graph


def send_input_type(graph: Graph[Any], node: str) -> Any:
    found = graph.nodes.get(node)
    if isinstance(found, FunctionNode) and found.input_type is not None:
        return found.input_type
    return graph.schema.state_type


def _child_graph(graph: Graph[Any] | None, node: str | None) -> Graph[Any] | None:
    if graph is None or node is None:
        return None
    found = graph.nodes.get(node)
    return found.graph if isinstance(found, SubgraphNode) else None


def decode_frame(
    raw: Mapping[str, Any], converter: Converter, graph: Graph[Any] | None, where: str
) -> Frame:
    """A frame from its stored form (strictly); without ``graph`` typed parts stay
    :class:`Stored`. Raises ``DecodeError`` naming ``where``."""
    try:
        return _decode_frame(raw, converter, graph, where)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(where, "frame", f"{type(exc).__name__}: {exc}") from exc


def _decode_frame(
    raw: Mapping[str, Any], converter: Converter, graph: Graph[Any] | None, where: str
) -> Frame:
    next_node = raw["next_node"]
    if next_node is not None:
        next_node = _text(next_node)
        if graph is not None and next_node not in graph.nodes:
            raise DecodeError(where, "frame", f"next node {next_node!r} is not in the graph")
    sends = None
    if raw.get("sends") is not None:
        decoded = []
        for item in raw["sends"]:
            node = _text(item["node"])
            if graph is None:
                decoded.append(Send(node, Stored(item["arg"])))
                continue
            try:
                arg = converter.structure(item["arg"], send_input_type(graph, node))
            except Exception as exc:
                raise DecodeError(where, f"send to {node!r}", str(exc)) from exc
            decoded.append(Send(node, arg))
        sends = tuple(decoded)
    writes: dict[str, Any] = {}
    for task, delta in raw["writes"].items():
        writes[_text(task)] = (
            Stored(delta) if graph is None else decode_delta(delta, converter, graph, where)
        )
    children: dict[str, ChildRun] = {}
    for task, child in raw["children"].items():
        child_graph = _child_graph(graph, next_node)
        if graph is not None and child_graph is None:
            raise DecodeError(where, "frame", f"{next_node!r} is not a subgraph node")
        if child_graph is None:
            state: Any = Stored(child["state"])
        else:
            try:
                state = converter.structure(child["state"], child_graph.schema.state_type)
            except Exception as exc:
                raise DecodeError(where, "subgraph state", str(exc)) from exc
        children[_text(task)] = ChildRun(
            state,
            int(child["step"]),
            {_text(k): int(v) for k, v in child["occurrences"].items()},
            _decode_frame(child["frame"], converter, child_graph, where),
        )
    after = raw.get("after")
    return Frame(
        next_node,
        sends,
        bool(raw["released"]),
        writes,
        {_text(t): [_decode_value(v) for v in values] for t, values in raw["resumes"].items()},
        [decode_interrupt(i) for i in raw["interrupts"]],
        children,
        None if after is None else decode_interrupt(after),
    )
