"""A pipeline stage: a handler-supervised FSM that drives a user's function over a stream.

The stage reads raw lines from an input channel, turns each into a :class:`Reading` with
the handler it was given, and writes the readings to an output channel. It shows:

* :class:`~fsmflow.HandlerSupervised`: the supervisor drives someone else's function
  (``handler``) on behalf of a stage (``stage_id``, which names the journal's writer);
* the handler's errors reaching the FSM as ``StageError`` events, which it counts and
  turns into ``Failed`` once there are too many;
* ``Created`` waiting for a ``Start`` command (``BLOCK``), ``Running`` looking for a
  command between records (``POLL``) and sleeping with :class:`~fsmflow.IdleBackoff`
  when the input is empty, ``Draining`` finishing what is queued (``IGNORE``);
* the completion event in a :class:`~fsmflow.MemoryJournal`.

Run it from the repository root with ``python3 examples/pipeline_stage.py``; draw it with
``fsmflow diagram examples.pipeline_stage:PipelineStage``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import attrs
import trio

from fsmflow import (
    CONTINUE,
    TERMINATE,
    CompletionEvent,
    EventLoopDirective,
    ExternalChannelClosed,
    ExternalEventMode,
    ExternalEventPolicy,
    FsmBuilder,
    FsmSpec,
    HandlerSupervised,
    IdleBackoff,
    MemoryJournal,
    RunOutcome,
    Transition,
    Trigger,
    goto,
    start_supervisor,
    stay,
)


@attrs.frozen
class Reading:
    """What the stage produces: one temperature reading."""

    room: str
    celsius: float


#: The user's function a stage drives: a raw line in, a reading out (or an exception).
LineHandler = Callable[[str], Reading]


# -- states --------------------------------------------------------------------------------


@attrs.frozen
class Created:
    """Waiting for ``Start``."""


@attrs.frozen
class Running:
    pass


@attrs.frozen
class Draining:
    """Finishing the records already queued; no new ones are waited for."""


@attrs.frozen
class Drained:
    """Final: every record was handled."""


@attrs.frozen
class Failed:
    """Final: too many records failed."""

    reason: str


StageState = Created | Running | Draining | Drained | Failed


# -- events --------------------------------------------------------------------------------


@attrs.frozen
class Start:
    """Command: begin reading the input."""


@attrs.frozen
class Drain:
    """Command: handle what is queued, then stop."""


@attrs.frozen
class Handled:
    """Internal: the handler turned one line into ``reading``."""

    reading: Reading


@attrs.frozen
class InputDone:
    """Internal: the input is closed (``Running``) or empty (``Draining``)."""


@attrs.frozen
class StageError:
    """Internal: the handler or an action raised (``event_for_action_error``)."""

    message: str


StageEvent = Start | Drain | Handled | InputDone | StageError


# -- context and actions -------------------------------------------------------------------


@attrs.define
class StageIO:
    """The context: the stage's channels, its error budget and what went wrong."""

    input: trio.MemoryReceiveChannel[str]
    output: trio.MemorySendChannel[Reading]
    #: Errors tolerated; reaching this many fails the stage.
    max_errors: int = 3
    emitted: int = 0
    errors: list[str] = attrs.Factory(list)


@attrs.frozen
class Emit:
    reading: Reading

    async def execute(self, ctx: StageIO) -> None:
        await ctx.output.send(self.reading)
        ctx.emitted += 1


@attrs.frozen
class RecordError:
    message: str

    async def execute(self, ctx: StageIO) -> None:
        ctx.errors.append(self.message)


@attrs.frozen
class CloseChannels:
    """Tell upstream (its sends now fail) and downstream (its loop ends) we are done."""

    async def execute(self, ctx: StageIO) -> None:
        ctx.input.close()
        ctx.output.close()


StageAction = Emit | RecordError | CloseChannels
StageTransition = Transition[StageState, StageAction]


# -- handlers ------------------------------------------------------------------------------


def start(state: Created, event: Start, ctx: StageIO) -> StageTransition:
    return goto(Running())


def drain_unstarted(state: Created, event: Drain, ctx: StageIO) -> StageTransition:
    return goto(Drained())


def drain(state: Running, event: Drain, ctx: StageIO) -> StageTransition:
    return goto(Draining())


def emit(state: Running | Draining, event: Handled, ctx: StageIO) -> StageTransition:
    return stay(Emit(event.reading))


def input_done(state: Running | Draining, event: InputDone, ctx: StageIO) -> StageTransition:
    return goto(Drained())


def count_error(state: Running | Draining, event: StageError, ctx: StageIO) -> StageTransition:
    if len(ctx.errors) + 1 >= ctx.max_errors:
        return goto(
            Failed(f"{ctx.max_errors} errors, the last: {event.message}"),
            RecordError(event.message),
        )
    return stay(RecordError(event.message))


def close_channels(state: Drained | Failed, ctx: StageIO) -> list[StageAction]:
    return [CloseChannels()]


