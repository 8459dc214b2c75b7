"""``start_supervisor`` and ``SupervisorHandle``: talking to a running supervisor, its
outcome, failure propagation, and misuse. On trio and asyncio."""

from __future__ import annotations

import anyio
import pytest
import trio

from fsmflow.fsm import StateMachine
from fsmflow.supervisor import (
    CONTINUE,
    ExitKind,
    ExternalChannelClosed,
    ExternalEventMode,
    MemoryJournal,
    SupervisorError,
    TransitionRecord,
    Trigger,
    start_supervisor,
)
from fsmflow.testing import each_backend

from ._scripted import Act, Ctx, Ev, Go, HandlerScripted, Hold, Phase, Scripted, ScriptedWithPolicy

BLOCK = ExternalEventMode.BLOCK


def _blocking(journal: MemoryJournal | None = None) -> ScriptedWithPolicy:
    return ScriptedWithPolicy(
        modes={Phase.IDLE: BLOCK, Phase.WORKING: BLOCK, Phase.FAILED: BLOCK}, journal=journal
    )


@each_backend
async def test_send_wait_and_state() -> None:
    sup = _blocking()
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup, context=Ctx())
        assert handle.name == "scripted" and handle.state is Phase.IDLE and not handle.done
        await handle.send(Go(Phase.WORKING))
        assert await handle.wait_for(lambda s: s is Phase.WORKING) is Phase.WORKING
        extra = handle.sender()
        extra.send_nowait(Go(Phase.DONE))
        extra.close()
        outcome = await handle.outcome()
    assert handle.done and handle.state is Phase.DONE
    assert outcome.exit is ExitKind.TERMINATED and outcome.final_state is Phase.DONE
    assert sup.last_outcome == outcome, "the caller's supervisor reports the outcome too"
    with pytest.raises(ExternalChannelClosed):
        await handle.send(Hold())


@each_backend
async def test_changes_follow_the_states() -> None:
    sup = _blocking()
    seen: list[Phase] = []

    async def observe() -> None:
        async for state in handle.changes():
            seen.append(state)

    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup)
        tg.start_soon(observe)
        for target in (Phase.WORKING, Phase.IDLE, Phase.DONE):
            await anyio.wait_all_tasks_blocked()
            await handle.send(Go(target))
    assert seen == [Phase.IDLE, Phase.WORKING, Phase.IDLE, Phase.DONE]


@each_backend
async def test_cancel_ends_the_run_cancelled_and_writes_completion() -> None:
    journal = MemoryJournal()
    sup = _blocking(journal)
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup)
        await handle.send(Go(Phase.WORKING))
        await handle.wait_for(lambda s: s is Phase.WORKING)
        handle.cancel()
        outcome = await handle.outcome()
    assert outcome.exit is ExitKind.CANCELLED and outcome.final_state is Phase.WORKING
    assert outcome.completion_written
    assert [(e.exit, e.final_state) for e in journal.events] == [
        (ExitKind.CANCELLED, Phase.WORKING)
    ]


@each_backend
async def test_failure_propagates_into_the_task_group() -> None:
    sup = Scripted(default=RuntimeError("x"))
    sup.max_consecutive_failures = 0
    with pytest.raises(ExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            handle = await start_supervisor(tg, sup)
    [error] = info.value.exceptions
    assert isinstance(error, SupervisorError) and error.supervisor == "scripted"
    outcome = await handle.outcome()
    assert outcome.exit is ExitKind.FAILED and outcome.error is error


async def test_failure_propagates_into_a_trio_nursery() -> None:
    sup = Scripted(default=RuntimeError("x"))
    sup.max_consecutive_failures = 0
    with pytest.raises(ExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            await start_supervisor(nursery, sup)
    assert info.value.subgroup(SupervisorError) is not None


@each_backend
async def test_failure_is_reported_through_the_outcome_when_asked() -> None:
    sup = Scripted(default=RuntimeError("x"))
    sup.max_consecutive_failures = 1
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup, raise_on_failure=False)
        outcome = await handle.outcome()
    assert outcome.exit is ExitKind.FAILED
    assert isinstance(outcome.error, SupervisorError)
    assert len(outcome.error.chain) == 2


@each_backend
async def test_supervisor_without_policy_takes_no_events() -> None:
    sup = Scripted(default=CONTINUE)
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup, initial_state=Phase.WORKING)
        for misuse in (
            lambda: handle.send_nowait(Hold()),
            lambda: handle.sender(),
        ):
            with pytest.raises(TypeError, match="takes no external events"):
                misuse()
        with pytest.raises(TypeError, match="implement ExternalEventPolicy"):
            await handle.send(Hold())
        handle.close_events()  # nothing to close: harmless
        handle.cancel()
    assert (await handle.outcome()).final_state is Phase.WORKING


