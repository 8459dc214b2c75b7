"""Bad DAG definitions fail at build time naming the processor, and the execution's own
failures reach the result instead of vanishing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fsmflow.dag import (
    DagBuilder,
    DagDefinitionError,
    DagEvent,
    Intent,
    NodeFinished,
    NodeState,
    ProcessorInput,
    execute_dag,
)


async def noop(inp: ProcessorInput[None]) -> None:
    return None


def untyped(value: object) -> Any:
    """Pass a deliberately wrong value past mypy to test runtime checks."""
    return value


def problems_of(builder: DagBuilder[Any]) -> tuple[str, ...]:
    with pytest.raises(DagDefinitionError) as info:
        builder.build()
    return info.value.problems


def test_a_repeated_dependency_is_rejected() -> None:
    b = DagBuilder[None]()
    b.add("a", noop).add("b", noop).add("c", noop, after=["a", "a", "b"])
    assert problems_of(b) == ("processor 'c': after= lists 'a' more than once",)


@pytest.mark.parametrize("after", ["ab", b"ab", 7])
def test_after_must_be_a_collection_of_ids(after: object) -> None:
    b = DagBuilder[None]()
    b.add("a", noop).add("b", noop).add("c", noop, after=untyped(after))
    assert problems_of(b) == (
        f"processor 'c': after= must be a collection of processor ids, such as "
        f"after=[{after!r}], not {after!r}",
    )


@pytest.mark.parametrize("intent", ["transform", "TRANSFORM", 1, None])
def test_intent_must_be_the_enum(intent: object) -> None:
    b = DagBuilder[None]().add("a", noop, intent=untyped(intent))
    assert problems_of(b) == (
        f"processor 'a': intent must be Intent.TRANSFORM or Intent.ANALYZE, not {intent!r}",
    )


@pytest.mark.parametrize("timeout", [math.nan, -1.0, 0, -math.inf, "5", True])
def test_a_timeout_must_be_a_positive_number(timeout: object) -> None:
    b = DagBuilder[None]().add("a", noop, timeout=untyped(timeout))
    assert problems_of(b) == (
        f"processor 'a': timeout must be a positive number of seconds or None, not {timeout!r}",
    )


@pytest.mark.parametrize("backoff", [math.nan, math.inf, -0.5, "1"])
def test_a_retry_backoff_must_be_a_finite_number(backoff: object) -> None:
    b = DagBuilder[None]().add("a", noop, retries=1, retry_backoff=untyped(backoff))
    assert problems_of(b) == (
        f"processor 'a': retry_backoff must be a finite number of seconds >= 0, not {backoff!r}",
    )


@pytest.mark.parametrize("retries", [1.5, True, -1, "2"])
def test_retries_must_be_a_whole_number(retries: object) -> None:
    b = DagBuilder[None]().add("a", noop, retries=untyped(retries))
    assert problems_of(b) == (
        f"processor 'a': retries must be a whole number >= 0, not {retries!r}",
    )


def test_a_cycle_of_ids_of_mixed_types_is_named() -> None:
    b = DagBuilder[None]()
    b.add(untyped(1), noop, after=["a"]).add("a", noop, after=[untyped(2)])
    b.add(untyped(2), noop, after=[untyped(1)]).add(untyped(None), noop)
    assert problems_of(b) == ("cycle: 1 -> 2 -> a -> 1",)


def test_every_problem_is_reported_at_once() -> None:
    b = DagBuilder[None]()
    b.add("a", noop, after="b", intent=untyped("analyze"), timeout=math.nan)
    assert len(problems_of(b)) == 3


def test_a_chain_of_transforms_through_analyzers_is_ordered() -> None:
    b = DagBuilder[None]()
    b.add("t1", noop, intent=Intent.TRANSFORM)
    b.add("look", noop, after=["t1"])
    b.add("t2", noop, after=["look"], intent=Intent.TRANSFORM)
    b.add("side", noop)
    b.add("t3", noop, after=["t2", "side"], intent=Intent.TRANSFORM)
    assert b.build().transform_chain == ("t1", "t2", "t3")


def test_transforms_off_the_chain_are_named() -> None:
    b = DagBuilder[None]()
    b.add("t1", noop, intent=Intent.TRANSFORM)
    b.add("t2", noop, after=["t1"], intent=Intent.TRANSFORM)
    b.add("t3", noop, after=["t1"], intent=Intent.TRANSFORM)
    assert problems_of(b) == (
        "transforms 't2' and 't3' could run at the same time and both replace the payload; "
        "order them (add after=['t2'] to 't3')",
    )


async def test_an_error_of_the_execution_itself_reaches_the_result() -> None:
    b = DagBuilder[None]()
    b.add("a", noop).add("b", noop, after=["a"]).add("c", noop, after=["b"])

    async def sink(event: DagEvent) -> None:
        if isinstance(event, NodeFinished) and event.outcome.id == "a":
            raise RuntimeError("the sink broke")

    result = await execute_dag(b.build(), None, on_event=sink)
    assert not result.succeeded and not result.cancelled
    assert result.error is not None
    assert "RuntimeError: the sink broke" in result.error
    assert result.outcomes["a"].state is NodeState.DONE
    assert result.outcomes["c"].state is NodeState.CANCELLED


async def test_a_run_without_an_execution_error_has_none() -> None:
    b = DagBuilder[None]().add("a", noop)
    result = await execute_dag(b.build(), None)
    assert result.succeeded and result.error is None


async def test_an_unhashable_callable_object_is_a_processor() -> None:
    class Counting:
        __hash__ = None  # type: ignore[assignment]

        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self, inp: ProcessorInput[None]) -> int:
            self.calls += 1
            return self.calls

    counting = Counting()
    b = DagBuilder[None]().add("a", counting).add("b", counting, after=["a"])
    result = await execute_dag(b.build(), None)
    assert result.succeeded and counting.calls == 2


async def test_a_sync_callable_returning_an_awaitable_is_awaited() -> None:
    async def double(value: int) -> int:
        return value * 2

    b = DagBuilder[None]().add("a", lambda inp: double(21))
    result = await execute_dag(b.build(), None)
    assert result.succeeded and result.outcomes["a"].result == 42
