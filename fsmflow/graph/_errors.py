"""Typed errors of the graph executor.

Build-time problems raise :class:`GraphDefinitionError` listing every problem at once.
Run-time errors end a run: :func:`~fsmflow.graph.execute` raises them and the event
stream reports them in :class:`~fsmflow.graph.GraphFailed`. Every one of them is a
:class:`GraphError`, so ``except GraphError`` catches exactly "the graph run failed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs


class GraphError(Exception):
    """Base class of every error of :mod:`fsmflow.graph`."""


class GraphDefinitionError(GraphError):
    """The graph cannot be built; ``problems`` lists every reason, one per line."""

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"graph {name!r} is invalid:\n  " + "\n  ".join(self.problems))


class StreamingRequired(GraphError):
    """``execute`` was given a graph with barrier nodes; a barrier waits for a decision
    that only a handle can send, so such graphs run with ``execute_stream``."""

    def __init__(self, barriers: Sequence[str]) -> None:
        self.barriers = tuple(barriers)
        super().__init__(
            f"barrier node(s) {', '.join(map(repr, barriers))} wait for decisions sent "
            "through a handle: run this graph with execute_stream()"
        )


class StepsExceeded(GraphError):
    """The run reached ``max_steps`` node executions without ending."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the run exceeded max_steps={limit} without reaching its end")


class NodeNotFound(GraphError):
    """Execution was routed to a node the graph does not have."""

    def __init__(self, node: str) -> None:
        self.node = node
        super().__init__(f"no node named {node!r} in the graph")


class MissingEdge(GraphError):
    """A node asked to go to ``target`` but the graph has no edge ``source -> target``."""

    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target
        super().__init__(f"node {source!r} asked to go to {target!r} but there is no such edge")


@attrs.frozen(slots=True)
class ConditionTried:
    """One outgoing edge the router looked at: its label and whether it matched."""

    edge: str
    condition: str | None
    matched: bool


class Unrouted(GraphError):
    """No outgoing edge of ``node`` applied: every condition was false and there is no
    normal or fallback edge. ``tried`` lists the edges in the order they were tried."""

    def __init__(self, node: str, tried: Sequence[ConditionTried]) -> None:
        self.node = node
        self.tried = tuple(tried)
        shown = ", ".join(f"{t.edge} [{t.condition}: {t.matched}]" for t in self.tried)
        super().__init__(f"no edge out of {node!r} applies; tried {shown or 'nothing'}")


class EdgeFailed(GraphError):
    """A condition or fan-out function of an edge out of ``node`` raised; ``cause`` is
    what it raised (also ``__cause__``)."""

    def __init__(self, node: str, edge: str, label: str | None, cause: BaseException) -> None:
        self.node = node
        self.edge = edge
        self.cause = cause
        shown = f" [{label}]" if label else ""
        super().__init__(
            f"edge {edge}{shown} out of node {node!r} raised {type(cause).__name__}: {cause}"
        )
        self.__cause__ = cause


class NodeTimedOut(TimeoutError):
    """A node attempt ran past its ``timeout`` (the cause of the :class:`NodeFailed`)."""

    def __init__(self, node: str, timeout: float) -> None:
        self.node = node
        self.timeout = timeout
        super().__init__(f"node {node!r} did not finish within {timeout}s")


class FanOutError(GraphError):
    """A fan-out is malformed: a send names a node that is not a fan-out target of the
    graph, carries an input of the wrong type, or the branches lead on to different
    nodes."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(f"fan-out from {node!r}: {message}")


class NodeFailed(GraphError):
    """The function of ``node`` raised; ``cause`` is what it raised (also ``__cause__``)."""

    def __init__(self, node: str, cause: BaseException) -> None:
        self.node = node
        self.cause = cause
        super().__init__(f"node {node!r} failed: {type(cause).__name__}: {cause}")
        self.__cause__ = cause


class ParallelFailed(GraphError):
    """With the collect-all strategy, one or more branches of ``node`` failed;
    ``failures`` maps each failed branch to what it raised."""

    def __init__(self, node: str, failures: Mapping[str, BaseException]) -> None:
        self.node = node
        self.failures = dict(failures)
        shown = "; ".join(f"{b}: {type(e).__name__}: {e}" for b, e in self.failures.items())
        super().__init__(f"{len(self.failures)} branch(es) of {node!r} failed: {shown}")


class MergeConflict(GraphError):
    """Several branches of ``node`` set ``key`` (a replace-reduced key) to different
    values; give the key a combining reducer or let one branch own it."""

    def __init__(self, node: str, key: str, branches: Sequence[str]) -> None:
        self.node = node
        self.key = key
        self.branches = tuple(branches)
        super().__init__(
            f"parallel node {node!r}: branches {', '.join(map(repr, branches))} set "
            f"{key!r} to different values; declare a reducer for {key!r} (append, add, "
            "merge or a custom one) or write it from one branch only"
        )


class StateUpdateError(GraphError):
    """A node's delta could not be applied (an unknown key, a reducer that raised)."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(f"node {node!r}: {message}")


class MissingFallback(GraphError):
    """``node`` reported a degraded result but has no fallback edge to route along."""

    def __init__(self, node: str, reason: str) -> None:
        self.node = node
        self.reason = reason
        super().__init__(
            f"node {node!r} fell back ({reason}) but has no fallback edge; add one with "
            f"builder.fallback({node!r}, TARGET)"
        )


