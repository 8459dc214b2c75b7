"""Interrupts: a node pauses the run with a typed payload and gets a typed value back.

``answer = interrupt(Question("ship it?"), Answer)`` inside a node (sync or async, at any
depth of its call stack) pauses the run: the run checkpoints, reports an
:class:`Interrupt` carrying the payload, and waits for a value (a streaming run, through
``handle.resume``) or stops (``execute``/``resume``: call ``resume(..., value=...)``
later, in this process or another). The node then runs again from its start, and this
time ``interrupt`` returns the value — converted to ``Answer`` when it was read back from
the store. A node may interrupt several times: the values are matched to its
``interrupt`` calls in order. Code before an ``interrupt`` runs again on resume, so keep it
idempotent (LangGraph's rule too).

Do not catch :class:`GraphInterrupt` (it derives from ``BaseException`` so that
``except Exception`` leaves it alone).

Static interrupts (``builder.interrupt_before(node)`` / ``interrupt_after``) and barriers
are interrupts too: one mechanism pauses and resumes every one of them.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

if TYPE_CHECKING:
    from ..store import Codec

R = TypeVar("R")


class InterruptKind(enum.Enum):
    """What paused the run."""

    #: A node called :func:`interrupt`.
    CALL = "interrupt"
    #: A barrier node waits for a decision.
    BARRIER = "barrier"
    #: ``interrupt_before``: the run stopped before the node.
    BEFORE = "before"
    #: ``interrupt_after``: the run stopped after the node.
    AFTER = "after"


@attrs.frozen(slots=True, order=True)
class BarrierId:
    """One occurrence of a barrier node: ``node#occurrence``, counting from 1."""

    node: str
    occurrence: int

    def __str__(self) -> str:
        return f"{self.node}#{self.occurrence}"


@attrs.frozen(slots=True, order=True)
class InterruptId:
    """Names one interrupt: the node and the step it paused, the task within the step
    (a parallel branch or a fan-out input: ``""`` for a plain node), the index of the
    ``interrupt`` call within that task, and the subgraph nodes it sits in (``path``).
    Shown as ``path/node@step[task]#index``."""

    node: str
    step: int
    task: str = ""
    index: int = 0
    path: tuple[str, ...] = ()

    def __str__(self) -> str:
        prefix = "".join(f"{p}/" for p in self.path)
        task = f"[{self.task}]" if self.task else ""
        return f"{prefix}{self.node}@{self.step}{task}#{self.index}"


@attrs.frozen(slots=True)
class Interrupt:
    """A pause the run waits on: what paused it and what it asked."""

    id: InterruptId
    kind: InterruptKind
    #: What the node passed to :func:`interrupt` (``None`` for static interrupts and
    #: barriers). Read back from a store without the node's code, it is the payload's
    #: JSON form.
    payload: Any = None
    #: The barrier occurrence, for a barrier.
    barrier_id: BarrierId | None = None
    #: Seconds a barrier waits before applying its default.
    timeout: float | None = None


class GraphInterrupt(BaseException):
    """Raised by :func:`interrupt` to pause the run; the executor catches it. Never catch
    it yourself (it is a ``BaseException`` so ``except Exception`` does not)."""

    def __init__(self, index: int, payload: Any) -> None:
        super().__init__(f"interrupt #{index}: {payload!r}")
        self.index = index
        self.payload = payload


@attrs.frozen(slots=True)
class Stored:
    """A resume value read back from the store, still in its JSON form."""

    value: Any


class InterruptResumeError(TypeError):
    """A resume value does not fit the type the node's ``interrupt`` call expects."""


@attrs.define(slots=True)
class TaskScope:
    """What :func:`interrupt` and :func:`stream_writer` know about the running task."""

    #: Resume values for this task's interrupt calls, in order.
    resumes: list[Any]
    codec: Codec
    writer: Callable[[Any], Awaitable[None]] | None
    node: str
    index: int = 0


_SCOPE: contextvars.ContextVar[TaskScope | None] = contextvars.ContextVar(
    "fsmflow_graph_task", default=None
)


#: The scope of the sync node being called right now (a sync call cannot be interleaved
#: with another task, so a plain variable is enough, and cheaper than a context variable).
_sync_scope: TaskScope | None = None


def _scope(what: str) -> TaskScope:
    scope = _sync_scope or _SCOPE.get()
    if scope is None:
        raise RuntimeError(f"{what} can only be called while a graph node runs")
    return scope


def _structure(codec: Codec, raw: Any, expect: Any, node: str) -> Any:
    try:
        return codec.converter.structure(raw, expect)
    except Exception as exc:
        raise InterruptResumeError(
            f"node {node!r}: the stored resume value does not decode to "
            f"{getattr(expect, '__name__', expect)}: {type(exc).__name__}: {exc}"
        ) from exc


@overload
def interrupt(payload: Any) -> Any: ...
@overload
def interrupt(payload: Any, expect: type[R]) -> R: ...
def interrupt(payload: Any, expect: Any = None) -> Any:
    """Pause the run with ``payload`` and return the value it is resumed with.

    ``expect`` is the type of that value: a value read back from a store is converted to
    it (strictly: a value that does not fit raises :class:`InterruptResumeError`), and a
    value supplied in this process must be an instance of it when it is a class. Without
    ``expect`` the value is returned as given (its JSON form when read back).
    """
    scope = _scope("interrupt()")
    index = scope.index
    scope.index = index + 1
    if index < len(scope.resumes):
        value = scope.resumes[index]
        if isinstance(value, Stored):
            value = (
                value.value
                if expect is None
                else _structure(scope.codec, value.value, expect, scope.node)
            )
            scope.resumes[index] = value
        elif isinstance(expect, type) and not isinstance(value, expect):
            raise InterruptResumeError(
                f"node {scope.node!r}: interrupt #{index} expects {expect.__name__}, was "
                f"resumed with {type(value).__name__}"
            )
        return value
    raise GraphInterrupt(index, payload)


class StreamWriter:
    """Sends a node's own events (partial model output, progress) to the stream's
    consumer as :class:`~fsmflow.graph.CustomEvent`, waiting while its buffer is full
    (the same backpressure as every event). Without a consumer, or when the stream does
    not include ``StreamMode.CUSTOM``, writing does nothing."""

    __slots__ = ("_scope",)

    def __init__(self, scope: TaskScope) -> None:
        self._scope = scope

    async def __call__(self, data: Any) -> None:
        writer = self._scope.writer
        if writer is not None:
            await writer(data)


def stream_writer() -> StreamWriter:
    """The writer of the running node (call it inside a node)."""
    return StreamWriter(_scope("stream_writer()"))


def call_sync(scope: TaskScope, fn: Callable[[Any], Any], arg: Any) -> Any:
    """``fn(arg)`` (a sync node) with ``scope`` as the running task's."""
    global _sync_scope
    previous = _sync_scope
    _sync_scope = scope
    try:
        return fn(arg)
    finally:
        _sync_scope = previous


def enter_task(scope: TaskScope) -> contextvars.Token[TaskScope | None]:
    return _SCOPE.set(scope)


def leave_task(token: contextvars.Token[TaskScope | None]) -> None:
    _SCOPE.reset(token)
