"""Barriers: decisions exact, wildcard and early; timeouts with defaults; cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

from fsmflow.graph import (
    Approve,
    BarrierDefault,
    BarrierId,
    BarrierRejected,
    BarrierResolved,
    BarrierWaiting,
    Decision,
    ExecState,
    Graph,
    GraphCancelled,
    GraphCompleted,
    GraphEvent,
    GraphFailed,
    NodeFailed,
    NodeOutput,
    Reject,
    Skip,
    execute_stream,
)

from ._graphs import Counter, counter_builder


def _noop(state: Counter) -> None:
    return None


def _gated(
    *,
    timeout: float | None = None,
    default: BarrierDefault = BarrierDefault.REJECT,
    on_reject: str | None = "rejected",
    loops: int = 1,
) -> Graph[Counter]:
    """``work -> gate -> work ...`` ``loops`` times, then ``end``; a rejection goes to
    ``rejected``; a route may go to ``alt``."""

    def work(state: Counter) -> Mapping[str, Any]:
        return {"n": state.n + 1, "trail": ["work"]}

    b = counter_builder().node("work", work).node("end", lambda s: {"trail": ["end"]})
    b.node("rejected", lambda s: {"trail": ["rejected"]}).node("alt", _noop)
    b.barrier("gate", timeout=timeout, default=default, on_reject=on_reject)
    b.edge("work", "gate").edge("gate", "work", when=lambda s: s.n < loops)
    b.edge("gate", "end").edge("gate", "alt", when=lambda s: False).edge("alt", "end")
    b.edge("rejected", "end").edge("gate", "rejected", when=lambda s: False)
    return b.start("work").end("end").build()


async def _collect(
    graph: Graph[Counter],
    on_wait: Any = None,
    before: Any = None,
) -> tuple[list[GraphEvent], Any]:
    async with execute_stream(graph, Counter()) as run:
        if before is not None:
            await before(run.handle)
        events: list[GraphEvent] = []
        async for event in run:
            events.append(event)
            if isinstance(event, BarrierWaiting) and on_wait is not None:
                await on_wait(run.handle, event)
    return events, run


async def test_exact_decisions_resolve_each_occurrence() -> None:
    seen: list[BarrierId] = []

    async def approve(handle: Any, event: BarrierWaiting) -> None:
        seen.append(event.barrier_id)
        assert handle.state is ExecState.AWAITING_DECISION
        await handle.approve(event.barrier_id)

    events, run = await _collect(_gated(loops=3), approve)
    assert [str(b) for b in seen] == ["gate#1", "gate#2", "gate#3"]
    resolved = [e for e in events if isinstance(e, BarrierResolved)]
    assert [r.decision for r in resolved] == [Approve()] * 3
    assert not any(r.timed_out for r in resolved)
    assert run.result.state.trail == ["work"] * 3 + ["end"]


async def test_a_decision_for_another_barrier_is_kept_for_it() -> None:
    async def decide(handle: Any, event: BarrierWaiting) -> None:
        if event.barrier_id.occurrence == 1:
            await handle.approve(BarrierId("gate", 2))  # early, for the next one
            await handle.skip(BarrierId("gate", 1))

    events, run = await _collect(_gated(loops=2), decide)
    resolved = [e.decision for e in events if isinstance(e, BarrierResolved)]
    assert resolved == [Skip(), Approve()]
    assert run.result is not None


async def test_early_and_wildcard_decisions_wait_for_their_barrier() -> None:
    async def before(handle: Any) -> None:
        await handle.approve("gate")  # every occurrence

    events, run = await _collect(_gated(loops=3), before=before)
    assert sum(isinstance(e, BarrierResolved) for e in events) == 3
    assert run.result.state.n == 3

    async def wildcard_while_waiting(handle: Any, event: BarrierWaiting) -> None:
        if event.barrier_id.occurrence == 1:
            await handle.decide("gate", Approve())

    events, run = await _collect(_gated(loops=3), wildcard_while_waiting)
    assert sum(isinstance(e, BarrierResolved) for e in events) == 3


async def test_reject_goes_to_on_reject_or_fails_the_run() -> None:
    async def reject(handle: Any, event: BarrierWaiting) -> None:
        await handle.reject(event.barrier_id, "not good enough")

    events, run = await _collect(_gated(), reject)
    assert run.result.state.trail == ["work", "rejected", "end"]

    events, run = await _collect(_gated(on_reject=None), reject)
    last = events[-1]
    assert isinstance(last, GraphFailed) and isinstance(last.error, BarrierRejected)
    assert "gate#1 was rejected: not good enough" in str(last.error)


async def test_route_decisions_carry_an_update_and_a_target() -> None:
    async def route(handle: Any, event: BarrierWaiting) -> None:
        await handle.route(event.barrier_id, "alt", {"notes": {"why": "human"}})

    _events, run = await _collect(_gated(), route)
    assert run.result.state.notes == {"why": "human"}
    assert [e.node for e in run.result.log] == ["work", "gate", "alt", "end"]


async def test_a_custom_apply_decides_what_a_decision_does() -> None:
    applied: list[Decision] = []

    async def apply(state: Counter, decision: Decision) -> NodeOutput:
        applied.append(decision)
        return NodeOutput(update={"total": 42})

    def broken(state: Counter, decision: Decision) -> None:
        raise RuntimeError("apply broke")

    for fn in (apply, broken):
        b = counter_builder().node("a", _noop).barrier("gate", apply=fn).node("end", _noop)
        graph = b.edge("a", "gate").edge("gate", "end").start("a").end("end").build()

        async def reject(handle: Any, event: BarrierWaiting) -> None:
            await handle.reject(event.barrier_id, "no")

        _events, run = await _collect(graph, reject)
        if fn is apply:
            assert run.result.state.total == 42 and applied == [Reject("no")]
        else:
            assert isinstance(run.error, NodeFailed) and run.error.node == "gate"


@pytest.mark.parametrize(
    ("default", "trail", "decision"),
    [
        (BarrierDefault.APPROVE, ["work", "end"], Approve()),
        (BarrierDefault.SKIP, ["work", "end"], Skip()),
        (BarrierDefault.REJECT, ["work", "rejected", "end"], Reject("no decision within 30s")),
    ],
)
async def test_timeouts_apply_the_default_action(
    autojump_clock: trio.testing.MockClock,
    default: BarrierDefault,
    trail: list[str],
    decision: Decision,
) -> None:
    start = trio.current_time()
    events, run = await _collect(_gated(timeout=30, default=default))
    resolved = next(e for e in events if isinstance(e, BarrierResolved))
    assert resolved.timed_out and resolved.decision == decision
    assert trio.current_time() - start == pytest.approx(30)
    assert run.result.state.trail == trail
    waiting = next(e for e in events if isinstance(e, BarrierWaiting))
    assert waiting.timeout == 30


async def test_a_decision_before_the_timeout_wins(autojump_clock: trio.testing.MockClock) -> None:
    async def late_approve(handle: Any, event: BarrierWaiting) -> None:
        await trio.sleep(10)
        await handle.approve(event.barrier_id)

    start = trio.current_time()
    events, run = await _collect(_gated(timeout=30, loops=2), late_approve)
    resolved = [e for e in events if isinstance(e, BarrierResolved)]
    assert [r.timed_out for r in resolved] == [False, False]
    await trio.sleep(100)  # stale timers never fire into a later barrier
    assert trio.current_time() - start >= 20
    assert run.result.state.n == 2


async def test_cancel_while_waiting_ends_the_run_as_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def cancel(handle: Any, event: BarrierWaiting) -> None:
        await trio.sleep(5)
        await handle.cancel()

    events, _run = await _collect(_gated(timeout=60), cancel)
    last = events[-1]
    assert isinstance(last, GraphCancelled) and last.where == "gate#1"
    assert sum(isinstance(e, GraphCancelled | GraphCompleted | GraphFailed) for e in events) == 1
    assert trio.current_time() < 60


async def test_cancel_before_the_run_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def cancel(handle: Any) -> None:
        await handle.cancel()

    events, run = await _collect(_gated(), before=cancel)
    assert isinstance(events[-1], GraphCancelled) and run.cancelled_at == "work"
