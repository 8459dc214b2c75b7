"""Checkpoints: policies, incremental snapshots, compaction and pruning, resume, hash
checks, bounded restores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fsmflow.graph import (
    AdaptiveScore,
    BarrierId,
    BarrierWaiting,
    CheckpointNotFound,
    CheckpointPolicy,
    CheckpointSaved,
    ErrorObserved,
    GraphBuilder,
    GraphHashMismatch,
    GraphHashMismatchWarning,
    GraphStarted,
    NodeOutput,
    NodeStarted,
    execute,
    execute_stream,
    get_state,
    inspect_run,
    list_runs,
    load_run,
    reducer,
    resume,
    resume_from,
    state_history,
)
from fsmflow.store import BatchOp, DecodeError, Fence, MemoryStore, Put, Store, Versioned

from ._graphs import Counter, counter_builder, loop_graph, states_by_step, stored_records

EVERY_STEP = CheckpointPolicy(every_step=True, keep=None)


async def test_every_step_checkpoints_are_incremental_compacted_and_numbered(
    any_store: Store,
) -> None:
    store = any_store
    await execute(
        loop_graph(10), Counter(), store=store, policy=EVERY_STEP, compact_after=3, trace_id="run"
    )
    records = await stored_records(store, "run")
    # the input (step 0), every step but the last, and the completion
    assert [r.checkpoint for r in records] == list(range(1, 23))
    assert [r.step for r in records] == [0, *range(1, 21), 21]
    assert [r.parent for r in records] == [None, *range(1, 22)]
    assert records[0].trigger == "input" and records[0].mark and records[0].full
    assert [r.full for r in records][:9] == [True, False, False, False, True] + [False] * 3 + [True]
    assert records[2].state is None and records[2].deltas == [
        {"trail": ["tock"], "notes": {"k1": "v1"}}
    ]
    last = records[-1]
    assert last.trigger == "completion" and last.next_node is None and last.mark and last.full
    assert last.status == "completed" and records[0].graph_hash == loop_graph(10).hash
    assert {r.run_id for r in records} == {"run"} and {r.thread_id for r in records} == {"run"}


async def test_every_checkpoint_restores_the_state_the_run_had_at_its_step(
    any_store: Store,
) -> None:
    store = any_store
    reference = await states_by_step(loop_graph(9), Counter())
    await execute(
        loop_graph(9), Counter(), store=store, policy=EVERY_STEP, trace_id="r", compact_after=4
    )
    for record in await stored_records(store, "r"):
        restored = await load_run(store, loop_graph(9), "r", checkpoint=record.checkpoint)
        assert restored.state == reference[record.step], record.checkpoint
        assert restored.step == record.step
    history = await state_history(loop_graph(9), "r", store=store)
    assert [h.checkpoint for h in history] == list(range(len(history), 0, -1))
    assert all(h.state == reference[h.step] for h in history)


async def test_default_policy_saves_only_on_completion_for_plain_graphs(any_store: Store) -> None:
    store = any_store
    await execute(loop_graph(3), Counter(), store=store, trace_id="x")
    assert [r.trigger for r in await stored_records(store, "x")] == ["completion"]
    none = MemoryStore()
    policy = CheckpointPolicy(on_completion=False)
    await execute(loop_graph(3), Counter(), store=none, policy=policy, trace_id="x")
    assert await none.keys("fsmflow.graph.threads") == []


async def test_adaptive_policy_saves_after_costly_or_side_effecting_steps(any_store: Store) -> None:
    def cheap(state: Counter) -> NodeOutput:
        return NodeOutput(update={"n": state.n + 1}, cost=0.1)

    def costly(state: Counter) -> NodeOutput:
        return NodeOutput(update={"trail": ["paid"]}, cost=5.0)

    def sends_mail(state: Counter) -> NodeOutput:
        return NodeOutput(update={"trail": ["mail"]}, side_effects=True)

    b = counter_builder().node("cheap", cheap).node("costly", costly).node("mail", sends_mail)
    b.node("end", lambda s: None)
    b.edge("cheap", "costly").edge("costly", "mail").edge("mail", "end")
    graph = b.start("cheap").end("end").build()
    store = any_store
    policy = CheckpointPolicy(on_completion=False, adaptive=AdaptiveScore(threshold=1.0))
    async with execute_stream(graph, Counter(), store=store, policy=policy) as run:
        saved = [e for e in [e async for e in run] if isinstance(e, CheckpointSaved)]
    assert [(s.step, s.next_node, s.trigger, s.checkpoint) for s in saved] == [
        (2, "mail", "adaptive", 1),
        (3, "end", "adaptive", 2),
    ]
    assert saved[1].incremental
    score = AdaptiveScore(duration_weight=2, cost_weight=0, side_effect_weight=3)
    assert score.score(1.5, 100, True) == 6


async def test_barrier_checkpoints_let_another_process_resume_the_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def work(state: Counter) -> dict[str, Any]:
        return {"n": state.n + 1}

    b = counter_builder().node("work", work).barrier("gate").node("end", lambda s: None)
    b.edge("work", "gate").edge("gate", "work", when=lambda s: s.n < 2).edge("gate", "end")
    graph = b.start("work").end("end").build()
    store = MemoryStore()
    async with execute_stream(graph, Counter(), store=store, trace_id="hitl") as run:
        async for event in run:
            if isinstance(event, BarrierWaiting):
                if event.barrier_id.occurrence == 1:
                    await run.handle.approve(event.barrier_id)
                else:
                    break  # the process that waited goes away
    records = await stored_records(store, "hitl")
    assert [(r.trigger, r.status, r.next_node) for r in records] == [
        ("barrier", "waiting", "gate"),  # before anyone hears of the barrier
        ("resume", "running", "gate"),  # the decision, durable before it is applied
        ("barrier", "running", "work"),  # after the barrier step
        ("barrier", "waiting", "gate"),
    ]
    waiting = await get_state(graph, "hitl", store=store)
    assert waiting.status == "waiting" and waiting.interrupts[0].barrier_id == BarrierId("gate", 2)
    async with resume_from(graph, "hitl", store=store) as resumed:
        events = []
        async for event in resumed:
            events.append(event)
            if isinstance(event, BarrierWaiting):
                assert event.barrier_id == BarrierId("gate", 2)  # the same barrier id
                await resumed.handle.approve(event.barrier_id)
    started = events[0]
    assert isinstance(started, GraphStarted) and started.resumed and started.step == 3
    assert resumed.result is not None and resumed.result.state.n == 2
    assert resumed.result.steps == 5 and resumed.trace_id == "hitl"


async def test_explicit_requests_checkpoint_between_nodes_and_while_waiting() -> None:
    async def slow(state: Counter) -> dict[str, Any]:
        await trio.sleep(0.01)
        return {"n": state.n + 1}

    b = counter_builder().node("slow", slow).barrier("gate").node("end", lambda s: None)
    b.edge("slow", "gate").edge("gate", "end").start("slow").end("end")
    store = MemoryStore()
    policy = CheckpointPolicy(on_barrier=False, on_completion=False)
    async with execute_stream(b.build(), Counter(), store=store, policy=policy) as run:
        saved: list[CheckpointSaved] = []
        async for event in run:
            if isinstance(event, NodeStarted) and event.node == "slow":
                assert await run.handle.request_checkpoint()
            if isinstance(event, CheckpointSaved):
                saved.append(event)
                if len(saved) == 2:
                    await run.handle.approve("gate")
            if isinstance(event, BarrierWaiting):
                await run.handle.request_checkpoint()
    assert [(s.step, s.next_node, s.trigger) for s in saved] == [
        (1, "gate", "request"),
        (1, "gate", "request"),
    ]
    assert not saved[0].incremental  # a run's first checkpoint is full
    assert not saved[1].incremental  # and one taken while waiting is a mark
    off = CheckpointPolicy(on_request=False)
    async with execute_stream(loop_graph(1), Counter(), store=MemoryStore(), policy=off) as run:
        await run.handle.request_checkpoint()
        assert not [
            e async for e in run if isinstance(e, CheckpointSaved) and e.trigger == "request"
        ]


async def test_resume_continues_to_the_same_final_state(any_store: Store) -> None:
    expected = await execute(loop_graph(8), Counter())
    store = any_store
    async with execute_stream(
        loop_graph(8), Counter(), store=store, policy=EVERY_STEP, trace_id="t", compact_after=2
    ) as run:
        async for event in run:
            if isinstance(event, CheckpointSaved) and event.step == 7:
                break
    result = await resume(loop_graph(8), "t", store=store)
    assert result.state == expected.state and result.steps == expected.steps
    assert result.trace_id == "t"
    again = await resume(loop_graph(8), "t", store=store)  # already complete
    assert again.state == expected.state
    assert len(await stored_records(store, "t")) == expected.steps + 1  # nothing added


async def test_resume_errors_missing_run_hash_mismatch_says_what_changed_and_force(
    any_store: Store,
) -> None:
    store = any_store
    with pytest.raises(CheckpointNotFound, match="nope"):
        await resume(loop_graph(3), "nope", store=store)
    await execute(loop_graph(3), Counter(), store=store, policy=EVERY_STEP, trace_id="h")
    changed = loop_graph(3, name="renamed-graph-changes-nothing")
    assert changed.hash == loop_graph(3).hash
    other = counter_builder("loop").node("tick", lambda s: None).node("done", lambda s: None)
    other = other.node("tock", lambda s: None).node("extra", lambda s: None)
    other.edge("tick", "tock").edge("tock", "extra").edge("extra", "done")
    other_graph = other.start("tick").end("done").build()
    with pytest.raises(GraphHashMismatch, match="force=True") as info:
        await resume(other_graph, "h", store=store, checkpoint=3)
    assert info.value.saved == loop_graph(3).hash
    assert "node 'extra' added" in info.value.changes
    assert "edge tock->tick (conditional) removed" in info.value.changes
    assert "edge tock->done (normal) removed" in str(info.value)
    with pytest.warns(GraphHashMismatchWarning, match="graph hash"):
        result = await resume(other_graph, "h", store=store, force=True, checkpoint=3)
    assert result.state.n == 1  # forked after step 2, then tick -> tock -> extra -> done


async def test_undecodable_checkpoints_name_the_checkpoint(any_store: Store) -> None:
    store = any_store
    await execute(loop_graph(1), Counter(), store=store, trace_id="bad", policy=EVERY_STEP)
    await store.put("fsmflow.graph/bad", "c000000000001", b"{not json")
    with pytest.raises(DecodeError, match="checkpoint bad@1"):
        await load_run(store, loop_graph(1), "bad", checkpoint=1)
    head = await store.get("fsmflow.graph/bad", "head")
    assert head is not None
    damaged = head.value.replace(b'"run_start":0', b'"run_start":"x"')
    await store.put("fsmflow.graph/bad", "head", damaged)
    with pytest.raises(DecodeError, match=r"checkpoint bad@4 .* \$\.run_start"):
        await load_run(store, loop_graph(1), "bad")
    await store.put("fsmflow.graph/bad", "head", b'{"latest": "x"}')
    with pytest.raises(DecodeError, match="thread bad head"):
        await load_run(store, loop_graph(1), "bad")


async def test_a_failing_store_is_an_observed_error_and_the_next_save_is_full() -> None:
    class Flaky(MemoryStore):
        """Refuses the second checkpoint write."""

        calls = 0

        async def write_batch(
            self, ops: Sequence[BatchOp], *, fence: Fence | None = None
        ) -> list[int | bool | None]:
            if any(isinstance(op, Put) and op.key.startswith("c") for op in ops):
                self.calls += 1
                if self.calls == 2:
                    raise OSError("disk full")
            return await super().write_batch(ops, fence=fence)

    store = Flaky()
    async with execute_stream(
        loop_graph(2), Counter(), store=store, policy=EVERY_STEP, trace_id="f"
    ) as run:
        events = [e async for e in run]
    observed = [e for e in events if isinstance(e, ErrorObserved)]
    assert len(observed) == 1 and "disk full" in observed[0].message
    records = await stored_records(store, "f")
    assert [r.full for r in records][:3] == [True, True, False]  # after the failure: full
    # each CheckpointSaved is exactly one stored checkpoint
    saved = [e.checkpoint for e in events if isinstance(e, CheckpointSaved)]
    assert saved == [r.checkpoint for r in records]
    restored = await load_run(store, loop_graph(2), "f")
    assert restored.state == (await execute(loop_graph(2), Counter())).state


def test_custom_reducer_update_types_round_trip() -> None:
    def extend(current: list[str], update: str) -> list[str]:
        return [*current, update]

    b = GraphBuilder(Counter, reducers={"trail": reducer(extend, update_type=str)})
    b.node("a", lambda s: {"trail": "x"}).node("b", lambda s: {"trail": "y"})
    b.node("c", lambda s: None).edge("a", "b").edge("b", "c")
    graph = b.start("a").end("c").build()

    async def main_() -> Counter:
        store = MemoryStore()
        policy = CheckpointPolicy(every_step=True, on_completion=False)
        await execute(graph, Counter(), store=store, policy=policy, trace_id="c")
        return (await load_run(store, graph, "c")).state

    assert trio.run(main_).trail == ["x", "y"]


async def test_pruning_bounds_storage_and_keeps_what_restores(any_store: Store) -> None:
    """A long run with ``keep=30`` stores at most 30 recent checkpoints, the full one the
    oldest of them builds on, and its marks; every kept checkpoint restores exactly."""
    graph = loop_graph(150)
    reference = await states_by_step(graph, Counter())
    store = any_store
    policy = CheckpointPolicy(every_step=True, keep=30)
    await execute(graph, Counter(), store=store, policy=policy, trace_id="p", compact_after=5)
    records = await stored_records(store, "p")
    marks = [r for r in records if r.mark]
    assert [m.trigger for m in marks] == ["input", "completion"]
    assert len(records) <= 30 + 6 + len(marks)
    assert records[-1].checkpoint == 302  # numbers are never reused
    for record in records:
        restored = await load_run(store, graph, "p", checkpoint=record.checkpoint)
        assert restored.state == reference[record.step]
    history = await state_history(graph, "p", store=store)
    assert len(history) == len(records)
    forever = MemoryStore()
    await execute(graph, Counter(), store=forever, policy=EVERY_STEP, trace_id="p", compact_after=5)
    assert len(await stored_records(forever, "p")) == 302


class CountingStore(MemoryStore):
    """Counts the records a load reads."""

    gets = 0

    async def get(self, namespace: str, key: str) -> Versioned | None:
        self.gets += 1
        return await super().get(namespace, key)


@pytest.mark.parametrize("steps", [40, 400])
async def test_loading_reads_a_bounded_number_of_checkpoints(steps: int) -> None:
    store = CountingStore()
    policy = CheckpointPolicy(every_step=True, keep=None, on_completion=False)
    graph = loop_graph(steps)
    await execute(graph, Counter(), store=store, policy=policy, trace_id="l", compact_after=10)
    store.gets = 0
    restored = await load_run(store, graph, "l")
    assert restored.step == 2 * steps
    # the head, up to compact_after + 1 records past it, the structure: not the history
    assert store.gets <= 2 * (10 + 2) + 2


async def test_listing_threads_and_their_checkpoints(any_store: Store) -> None:
    store = any_store
    await execute(loop_graph(2), Counter(), store=store, policy=EVERY_STEP, trace_id="a1")
    await execute(loop_graph(1), Counter(), store=store, trace_id="b2")
    summaries = await list_runs(store)
    assert [(s.thread_id, s.status, s.latest_step, s.checkpoints) for s in summaries] == [
        ("a1", "completed", 5, 6),
        ("b2", "completed", 3, 1),
    ]
    infos = await inspect_run(store, "a1")
    assert [i.checkpoint for i in infos] == list(range(1, 7))
    assert infos[0].full and infos[0].mark and not infos[1].full and infos[1].deltas == 1
    assert attrs.asdict(infos[0])["trigger"] == "input"
