"""External events: the BLOCK / POLL / IGNORE policy, the closed-channel mapping, the
watcher the wrappers publish to, backpressure, and misuse. On trio and asyncio."""

from __future__ import annotations

import itertools

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from fsmflow.supervisor import (
    CONTINUE,
    TERMINATE,
    ChannelBuilder,
    CompletionEvent,
    EventLoopDirective,
    EventReceiver,
    ExitKind,
    ExternalChannelClosed,
    ExternalEventMode,
    HandlerSupervisedWithExternalEvents,
    MemoryJournal,
    SelfSupervisedWithExternalEvents,
    StateWatcher,
    TransitionRecord,
    Trigger,
)
from fsmflow.supervisor._external import SEND_YIELD_EVERY
from fsmflow.testing import each_backend, supervisor_harness

from ._scripted import (
    Ctx,
    Ev,
    Go,
    HandlerScripted,
    Hold,
    Phase,
    Scripted,
    ScriptedWithPolicy,
)

BLOCK = ExternalEventMode.BLOCK
POLL = ExternalEventMode.POLL
IGNORE = ExternalEventMode.IGNORE


class RecordingWatcher(StateWatcher[Phase]):
    def __init__(self, initial_state: Phase) -> None:
        super().__init__(initial_state)
        self.published: list[Phase] = []

    def publish(self, state: Phase) -> None:
        self.published.append(state)
        super().publish(state)


# -- the watcher -------------------------------------------------------------------------


@each_backend
async def test_watcher_sees_every_state_the_loop_rests_in() -> None:
    inner = ScriptedWithPolicy(modes={Phase.IDLE: BLOCK, Phase.WORKING: BLOCK})
    sender, receiver, _ = ChannelBuilder[Ev, Phase]().build(Phase.IDLE)
    watcher = RecordingWatcher(Phase.IDLE)
    sup = SelfSupervisedWithExternalEvents(inner, receiver, watcher)
    for event in (Go(Phase.WORKING), Hold(), Go(Phase.IDLE), Go(Phase.DONE)):
        sender.send_nowait(event)
    outcome = await sup.run(None, Ctx())
    assert outcome.final_state is Phase.DONE
    distinct = [
        s for i, s in enumerate(watcher.published) if i == 0 or watcher.published[i - 1] is not s
    ]
    assert distinct == [Phase.IDLE, Phase.WORKING, Phase.IDLE, Phase.DONE]
    assert watcher.current() is Phase.DONE and watcher.closed
    with pytest.raises(ExternalChannelClosed):
        await sender.send(Hold())
    sender.close()


# -- BLOCK / POLL / IGNORE -----------------------------------------------------------------


@each_backend
async def test_block_waits_for_an_external_event() -> None:
    inner = ScriptedWithPolicy(modes={Phase.IDLE: BLOCK})
    async with supervisor_harness(inner) as h:
        await anyio.wait_all_tasks_blocked()
        assert inner.dispatched == [], "BLOCK does not call dispatch_state"
        assert h.records == [] and h.state is Phase.IDLE
        await h.send(Go(Phase.DONE, ("go",)))
        await h.wait_for_state(Phase.DONE)
        outcome = await h.outcome()
    assert outcome.exit is ExitKind.TERMINATED
    assert inner.dispatched == [Phase.DONE]
    assert [r.event for r in h.records] == [Go(Phase.DONE, ("go",))]


@each_backend
async def test_poll_takes_a_ready_event_without_delegating() -> None:
    inner = ScriptedWithPolicy(modes={Phase.IDLE: POLL})
    async with supervisor_harness(inner) as h:
        h.send_nowait(Hold(("first",)))
        h.send_nowait(Hold(("second",)))
        outcome = await h.outcome()
    assert [r.event for r in h.records] == [Hold(("first",)), Hold(("second",))]
    assert inner.dispatched == [Phase.IDLE], "delegated only once the channel was empty"
    assert outcome.dispatches == 3


