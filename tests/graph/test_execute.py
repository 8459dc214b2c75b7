"""Executing graphs: routing, results, errors, parallel nodes and the event stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from fsmflow.graph import (
    BranchCompleted,
    ErrorObserved,
    ExecState,
    Fallback,
    GraphBuilder,
    GraphCancelled,
    GraphCompleted,
    GraphEvent,
    GraphExecution,
    GraphFailed,
    GraphStarted,
    MergeConflict,
    MissingEdge,
    MissingFallback,
    NodeEnded,
    NodeFailed,
    NodeNotFound,
    NodeOutput,
    NodeStarted,
    ParallelCompleted,
    ParallelFailed,
    ParallelStarted,
    ParallelStrategy,
    StateChanged,
    StepsExceeded,
    StreamingRequired,
    Unrouted,
    execute,
    execute_stream,
    execution_spec,
)

from ._graphs import Counter, Doc, counter_builder, loop_graph


def _noop(state: Counter) -> None:
    return None


async def test_a_loop_runs_to_its_end_with_reducers() -> None:
    result = await execute(loop_graph(3), Counter())
    assert result.state.n == 3
    assert result.state.trail == ["tick", "tock"] * 3 + ["done"]
    assert result.state.total == 1 + 4 + 7
    assert result.steps == 7 == len(result.log)
    assert [e.node for e in result.log][:3] == ["tick", "tock", "tick"]
    assert all(e.success for e in result.log)
    assert len(result.trace_id) == 32


async def test_routing_tries_conditional_then_normal_then_fallback() -> None:
    taken: list[str] = []

    def mark(name: str) -> Any:
        def node(state: Counter) -> Mapping[str, Any]:
            taken.append(name)
            return {"trail": [name]}

        return node

    def build(n: int) -> Any:
        b = counter_builder()
        for name in ("start", "cond1", "cond2", "normal", "end"):
            b.node(name, mark(name))
        b.fallback("start", "end")
        b.edge("start", "normal")
        b.edge("start", "cond1", when=lambda s: s.n == 1)
        b.edge("start", "cond2", when=lambda s: s.n >= 1)
        for name in ("cond1", "cond2", "normal"):
            b.edge(name, "end")
        return b.start("start").end("end").build()

    for n, expected in ((0, "normal"), (1, "cond1"), (2, "cond2")):
        taken.clear()
        await execute(build(n), Counter(n=n))
        assert taken == ["start", expected, "end"]


async def test_only_conditional_edges_route_to_the_fallback_or_fail_unrouted() -> None:
    b = counter_builder().node("a", _noop).node("b", _noop).node("c", _noop)
    b.edge("a", "b", when=lambda s: s.n > 5, label="big").fallback("a", "c").edge("b", "c")
    result = await execute(b.start("a").end("c").build(), Counter())
    assert [e.node for e in result.log] == ["a", "c"]

    b = counter_builder().node("a", _noop).node("b", _noop)
    b.edge("a", "b", when=lambda s: s.n > 5, label="big").start("a").end("b")
    with pytest.raises(Unrouted) as info:
        await execute(b.build(), Counter())
    assert info.value.node == "a"
    assert info.value.tried[0].condition == "big"
    assert not info.value.tried[0].matched
    assert "a->b [big: False]" in str(info.value)


async def test_goto_end_and_node_output_fields() -> None:
    async def first(state: Counter) -> NodeOutput:
        return NodeOutput(update={"n": 1}, goto="third", warning="careful")

    def third(state: Counter) -> NodeOutput:
        return NodeOutput(update={"trail": ["third"]}, end=True)

    b = counter_builder().node("first", first).node("second", _noop).node("third", third)
    b.node("last", _noop)
    b.edge("first", "second").edge("first", "third", when=lambda s: False).edge("second", "last")
    b.edge("third", "last")
    graph = b.start("first").end("last").build()
    result = await execute(graph, Counter())
    assert [e.node for e in result.log] == ["first", "third"]
    assert result.state == Counter(n=1, trail=["third"])


async def test_goto_errors_name_the_missing_node_or_edge() -> None:
    def go(target: str) -> Any:
        def node(state: Counter) -> NodeOutput:
            return NodeOutput(goto=target)

        return node

    for target, error in (("ghost", NodeNotFound), ("c", MissingEdge)):
        b = counter_builder().node("a", go(target)).node("b", _noop).node("c", _noop)
        b.edge("a", "b").edge("b", "c").start("a").end("c")
        with pytest.raises(error, match=target):
            await execute(b.build(), Counter())


async def test_fallback_results_route_along_the_fallback_edge_or_fail() -> None:
    def flaky(state: Counter) -> Fallback:
        return Fallback("model unavailable", {"trail": ["degraded"]})

    b = counter_builder().node("a", flaky).node("b", _noop).node("safe", _noop)
    b.node("end", _noop)
    b.edge("a", "b").fallback("a", "safe").edge("b", "end").edge("safe", "end")
    graph = b.start("a").end("end").build()
    async with execute_stream(graph, Counter()) as run:
        events = [e async for e in run]
    assert run.result is not None
    assert [e.node for e in run.result.log] == ["a", "safe", "end"]
    observed = [e for e in events if isinstance(e, ErrorObserved)]
    assert observed[0].node == "a"
    assert "fell back to 'safe': model unavailable" in observed[0].message

    b = counter_builder().node("a", flaky).node("b", _noop).edge("a", "b").start("a").end("b")
    with pytest.raises(MissingFallback, match="node 'a' fell back"):
        await execute(b.build(), Counter())


async def test_max_steps_and_node_failures_are_typed() -> None:
    with pytest.raises(StepsExceeded, match="max_steps=5"):
        await execute(loop_graph(100), Counter(), max_steps=5)
    with pytest.raises(ValueError, match="max_steps"):
        await execute(loop_graph(1), Counter(), max_steps=0)

    def broken(state: Counter) -> None:
        raise KeyError("boom")

    b = counter_builder().node("a", broken).start("a").end("a")
    with pytest.raises(NodeFailed) as info:
        await execute(b.build(), Counter())
    assert info.value.node == "a"
    assert isinstance(info.value.__cause__, KeyError)

    def wrong(state: Counter) -> int:
        return 3

    b = counter_builder().node("a", wrong).start("a").end("a")  # type: ignore[arg-type]
    with pytest.raises(NodeFailed, match="not int"):
        await execute(b.build(), Counter())


async def test_execute_refuses_barriers() -> None:
    b = counter_builder().node("a", _noop).barrier("gate").edge("a", "gate")
    with pytest.raises(StreamingRequired, match="execute_stream"):
        await execute(b.start("a").end("gate").build(), Counter())


async def test_typed_dict_state() -> None:
    def split(doc: Doc) -> Mapping[str, Any]:
        words = doc["text"].split()
        return {"words": words, "count": len(words)}

    b = GraphBuilder(Doc).node("split", split).start("split").end("split")
    initial: Doc = {"text": "a b c", "words": [], "count": 0}
    result = await execute(b.build(), initial)
    assert result.state == {"text": "a b c", "words": ["a", "b", "c"], "count": 3}


def _parallel_graph(
    branches: dict[str, Any], strategy: ParallelStrategy = ParallelStrategy.FAIL_FAST
) -> Any:
    b = counter_builder().parallel("fan", branches, strategy=strategy).node("join", _noop)
    return b.edge("fan", "join").start("fan").end("join").build()


async def test_parallel_branches_merge_by_reducers_in_branch_order() -> None:
    async def slow(state: Counter) -> Mapping[str, Any]:
        await trio.sleep(0.01)
        return {"trail": ["slow"], "total": 2, "notes": {"slow": "1"}}

    def fast(state: Counter) -> Mapping[str, Any]:
        state.trail.append("mutated")  # a copy: nobody else sees it
        return {"trail": ["fast"], "total": 3, "n": 7}

    graph = _parallel_graph({"slow": slow, "fast": fast, "none": _noop})
    result = await execute(graph, Counter())
    assert result.state == Counter(n=7, trail=["slow", "fast"], total=5, notes={"slow": "1"})


async def test_parallel_conflict_is_a_clear_error() -> None:
    graph = _parallel_graph({"a": lambda s: {"n": 1}, "b": lambda s: {"n": 2}})
    with pytest.raises(MergeConflict, match="set 'n' to different values"):
        await execute(graph, Counter())


async def test_fail_fast_cancels_the_other_branches_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled: list[str] = []

    async def long(state: Counter) -> None:
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            cancelled.append("long")
            raise

    async def failing(state: Counter) -> None:
        await trio.sleep(1)
        raise RuntimeError("bad branch")

    started = trio.current_time()
    with pytest.raises(NodeFailed, match="fan/failing") as info:
        await execute(_parallel_graph({"long": long, "failing": failing}), Counter())
    assert isinstance(info.value.cause, RuntimeError)
    assert cancelled == ["long"]
    assert trio.current_time() - started == pytest.approx(1)


async def test_collect_all_waits_for_every_branch_and_lists_failures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished: list[str] = []

    async def long(state: Counter) -> None:
        await trio.sleep(5)
        finished.append("long")

    def bad(name: str) -> Any:
        def branch(state: Counter) -> None:
            raise ValueError(name)

        return branch

    graph = _parallel_graph(
        {"long": long, "x": bad("x"), "y": bad("y")}, ParallelStrategy.COLLECT_ALL
    )
    with pytest.raises(ParallelFailed) as info:
        await execute(graph, Counter())
    assert finished == ["long"]
    assert list(info.value.failures) == ["x", "y"]
    assert "2 branch(es) of 'fan' failed" in str(info.value)

    graph = _parallel_graph({"x": lambda s: 3})
    with pytest.raises(NodeFailed, match="not int"):
        await execute(graph, Counter())


async def test_the_stream_reports_every_step_with_trace_and_spans() -> None:
    graph = _parallel_graph({"a": lambda s: {"trail": ["a"]}, "b": lambda s: NodeOutput()})
    async with execute_stream(graph, Counter(), trace_id="t" * 32) as run:
        events: list[GraphEvent] = [e async for e in run]
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["GraphStarted", "NodeStarted", "ParallelStarted"]
    assert kinds.count("BranchCompleted") == 2
    assert kinds[-1] == "GraphCompleted"
    assert all(e.trace_id == "t" * 32 for e in events)
    started = events[0]
    assert isinstance(started, GraphStarted) and started.parent_span_id is None
    root = started.span_id
    node_start = next(e for e in events if isinstance(e, NodeStarted))
    assert node_start.parent_span_id == root
    branches = [e for e in events if isinstance(e, BranchCompleted)]
    assert {b.parent_span_id for b in branches} == {node_start.span_id}
    assert len({b.span_id for b in branches}) == 2
    assert any(isinstance(e, ParallelStarted) for e in events)
    assert any(isinstance(e, ParallelCompleted) and e.success for e in events)
    changed = [e for e in events if isinstance(e, StateChanged)]
    assert [(c.branch, c.delta) for c in changed] == [("a", {"trail": ["a"]})]
    ended = [e for e in events if isinstance(e, NodeEnded)]
    assert [e.node for e in ended] == ["fan", "join"] and ended[0].success
    done = events[-1]
    assert isinstance(done, GraphCompleted) and done.result.state.trail == ["a"]
    assert run.handle.state is ExecState.COMPLETED


async def test_a_failing_run_ends_its_stream_with_graph_failed() -> None:
    def broken(state: Counter) -> None:
        raise RuntimeError("no")

    b = counter_builder().node("a", lambda s: {"n": 1}).node("b", broken)
    graph = b.edge("a", "b").start("a").end("b").build()
    async with execute_stream(graph, Counter()) as run:
        events = [e async for e in run]
    last = events[-1]
    assert isinstance(last, GraphFailed)
    assert isinstance(last.error, NodeFailed) and last.state == Counter(n=1) and last.step == 1
    failed_end = events[-2]
    assert isinstance(failed_end, NodeEnded) and not failed_end.success
    assert run.error is last.error and run.result is None


async def test_a_slow_consumer_applies_backpressure() -> None:
    progress: list[int] = []

    def tick(state: Counter) -> Mapping[str, Any]:
        progress.append(state.n)
        return {"n": state.n + 1}

    b = counter_builder().node("tick", tick).node("end", _noop)
    b.edge("tick", "tick", when=lambda s: s.n < 50).edge("tick", "end")
    graph = b.start("tick").end("end").build()
    async with execute_stream(graph, Counter(), buffer=2) as run:
        await trio.testing.wait_all_tasks_blocked()
        assert len(progress) <= 2  # at most a couple of events fit the buffer
        count = len([e async for e in run])
    assert len(progress) == 50 and count > 100


async def test_leaving_the_stream_early_stops_the_run() -> None:
    async def forever(state: Counter) -> None:
        await trio.sleep_forever()

    b = counter_builder().node("a", forever).start("a").end("a")
    async with execute_stream(b.build(), Counter()) as run:
        async for event in run:
            if isinstance(event, NodeStarted):
                break
    assert run.result is None and run.error is None


async def test_a_consumer_that_closes_the_stream_stops_the_run() -> None:
    ticks: list[int] = []

    def tick(state: Counter) -> Mapping[str, Any]:
        ticks.append(state.n)
        return {"n": state.n + 1}

    b = counter_builder().node("tick", tick).node("end", _noop)
    b.edge("tick", "tick", when=lambda s: s.n < 10_000).edge("tick", "end")
    async with execute_stream(b.start("tick").end("end").build(), Counter(), buffer=1) as run:
        await run._events.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert run.handle.done
    assert len(ticks) < 5 and run.result is None


async def test_cancel_interrupts_a_running_node(autojump_clock: trio.testing.MockClock) -> None:
    async def slow(state: Counter) -> None:
        await trio.sleep(100)

    b = counter_builder().node("a", lambda s: {"n": 1}).node("slow", slow)
    graph = b.edge("a", "slow").start("a").end("slow").build()
    async with execute_stream(graph, Counter()) as run:
        events = []
        async for event in run:
            events.append(event)
            if isinstance(event, NodeStarted) and event.node == "slow":
                await trio.sleep(1)
                await run.handle.cancel()
    last = events[-1]
    assert isinstance(last, GraphCancelled) and last.where == "slow" and last.state.n == 1
    assert run.cancelled_at == "slow"
    assert trio.current_time() < 50
    await run.handle.cancel()  # after the end: nothing happens
    assert not await run.handle.request_checkpoint()


async def test_the_execution_is_a_supervised_fsm_with_external_events() -> None:
    spec = GraphExecution.fsm_spec()
    assert spec is execution_spec()
    assert spec.initial is ExecState.STARTING
    names = {s.value for s in ExecState}
    assert {"starting", "running", "awaiting_decision", "completed", "failed"} <= names


async def test_runs_under_asyncio_too() -> None:
    async def main() -> int:
        result = await execute(loop_graph(2), Counter())
        return result.state.n

    assert await trio.to_thread.run_sync(lambda: anyio.run(main, backend="asyncio")) == 2


async def test_a_step_that_fails_after_merging_leaves_the_state_as_it_was() -> None:
    """In-place merges are undone when the step fails afterwards (here its routing), so
    the failure reports - and checkpoints - the state before the step, and a resume
    applies the step's writes once."""
    from fsmflow.graph import CheckpointPolicy, resume
    from fsmflow.store import MemoryStore

    def grow(state: Counter) -> Mapping[str, Any]:
        return {"trail": ["x"], "notes": {"k": str(state.n)}}

    ok = {"route": False}
    b = counter_builder().node("grow", grow).node("end", _noop)
    b.edge("grow", "grow", when=lambda s: len(s.trail) < 3)
    b.edge("grow", "end", when=lambda s: ok["route"])
    graph = b.start("grow").end("end").build()
    store = MemoryStore()
    async with execute_stream(
        graph, Counter(), store=store, thread_id="u", policy=CheckpointPolicy(every_step=True)
    ) as run:
        events = [e async for e in run]
    failed = events[-1]
    assert isinstance(failed, GraphFailed) and isinstance(failed.error, Unrouted)
    assert failed.state.trail == ["x", "x"] and failed.step == 2
    ok["route"] = True
    result = await resume(graph, "u", store=store)
    assert result.state.trail == ["x", "x", "x"]
