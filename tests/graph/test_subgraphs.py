"""Subgraphs: their own state, explicit mapping in and out, checkpoints and interrupts
that are part of the parent run's, resumes that continue inside."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fsmflow.graph import (
    BarrierDefault,
    BarrierResolved,
    BarrierWaiting,
    CheckpointPolicy,
    CheckpointSaved,
    GraphBuilder,
    NodeFailed,
    append,
    execute,
    execute_stream,
    get_state,
    interrupt,
    resume,
    resume_from,
)
from fsmflow.store import MemoryStore

from ._graphs import stored_records


@attrs.frozen
class Inner:
    x: int = 0
    notes: list[str] = attrs.field(factory=list)


@attrs.frozen
class Outer:
    n: int = 0
    log: list[str] = attrs.field(factory=list)


calls: list[str] = []


def _inner(
    *, ask: bool = False, gate_timeout: float | None = None, fail: bool = False, delay: float = 0
) -> Any:
    def first(state: Inner) -> dict[str, Any]:
        calls.append("first")
        return {"x": state.x + 1, "notes": ["first"]}

    async def second(state: Inner) -> dict[str, Any]:
        await trio.sleep(delay)
        calls.append("second")
        if fail:
            raise RuntimeError("inner broke")
        extra = interrupt(f"x is {state.x}", int) if ask else 0
        return {"x": state.x + extra, "notes": [f"second+{extra}"]}

    b = GraphBuilder(Inner, name="inner", reducers={"notes": append})
    b.node("first", first).node("second", second).edge("first", "second")
    if gate_timeout is not None:
        b.barrier("gate", timeout=gate_timeout, default=BarrierDefault.APPROVE)
        b.edge("second", "gate").end("gate")
    else:
        b.end("second")
    return b.start("first").build()


def _outer(inner: Any) -> Any:
    b = GraphBuilder(Outer, name="outer", reducers={"log": append})
    b.node("before", lambda s: {"log": ["before"]})
    b.subgraph(
        "sub",
        inner,
        enter=lambda s: Inner(x=s.n),
        leave=lambda s, child: {"n": child.x, "log": child.notes},
    )
    b.node("after", lambda s: {"log": ["after"]}).edge("before", "sub").edge("sub", "after")
    return b.start("before").end("after").build()


async def test_a_subgraph_maps_its_own_state_in_and_out() -> None:
    result = await execute(_outer(_inner()), Outer(n=5))
    assert result.state == Outer(6, ["before", "first", "second+0", "after"])
    assert [e.node for e in result.log] == ["before", "sub", "after"]


async def test_an_interrupt_inside_pauses_the_parent_and_a_resume_continues_inside() -> None:
    calls.clear()
    graph = _outer(_inner(ask=True))
    store = MemoryStore()
    paused = await execute(graph, Outer(n=1), store=store, thread_id="s")
    (pending,) = paused.interrupts
    assert pending.id.path == ("sub",) and pending.payload == "x is 2"
    assert str(pending.id) == "sub/second@2#0"
    snapshot = await get_state(graph, "s", store=store)
    assert snapshot.next == ("sub",) and snapshot.status == "waiting"
    done = await resume(graph, "s", store=store, value=40)
    assert done.state == Outer(42, ["before", "first", "second+40", "after"])
    assert calls == ["first", "second", "second"]  # "first" did not run again


async def test_checkpoints_taken_inside_a_subgraph_resume_inside_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls.clear()
    graph = _outer(_inner(delay=10))
    store = MemoryStore()
    policy = CheckpointPolicy(every_step=True, keep=None)
    async with execute_stream(graph, Outer(), store=store, thread_id="c", policy=policy) as run:
        async for event in run:
            if isinstance(event, CheckpointSaved) and event.next_node == "sub":
                records = await stored_records(store, "c")
                if records[-1].frame["children"]:
                    break  # the process dies after the subgraph's first step
    assert calls == ["first"]
    records = await stored_records(store, "c")
    child = records[-1].frame["children"][""]
    assert child["frame"]["next_node"] == "second" and child["state"]["x"] == 1
    async with resume_from(graph, "c", store=store) as resumed:
        async for _ in resumed:
            pass
    assert resumed.result is not None
    assert resumed.result.state == Outer(1, ["before", "first", "second+0", "after"])
    assert calls == ["first", "second"]


async def test_a_barrier_inside_a_subgraph_waits_and_times_out_to_its_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = _outer(_inner(gate_timeout=30))
    async with execute_stream(graph, Outer()) as run:
        events = [e async for e in run]
    waiting = next(e for e in events if isinstance(e, BarrierWaiting))
    resolved = next(e for e in events if isinstance(e, BarrierResolved))
    assert str(waiting.barrier_id) == "gate#1" and resolved.timed_out
    assert run.result is not None and run.result.state.log[-1] == "after"


async def test_a_failing_subgraph_fails_its_node() -> None:
    with pytest.raises(NodeFailed) as info:
        await execute(_outer(_inner(fail=True)), Outer())
    assert info.value.node == "sub" and "inner broke" in str(info.value)


async def test_a_subgraph_can_time_out(autojump_clock: trio.testing.MockClock) -> None:
    b = GraphBuilder(Outer, name="outer")
    b.subgraph("sub", _inner(delay=100), enter=lambda s: Inner(), leave=lambda s, c: {}, timeout=5)
    started = trio.current_time()
    with pytest.raises(NodeFailed, match="did not finish within 5s"):
        await execute(b.start("sub").end("sub").build(), Outer())
    assert trio.current_time() - started == pytest.approx(5)
