"""The DAG executor: readiness by dependency counting, limits, strategies, payload rules."""

from __future__ import annotations

import random
import threading

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from fsmflow.dag import (
    DagBuilder,
    DagDefinitionError,
    DagFinished,
    DagStarted,
    ExecState,
    FailureStrategy,
    Intent,
    NodeFinished,
    NodeState,
    NodeStateChanged,
    ProcessorFailed,
    ProcessorInput,
    execute_dag,
    execution_spec,
    node_spec,
    stream_dag,
)


def _value(result: object) -> object:
    return result


async def test_diamond_runs_each_processor_after_its_dependencies() -> None:
    finished: list[str] = []

    def record(name: str):  # type: ignore[no-untyped-def]
        async def run(inp: ProcessorInput[str]) -> str:
            for dep in inp.dependencies:
                assert dep in finished, f"{name} started before {dep} finished"
            await trio.lowlevel.checkpoint()
            finished.append(name)
            return name

        return run

    b = DagBuilder[str]()
    b.add("top", record("top"))
    b.add("left", record("left"), after=["top"])
    b.add("right", record("right"), after=["top"])
    b.add("bottom", record("bottom"), after=["left", "right"])
    result = await execute_dag(b.build(), "payload")
    assert result.succeeded and not result.cancelled
    assert finished[0] == "top" and finished[-1] == "bottom"
    assert result.outcomes["bottom"].result == "bottom"
    assert all(o.attempts == 1 for o in result.outcomes.values())
    assert result.payload == "payload", "analyzers never change the payload"


async def test_wide_fan_out_and_fan_in_respect_the_limit() -> None:
    running = 0
    high_water = 0

    async def work(inp: ProcessorInput[None]) -> None:
        nonlocal running, high_water
        running += 1
        high_water = max(high_water, running)
        await trio.sleep(0.01)
        running -= 1

    b = DagBuilder[None]()
    b.add("source", work)
    for i in range(200):
        b.add(f"leaf{i}", work, after=["source"])
    b.add("sink", work, after=[f"leaf{i}" for i in range(200)])
    result = await execute_dag(b.build(), None, limit=7)
    assert result.succeeded
    assert high_water == 7
    assert result.outcomes["sink"].state is NodeState.DONE


async def test_fail_fast_cancels_running_processors_promptly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled_at: dict[str, float] = {}

    async def slow(inp: ProcessorInput[None]) -> None:
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            cancelled_at[inp.id] = trio.current_time()
            raise

    async def boom(inp: ProcessorInput[None]) -> None:
        await trio.sleep(1)
        raise ValueError("disk full")

    b = DagBuilder[None]()
    b.add("slow1", slow)
    b.add("slow2", slow)
    b.add("boom", boom)
    b.add("later", slow, after=["boom"])
    b.add("after_slow", slow, after=["slow1"])
    start = trio.current_time()
    result = await execute_dag(b.build(), None, strategy=FailureStrategy.FAIL_FAST)
    assert not result.succeeded
    assert result.outcomes["boom"].state is NodeState.FAILED
    error = result.outcomes["boom"].error
    assert isinstance(error, ProcessorFailed) and error.processor_id == "boom"
    assert isinstance(error.__cause__, ValueError) and "disk full" in str(error)
    for pid in ("slow1", "slow2", "later", "after_slow"):
        assert result.outcomes[pid].state is NodeState.CANCELLED
    assert set(cancelled_at) == {"slow1", "slow2"}
    assert all(t - start == pytest.approx(1) for t in cancelled_at.values())
    assert trio.current_time() - start == pytest.approx(1)


async def test_continue_on_error_skips_dependents_only() -> None:
    async def ok(inp: ProcessorInput[None]) -> str:
        return inp.id

    async def boom(inp: ProcessorInput[None]) -> None:
        raise RuntimeError("nope")

    b = DagBuilder[None]()
    b.add("a", boom)
    b.add("b", ok, after=["a"])
    b.add("c", ok, after=["b"])
    b.add("independent", ok)
    b.add("mixed", ok, after=["independent", "a"])
    result = await execute_dag(b.build(), None, strategy=FailureStrategy.CONTINUE_ON_ERROR)
    states = {pid: o.state for pid, o in result.outcomes.items()}
    assert states == {
        "a": NodeState.FAILED,
        "b": NodeState.SKIPPED,
        "c": NodeState.SKIPPED,
        "independent": NodeState.DONE,
        "mixed": NodeState.SKIPPED,
    }
    assert [o.id for o in result.failures()] == ["a"]


