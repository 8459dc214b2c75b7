"""Checkpoints: policies, incremental snapshots and compaction, resume, hash checks, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fsmflow.cli import main
from fsmflow.graph import (
    AdaptiveScore,
    BarrierId,
    BarrierWaiting,
    CheckpointNotFound,
    CheckpointPolicy,
    CheckpointRecord,
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
    inspect_run,
    list_runs,
    load_run,
    resume,
    resume_from,
)
from fsmflow.store import Codec, DecodeError, Durability, MemoryStore, SqliteStore

from ._graphs import Counter, counter_builder, loop_graph

EVERY_STEP = CheckpointPolicy(every_step=True)


def _records(store: MemoryStore, trace_id: str) -> list[CheckpointRecord]:
    codec = Codec().register(CheckpointRecord)
    return [
        codec.decode(c.value, CheckpointRecord, "test")
        for c in store._checkpoints[trace_id].values()
    ]


async def test_every_step_checkpoints_are_incremental_and_compacted() -> None:
    store = MemoryStore()
    await execute(
        loop_graph(10),
        Counter(),
        store=store,
        policy=EVERY_STEP,
        compact_after=3,
        trace_id="run",
    )
    records = _records(store, "run")
    assert [r.step for r in records] == list(range(1, 22))
    assert [r.full for r in records][:9] == [
        True,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert records[1].state is None and records[1].deltas == [
        {"trail": ["tock"], "notes": {"k1": "v1"}}
    ]
    assert records[-1].trigger == "completion" and records[-1].next_node is None
    assert records[-1].status == "completed" and records[-1].step == 21
    # the completion checkpoint shares the last step: it is written in full
    assert records[-1].full
    assert records[0].graph_hash == loop_graph(10).hash


async def test_restoring_replays_deltas_onto_the_last_full_state() -> None:
    store = MemoryStore()
    expected = await execute(loop_graph(6), Counter())
    policy = CheckpointPolicy(every_step=True, on_completion=False)
    await execute(
        loop_graph(6), Counter(), store=store, policy=policy, trace_id="r", compact_after=4
    )
    restored = await load_run(store, loop_graph(6), "r")
    # the last step ("done") completed the run, which this policy does not checkpoint
    assert restored.next_node == "done" and restored.step == expected.steps - 1
    assert restored.state == attrs.evolve(expected.state, trail=expected.state.trail[:-1])


async def test_default_policy_saves_only_on_completion_for_plain_graphs() -> None:
    store = MemoryStore()
    await execute(loop_graph(3), Counter(), store=store, trace_id="x")
    assert [r.trigger for r in _records(store, "x")] == ["completion"]
    none = MemoryStore()
    policy = CheckpointPolicy(on_completion=False)
    await execute(loop_graph(3), Counter(), store=none, policy=policy, trace_id="x")
    assert await none.runs() == []


async def test_adaptive_policy_saves_after_costly_or_side_effecting_steps() -> None:
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
    store = MemoryStore()
    policy = CheckpointPolicy(on_completion=False, adaptive=AdaptiveScore(threshold=1.0))
    async with execute_stream(graph, Counter(), store=store, policy=policy) as run:
        saved = [e for e in [e async for e in run] if isinstance(e, CheckpointSaved)]
    assert [(s.step, s.next_node, s.trigger) for s in saved] == [
        (2, "mail", "adaptive"),
        (3, "end", "adaptive"),
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
    records = _records(store, "hitl")
    assert [(r.trigger, r.status, r.next_node) for r in records] == [
        ("barrier", "waiting", "gate"),
        ("barrier", "running", "work"),
        ("barrier", "waiting", "gate"),
    ]
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
    assert not saved[0].incremental and not saved[1].incremental  # same step: full again
    off = CheckpointPolicy(on_request=False)
    async with execute_stream(loop_graph(1), Counter(), store=MemoryStore(), policy=off) as run:
        await run.handle.request_checkpoint()
        assert not [
            e async for e in run if isinstance(e, CheckpointSaved) and e.trigger == "request"
        ]


async def test_resume_continues_to_the_same_final_state() -> None:
    expected = await execute(loop_graph(8), Counter())
    store = MemoryStore()
    async with execute_stream(
        loop_graph(8), Counter(), store=store, policy=EVERY_STEP, trace_id="t", compact_after=2
    ) as run:
        async for event in run:
            if isinstance(event, CheckpointSaved) and event.step == 7:
                break
    result = await resume(loop_graph(8), "t", store=store, policy=EVERY_STEP)
    assert result.state == expected.state and result.steps == expected.steps
    again = await resume(loop_graph(8), "t", store=store)  # already complete
    assert again.state == expected.state


async def test_resume_errors_missing_run_hash_mismatch_and_force() -> None:
    store = MemoryStore()
    with pytest.raises(CheckpointNotFound, match="nope"):
        await resume(loop_graph(3), "nope", store=store)
    await execute(loop_graph(3), Counter(), store=store, policy=EVERY_STEP, trace_id="h")
    changed = loop_graph(3, name="renamed-graph-changes-nothing")
    assert changed.hash == loop_graph(3).hash
    other = counter_builder("loop").node("tick", lambda s: None).node("done", lambda s: None)
    other = other.node("tock", lambda s: None).edge("tick", "tock").edge("tock", "done")
    other_graph = other.start("tick").end("done").build()
    with pytest.raises(GraphHashMismatch, match="force=True") as info:
        await resume(other_graph, "h", store=store)
    assert info.value.saved == loop_graph(3).hash
    with pytest.warns(GraphHashMismatchWarning, match="graph hash"):
        result = await resume(other_graph, "h", store=store, force=True)
    assert result.state.n == 3


async def test_undecodable_checkpoints_name_the_checkpoint() -> None:
    store = MemoryStore()
    await store.save_checkpoint("bad", 4, b"{not json")
    with pytest.raises(DecodeError, match="checkpoint bad@4"):
        await load_run(store, loop_graph(1), "bad")
    assert await list_runs(store) == []


async def test_a_failing_store_is_an_observed_error_and_the_next_save_is_full() -> None:
    class Flaky(MemoryStore):
        calls = 0

        async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
            self.calls += 1
            if self.calls == 2:
                raise OSError("disk full")
            await super().save_checkpoint(run_id, step, value)

    store = Flaky()
    async with execute_stream(
        loop_graph(2), Counter(), store=store, policy=EVERY_STEP, trace_id="f"
    ) as run:
        events = [e async for e in run]
    observed = [e for e in events if isinstance(e, ErrorObserved)]
    assert len(observed) == 1 and "disk full" in observed[0].message
    records = _records(store, "f")
    assert [r.full for r in records][:2] == [True, True]
    restored = await load_run(store, loop_graph(2), "f")
    assert restored.state == (await execute(loop_graph(2), Counter())).state


async def test_sqlite_checkpoints_and_the_runs_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.sqlite3"
    async with await SqliteStore.open(path, durability=Durability.OFF) as store:
        await execute(loop_graph(3), Counter(), store=store, policy=EVERY_STEP, trace_id="a1")
        await store.save_checkpoint("foreign", 1, b"\x00")
        summaries = await list_runs(store)
        assert [(s.trace_id, s.status, s.latest_step) for s in summaries] == [
            ("a1", "completed", 7)
        ]
        infos = await inspect_run(store, "a1")
        assert len(infos) == 7 and infos[0].full and not infos[1].full

    def cli(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().out

    code, out = await trio.to_thread.run_sync(cli, "runs", "list", str(path))
    assert code == 0 and "a1  loop  step 7  completed" in out
    code, out = await trio.to_thread.run_sync(cli, "runs", "list", str(path), "--json")
    assert json.loads(out)[0]["trace_id"] == "a1"
    code, out = await trio.to_thread.run_sync(cli, "runs", "show", str(path), "a1")
    assert code == 0 and out.count("\n") == 7 and "completion" in out and "+1 deltas" in out
    code, out = await trio.to_thread.run_sync(cli, "runs", "show", str(path), "a1", "--json")
    assert json.loads(out)[-1]["trigger"] == "completion"
    code, _ = await trio.to_thread.run_sync(cli, "runs", "show", str(path), "zzz")
    assert code == 1
    code, _ = await trio.to_thread.run_sync(cli, "runs", "list", str(tmp_path / "missing"))
    assert code == 2
    empty = tmp_path / "empty.sqlite3"
    async with await SqliteStore.open(empty):
        pass
    code, out = await trio.to_thread.run_sync(cli, "runs", "list", str(empty))
    assert out.strip() == "no runs"


def test_custom_reducer_update_types_round_trip() -> None:
    from fsmflow.graph import reducer

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
