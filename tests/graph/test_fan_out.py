"""Dynamic fan-out (LangGraph's ``Send``) and pending writes."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fsmflow.graph import (
    BranchCompleted,
    CheckpointPolicy,
    FanOutError,
    GraphBuilder,
    GraphDefinitionError,
    NodeFailed,
    NodeOutput,
    ParallelFailed,
    ParallelStrategy,
    Send,
    add,
    append,
    execute,
    execute_stream,
    get_state,
    resume,
)
from fsmflow.store import MemoryStore


@attrs.frozen
class Doc:
    text: str


@attrs.frozen
class Batch:
    count: int = 0
    docs: list[str] = attrs.field(factory=list)
    lengths: list[int] = attrs.field(factory=list)
    total: int = 0
    summary: str = ""


def _map_reduce(concurrency: int | None = None, probe: list[int] | None = None) -> Any:
    running = [0]

    def split(state: Batch) -> dict[str, Any]:
        return {"docs": [f"doc{i}" * (i % 4 + 1) for i in range(state.count)]}

    async def measure(doc: Doc) -> dict[str, Any]:
        running[0] += 1
        if probe is not None:
            probe.append(running[0])
        await trio.sleep(0.001)
        running[0] -= 1
        return {"lengths": [len(doc.text)], "total": len(doc.text)}

    def reduce(state: Batch) -> dict[str, Any]:
        return {"summary": f"{len(state.lengths)} docs, {state.total} chars"}

    b = GraphBuilder(Batch, name="mapreduce", reducers={"lengths": append, "total": add})
    b.node("split", split).node("measure", measure, input=Doc, concurrency=concurrency)
    b.node("reduce", reduce)
    b.fan_out("split", "measure", lambda s: [Doc(d) for d in s.docs]).edge("measure", "reduce")
    return b.start("split").end("reduce").build()


@pytest.mark.parametrize("count", [0, 1, 100])
async def test_send_with_zero_one_and_a_hundred_branches(count: int) -> None:
    result = await execute(_map_reduce(), Batch(count=count))
    expected = [len(f"doc{i}" * (i % 4 + 1)) for i in range(count)]
    assert result.state.lengths == expected  # merged in the order of the sends
    assert result.state.summary == f"{count} docs, {sum(expected)} chars"
    assert [e.node for e in result.log] == ["split", "measure", "reduce"]


async def test_a_fan_out_runs_concurrently_under_its_limit() -> None:
    probe: list[int] = []
    await execute(_map_reduce(concurrency=7, probe=probe), Batch(count=40))
    assert max(probe) == 7
    probe.clear()
    await execute(_map_reduce(probe=probe), Batch(count=40), max_concurrency=3)
    assert max(probe) == 3


async def test_the_stream_reports_each_branch() -> None:
    async with execute_stream(_map_reduce(), Batch(count=3)) as run:
        branches = [e.branch async for e in run if isinstance(e, BranchCompleted)]
    assert sorted(branches) == ["measure[0]", "measure[1]", "measure[2]"]


async def test_a_node_can_send_to_any_node_at_run_time() -> None:
    def route(state: Batch) -> NodeOutput:
        return NodeOutput(goto=[Send("shout", Doc("a")), Send("shout", Doc("bb"))])

    def shout(doc: Doc) -> dict[str, Any]:
        return {"docs": [doc.text.upper()]}

    b = GraphBuilder(Batch, reducers={"docs": append})
    b.node("route", route).node("shout", shout, input=Doc).node("end", lambda s: None)
    b.fan_out("route", "shout", lambda s: []).edge("shout", "end")
    result = await execute(b.start("route").end("end").build(), Batch())
    assert result.state.docs == ["A", "BB"]

    def empty(state: Batch) -> NodeOutput:
        return NodeOutput(update={"count": 1}, goto=[])  # no sends: follow the edges

    b = GraphBuilder(Batch).node("empty", empty).node("end", lambda s: None)
    result = await execute(b.edge("empty", "end").start("empty").end("end").build(), Batch())
    assert [e.node for e in result.log] == ["empty", "end"]


async def test_malformed_fan_outs_are_clear_errors() -> None:
    def bad_input(state: Batch) -> NodeOutput:
        return NodeOutput(goto=[Send("measure", "not a Doc")])

    b = GraphBuilder(Batch).node("start", bad_input).node("measure", lambda d: None, input=Doc)
    b.fan_out("start", "measure", lambda s: []).start("start").end("measure")
    with pytest.raises(FanOutError, match="carries a str, the node runs on Doc"):
        await execute(b.build(), Batch())

    def to_barrier(state: Batch) -> NodeOutput:
        return NodeOutput(goto=[Send("gate", Batch())])

    b = GraphBuilder(Batch).node("start", to_barrier).barrier("gate").edge("start", "gate")
    with pytest.raises(FanOutError, match="not a function node"):
        await execute(b.start("start").end("gate").build(), Batch(), store=MemoryStore())

    def diverge(state: Batch) -> NodeOutput:
        return NodeOutput(goto=[Send("x", Batch()), Send("y", Batch())])

    b = GraphBuilder(Batch).node("start", diverge).node("x", lambda s: None)
    b.node("y", lambda s: None).node("xe", lambda s: None).node("ye", lambda s: None)
    b.edge("start", "x").edge("start", "y", when=lambda s: False).edge("x", "xe")
    b.edge("y", "ye").edge("ye", "xe")
    with pytest.raises(FanOutError, match="lead on to different nodes"):
        await execute(b.start("start").end("xe").build(), Batch())

    b = GraphBuilder(Batch).node("a", lambda s: None).node("m", lambda d: None, input=Doc)
    b.edge("a", "m").start("a").end("m")
    with pytest.raises(GraphDefinitionError, match=r"reach it with builder\.fan_out"):
        b.build()


async def test_failed_branches_siblings_are_not_run_again_on_resume(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[str] = []
    broken = {"c": True}

    async def work(doc: Doc) -> dict[str, Any]:
        calls.append(doc.text)
        await trio.sleep({"a": 1, "b": 2, "c": 3}[doc.text])
        if broken.get(doc.text):
            raise RuntimeError(f"{doc.text} broke")
        return {"docs": [doc.text]}

    b = GraphBuilder(Batch, reducers={"docs": append}).node("start", lambda s: None)
    b.node("work", work, input=Doc).node("end", lambda s: None)
    b.fan_out("start", "work", lambda s: [Doc(t) for t in "abc"]).edge("work", "end")
    graph = b.start("start").end("end").build()
    store = MemoryStore()
    with pytest.raises(NodeFailed, match=r"work\[2\]"):
        await execute(graph, Batch(), store=store, thread_id="f")
    snapshot = await get_state(graph, "f", store=store)
    assert snapshot.status == "failed" and snapshot.pending_writes == ("0", "1")
    broken.clear()
    result = await resume(graph, "f", store=store)
    assert sorted(calls) == ["a", "b", "c", "c"]  # only the failed branch ran again
    assert result.state.docs == ["a", "b", "c"]  # in the order of the sends


async def test_a_parallel_nodes_succeeded_branches_keep_their_writes() -> None:
    calls: list[str] = []
    broken = {"on": True}

    def ok(name: str) -> Any:
        def branch(state: Batch) -> dict[str, Any]:
            calls.append(name)
            return {"docs": [name]}

        return branch

    def flaky(state: Batch) -> dict[str, Any]:
        calls.append("flaky")
        if broken["on"]:
            raise RuntimeError("flaky")
        return {"docs": ["flaky"]}

    b = GraphBuilder(Batch, reducers={"docs": append})
    branches = {"a": ok("a"), "flaky": flaky, "b": ok("b")}
    b.parallel("fan", branches, strategy=ParallelStrategy.COLLECT_ALL)
    graph = b.node("end", lambda s: None).edge("fan", "end").start("fan").end("end").build()
    store = MemoryStore()
    policy = CheckpointPolicy(keep=None)
    with pytest.raises(ParallelFailed):
        await execute(graph, Batch(), store=store, thread_id="p", policy=policy)
    broken["on"] = False
    result = await resume(graph, "p", store=store)
    assert sorted(calls) == ["a", "b", "flaky", "flaky"]
    assert result.state.docs == ["a", "flaky", "b"]