async def test_best_effort_runs_dependents_with_the_failure_visible() -> None:
    seen: dict[str, NodeState] = {}

    async def boom(inp: ProcessorInput[None]) -> None:
        raise RuntimeError("nope")

    async def look(inp: ProcessorInput[None]) -> None:
        seen.update({dep: outcome.state for dep, outcome in inp.dependencies.items()})

    b = DagBuilder[None]()
    b.add("a", boom)
    b.add("b", look, after=["a"])
    result = await execute_dag(b.build(), None, strategy=FailureStrategy.BEST_EFFORT)
    assert result.outcomes["b"].state is NodeState.DONE
    assert seen == {"a": NodeState.FAILED}
    assert not result.succeeded


async def test_retries_with_backoff_and_timeouts(autojump_clock: trio.testing.MockClock) -> None:
    attempts_seen: list[tuple[int, float]] = []

    async def flaky(inp: ProcessorInput[None]) -> str:
        attempts_seen.append((inp.attempt, trio.current_time()))
        if inp.attempt < 3:
            raise ConnectionError("try again")
        return "ok"

    async def hangs(inp: ProcessorInput[None]) -> None:
        await trio.sleep(60)

    b = DagBuilder[None]()
    b.add("flaky", flaky, retries=3, retry_backoff=1.0)
    b.add("hangs", hangs, timeout=5, retries=1, retry_backoff=0.5)
    start = trio.current_time()
    result = await execute_dag(b.build(), None, strategy=FailureStrategy.CONTINUE_ON_ERROR)
    assert result.outcomes["flaky"].state is NodeState.DONE
    assert result.outcomes["flaky"].attempts == 3
    assert [round(t - start, 6) for _, t in attempts_seen] == [0, 1, 3]
    hung = result.outcomes["hangs"]
    assert hung.state is NodeState.FAILED and hung.attempts == 2
    assert isinstance(hung.error, ProcessorFailed)
    assert isinstance(hung.error.__cause__, TimeoutError)
    assert hung.duration == pytest.approx(10.5)


def test_build_errors_name_the_problem() -> None:
    async def noop(inp: ProcessorInput[None]) -> None:
        return None

    b = DagBuilder[None]()
    b.add("a", noop, after=["c"]).add("b", noop, after=["a"]).add("c", noop, after=["b"])
    with pytest.raises(
        DagDefinitionError, match=r"cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"
    ):
        b.build()
    b = DagBuilder[None]()
    b.add("a", noop, after=["ghost"]).add("a", noop)
    with pytest.raises(DagDefinitionError) as caught:
        b.build()
    assert "duplicate processor id 'a'" in str(caught.value)
    assert "depends on unknown processor 'ghost'" in str(caught.value)
    b = DagBuilder[None]()
    b.add("t1", noop, intent=Intent.TRANSFORM).add("t2", noop, intent=Intent.TRANSFORM)
    with pytest.raises(DagDefinitionError, match="could run at the same time"):
        b.build()
    b = DagBuilder[None]()
    b.add("x", noop, blocking=True).add("y", noop, retries=-1)
    with pytest.raises(DagDefinitionError) as caught:
        b.build()
    assert "blocking=True needs a sync function" in str(caught.value)
    assert "processor 'y': retries must be a whole number >= 0, not -1" in str(caught.value)


async def test_transforms_replace_the_payload_in_order_and_analyzers_see_their_version() -> None:
    seen: dict[str, str] = {}

    def analyze(inp: ProcessorInput[str]) -> int:
        seen[inp.id] = inp.payload
        return len(inp.payload)

    b = DagBuilder[str]()
    b.add("parse", lambda inp: inp.payload.strip().upper(), intent=Intent.TRANSFORM)
    b.add("words", analyze, after=["parse"])
    b.add("chars", analyze, after=["parse"])
    b.add("early", analyze)
    b.add(
        "enrich", lambda inp: inp.payload + "!", after=["words", "chars"], intent=Intent.TRANSFORM
    )
    b.add("keep", lambda inp: None, after=["enrich"], intent=Intent.TRANSFORM)
    b.add("report", analyze, after=["keep"])
    result = await execute_dag(b.build(), "  hello  ")
    assert result.payload == "HELLO!"
    assert seen == {"words": "HELLO", "chars": "HELLO", "early": "  hello  ", "report": "HELLO!"}
    assert result.outcomes["chars"].result == 5


async def test_blocking_sync_processor_runs_in_a_worker_thread() -> None:
    main_thread = threading.get_ident()

    def blocking(inp: ProcessorInput[None]) -> int:
        return threading.get_ident()

    b = DagBuilder[None]()
    b.add("io", blocking, blocking=True)
    b.add("inline", lambda inp: threading.get_ident())
    result = await execute_dag(b.build(), None)
    assert result.outcomes["io"].result != main_thread
    assert result.outcomes["inline"].result == main_thread


