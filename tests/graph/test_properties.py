"""Properties: whatever interrupts, resume values, decisions, cancels, checkpoint
requests and restarts arrive, in whatever order and timing, every run that is not
abandoned ends its stream with exactly one terminal event, and every checkpoint the
thread keeps restores to a state consistent with its step."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsmflow.graph import (
    TERMINAL_EVENTS,
    Approve,
    BarrierDefault,
    BarrierId,
    BarrierResolved,
    CheckpointPolicy,
    Decision,
    GraphCancelled,
    GraphEvent,
    GraphStream,
    InterruptId,
    Reject,
    Route,
    Skip,
    execute_stream,
    interrupt,
    load_run,
    resume_from,
    state_history,
)
from fsmflow.store import MemoryStore

from ._graphs import Counter, counter_builder


def _graph(default: BarrierDefault) -> Any:
    """Every step appends exactly one item to ``trail``, so a restored state must hold
    as many items as its checkpoint has steps."""

    async def work(state: Counter) -> dict[str, Any]:
        await trio.sleep(1)
        return {"n": state.n + 1, "trail": ["w"]}

    def ask(state: Counter) -> dict[str, Any]:
        first = interrupt("first?")
        second = interrupt("second?") if state.n % 2 else ""
        return {"trail": [f"a{first}{second}"]}

    def apply(state: Counter, decision: Decision) -> dict[str, Any]:
        return {"trail": [f"g{type(decision).__name__}"]}

    b = counter_builder().node("work", work).node("ask", ask)
    b.barrier("gate", timeout=5, default=default, apply=apply)
    b.node("end", lambda s: {"trail": ["e"]}).node("other", lambda s: {"trail": ["o"]})
    b.edge("work", "ask").edge("ask", "gate").edge("gate", "work", when=lambda s: s.n < 3)
    b.edge("gate", "end").edge("gate", "other", when=lambda s: False).edge("other", "end")
    return b.start("work").end("end").build()


decisions = st.sampled_from([Approve(), Reject("no"), Skip(), Route("other"), Route("ghost")])
barrier_targets = st.one_of(
    st.just("gate"), st.builds(BarrierId, st.just("gate"), st.integers(1, 4))
)
resume_targets = st.one_of(
    st.none(), st.builds(InterruptId, st.just("ask"), st.integers(1, 9), st.just(""))
)
actions = st.one_of(
    st.tuples(st.just("decide"), barrier_targets, decisions),
    st.tuples(st.just("resume"), resume_targets, st.sampled_from(["x", "y", 3])),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("checkpoint")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("sleep"), st.floats(0, 8)),
)


async def _drive(
    run: GraphStream[Counter], script: list[tuple[Any, ...]]
) -> tuple[list[GraphEvent], bool]:
    """Consume ``run`` while playing ``script`` (then answering whatever still waits);
    stop at a ``restart``, abandoning the run; return the events seen and whether the
    run was abandoned."""
    events: list[GraphEvent] = []
    restarted = False
    consuming = trio.CancelScope()

    async def play() -> None:
        nonlocal restarted
        while script:
            action = script.pop(0)
            if action[0] == "decide":
                await run.handle.decide(action[1], action[2])
            elif action[0] == "resume":
                await run.handle.resume(action[2], interrupt=action[1])
            elif action[0] == "cancel":
                await run.handle.cancel()
            elif action[0] == "checkpoint":
                await run.handle.request_checkpoint()
            elif action[0] == "restart":
                restarted = True
                consuming.cancel()
                return
            else:
                await trio.sleep(action[1])
        # The script is played: answer whatever still waits until the run ends.
        while not run.handle.done:
            for waiting in run.handle.waiting:
                value = Approve() if waiting.barrier_id else "z"
                await run.handle.resume(value, interrupt=waiting.id)
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(play)
        with consuming:
            async for event in run:
                events.append(event)
        nursery.cancel_scope.cancel()
    return events, restarted


async def _scenario(script: list[tuple[Any, ...]], default: BarrierDefault) -> None:
    store = MemoryStore()
    graph = _graph(default)
    policy = CheckpointPolicy(every_step=True, keep=None)
    script = list(script)
    runs = 0
    while True:
        runs += 1
        if runs == 1:
            opened = execute_stream(graph, Counter(), store=store, policy=policy, thread_id="p")
        else:
            opened = resume_from(graph, "p", store=store)
        async with opened as run:
            events, abandoned = await _drive(run, script)
        terminal = [e for e in events if isinstance(e, TERMINAL_EVENTS)]
        if abandoned:
            assert len(terminal) <= 1
            continue  # a new process takes over
        assert len(terminal) == 1, terminal
        assert events[-1] is terminal[0]
        outcomes = [run.result is not None, run.error is not None, run.cancelled_at is not None]
        assert outcomes.count(True) == 1
        if isinstance(terminal[0], GraphCancelled):
            assert run.cancelled_at == terminal[0].where
        resolved = [e for e in events if isinstance(e, BarrierResolved)]
        assert len({r.barrier_id for r in resolved}) == len(resolved)
        break
    for snapshot in await state_history(graph, "p", store=store):
        assert len(snapshot.state.trail) == snapshot.step, snapshot
        restored = await load_run(store, graph, "p", checkpoint=snapshot.checkpoint)
        assert restored.state == snapshot.state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(actions, max_size=14),
    default=st.sampled_from(list(BarrierDefault)),
)
def test_any_interleaving_ends_once_and_leaves_a_history_that_restores(
    script: list[tuple[Any, ...]], default: BarrierDefault
) -> None:
    trio.run(_scenario, script, default, clock=trio.testing.MockClock(autojump_threshold=0))
