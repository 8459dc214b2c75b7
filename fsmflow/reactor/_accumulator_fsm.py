"""An accumulator's FSM: its states are its health, the one source of truth for it.

``STARTING -> LIVE | PUSH_ONLY``; any failure (of the handler, its ``init`` or the
source) -> ``DISCONNECTED``, which ends the run as failed so that the reactor's
supervision tree restarts it with backoff; a source that ends (or a push input that is
closed) -> ``STOPPED``.
"""

from __future__ import annotations

import enum
from functools import cache
from typing import TYPE_CHECKING, TypeAlias

import attrs

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay

if TYPE_CHECKING:
    from ._accumulators import AccumulatorRun


class AccumulatorHealth(enum.Enum):
    """What an accumulator is doing, observable through its ``health`` watcher."""

    #: Running its handler's ``init`` and connecting its source.
    STARTING = "starting"
    #: Its source is connected and delivering.
    LIVE = "live"
    #: Healthy, fed only by events pushed through its handle (push and batch kinds).
    PUSH_ONLY = "push_only"
    #: Its source or handler failed; the reactor restarts it after a backoff.
    DISCONNECTED = "disconnected"
    #: Its source ended, or the reactor stopped it.
    STOPPED = "stopped"

    @property
    def healthy(self) -> bool:
        """``LIVE`` or ``PUSH_ONLY``: delivering boundaries."""
        return self is AccumulatorHealth.LIVE or self is AccumulatorHealth.PUSH_ONLY


STARTING = AccumulatorHealth.STARTING
LIVE = AccumulatorHealth.LIVE
PUSH_ONLY = AccumulatorHealth.PUSH_ONLY
DISCONNECTED = AccumulatorHealth.DISCONNECTED
STOPPED = AccumulatorHealth.STOPPED

# -- events -----------------------------------------------------------------------------


@attrs.frozen
class Ready:
    """``init`` ran and the source is connected."""


@attrs.frozen
class Input:
    """A raw event: pushed, read from the stream, or returned by a poll."""

    event: object


@attrs.frozen
class Flush:
    """A batch accumulator may send what it buffered."""


@attrs.frozen
class SourceEnded:
    """The stream ended, or every push sender was closed."""


@attrs.frozen
class AccumulatorFailed:
    """The handler, its ``init`` or the source raised."""

    message: str


AccumulatorEvent: TypeAlias = Ready | Input | Flush | SourceEnded | AccumulatorFailed

# -- actions ----------------------------------------------------------------------------


@attrs.frozen
class Process:
    """Turn a raw event into a boundary with the handler and send it on."""

    event: object

    async def execute(self, ctx: AccumulatorRun) -> None:
        await ctx.process(self.event)


@attrs.frozen
class FlushBatch:
    async def execute(self, ctx: AccumulatorRun) -> None:
        await ctx.accumulator.flush()


@attrs.frozen
class NoteFailure:
    """Keep the failure's message: the run's error names it."""

    message: str

    async def execute(self, ctx: AccumulatorRun) -> None:
        ctx.failure = self.message


AccumulatorAction: TypeAlias = Process | FlushBatch | NoteFailure
_T: TypeAlias = Transition[AccumulatorHealth, AccumulatorAction]


def _ready(state: AccumulatorHealth, event: Ready, ctx: AccumulatorRun) -> _T:
    return goto(PUSH_ONLY if ctx.accumulator.push_only else LIVE)


def _process(state: AccumulatorHealth, event: Input, ctx: AccumulatorRun) -> _T:
    return stay(Process(event.event))


def _flush(state: AccumulatorHealth, event: Flush, ctx: AccumulatorRun) -> _T:
    return stay(FlushBatch())


def _ended(state: AccumulatorHealth, event: SourceEnded, ctx: AccumulatorRun) -> _T:
    return goto(STOPPED)


def _failed(state: AccumulatorHealth, event: AccumulatorFailed, ctx: AccumulatorRun) -> _T:
    return goto(DISCONNECTED, NoteFailure(event.message))


@cache
def accumulator_spec() -> FsmSpec[
    AccumulatorHealth, AccumulatorEvent, AccumulatorRun, AccumulatorAction
]:
    """The accumulator's spec, shared by every kind of accumulator."""
    b = FsmBuilder[AccumulatorHealth, AccumulatorEvent, "AccumulatorRun", AccumulatorAction](
        states=AccumulatorHealth, events=AccumulatorEvent, initial=STARTING, name="accumulator"
    )
    b.when(STARTING).on(Ready, _ready, to=[LIVE, PUSH_ONLY])
    for running in (LIVE, PUSH_ONLY):
        b.when(running).on(Input, _process, to=()).on(Flush, _flush, to=()).on(
            SourceEnded, _ended, to=[STOPPED]
        )
    for state in (STARTING, LIVE, PUSH_ONLY):
        b.when(state).on(AccumulatorFailed, _failed, to=[DISCONNECTED])
    return b.strict().build()