@each_backend
async def test_poll_delegates_when_nothing_is_ready() -> None:
    inner = ScriptedWithPolicy(script=[CONTINUE, CONTINUE], modes={Phase.IDLE: POLL})
    async with supervisor_harness(inner) as h:
        outcome = await h.outcome()
    assert inner.dispatched == [Phase.IDLE] * 3
    assert h.records == [] and outcome.exit is ExitKind.TERMINATED


@each_backend
async def test_ignore_delegates_and_leaves_the_channel_alone() -> None:
    inner = ScriptedWithPolicy(
        script=[CONTINUE, CONTINUE, Trigger(Go(Phase.WORKING))],
        modes={Phase.IDLE: IGNORE, Phase.WORKING: POLL},
    )
    async with supervisor_harness(inner) as h:
        h.send_nowait(Hold(("queued-1",)))
        h.send_nowait(Hold(("queued-2",)))
        outcome = await h.outcome()
    assert inner.dispatched == [Phase.IDLE, Phase.IDLE, Phase.IDLE, Phase.WORKING]
    assert [r.event for r in h.records] == [
        Go(Phase.WORKING),
        Hold(("queued-1",)),
        Hold(("queued-2",)),
    ], "IGNORE left both queued events for WORKING to take, in order"
    assert outcome.final_state is Phase.WORKING


# -- the closed channel --------------------------------------------------------------------


@each_backend
async def test_closed_channel_maps_to_an_event() -> None:
    inner = ScriptedWithPolicy(
        modes={Phase.IDLE: BLOCK, Phase.WORKING: BLOCK},
        on_closed={Phase.IDLE: Go(Phase.WORKING, ("closed",))},
    )
    ctx = Ctx()
    async with supervisor_harness(inner, context=ctx) as h:
        h.close_events()
        outcome = await h.outcome()
    assert [r.event for r in h.records] == [Go(Phase.WORKING, ("closed",))]
    assert ctx.log == ["closed"]
    # WORKING maps a closed channel to None: the wrapper delegated, and the inner
    # supervisor terminated.
    assert inner.closed_queries == [Phase.IDLE, Phase.WORKING]
    assert inner.dispatched == [Phase.WORKING]
    assert outcome.final_state is Phase.WORKING


@each_backend
async def test_closed_event_is_delivered_once_per_state_entered() -> None:
    inner = ScriptedWithPolicy(
        script=[Trigger(Go(Phase.WORKING)), Trigger(Go(Phase.IDLE)), TERMINATE],
        modes={Phase.IDLE: BLOCK, Phase.WORKING: POLL},
        on_closed={Phase.IDLE: Hold(("closed-in-idle",)), Phase.WORKING: None},
    )
    ctx = Ctx()
    async with supervisor_harness(inner, context=ctx) as h:
        h.close_events()
        outcome = await h.outcome()
    assert [r.event for r in h.records] == [
        Hold(("closed-in-idle",)),  # IDLE entered: delivered
        Go(Phase.WORKING),  # IDLE again (it stayed): not again, so the inner decided
        Go(Phase.IDLE),  # WORKING maps it to None: the inner decided
        Hold(("closed-in-idle",)),  # IDLE entered anew: delivered again
    ]
    assert ctx.log == ["closed-in-idle", "closed-in-idle"]
    assert inner.dispatched == [Phase.IDLE, Phase.WORKING, Phase.IDLE]
    assert outcome.final_state is Phase.IDLE


@each_backend
async def test_closed_channel_mapped_to_none_delegates_without_spinning() -> None:
    inner = ScriptedWithPolicy(script=[CONTINUE, CONTINUE, CONTINUE], modes={Phase.IDLE: BLOCK})
    async with supervisor_harness(inner) as h:
        h.close_events()
        outcome = await h.outcome()
    assert inner.dispatched == [Phase.IDLE] * 4, "each dispatch went to the inner supervisor"
    assert outcome.dispatches == 4 and h.records == []


@each_backend
async def test_queued_events_come_before_the_closed_mapping() -> None:
    inner = ScriptedWithPolicy(modes={Phase.IDLE: BLOCK}, on_closed={Phase.IDLE: Go(Phase.DONE)})
    async with supervisor_harness(inner) as h:
        h.send_nowait(Hold(("a",)))
        h.send_nowait(Hold(("b",)))
        h.close_events()
        await h.outcome()
    assert [r.event for r in h.records] == [Hold(("a",)), Hold(("b",)), Go(Phase.DONE)]