async def test_event_stream_and_cancel(autojump_clock: trio.testing.MockClock) -> None:
    async def step(inp: ProcessorInput[None]) -> None:
        await trio.sleep(1)

    b = DagBuilder[None]()
    b.add("a", step).add("b", step, after=["a"]).add("c", step, after=["b"])
    events = []
    async with stream_dag(b.build(), None, buffer=1) as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, NodeFinished) and event.outcome.id == "a":
                stream.cancel()
    assert isinstance(events[0], DagStarted) and isinstance(events[-1], DagFinished)
    assert stream.result is not None and stream.result.cancelled
    assert stream.result.outcomes["a"].state is NodeState.DONE
    assert stream.result.outcomes["b"].state is NodeState.CANCELLED
    assert stream.result.outcomes["c"].state is NodeState.CANCELLED
    changes = [(e.id, e.to_state) for e in events if isinstance(e, NodeStateChanged)]
    assert changes[:3] == [("a", NodeState.READY), ("a", NodeState.RUNNING), ("a", NodeState.DONE)]


async def test_leaving_the_stream_early_cancels_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started: list[str] = []

    async def step(inp: ProcessorInput[None]) -> None:
        started.append(inp.id)
        await trio.sleep(1)

    b = DagBuilder[None]()
    b.add("a", step).add("b", step, after=["a"])
    async with stream_dag(b.build(), None) as stream:
        async for event in stream:
            if isinstance(event, DagStarted):
                break
    assert stream.result is None
    assert started in ([], ["a"])


async def test_specs_are_introspectable_and_limits_checked() -> None:
    assert execution_spec().initial is ExecState.STARTING
    assert node_spec().strict
    with pytest.raises(ValueError, match="limit"):
        await execute_dag(DagBuilder[None]().build(), None, limit=0)
    empty = await execute_dag(DagBuilder[None]().build(), None)
    assert empty.succeeded and empty.outcomes == {}


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[list[list[int]], set[int], int, FailureStrategy]:
    n = draw(st.integers(1, 25))
    deps = [
        sorted(set(draw(st.lists(st.integers(0, i - 1), max_size=3)))) if i else []
        for i in range(n)
    ]
    failing = set(draw(st.lists(st.integers(0, n - 1), max_size=3)))
    limit = draw(st.integers(1, 6))
    strategy = draw(st.sampled_from(list(FailureStrategy)))
    return deps, failing, limit, strategy


@settings(max_examples=150, deadline=None)
@given(random_dags(), st.randoms(use_true_random=False))
def test_random_dags_run_each_processor_once_after_its_dependencies(
    case: tuple[list[list[int]], set[int], int, FailureStrategy], rnd: random.Random
) -> None:
    deps, failing, limit, strategy = case
    order: list[int] = []
    done: set[int] = set()
    running = 0
    high_water = 0

    def make(i: int):  # type: ignore[no-untyped-def]
        async def run(inp: ProcessorInput[None]) -> None:
            nonlocal running, high_water
            for d in deps[i]:
                assert d in done or strategy is FailureStrategy.BEST_EFFORT
            order.append(i)
            running += 1
            high_water = max(high_water, running)
            try:
                await trio.sleep(rnd.choice([0, 0.001, 0.002]))
            finally:
                running -= 1
            if i in failing:
                raise RuntimeError(f"p{i}")
            done.add(i)

        return run

    b = DagBuilder[None]()
    for i, ds in enumerate(deps):
        b.add(f"p{i}", make(i), after=[f"p{d}" for d in ds])

    async def main() -> None:
        result = await execute_dag(b.build(), None, limit=limit, strategy=strategy)
        assert len(order) == len(set(order)), "a processor ran twice"
        assert high_water <= limit
        for i in range(len(deps)):
            outcome = result.outcomes[f"p{i}"]
            if i in order:
                assert outcome.state in (NodeState.DONE, NodeState.FAILED, NodeState.CANCELLED)
                assert outcome.attempts == 1
            else:
                assert outcome.state in (NodeState.SKIPPED, NodeState.CANCELLED)
            if outcome.state is NodeState.DONE:
                assert i not in failing
                assert all(
                    result.outcomes[f"p{d}"].state is NodeState.DONE
                    or strategy is FailureStrategy.BEST_EFFORT
                    for d in deps[i]
                )
            if outcome.state is NodeState.SKIPPED:
                assert strategy is FailureStrategy.CONTINUE_ON_ERROR
            if outcome.state is NodeState.CANCELLED:
                assert strategy is FailureStrategy.FAIL_FAST
        assert result.succeeded == (not failing & set(order) and len(order) == len(deps))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
