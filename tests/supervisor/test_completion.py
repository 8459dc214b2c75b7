"""Completion exactly once on every exit, on both backends.

A run that cannot start, a run cancelled while its completion event is being written
(by a cancel scope, or natively on asyncio by ``task.cancel()`` or ``asyncio.wait_for``),
a ``dispatch_state`` that forgets its ``return``, and every failure under
``start_supervisor(..., raise_on_failure=False)``: each writes its completion event once,
records its outcome, and says what went wrong in one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from fsmflow.fsm import FsmSpec, HandlerError, InvalidDefinitionError, StateMachine
from fsmflow.supervisor import (
    CompletionEvent,
    ExitKind,
    ExternalEventMode,
    MemoryJournal,
    RunOutcome,
    SupervisorError,
    Trigger,
    start_supervisor,
)
from fsmflow.testing import each_backend

from ._scripted import Act, Ctx, Ev, Go, Hold, Phase, Scripted, ScriptedWithPolicy, scripted_spec


class Broken(Exception):
    pass


# -- a run that cannot start ---------------------------------------------------------------


class NoState(Scripted):
    def initial_state(self) -> Phase:
        raise Broken("no state today")


class NoContext(Scripted):
    def initial_context(self) -> Ctx:
        raise Broken("no context today")


class NoMachine(Scripted):
    def build_state_machine(self, initial_state: Phase) -> StateMachine[Phase, Ev, Ctx, Act]:
        raise Broken("no machine today")


class WrongState(Scripted):
    def initial_state(self) -> Phase:
        return Hold()  # type: ignore[return-value]  # an event, not a state


#: (supervisor class, the step that raised, the cause's type, the final state)
UNSTARTABLE: list[tuple[type[Scripted], str, type[Exception], object]] = [
    (NoState, "initial_state()", Broken, None),
    (NoContext, "initial_context()", Broken, Phase.IDLE),
    (NoMachine, "build_state_machine()", Broken, Phase.IDLE),
    (WrongState, "build_state_machine()", InvalidDefinitionError, Hold()),
]


def _assert_failed_to_start(
    sup: Scripted,
    journal: MemoryJournal,
    error: BaseException | None,
    step: str,
    cause: type[Exception],
    final_state: object,
) -> RunOutcome[Phase]:
    assert isinstance(error, SupervisorError)
    assert isinstance(error.__cause__, cause) and error.root_cause is error.__cause__
    assert f"the run could not start: {step} raised {cause.__name__}" in error.summary
    assert (error.supervisor, error.event) == ("scripted", "start")
    assert sup.completion_calls == 1
    assert journal.events == [
        CompletionEvent("scripted", "scripted", ExitKind.FAILED, final_state, str(error))
    ]
    outcome = sup.last_outcome
    assert outcome is not None and error.outcome == outcome
    assert outcome.exit is ExitKind.FAILED and outcome.error is error
    assert outcome.final_state == final_state and outcome.completion_written
    assert (outcome.dispatches, outcome.transitions) == (0, 0)
    return outcome


@pytest.mark.parametrize(("cls", "step", "cause", "final_state"), UNSTARTABLE)
@each_backend
async def test_a_run_that_cannot_start_writes_its_completion_and_raises(
    cls: type[Scripted], step: str, cause: type[Exception], final_state: object
) -> None:
    journal = MemoryJournal()
    sup = cls(journal=journal)
    with pytest.raises(SupervisorError) as info:
        await sup.run()
    _assert_failed_to_start(sup, journal, info.value, step, cause, final_state)


@pytest.mark.parametrize(("cls", "step", "cause", "final_state"), UNSTARTABLE)
@each_backend
async def test_start_supervisor_contains_a_run_that_cannot_start(
    cls: type[Scripted], step: str, cause: type[Exception], final_state: object
) -> None:
    journal = MemoryJournal()
    sup = cls(journal=journal)
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup, raise_on_failure=False)
    outcome = await handle.outcome()
    assert outcome == _assert_failed_to_start(sup, journal, outcome.error, step, cause, final_state)
    assert handle.state == final_state and handle.watcher.closed


@each_backend
async def test_a_run_that_cannot_start_fails_into_the_task_group_by_default() -> None:
    sup = NoMachine()
    with pytest.raises(ExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            handle = await start_supervisor(tg, sup)
    [error] = info.value.exceptions
    assert isinstance(error, SupervisorError), "the run's error, not the bare cause"
    assert isinstance(error.__cause__, Broken)
    assert (await handle.outcome()).error is error


@each_backend
async def test_a_policy_supervisor_that_cannot_start_closes_its_channel() -> None:
    class NoContextWithPolicy(ScriptedWithPolicy):
        def initial_context(self) -> Ctx:
            raise Broken("no context")

    sup = NoContextWithPolicy(modes={Phase.IDLE: ExternalEventMode.BLOCK})
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup, raise_on_failure=False)
    outcome = await handle.outcome()
    assert outcome.exit is ExitKind.FAILED and sup.completion_calls == 1
    with pytest.raises(Exception, match="has ended its run in state IDLE"):
        await handle.send(Hold())


# -- raise_on_failure=False contains every failure -------------------------------------------


def _failing_listener(record: object) -> None:
    raise Broken("listener")


class BadAfter(Scripted):
    async def after_transition(self, state: Phase, ctx: Ctx) -> None:
        raise Broken("after")


class BadErrorEvent(Scripted):
    def event_for_action_error(self, msg: str) -> Ev:
        raise Broken("mapping")


class BadHandler(Scripted):
    @classmethod
    def fsm_spec(cls) -> FsmSpec[Phase, Ev, Ctx, Act]:
        return scripted_spec()

    def build_state_machine(self, initial_state: Phase) -> StateMachine[Phase, Ev, Ctx, Act]:
        return self.fsm_spec().new_machine(initial_state)


FAILURES: list[tuple[str, Callable[[], Scripted], str]] = [
    ("listener", lambda: Scripted(script=[Trigger(Hold())]), "Broken: listener"),
    ("after_transition", lambda: BadAfter(script=[Trigger(Hold())]), "Broken: after"),
    ("event_for_action_error", lambda: BadErrorEvent(script=[Broken("x")]), "Broken: mapping"),
    (
        "handler",
        lambda: Scripted(script=[Trigger(Go(Phase.WORKING, ("a",)))], default=Broken("again")),
        "consecutive failure events",
    ),
    ("dispatch None", lambda: Scripted(script=[None]), "dispatch_state returned None"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("what", "make", "says"), FAILURES, ids=[f[0] for f in FAILURES])
@each_backend
async def test_raise_on_failure_false_contains_every_failure(
    what: str, make: Callable[[], Scripted], says: str
) -> None:
    sup = make()
    sup.max_consecutive_failures = 2
    ctx = Ctx(failing={"a"}, fault_acts=("a",))
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(
            tg,
            sup,
            context=ctx,
            raise_on_failure=False,
            listener=_failing_listener if what == "listener" else None,
        )
    outcome = await handle.outcome()
    assert outcome.exit is ExitKind.FAILED
    assert isinstance(outcome.error, SupervisorError)
    assert says in outcome.error.summary
    assert sup.completion_calls == 1 and outcome.completion_written


# -- dispatch_state returning None -----------------------------------------------------------


@each_backend
async def test_dispatch_returning_none_ends_the_run_instead_of_spinning() -> None:
    async def forgot_return() -> None:
        return None

    journal = MemoryJournal()
    sup = Scripted(script=[Trigger(Go(Phase.WORKING)), forgot_return], journal=journal)  # type: ignore[list-item]
    with pytest.raises(SupervisorError) as info:
        await sup.run(Phase.IDLE, Ctx())
    assert info.value.summary == (
        "supervisor 'scripted' failed in state WORKING on dispatch: dispatch_state returned "
        "None (is a return statement missing?); it must return Continue(), Trigger(event) or "
        "Terminate()"
    )
    assert sup.dispatched == [Phase.IDLE, Phase.WORKING], "asked once, not again and again"
    assert [e.exit for e in journal.events] == [ExitKind.FAILED]


# -- cancellation while the completion event is being written ---------------------------------


class SlowJournal:
    """A journal whose append takes ``seconds``; records when it started and finished."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = anyio.Event()
        self.events: list[CompletionEvent] = []
        self.interrupted = False

    async def append(self, event: CompletionEvent) -> None:
        self.started.set()
        try:
            await anyio.sleep(self.seconds)
        except BaseException:
            self.interrupted = True
            raise
        self.events.append(event)