class BarrierRejected(GraphError):
    """A barrier was rejected and has no ``on_reject`` route."""

    def __init__(self, barrier_id: str, reason: str) -> None:
        self.barrier_id = barrier_id
        self.reason = reason
        super().__init__(f"barrier {barrier_id} was rejected: {reason}")


class ExecutorFault(GraphError):
    """The executor itself failed (an event sink or a store raised unexpectedly)."""


class CheckpointNotFound(GraphError):
    """No checkpoint is stored for the thread (or not the one asked for)."""

    def __init__(self, thread_id: str, checkpoint: int | None = None) -> None:
        self.thread_id = thread_id
        self.trace_id = thread_id
        self.checkpoint = checkpoint
        which = "" if checkpoint is None else f" numbered {checkpoint}"
        super().__init__(f"no checkpoint{which} stored for thread {thread_id!r}")


class RunExists(GraphError):
    """A run was started under a trace id whose thread already has checkpoints: starting
    afresh there would mix two runs' histories. Continue it with ``resume_from`` /
    ``resume``, add input to the conversation with ``thread_id=``, or pass
    ``replace=True`` to delete the old history first."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(
            f"thread {thread_id!r} already has checkpoints: continue it with "
            "resume_from()/resume(), pass it as thread_id= to add input to it, or pass "
            "replace=True to delete its history and start again"
        )


class ThreadBusy(GraphError):
    """New input was given to a thread whose last run has not finished (it waits at an
    interrupt or was stopped mid-run): resume that run first, or ``replace`` it."""

    def __init__(self, thread_id: str, status: str, next_node: str | None) -> None:
        self.thread_id = thread_id
        self.status = status
        super().__init__(
            f"thread {thread_id!r} has an unfinished run ({status}, next {next_node!r}): "
            "resume it with resume()/resume_from() (with a value for its interrupts), or "
            "pass replace=True to discard its history"
        )


class ThreadHeld(GraphError):
    """A live process runs the thread: it holds the thread's lease (``holder``, its owner
    id: host, process id and a random part) for ``expires_in`` more seconds unless it
    renews it. Starting, resuming or editing the thread meanwhile is refused; pass
    ``standby=True`` to wait and take over when the holder ends or dies. ``__cause__`` is
    the store's :class:`~fsmflow.store.LeaseHeld`."""

    def __init__(self, thread_id: str, holder: str, expires_in: float) -> None:
        self.thread_id = thread_id
        self.holder = holder
        self.expires_in = expires_in
        super().__init__(
            f"thread {thread_id!r} is being run by {holder!r}, whose lease on it expires in "
            f"{expires_in:.1f}s unless renewed: wait for that run to end, or pass "
            "standby=True to take over when it ends or dies"
        )


class ThreadLeaseLost(GraphError):
    """The run lost its lease on the thread and stopped without writing anything more:
    another process took the thread over after the lease expired (this one was paused,
    or blocked its event loop, past ``lease_ttl``), or renewing kept failing until the
    lease must have expired. The thread's history from then on is the new owner's.

    ``holder`` is the owner that has the thread now, if known; ``cause`` (also
    ``__cause__``) is the store's :class:`~fsmflow.store.LeaseLost` or the
    :class:`~fsmflow.store.BackendError` that kept renewals from succeeding."""

    def __init__(self, thread_id: str, cause: Exception) -> None:
        self.thread_id = thread_id
        self.cause = cause
        self.holder: str | None = getattr(cause, "current_owner", None)
        super().__init__(
            f"the run of thread {thread_id!r} lost its lease and stopped without writing: {cause}"
        )
        self.__cause__ = cause


class InterruptNeedsStore(GraphError):
    """A run without a store and without a handle reached an interrupt: nothing could
    resume it. Give ``execute`` a ``store=`` (then ``resume(..., value=...)``), or run
    it with ``execute_stream`` and answer through the handle."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"{where} interrupted the run, but it has no store to pause in and no handle "
            "to resume it: pass store= to execute() and continue with resume(..., "
            "value=...), or run it with execute_stream() and call handle.resume()"
        )


class GraphHashMismatch(GraphError):
    """The graph's structure changed since the checkpoint was saved; resuming could route
    the stored state through nodes it was never meant for. ``changes`` lists what
    changed (when the store still knows the old structure). Pass ``force=True`` to resume
    anyway (a :class:`GraphHashMismatchWarning` is then issued)."""

    def __init__(
        self, trace_id: str, saved: str, current: str, changes: Sequence[str] = ()
    ) -> None:
        self.trace_id = trace_id
        self.saved = saved
        self.current = current
        self.changes = tuple(changes)
        listed = "".join(f"\n  {c}" for c in self.changes)
        super().__init__(
            f"thread {trace_id!r} was checkpointed with graph hash {saved[:12]}, the graph "
            f"now hashes to {current[:12]}; pass force=True to resume anyway"
            + (f"; what changed:{listed}" if listed else "")
        )


class GraphHashMismatchWarning(UserWarning):
    """Issued when a run is resumed with ``force=True`` on a changed graph."""
