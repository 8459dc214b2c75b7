"""The reactor's FSM: the one source of truth for its states, events and actions.

The states are the reactor's health, ``Starting -> Warming -> Live <-> Degraded``, plus
``Paused`` (which remembers the health to resume to) and ``Stopped``. Everything that
happens to a reactor is an event: boundaries, accumulator health changes, manual
commands and shutdown arrive on its external channel; a finished firing, a restored
store and the reactor's own failures come from its dispatch. Handlers only decide; the
actions change the :class:`~fsmflow.reactor._context.ReactorContext`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, TypeAlias

import attrs

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay
from ._accumulator_fsm import AccumulatorHealth
from ._cache import InputCache
from ._persistence import Queued, Restored

if TYPE_CHECKING:
    from ._admission import Receipt
    from ._context import ReactorContext

# -- states -----------------------------------------------------------------------------


@attrs.frozen
class Starting:
    """Restoring from the store, then starting the accumulators."""


@attrs.frozen
class Warming:
    """Accepting boundaries, not firing: some accumulators are not healthy yet.

    Counts, so that each health change costs the same however many sources there are;
    ``ReactorSnapshot.accumulators`` names each accumulator's health.
    """

    #: Accumulators that are healthy.
    healthy: int
    #: Accumulators that are neither healthy nor stopped: the reactor waits for them.
    waiting: int


@attrs.frozen
class Live:
    """Every accumulator is (or was) healthy: firing when the criteria hold."""


@attrs.frozen
class Degraded:
    """Some accumulators are disconnected (or restarting): still firing, on stale data
    for those sources."""

    #: The sources that are down, in the order they went down.
    disconnected: tuple[str, ...]


@attrs.frozen
class Paused:
    """Accepting boundaries, not firing, until resumed; ``resume_to`` follows the health
    changes that happen meanwhile."""

    resume_to: Warming | Live | Degraded


@attrs.frozen
class Stopped:
    """The run is over; ``error`` says why a reactor that could not start stopped."""

    error: str | None = None


ReactorState: TypeAlias = Starting | Warming | Live | Degraded | Paused | Stopped
#: A reactor's health is its state, with ``Paused`` replaced by what it resumes to.
ReactorHealth: TypeAlias = Starting | Warming | Live | Degraded | Stopped

# -- what a firing is -------------------------------------------------------------------


class FiringKind(enum.Enum):
    #: The criteria held on the dirty flags (``LATEST``).
    LATEST = "latest"
    #: The head of the queue (``SEQUENTIAL``).
    SEQUENTIAL = "sequential"
    #: ``force_fire`` or ``fire_with``.
    MANUAL = "manual"


@attrs.frozen
class Firing:
    """One firing, decided by the dispatch and settled by the FSM."""

    kind: FiringKind
    cache: InputCache
    #: The queued boundary it fires (``SEQUENTIAL``).
    item: Queued | None = None
    attempt: int = 1
    #: False for a ``SEQUENTIAL`` boundary that only fills the cache because ``WHEN_ALL``
    #: still waits for a source: it is committed without calling the graph.
    runs_graph: bool = True
    #: The sources whose new boundaries this firing uses up.
    consumed: frozenset[str] = frozenset()


# -- events -----------------------------------------------------------------------------


@attrs.frozen
class StoreRestored:
    restored: Restored


@attrs.frozen
class BoundaryArrived:
    source: str
    value: object
    #: Told when the reactor has accepted the boundary (see :class:`Receipt`).
    receipt: Receipt | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class AcceptStaged:
    """Boundaries taken from the channel are staged: accept them (one store batch)."""


@attrs.frozen
class HealthChanged:
    source: str
    health: AccumulatorHealth


@attrs.frozen
class ForceFire:
    """Fire with the current cache, whatever the criteria."""


@attrs.frozen
class FireWith:
    """Replace the cache with ``values`` (source name -> boundary), then fire."""

    values: Mapping[str, object]


@attrs.frozen
class Pause:
    pass


@attrs.frozen
class Resume:
    pass


@attrs.frozen
class ReplayDeadLetters:
    """Queue dead letters again: those with these ids, or all of them."""

    ids: tuple[int, ...] | None = None


@attrs.frozen
class Shutdown:
    pass


@attrs.frozen
class FiringFinished:
    """A firing ended: completed with ``outputs``, or failed with ``error``."""

    firing: Firing
    outputs: object = None
    error: str | None = None


@attrs.frozen
class RetryDue:
    """The backoff scheduled as ``token`` has passed."""

    token: int


@attrs.frozen
class ReactorFailure:
    """The reactor's own dispatch or an action failed (never a graph error)."""

    message: str


ReactorEvent: TypeAlias = (
    StoreRestored
    | BoundaryArrived
    | AcceptStaged
    | HealthChanged
    | ForceFire
    | FireWith
    | Pause
    | Resume
    | ReplayDeadLetters
    | Shutdown
    | FiringFinished
    | RetryDue
    | ReactorFailure
)

# -- actions ----------------------------------------------------------------------------


@attrs.frozen
class ApplyRestored:
    restored: Restored

    async def execute(self, ctx: ReactorContext) -> None:
        ctx.apply_restored(self.restored)