@each_backend
async def test_a_cancel_scope_landing_during_the_write_loses_nothing() -> None:
    journal = SlowJournal(0.05)
    sup = Scripted(script=[Trigger(Go(Phase.DONE))], journal=journal)
    with anyio.CancelScope() as outer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run, Phase.IDLE, Ctx())
            await journal.started.wait()
            outer.cancel()
            tg.cancel_scope.cancel()
    assert not journal.interrupted
    assert [(e.exit, e.final_state) for e in journal.events] == [(ExitKind.TERMINATED, Phase.DONE)]
    outcome = sup.last_outcome
    assert outcome is not None and outcome.completion_written


async def _run_then_cancel_natively(sup: Scripted, journal: SlowJournal, times: int) -> None:
    task = asyncio.get_running_loop().create_task(sup.run(Phase.IDLE, Ctx()))
    await journal.started.wait()
    for _ in range(times):
        task.cancel()
        await asyncio.sleep(0.005)
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("times", [1, 2, 5])
def test_task_cancel_during_the_write_loses_nothing_on_asyncio(times: int) -> None:
    journal = SlowJournal(0.05)
    sup = Scripted(script=[Trigger(Go(Phase.DONE))], journal=journal)
    asyncio.run(_run_then_cancel_natively(sup, journal, times))
    assert not journal.interrupted, "the write ran to its end"
    assert [(e.exit, e.final_state) for e in journal.events] == [(ExitKind.TERMINATED, Phase.DONE)]
    outcome = sup.last_outcome
    assert outcome is not None and outcome.exit is ExitKind.TERMINATED
    assert outcome.completion_written and sup.completion_calls == 1