@each_backend
async def test_a_locally_closed_receiver_counts_as_a_closed_channel() -> None:
    inner = ScriptedWithPolicy(
        modes={Phase.IDLE: BLOCK, Phase.WORKING: POLL},
        on_closed={Phase.IDLE: Go(Phase.WORKING), Phase.WORKING: Go(Phase.DONE)},
    )
    sender, receiver, watcher = ChannelBuilder[Ev, Phase]().build(Phase.IDLE)
    sup = SelfSupervisedWithExternalEvents(inner, receiver, watcher)
    receiver.close()
    outcome = await sup.run(None, Ctx())
    assert outcome.final_state is Phase.DONE
    assert outcome.failures == 0
    sender.close()


@each_backend
async def test_inner_supervisor_never_sees_the_receiver() -> None:
    inner = ScriptedWithPolicy(script=[Trigger(Hold())], modes={Phase.IDLE: POLL})
    async with supervisor_harness(inner) as h:
        await h.outcome()
    held = list(vars(inner).values())
    assert not any(isinstance(v, EventReceiver | MemoryObjectReceiveStream) for v in held)
    assert inner.dispatched == [Phase.IDLE, Phase.IDLE]


# -- backpressure --------------------------------------------------------------------------


@each_backend
async def test_send_waits_while_the_channel_is_full() -> None:
    release = anyio.Event()

    async def hold_on() -> EventLoopDirective[Ev]:
        await release.wait()
        return Trigger(Go(Phase.WORKING))

    inner = ScriptedWithPolicy(script=[hold_on], modes={Phase.WORKING: BLOCK})
    sent: list[Ev] = []

    async def send_late() -> None:
        await h.send(Hold(("second",)))
        sent.append(Hold(("second",)))

    async with supervisor_harness(inner, capacity=1) as h:
        h.send_nowait(Hold(("first",)))
        with pytest.raises(anyio.WouldBlock):
            h.send_nowait(Hold(("second",)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_late)
            await anyio.wait_all_tasks_blocked()
            assert sent == [], "send is blocked while the channel is full"
            release.set()
        assert sent == [Hold(("second",))]
        await h.wait_for(lambda _: len(h.records) == 3)
        h.cancel()
        await h.outcome()
    assert [r.event for r in h.records] == [
        Go(Phase.WORKING),
        Hold(("first",)),
        Hold(("second",)),
    ]


@each_backend
async def test_a_cancelled_send_never_sends() -> None:
    sender, receiver, _ = ChannelBuilder[Ev, Phase](capacity=8).build(Phase.IDLE)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await sender.send(Hold(("lost",)))
    assert scope.cancelled_caught
    with pytest.raises(anyio.WouldBlock):
        receiver._stream.receive_nowait()
    sender.close()
    receiver.close()


@each_backend
async def test_send_yields_to_the_scheduler_on_a_budget() -> None:
    # With room in the channel a send need not wait, but a producer sending in a tight
    # loop must still let its siblings run: at least once every SEND_YIELD_EVERY sends.
    capacity = 3 * SEND_YIELD_EVERY
    sender, receiver, _ = ChannelBuilder[Ev, Phase](capacity).build(Phase.IDLE)
    sent = 0
    seen: list[int] = []

    async def sibling() -> None:
        while sent < capacity:
            seen.append(sent)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sibling)
        await anyio.lowlevel.checkpoint()
        for _ in range(capacity):
            await sender.send(Hold())
            sent += 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
    # The sibling runs once per scheduling batch, either before or after the producer
    # within it (trio shuffles a batch), so it sees at most two budgets go by.
    assert seen and max(gaps) <= 2 * SEND_YIELD_EVERY, "the producer yielded on its budget"
    assert len(seen) < capacity, "but not on every send"
    sender.close()
    receiver.close()


# -- wrapper plumbing and misuse -----------------------------------------------------------