@attrs.frozen
class StartAccumulators:
    async def execute(self, ctx: ReactorContext) -> None:
        await ctx.start_accumulators()


@attrs.frozen
class AcceptBoundary:
    boundary: BoundaryArrived

    async def execute(self, ctx: ReactorContext) -> None:
        boundary = self.boundary
        if ctx.latest:
            ctx.accept_latest(boundary.source, boundary.value, boundary.receipt)
        else:
            ctx.take_sequential(boundary.source, boundary.value, boundary.receipt)


@attrs.frozen
class AppendStaged:
    async def execute(self, ctx: ReactorContext) -> None:
        await ctx.accept_staged()


@attrs.frozen
class RecordHealth:
    source: str
    health: AccumulatorHealth

    async def execute(self, ctx: ReactorContext) -> None:
        ctx.health.record(self.source, self.health)


@attrs.frozen
class RequestFire:
    async def execute(self, ctx: ReactorContext) -> None:
        ctx.force_requests += 1


@attrs.frozen
class ReplaceCache:
    values: Mapping[str, object]

    async def execute(self, ctx: ReactorContext) -> None:
        ctx.replace_cache(self.values)


@attrs.frozen
class Replay:
    ids: tuple[int, ...] | None

    async def execute(self, ctx: ReactorContext) -> None:
        await ctx.replay(self.ids)


@attrs.frozen
class CommitFiring:
    firing: Firing
    outputs: object

    async def execute(self, ctx: ReactorContext) -> None:
        await ctx.commit(self.firing, self.outputs)


@attrs.frozen
class RecordGraphFailure:
    firing: Firing
    error: str

    async def execute(self, ctx: ReactorContext) -> None:
        ctx.record_graph_failure(self.firing, self.error)


@attrs.frozen
class ScheduleRetry:
    """Hold automatic firings back for ``delay`` seconds; with ``writes``, every store
    write too (the store itself failed)."""

    delay: float
    writes: bool = False

    async def execute(self, ctx: ReactorContext) -> None:
        ctx.schedule_retry(self.delay, writes=self.writes)


@attrs.frozen
class MoveToDeadLetters:
    firing: Firing
    error: str

    async def execute(self, ctx: ReactorContext) -> None:
        await ctx.dead_letter(self.firing, self.error)


@attrs.frozen
class ClearRetry:
    token: int

    async def execute(self, ctx: ReactorContext) -> None:
        ctx.clear_retry(self.token)


@attrs.frozen
class RecordFailure:
    message: str

    async def execute(self, ctx: ReactorContext) -> None:
        ctx.record_failure(self.message)


@attrs.frozen
class StopAccumulators:
    async def execute(self, ctx: ReactorContext) -> None:
        await ctx.stop_accumulators()


@attrs.frozen
class PersistOnShutdown:
    """Save the ``LATEST`` cache and dirty flags that no firing has saved yet."""

    async def execute(self, ctx: ReactorContext) -> None:
        await ctx.persist_cache()


ReactorAction: TypeAlias = (
    ApplyRestored
    | StartAccumulators
    | AcceptBoundary
    | AppendStaged
    | RecordHealth
    | RequestFire
    | ReplaceCache
    | Replay
    | CommitFiring
    | RecordGraphFailure
    | ScheduleRetry
    | MoveToDeadLetters
    | ClearRetry
    | RecordFailure
    | StopAccumulators
    | PersistOnShutdown
)
_T: TypeAlias = Transition[ReactorState, ReactorAction]


def _move(state: ReactorState, target: ReactorState, *actions: ReactorAction) -> _T:
    """Go to ``target`` unless it equals ``state`` (then stay, without hooks)."""
    return stay(*actions) if target == state else goto(target, *actions)


# -- handlers ---------------------------------------------------------------------------


def _restored(state: Starting, event: StoreRestored, ctx: ReactorContext) -> _T:
    health = ctx.health.derive(warming=True)
    return goto(health, ApplyRestored(event.restored), StartAccumulators())


def _start_failed(state: Starting, event: ReactorFailure, ctx: ReactorContext) -> _T:
    return goto(Stopped(event.message))


def _accept(state: ReactorState, event: BoundaryArrived, ctx: ReactorContext) -> _T:
    return stay(AcceptBoundary(event))


def _accept_staged(state: ReactorState, event: AcceptStaged, ctx: ReactorContext) -> _T:
    return stay(AppendStaged())


def _health_warming(state: Warming, event: HealthChanged, ctx: ReactorContext) -> _T:
    health = ctx.health.derive(True, event.source, event.health)
    return _move(state, health, RecordHealth(event.source, event.health))


def _health_running(state: Live | Degraded, event: HealthChanged, ctx: ReactorContext) -> _T:
    health = ctx.health.derive(False, event.source, event.health)
    return _move(state, health, RecordHealth(event.source, event.health))


def _health_paused(state: Paused, event: HealthChanged, ctx: ReactorContext) -> _T:
    health = ctx.health.derive(isinstance(state.resume_to, Warming), event.source, event.health)
    return _move(state, Paused(health), RecordHealth(event.source, event.health))