@pytest.mark.parametrize("timeout", [0.01, 0.03])
def test_wait_for_timing_out_during_the_write_loses_nothing_on_asyncio(timeout: float) -> None:
    # The run is cancelled by wait_for either while it waits (0.01 s: the write then
    # starts under cancellation) or while the write is under way (0.03 s).
    journal = SlowJournal(0.05)

    async def waits_then_terminates() -> None:
        await anyio.sleep(0.02)

    sup = Scripted(script=[waits_then_terminates], journal=journal)  # type: ignore[list-item]

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sup.run(Phase.IDLE, Ctx()), timeout)

    asyncio.run(main())
    assert not journal.interrupted
    assert len(journal.events) == 1
    outcome = sup.last_outcome
    assert outcome is not None and outcome.completion_written
    assert journal.events[0].exit is outcome.exit


def test_the_outcome_is_recorded_before_the_write_can_be_interrupted() -> None:
    seen: list[RunOutcome[Phase] | None] = []
    writing = asyncio.Event()

    class Watching(Scripted):
        async def write_completion_event(self) -> None:
            seen.append(self.last_outcome)
            writing.set()
            await asyncio.sleep(0.05)

    sup = Watching(script=[Trigger(Go(Phase.DONE))])

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(sup.run(Phase.IDLE, Ctx()))
        await writing.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [during] = seen
    assert during is not None and during.exit is ExitKind.TERMINATED
    assert not during.completion_written
    assert sup.last_outcome is not None and sup.last_outcome.completion_written


# -- messages -------------------------------------------------------------------------------


class Bulky:
    """An action carrying a large payload."""

    def __init__(self) -> None:
        self.payload = "x" * 50_000

    def __repr__(self) -> str:
        return f"Bulky({self.payload!r})"

    async def execute(self, ctx: Ctx) -> None:
        raise Broken("y" * 50_000)