@each_backend
async def test_wrapper_delegates_identity_and_completion() -> None:
    journal = MemoryJournal()
    inner = ScriptedWithPolicy("inner", modes={}, journal=journal)
    inner.max_consecutive_failures = 7
    inner.yield_every = 9
    inner.completion_timeout = 1.5
    records: list[TransitionRecord] = []
    sender, receiver, watcher = ChannelBuilder[Ev, Phase](capacity=0).build(Phase.IDLE)
    sender.close()
    sup = SelfSupervisedWithExternalEvents(inner, receiver, watcher)
    inner.add_transition_listener(records.append)
    inner.script.append(Trigger(Hold()))
    assert (sup.name, sup.writer_id) == ("inner", "inner")
    assert (sup.max_consecutive_failures, sup.yield_every, sup.completion_timeout) == (7, 9, 1.5)
    assert sup.initial_state() is Phase.IDLE and sup.initial_context() == Ctx()
    assert sup.event_for_action_error("m") == inner.event_for_action_error("m")
    with pytest.raises(TypeError, match="read the spec from the wrapped"):
        sup.fsm_spec()
    outcome = await sup.run()
    assert len(records) == 1, "listeners are shared with the inner supervisor"
    assert inner.exit_info == (ExitKind.TERMINATED, Phase.IDLE, None)
    assert journal.events == [
        CompletionEvent("inner", "inner", ExitKind.TERMINATED, Phase.IDLE, None)
    ]
    assert inner.after == [Phase.IDLE]
    assert outcome.completion_written and watcher.closed


@each_backend
async def test_handler_wrapper_keeps_the_handler_identity() -> None:
    inner = HandlerScripted("h", handler="the-handler", stage_id="7")
    sender, receiver, watcher = ChannelBuilder[Ev, Phase]().build(Phase.IDLE)
    sup = HandlerSupervisedWithExternalEvents(inner, receiver, watcher)
    assert (sup.handler, sup.stage_id, sup.writer_id) == ("the-handler", "7", "stage:7")
    sender.close()
    outcome = await sup.run()
    assert outcome.final_state is Phase.DONE, "IDLE's closed mapping went to DONE"


def test_wrapping_a_supervisor_without_policy_is_refused() -> None:
    sender, receiver, watcher = ChannelBuilder[Ev, Phase]().build(Phase.IDLE)
    with pytest.raises(TypeError, match="Scripted must implement ExternalEventPolicy"):
        SelfSupervisedWithExternalEvents(Scripted(), receiver, watcher)
    sender.close()
    receiver.close()


def test_channel_capacity_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 0"):
        ChannelBuilder[Ev, Phase](capacity=-1)


@each_backend
async def test_sender_clones_keep_the_channel_open() -> None:
    sender, receiver, _ = ChannelBuilder[Ev, Phase]().build(Phase.IDLE)
    clone = sender.clone()
    sender.close()
    with pytest.raises(ExternalChannelClosed):
        sender.send_nowait(Hold())
    with pytest.raises(ExternalChannelClosed):
        await sender.send(Hold())
    clone.send_nowait(Hold(("via-clone",)))
    clone.close()
    inner = ScriptedWithPolicy(modes={Phase.IDLE: BLOCK}, on_closed={Phase.IDLE: Go(Phase.DONE)})
    watcher = StateWatcher(Phase.IDLE)
    outcome = await SelfSupervisedWithExternalEvents(inner, receiver, watcher).run(None, Ctx())
    assert outcome.final_state is Phase.DONE
    assert outcome.transitions == 2


@each_backend
async def test_wrapper_completion_outside_a_run_only_closes() -> None:
    # Called directly, with no run behind it, the wrapper has no final state to publish;
    # it still closes the watcher and the channel.
    inner = ScriptedWithPolicy(modes={})
    sender, receiver, watcher = ChannelBuilder[Ev, Phase]().build(Phase.WORKING)
    sup = SelfSupervisedWithExternalEvents(inner, receiver, watcher)
    await sup.write_completion_event()
    assert watcher.closed and watcher.current() is Phase.WORKING
    assert inner.completion_calls == 1
    with pytest.raises(ExternalChannelClosed):
        sender.send_nowait(Hold())
    sender.close()