def _force_fire(state: ReactorState, event: ForceFire, ctx: ReactorContext) -> _T:
    return stay(RequestFire())


def _fire_with(state: ReactorState, event: FireWith, ctx: ReactorContext) -> _T:
    return stay(ReplaceCache(event.values), RequestFire())


def _pause(state: Warming | Live | Degraded, event: Pause, ctx: ReactorContext) -> _T:
    return goto(Paused(state))


def _already_paused(state: Paused, event: Pause, ctx: ReactorContext) -> _T:
    return stay()


def _resume(state: Paused, event: Resume, ctx: ReactorContext) -> _T:
    return goto(state.resume_to)


def _not_paused(state: ReactorState, event: Resume, ctx: ReactorContext) -> _T:
    return stay()


def _replay(state: ReactorState, event: ReplayDeadLetters, ctx: ReactorContext) -> _T:
    return stay(Replay(event.ids))


def _shutdown(state: ReactorState, event: Shutdown, ctx: ReactorContext) -> _T:
    return goto(Stopped(), StopAccumulators(), PersistOnShutdown())


def _finished(state: Live | Degraded, event: FiringFinished, ctx: ReactorContext) -> _T:
    """A completed firing commits. A failed ``SEQUENTIAL`` one is retried after a backoff
    until its attempts run out, then dead-lettered; any other failed firing is only
    recorded (the next boundary fires again)."""
    firing = event.firing
    if event.error is None:
        return stay(CommitFiring(firing, event.outputs))
    failed = RecordGraphFailure(firing, event.error)
    if firing.kind is not FiringKind.SEQUENTIAL:
        return stay(failed)
    if firing.attempt < ctx.retry.max_attempts:
        return stay(failed, ScheduleRetry(ctx.retry.delay(firing.attempt)))
    return stay(failed, MoveToDeadLetters(firing, event.error))


def _retry_due(state: ReactorState, event: RetryDue, ctx: ReactorContext) -> _T:
    return stay(ClearRetry(event.token))


def _failure(state: ReactorState, event: ReactorFailure, ctx: ReactorContext) -> _T:
    """The reactor's own failure (a store that refuses a write, say): record it and hold
    firings and store writes back for a growing, capped delay, so a persistent fault
    cannot spin. What the failed write held stays where it was, and is written again
    once the delay has passed."""
    delay = ctx.retry.delay(ctx.consecutive_failures + 1)
    return stay(RecordFailure(event.message), ScheduleRetry(delay, writes=True))


def _failure_stopped(state: Stopped, event: ReactorFailure, ctx: ReactorContext) -> _T:
    """A stop whose last save failed: record it; the run ends all the same."""
    return stay(RecordFailure(event.message))


#: The states in which the reactor fires.
_RUNNING: tuple[type[Live | Degraded], ...] = (Live, Degraded)
#: The states in which the reactor takes boundaries and commands.
_ACCEPTING: tuple[type[Warming | Live | Degraded | Paused], ...] = (
    Warming,
    Live,
    Degraded,
    Paused,
)


@cache
def reactor_spec() -> FsmSpec[ReactorState, ReactorEvent, ReactorContext, ReactorAction]:
    """The reactor's spec (strict: an event a state never expects is a loud error)."""
    b = FsmBuilder[ReactorState, ReactorEvent, "ReactorContext", ReactorAction](
        states=ReactorState, events=ReactorEvent, initial=Starting, name="reactor"
    )
    b.when(Starting).on(StoreRestored, _restored, to=[Warming, Live]).on(
        ReactorFailure, _start_failed, to=[Stopped]
    )
    b.when(Warming).on(HealthChanged, _health_warming, to=[Warming, Live]).on(
        Pause, _pause, to=[Paused]
    )
    # Live() always equals Live(), so only Degraded re-enters itself (with another set).
    b.when(Live).on(HealthChanged, _health_running, to=[Degraded])
    b.when(Degraded).on(HealthChanged, _health_running, to=[Live, Degraded])
    for running in _RUNNING:
        b.when(running).on(Pause, _pause, to=[Paused]).on(FiringFinished, _finished, to=())
    b.when(Paused).on(HealthChanged, _health_paused, to=[Paused]).on(
        Resume, _resume, to=[Warming, Live, Degraded]
    ).on(Pause, _already_paused, to=())
    # What the accepting states handle in place (to=(): they only stay, and draw no edge).
    for accepting in _ACCEPTING:
        scope = b.when(accepting)
        scope.on(BoundaryArrived, _accept, to=()).on(AcceptStaged, _accept_staged, to=())
        scope.on(ForceFire, _force_fire, to=()).on(FireWith, _fire_with, to=())
        scope.on(ReplayDeadLetters, _replay, to=()).on(RetryDue, _retry_due, to=())
        scope.on(ReactorFailure, _failure, to=()).on(Shutdown, _shutdown, to=[Stopped])
        if accepting is not Paused:
            scope.on(Resume, _not_paused, to=())
    b.when(Stopped).on(ReactorFailure, _failure_stopped, to=())
    return b.strict().build()
