"""Property: whatever decisions, cancels and checkpoint requests arrive, in whatever
order and timing, a run's stream ends with exactly one terminal event."""

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
    Reject,
    Route,
    Skip,
    execute_stream,
)
from fsmflow.store import MemoryStore

from ._graphs import Counter, counter_builder


def _graph(default: BarrierDefault) -> Any:
    async def work(state: Counter) -> dict[str, Any]:
        await trio.sleep(1)
        return {"n": state.n + 1}

    b = counter_builder().node("work", work).barrier("gate", timeout=5, default=default)
    b.node("end", lambda s: None).node("other", lambda s: None)
    b.edge("work", "gate").edge("gate", "work", when=lambda s: s.n < 3).edge("gate", "end")
    b.edge("gate", "other", when=lambda s: False).edge("other", "end")
    return b.start("work").end("end").build()


decisions = st.sampled_from([Approve(), Reject("no"), Skip(), Route("other"), Route("ghost")])
targets = st.one_of(st.just("gate"), st.builds(BarrierId, st.just("gate"), st.integers(1, 4)))
actions = st.one_of(
    st.tuples(st.just("decide"), targets, decisions),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("checkpoint")),
    st.tuples(st.just("sleep"), st.floats(0, 8)),
)


async def _scenario(script: list[tuple[Any, ...]], default: BarrierDefault) -> None:
    events: list[GraphEvent] = []
    store = MemoryStore()
    policy = CheckpointPolicy(every_step=True)
    async with execute_stream(_graph(default), Counter(), store=store, policy=policy) as run:

        async def drive() -> None:
            for action in script:
                if action[0] == "decide":
                    target: BarrierId | str = action[1]
                    decision: Decision = action[2]
                    await run.handle.decide(target, decision)
                elif action[0] == "cancel":
                    await run.handle.cancel()
                elif action[0] == "checkpoint":
                    await run.handle.request_checkpoint()
                else:
                    await trio.sleep(action[1])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive)
            async for event in run:
                events.append(event)
            nursery.cancel_scope.cancel()
    terminal = [e for e in events if isinstance(e, TERMINAL_EVENTS)]
    assert len(terminal) == 1, terminal
    assert events[-1] is terminal[0]
    assert run.handle.done
    outcomes = [run.result is not None, run.error is not None, run.cancelled_at is not None]
    assert outcomes.count(True) == 1
    if any(a[0] == "cancel" for a in script) and isinstance(terminal[0], GraphCancelled):
        assert run.cancelled_at == terminal[0].where
    resolved = [e for e in events if isinstance(e, BarrierResolved)]
    assert len({r.barrier_id for r in resolved}) == len(resolved)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(actions, max_size=12),
    default=st.sampled_from(list(BarrierDefault)),
)
def test_any_interleaving_ends_with_exactly_one_terminal_event(
    script: list[tuple[Any, ...]], default: BarrierDefault
) -> None:
    trio.run(_scenario, script, default, clock=trio.testing.MockClock(autojump_threshold=0))
