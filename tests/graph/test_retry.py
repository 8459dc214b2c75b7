"""Per-node retry policies, timeouts and error routes."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from fsmflow.graph import (
    GraphBuilder,
    GraphDefinitionError,
    NodeError,
    NodeFailed,
    NodeRetrying,
    NodeTimedOut,
    RetryPolicy,
    append,
    execute,
    execute_stream,
)


@attrs.frozen
class Job:
    log: list[str] = attrs.field(factory=list)
    error: NodeError | None = None


def _graph(fn: Any, **options: Any) -> Any:
    b = GraphBuilder(Job, reducers={"log": append}).node("work", fn, **options)
    b.node("end", lambda s: {"log": ["end"]}).edge("work", "end")
    if "on_error" in options:
        b.node("recover", lambda s: {"log": [f"recovered from {s.error and s.error.type}"]})
        b.edge("recover", "end")
    return b.start("work").end("end").build()


async def test_a_retry_policy_retries_with_capped_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts: list[float] = []

    async def flaky(state: Job) -> dict[str, Any]:
        attempts.append(trio.current_time())
        if len(attempts) < 4:
            raise ConnectionError("try again")
        return {"log": ["ok"]}

    policy = RetryPolicy(
        max_attempts=4, initial_interval=1, backoff_factor=3, max_interval=5, jitter=False
    )
    async with execute_stream(_graph(flaky, retry=policy), Job()) as run:
        retries = [e async for e in run if isinstance(e, NodeRetrying)]
    assert run.result is not None and run.result.state.log == ["ok", "end"]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(attempts)]
    assert gaps == [1, 3, 5]  # 1, 3, then 9 capped at 5
    assert [(r.attempt, r.delay) for r in retries] == [(1, 1), (2, 3), (3, 5)]
    assert "ConnectionError: try again" in retries[0].error


async def test_only_the_errors_the_policy_accepts_are_retried() -> None:
    calls: list[int] = []

    def picky(state: Job) -> dict[str, Any]:
        calls.append(1)
        raise ValueError("bad input")

    policy = RetryPolicy(max_attempts=5, initial_interval=0, retry_on=ConnectionError)
    with pytest.raises(NodeFailed, match="bad input"):
        await execute(_graph(picky, retry=policy), Job())
    assert calls == [1]
    calls.clear()
    policy = RetryPolicy(max_attempts=3, initial_interval=0, retry_on=lambda e: "bad" in str(e))
    with pytest.raises(NodeFailed):
        await execute(_graph(picky, retry=policy), Job())
    assert calls == [1, 1, 1]


async def test_a_timeout_bounds_each_attempt(autojump_clock: trio.testing.MockClock) -> None:
    attempts: list[int] = []

    async def slow(state: Job) -> dict[str, Any]:
        attempts.append(1)
        await trio.sleep(10 if len(attempts) == 1 else 1)
        return {"log": [f"attempt {len(attempts)}"]}

    policy = RetryPolicy(max_attempts=2, initial_interval=0, retry_on=TimeoutError)
    result = await execute(_graph(slow, timeout=5, retry=policy), Job())
    assert result.state.log == ["attempt 2", "end"]
    with pytest.raises(NodeFailed) as info:
        await execute(_graph(slow, timeout=0.5), Job())
    assert isinstance(info.value.cause, NodeTimedOut)
    assert "did not finish within 0.5s" in str(info.value)


async def test_an_error_route_puts_the_error_in_the_state() -> None:
    def broken(state: Job) -> dict[str, Any]:
        raise KeyError("missing")

    policy = RetryPolicy(max_attempts=2, initial_interval=0)
    result = await execute(_graph(broken, retry=policy, on_error="recover"), Job())
    assert result.state.error == NodeError("work", "KeyError", "'missing'", 2)
    assert result.state.log == ["recovered from KeyError", "end"]
    assert [e.node for e in result.log] == ["work", "recover", "end"]


def test_bad_options_fail_at_build_time() -> None:
    b = GraphBuilder(Job).node("a", lambda s: None, timeout=1).node("b", lambda s: None)
    b.node("c", lambda s: None, on_error="ghost", error_key="oops", concurrency=0)
    b.parallel("p", {"x": lambda s: None}, timeout=-1)
    b.edge("a", "b").edge("b", "c").edge("c", "p").start("a").end("p")
    with pytest.raises(GraphDefinitionError) as info:
        b.build()
    text = str(info.value)
    assert "node 'a': a timeout needs an async function" in text
    assert "node 'c': concurrency must be an int >= 1" in text
    assert "'oops', which is not a key of Job" in text
    assert "node 'c': on_error node 'ghost' is not a node" in text
    assert "node 'p': timeout must be a finite number > 0" in text
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="initial_interval"):
        RetryPolicy(initial_interval=float("nan"))


def test_backoff_never_overflows() -> None:
    policy = RetryPolicy(initial_interval=0.5, backoff_factor=10, max_interval=30)
    assert policy.delay(10_000, rng=lambda: 0.0) == 30
    assert policy.delay(10**9, rng=lambda: 1.0) == 30 * 1.25
    assert RetryPolicy(backoff_factor=0.5, jitter=False).delay(10_000) == pytest.approx(0)
    assert RetryPolicy(initial_interval=0).delay(5) == 0
