"""Reactors: fire a computation graph when long-lived inputs deliver new data.

Accumulators (push, stream, polling, batch) turn raw events into typed *boundaries* for
the sources they feed; the :class:`Reactor` decides when to fire its graph
(:class:`Criteria`) and with what (:class:`InputStrategy`), and hands the graph an
:class:`InputCache` snapshot. Both are supervised FSMs: the reactor a
:class:`~fsmflow.supervisor.SelfSupervised` whose states are its health
(``Starting -> Warming -> Live <-> Degraded``, plus ``Paused`` and ``Stopped``), each
accumulator a :class:`~fsmflow.supervisor.HandlerSupervised` whose states are *its*
health, restarted with backoff by a supervision tree when its source fails. With a
:mod:`fsmflow.store` the reactor is durable: a ``SEQUENTIAL`` boundary, once accepted,
is never lost, even to a ``kill -9``.

Start one with :func:`start_reactor` and control it through its :class:`ReactorHandle`.
"""

from ._accumulator_fsm import (
    AccumulatorEvent,
    AccumulatorFailed,
    AccumulatorHealth,
    Flush,
    Input,
    Ready,
    SourceEnded,
    accumulator_spec,
)
from ._accumulators import (
    Accumulator,
    AccumulatorHandler,
    AccumulatorRun,
    AccumulatorSupervisor,
    BatchAccumulator,
    PassThrough,
    PollingAccumulator,
    PushAccumulator,
    SourceDisconnected,
    StreamAccumulator,
)
from ._admission import NotAccepted, Receipt
from ._cache import DirtyFlags, InputCache
from ._context import ReactorContext
from ._fsm import (
    BoundaryArrived,
    Degraded,
    FireWith,
    Firing,
    FiringFinished,
    FiringKind,
    ForceFire,
    HealthChanged,
    Live,
    Pause,
    Paused,
    ReactorAction,
    ReactorEvent,
    ReactorFailure,
    ReactorHealth,
    ReactorState,
    ReplayDeadLetters,
    Resume,
    RetryDue,
    Shutdown,
    Starting,
    Stopped,
    StoreRestored,
    Warming,
    reactor_spec,
)
from ._handle import ReactorHandle, ReactorSnapshot
from ._supervisor import Reactor, TaskStarter, start_reactor
from ._types import (
    Completed,
    Criteria,
    DeadLetter,
    Graph,
    GraphError,
    GraphResult,
    InputStrategy,
    RetryPolicy,
    Source,
)

__all__ = [
    "Accumulator",
    "AccumulatorEvent",
    "AccumulatorFailed",
    "AccumulatorHandler",
    "AccumulatorHealth",
    "AccumulatorRun",
    "AccumulatorSupervisor",
    "BatchAccumulator",
    "BoundaryArrived",
    "Completed",
    "Criteria",
    "DeadLetter",
    "Degraded",
    "DirtyFlags",
    "FireWith",
    "Firing",
    "FiringFinished",
    "FiringKind",
    "Flush",
    "ForceFire",
    "Graph",
    "GraphError",
    "GraphResult",
    "HealthChanged",
    "Input",
    "InputCache",
    "InputStrategy",
    "Live",
    "NotAccepted",
    "PassThrough",
    "Pause",
    "Paused",
    "PollingAccumulator",
    "PushAccumulator",
    "Reactor",
    "ReactorAction",
    "ReactorContext",
    "ReactorEvent",
    "ReactorFailure",
    "ReactorHandle",
    "ReactorHealth",
    "ReactorSnapshot",
    "ReactorState",
    "Ready",
    "Receipt",
    "ReplayDeadLetters",
    "Resume",
    "RetryDue",
    "RetryPolicy",
    "Shutdown",
    "Source",
    "SourceDisconnected",
    "SourceEnded",
    "Starting",
    "Stopped",
    "StoreRestored",
    "StreamAccumulator",
    "TaskStarter",
    "Warming",
    "accumulator_spec",
    "reactor_spec",
    "start_reactor",
]