@each_backend
async def test_failure_messages_quote_a_bounded_repr_of_the_action() -> None:
    from fsmflow.fsm import FsmBuilder, Transition, goto

    def load(state: Phase, event: Ev, ctx: Ctx) -> Transition[Phase, Bulky]:
        return goto(Phase.WORKING, Bulky())

    builder = FsmBuilder[Phase, Ev, Ctx, Bulky](states=Phase, events=Ev, initial=Phase.IDLE)
    builder.from_any().on(Go, load).on(Hold, load)
    builder.when(Phase.WORKING).on_entry(lambda state, ctx: None)
    spec = builder.build()

    class BulkySup(Scripted):
        def build_state_machine(self, initial_state: Phase) -> StateMachine[Phase, Ev, Ctx, Act]:
            return spec.new_machine(initial_state)  # type: ignore[return-value]

    sup = BulkySup(script=[Trigger(Go(Phase.WORKING))])
    sup.max_consecutive_failures = 0
    with pytest.raises(SupervisorError) as info:
        await sup.run(Phase.IDLE, Ctx())
    [message] = info.value.chain
    assert message.startswith("action Bulky('xxx")
    assert len(message) < 600
    assert "more characters" in message
    assert len(info.value.summary) < 1000


@each_backend
async def test_the_one_line_error_names_the_root_cause_of_a_handler_error() -> None:
    from fsmflow.fsm import FsmBuilder, Transition

    def buggy(state: Phase, event: Ev, ctx: Ctx) -> Transition[Phase, Act]:
        raise KeyError("missing")

    builder = FsmBuilder[Phase, Ev, Ctx, Act](
        states=Phase, events=Ev, initial=Phase.IDLE, name="buggy"
    )
    builder.from_any().on(Go, buggy)
    spec = builder.build()

    class Buggy(Scripted):
        def build_state_machine(self, initial_state: Phase) -> StateMachine[Phase, Ev, Ctx, Act]:
            return spec.new_machine(initial_state)

    with pytest.raises(SupervisorError) as info:
        await Buggy(script=[Trigger(Go(Phase.DONE))]).run(Phase.IDLE, Ctx())
    error = info.value
    assert "\n" not in error.summary and str(error) == error.summary
    assert error.summary == (
        "supervisor 'scripted' failed in state IDLE on Go: HandlerError: buggy: handler "
        "test_the_one_line_error_names_the_root_cause_of_a_handler_error.<locals>.buggy failed "
        "in state IDLE on Go (caused by KeyError: 'missing')"
    )
    assert isinstance(error.__cause__, HandlerError)
    assert isinstance(error.root_cause, KeyError)


def test_a_write_that_cancels_itself_counts_as_not_written_on_asyncio() -> None:
    class SelfCancelling(Scripted):
        async def write_completion_event(self) -> None:
            self.completion_calls += 1
            raise asyncio.CancelledError

    sup = SelfCancelling(script=[Trigger(Go(Phase.DONE))])
    outcome = asyncio.run(sup.run(Phase.IDLE, Ctx()))
    assert outcome.exit is ExitKind.TERMINATED and not outcome.completion_written
    assert sup.completion_calls == 1


class Interrupt(BaseException):
    """Neither an error nor a cancellation: passes through everything."""


@each_backend
async def test_a_handle_reports_a_run_interrupted_before_it_began() -> None:
    class Interrupted(Scripted):
        def build_state_machine(self, initial_state: Phase) -> StateMachine[Phase, Ev, Ctx, Act]:
            raise Interrupt

    sup = Interrupted()
    with pytest.raises(BaseExceptionGroup):
        async with anyio.create_task_group() as tg:
            handle = await start_supervisor(tg, sup, raise_on_failure=False)
    outcome = await handle.outcome()
    assert outcome.exit is ExitKind.CANCELLED and not outcome.completion_written
    assert handle.watcher.closed
