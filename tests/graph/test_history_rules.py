"""Graph runs keep their history straight, and bad definitions fail at build time
(issue 9): each test here failed on the executor as it was before."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from fsmflow.graph import (
    Approve,
    BarrierId,
    CheckpointPolicy,
    CheckpointSaved,
    EdgeFailed,
    GraphBuilder,
    GraphDefinitionError,
    NodeFailed,
    RunExists,
    add,
    append,
    execute,
    execute_stream,
    get_state,
    merge,
    reducer,
    resume,
)
from fsmflow.store import Store

from ._graphs import Counter, counter_builder, loop_graph, stored_records

EVERY_STEP = CheckpointPolicy(every_step=True, keep=None)


async def test_a_trace_id_whose_thread_has_checkpoints_is_refused(any_store: Store) -> None:
    store = any_store
    await execute(loop_graph(2), Counter(), store=store, policy=EVERY_STEP, trace_id="x")
    before = await stored_records(store, "x")
    with pytest.raises(RunExists, match="resume_from"):
        await execute(loop_graph(3), Counter(n=1), store=store, trace_id="x")
    assert await stored_records(store, "x") == before  # nothing was mixed in
    result = await execute(loop_graph(3), Counter(), store=store, trace_id="x", replace=True)
    assert result.state.n == 3
    records = await stored_records(store, "x")
    assert [r.trigger for r in records] == ["completion"]  # the old history is gone


class Partial(TypedDict, total=False):
    name: str
    items: list[str]
    tags: dict[str, int]
    count: int


async def test_a_reducer_key_absent_from_a_partial_state_starts_from_its_empty_value() -> None:
    def fill(state: Partial) -> dict[str, Any]:
        return {"items": ["a"], "tags": {"x": 1}, "count": 2}

    b = GraphBuilder(Partial, reducers={"items": append, "tags": merge, "count": add})
    graph = b.node("fill", fill).start("fill").end("fill").build()
    result = await execute(graph, {"name": "n"})
    assert result.state == {"name": "n", "items": ["a"], "tags": {"x": 1}, "count": 2}

    def custom(current: str, update: str) -> str:
        return current + update

    b = GraphBuilder(Partial, reducers={"name": reducer(custom, empty=str)})
    graph = b.node("name", lambda s: {"name": "x"}).start("name").end("name").build()
    assert (await execute(graph, {})).state == {"name": "x"}


async def test_every_step_checkpoints_the_input_and_a_failing_step(any_store: Store) -> None:
    broken = {"on": True}

    def work(state: Counter) -> dict[str, Any]:
        if broken["on"]:
            raise RuntimeError("flaky service")
        return {"n": state.n + 1}

    b = counter_builder().node("work", work).node("end", lambda s: None)
    graph = b.edge("work", "end").start("work").end("end").build()
    store = any_store
    with pytest.raises(NodeFailed, match="flaky service"):
        await execute(graph, Counter(n=5), store=store, policy=EVERY_STEP, thread_id="f")
    records = await stored_records(store, "f")
    assert [(r.trigger, r.status, r.step, r.next_node) for r in records] == [
        ("input", "running", 0, "work"),  # before the first node
        ("failure", "failed", 0, "work"),
    ]
    broken["on"] = False
    result = await resume(graph, "f", store=store)  # the failed step is retried
    assert result.state.n == 6


async def test_a_resumed_run_keeps_its_checkpoint_policy(any_store: Store) -> None:
    b = counter_builder().node("a", lambda s: {"n": 1}).barrier("gate")
    b.node("b", lambda s: {"n": 2}).node("c", lambda s: {"n": 3})
    b.edge("a", "gate").edge("gate", "b").edge("b", "c")
    graph = b.start("a").end("c").build()
    store = any_store
    stopped = await execute(graph, Counter(), store=store, policy=EVERY_STEP, thread_id="p")
    assert stopped.interrupts and stopped.interrupts[0].barrier_id is not None
    await resume(graph, "p", store=store, value=Approve())  # no policy given
    triggers = [r.trigger for r in await stored_records(store, "p")]
    assert triggers == ["input", "step", "barrier", "step", "step", "completion"]
    changed = await execute(graph, Counter(), store=store, thread_id="q")
    assert changed.interrupts
    await resume(graph, "q", store=store, value=Approve(), policy=CheckpointPolicy())
    assert [r.trigger for r in await stored_records(store, "q")] == [
        "barrier",
        "barrier",
        "completion",
    ]


async def test_each_checkpoint_saved_event_is_exactly_one_stored_checkpoint(
    any_store: Store,
) -> None:
    store = any_store
    saved: list[CheckpointSaved] = []
    async with execute_stream(
        loop_graph(3), Counter(), store=store, policy=EVERY_STEP, thread_id="e"
    ) as run:
        async for event in run:
            if isinstance(event, CheckpointSaved):
                saved.append(event)
    records = await stored_records(store, "e")
    assert [s.checkpoint for s in saved] == [r.checkpoint for r in records]
    assert [s.step for s in saved] == [r.step for r in records]
    assert [s.trigger for s in saved] == ["input", *["step"] * 6, "completion"]
    snapshot = await get_state(loop_graph(3), "e", store=store)
    assert snapshot.checkpoint == saved[-1].checkpoint


def test_reducers_that_cannot_take_two_arguments_are_rejected_at_build() -> None:
    def one(current: list[str]) -> list[str]:
        return current

    b = GraphBuilder(Counter, reducers={"trail": reducer(one), "notes": reducer(len)})  # type: ignore[arg-type]
    b.node("a", lambda s: None).start("a").end("a")
    with pytest.raises(GraphDefinitionError) as info:
        b.build()
    text = str(info.value)
    assert "reducer 'one' of 'trail': it cannot be called as fn(current, update)" in text
    assert "reducer 'len' of 'notes'" in text


async def test_a_raising_condition_or_fan_out_names_the_node_and_the_edge() -> None:
    def picky(state: Counter) -> bool:
        raise KeyError("no such field")

    b = counter_builder().node("a", lambda s: None).node("b", lambda s: None)
    b.node("c", lambda s: None).edge("a", "b", when=picky).edge("a", "c")
    b.edge("b", "c")
    with pytest.raises(EdgeFailed) as info:
        await execute(b.start("a").end("c").build(), Counter())
    assert info.value.node == "a" and info.value.edge == "a->b"
    assert "edge a->b [picky] out of node 'a' raised KeyError" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)

    def items(state: Counter) -> list[int]:
        raise ValueError("bad list")

    b = counter_builder().node("a", lambda s: None).node("each", lambda s: None)
    b.fan_out("a", "each", items).start("a").end("each")
    with pytest.raises(EdgeFailed, match=r"edge a->each \[items\] out of node 'a' raised"):
        await execute(b.build(), Counter())


async def test_a_decision_for_a_node_that_is_not_a_barrier_raises_listing_the_barriers() -> None:
    b = counter_builder().node("a", lambda s: None).barrier("gate").barrier("review")
    b.node("end", lambda s: None).edge("a", "gate").edge("gate", "review").edge("review", "end")
    graph = b.start("a").end("end").build()
    async with execute_stream(graph, Counter()) as run:
        with pytest.raises(ValueError, match=r"'a' is not a barrier .* 'gate', 'review'"):
            await run.handle.approve("a")
        with pytest.raises(ValueError, match="'ghost#1' is not a barrier"):
            await run.handle.reject(BarrierId("ghost", 1), "no")
        await run.handle.cancel()