@functools.cache
def stage_spec() -> FsmSpec[StageState, StageEvent, StageIO, StageAction]:
    builder = FsmBuilder[StageState, StageEvent, StageIO, StageAction](
        states=StageState, events=StageEvent, initial=Created, name="pipeline stage"
    )
    (builder.when(Created).on(Start, start, to=[Running]).on(Drain, drain_unstarted, to=[Drained]))
    (
        builder.when(Running)
        .on(Handled, emit, to=())
        .on(StageError, count_error, to=[Failed])
        .on(Drain, drain, to=[Draining])
        .on(InputDone, input_done, to=[Drained])
    )
    (
        builder.when(Draining)
        .on(Handled, emit, to=())
        .on(StageError, count_error, to=[Failed])
        .on(InputDone, input_done, to=[Drained])
    )
    builder.on_entry(Drained, close_channels)
    builder.on_entry(Failed, close_channels)
    return builder.build()


# -- the supervisor ------------------------------------------------------------------------


class PipelineStage(
    ExternalEventPolicy[StageState, StageEvent],
    HandlerSupervised[StageState, StageEvent, StageIO, StageAction, LineHandler],
):
    """Drives ``handler`` over the lines of ``ctx.input`` until drained or failed.

    ``Start`` and ``Drain`` are external events: start it with
    :func:`fsmflow.start_supervisor` and send them through the handle.
    """

    def __init__(
        self,
        name: str,
        handler: LineHandler,
        stage_id: str,
        *,
        journal: MemoryJournal | None = None,
        idle: IdleBackoff | None = None,
    ) -> None:
        super().__init__(name, handler, stage_id, journal=journal)
        self.idle = IdleBackoff(initial=0.001, maximum=0.02) if idle is None else idle

    @classmethod
    def fsm_spec(cls) -> FsmSpec[StageState, StageEvent, StageIO, StageAction]:
        return stage_spec()

    def event_for_action_error(self, msg: str) -> StageEvent:
        return StageError(msg)

    def external_event_mode(self, state: StageState) -> ExternalEventMode:
        match state:
            case Created():
                return ExternalEventMode.BLOCK
            case Running():
                return ExternalEventMode.POLL
            case _:
                return ExternalEventMode.IGNORE

    def on_external_event_channel_closed(self, state: StageState) -> StageEvent | None:
        # Nobody can start a stage that was never started: finish it. A running stage
        # carries on: its input channel decides when it is done.
        return Drain() if isinstance(state, Created) else None

    async def dispatch_state(
        self, state: StageState, ctx: StageIO
    ) -> EventLoopDirective[StageEvent]:
        match state:
            case Created():
                # Only reached without an external channel: nothing can start the stage.
                return Trigger(Drain())
            case Running():
                try:
                    line = ctx.input.receive_nowait()
                except trio.WouldBlock:
                    await self.idle.idle()
                    return CONTINUE
                except trio.EndOfChannel:
                    return Trigger(InputDone())
                self.idle.reset()
                # A handler error becomes StageError(message) through the loop.
                return Trigger(Handled(self.handler(line)))
            case Draining():
                try:
                    line = ctx.input.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    return Trigger(InputDone())
                return Trigger(Handled(self.handler(line)))
            case Drained() | Failed():
                return TERMINATE


# -- running it ----------------------------------------------------------------------------


def parse_reading(line: str) -> Reading:
    """The user's handler: ``"kitchen 21.5"`` -> ``Reading("kitchen", 21.5)``."""
    room, celsius = line.split()
    return Reading(room, float(celsius))


LINES = ("kitchen 21.5", "garage 9.0", "attic n/a", "cellar 12.25", "porch", "hall 19.0")


@attrs.frozen
class Report:
    """What :func:`main` observed."""

    outcome: RunOutcome[StageState]
    readings: list[Reading]
    errors: list[str]
    completion: list[CompletionEvent]


async def run_stage(lines: tuple[str, ...], *, max_errors: int = 3) -> Report:
    """Queue ``lines`` for a new stage, start it, let it run a while, drain it, report."""
    journal = MemoryJournal()
    stage = PipelineStage("parse readings", parse_reading, "parse", journal=journal)
    to_stage, stage_input = trio.open_memory_channel[str](max(len(lines), 1))
    stage_output, from_stage = trio.open_memory_channel[Reading](max(len(lines), 1))
    with to_stage, from_stage:
        for line in lines:
            to_stage.send_nowait(line)
        ctx = StageIO(stage_input, stage_output, max_errors=max_errors)
        async with trio.open_nursery() as nursery:
            handle = await start_supervisor(nursery, stage, context=ctx)
            await handle.send(Start())
            await trio.sleep(0.05)
            # Whatever is still queued is handled in Draining. A stage that has failed
            # meanwhile has closed its command channel.
            with contextlib.suppress(ExternalChannelClosed):
                await handle.send(Drain())
            outcome = await handle.outcome()
        readings = [reading async for reading in from_stage]
    return Report(outcome, readings, ctx.errors, journal.events)


async def main() -> Report:
    report = await run_stage(LINES)
    for reading in report.readings:
        print(f"{reading.room:>8}: {reading.celsius:5.2f} C")
    for error in report.errors:
        print(f"rejected: {error}")
    print(f"=> {report.outcome.final_state!r}; journal: {report.completion}")
    return report


if __name__ == "__main__":
    trio.run(main)