@each_backend
async def test_supervisor_without_policy_is_watched_through_its_transitions() -> None:
    sup = Scripted(script=[CONTINUE, Trigger(Go(Phase.WORKING)), Trigger(Go(Phase.DONE))])
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup)
        assert await handle.wait_for(lambda s: s is Phase.DONE) is Phase.DONE
    assert sup._listeners == [], "the handle's listener left with the run"


@each_backend
async def test_listener_hears_this_run_only() -> None:
    sup = Scripted(script=[Trigger(Hold())])
    records: list[TransitionRecord] = []
    async with anyio.create_task_group() as tg:
        await start_supervisor(tg, sup, listener=records.append)
    assert [r.event for r in records] == [Hold()]
    sup.script.append(Trigger(Hold(("again",))))
    await sup.run(Phase.IDLE, Ctx())
    assert len(records) == 1
    assert sup._listeners == []


@each_backend
async def test_handler_supervised_with_policy_gets_a_channel() -> None:
    sup = HandlerScripted("stage-sup", handler="h", stage_id="3")
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup)
        await handle.send(Go(Phase.WORKING, ("sent",)))
        handle.close_events()
    outcome = await handle.outcome()
    assert outcome.final_state is Phase.WORKING
    assert outcome.exit is ExitKind.TERMINATED


class Unbuildable(Scripted):
    def build_state_machine(self, initial_state: Phase) -> StateMachine[Phase, Ev, Ctx, Act]:
        raise ValueError("no machine today")


@each_backend
async def test_sending_after_the_run_ended_says_so_and_in_which_state() -> None:
    sup = _blocking()
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup)
        extra = handle.sender()
        await handle.send(Go(Phase.DONE))
        await handle.outcome()
    for send in (handle.send, extra.send):
        with pytest.raises(ExternalChannelClosed) as info:
            await send(Hold())
        assert str(info.value) == (
            "supervisor 'scripted' has ended its run in state DONE; it takes no more "
            "external events (start a new run to send again)"
        )
        assert info.value.ended and info.value.final_state is Phase.DONE
    with pytest.raises(ExternalChannelClosed, match="has ended its run in state DONE"):
        extra.send_nowait(Hold())
    extra.close()


@each_backend
async def test_sending_on_a_closed_sender_while_the_run_goes_on_says_so() -> None:
    sup = _blocking()
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, sup)
        extra = handle.sender()
        extra.close()
        with pytest.raises(ExternalChannelClosed) as info:
            await extra.send(Hold())
        assert not info.value.ended and "this sender was closed" in str(info.value)
        handle.cancel()


@each_backend
async def test_a_second_run_does_not_report_the_first_outcome() -> None:
    sup = Scripted(script=[Trigger(Go(Phase.DONE))])
    await sup.run(Phase.IDLE, Ctx())
    assert sup.last_outcome is not None
    broken = Unbuildable()
    broken._last_outcome = sup.last_outcome
    with pytest.raises(ExceptionGroup):
        async with anyio.create_task_group() as tg:
            handle = await start_supervisor(tg, broken)
    outcome = await handle.outcome()
    assert outcome.exit is ExitKind.FAILED and outcome.dispatches == 0
