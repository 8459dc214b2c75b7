"""Accumulators of every kind: handlers, ``init``, health, restarts, batches."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from trio.testing import MockClock

from fsmflow.reactor import (
    AccumulatorHealth,
    AccumulatorSupervisor,
    BatchAccumulator,
    Completed,
    InputCache,
    Live,
    PassThrough,
    PollingAccumulator,
    PushAccumulator,
    Reactor,
    Source,
    StreamAccumulator,
    accumulator_spec,
    start_reactor,
)
from fsmflow.supervisor import ExternalChannelClosed, RestartBackoff

from ._support import (
    LIMITS,
    NUMBERS,
    PRICES,
    AsyncParse,
    Doubler,
    Limit,
    Price,
    Recorder,
    is_live,
    settle,
    stop,
    until,
)

BACKOFF = RestartBackoff(initial=0.5, maximum=0.5, jitter=0.0)


async def test_push_handler_init_process_and_none() -> None:
    handler = Doubler()
    numbers = PushAccumulator(NUMBERS, handler)
    graph = Recorder()
    with pytest.raises(RuntimeError, match="not running"):
        await numbers.push(1)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", graph, accumulators=[numbers]))
        await handle.wait_for(is_live)
        assert handle.watcher.current() == Live()
        assert repr(numbers) == "<PushAccumulator 'numbers' PUSH_ONLY>"
        assert handler.inits == 1
        assert numbers.health.current() is AccumulatorHealth.PUSH_ONLY
        for value in (1, -5, 3):
            await numbers.push(value)
            await settle()
        assert graph.values(NUMBERS) == [2, 6], "None (for -5) sends nothing"
        await stop(handle)
    assert numbers.health.current() is AccumulatorHealth.STOPPED
    with pytest.raises(RuntimeError, match="not running"):
        numbers.push_nowait(1)


async def test_async_handler() -> None:
    prices = PushAccumulator(PRICES, AsyncParse())
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", graph, accumulators=[prices]))
        await prices.push("ACME=12.5")
        await prices.push("ACME")
        await settle()
        assert [s[PRICES] for s in graph.snapshots] == [Price("ACME", 12.5)]
        await stop(handle)


async def test_closing_a_push_accumulator_stops_it_after_what_was_queued() -> None:
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", graph, accumulators=[numbers]))
        numbers.push_nowait(1)
        numbers.close()
        await settle()
        assert numbers.health.current() is AccumulatorHealth.STOPPED
        assert graph.values(NUMBERS) == [1]
        assert handle.state == Live(), "a stopped source does not degrade the reactor"
        with pytest.raises(ExternalChannelClosed):
            await numbers.push(2)
        await stop(handle)


async def test_a_failing_handler_disconnects_and_is_restarted(autojump_clock: MockClock) -> None:
    class Picky(Doubler):
        def process(self, event: int) -> int | None:
            if event == 13:
                raise ValueError("unlucky")
            return super().process(event)

    handler = Picky()
    numbers = PushAccumulator(NUMBERS, handler)
    graph = Recorder()
    reactor = Reactor("r", graph, accumulators=[numbers], restart_backoff=BACKOFF)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await numbers.push(13)
        await numbers.push(2)
        await numbers.health.wait_for(lambda h: h is AccumulatorHealth.DISCONNECTED)
        await handle.wait_for(lambda s: not is_live(s))
        await numbers.health.wait_for(lambda h: h is AccumulatorHealth.PUSH_ONLY)
        await until(lambda: graph.values(NUMBERS) == [4])
        assert handler.inits == 2
        tree = handle.tree
        assert tree is not None
        (record,) = tree.history
        assert record.error is not None and "unlucky" in record.error
        await stop(handle)


async def test_a_stream_that_ends_stops_its_accumulator(autojump_clock: MockClock) -> None:
    async def three() -> AsyncIterator[int]:
        for value in (1, 2, 3):
            await trio.sleep(1)
            yield value

    numbers = StreamAccumulator(NUMBERS, PassThrough[int](), three)
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", graph, accumulators=[numbers]))
        await numbers.health.wait_for(lambda h: h is AccumulatorHealth.STOPPED)
        await until(lambda: len(graph.snapshots) == 3)
        assert graph.values(NUMBERS) == [1, 2, 3]
        assert handle.state == Live()
        await stop(handle)


async def test_an_endless_stream_is_closed_when_the_reactor_stops(
    autojump_clock: MockClock,
) -> None:
    closed = trio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            value = 0
            while True:
                await trio.sleep(1)
                value += 1
                yield value
        finally:
            closed.set()

    numbers = StreamAccumulator(NUMBERS, PassThrough[int](), endless)
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", graph, accumulators=[numbers]))
        await until(lambda: len(graph.snapshots) >= 2)
        await stop(handle)
    assert closed.is_set()


async def test_polling_at_an_interval_with_none_for_no_change(autojump_clock: MockClock) -> None:
    answers: list[Limit | None] = [Limit(1.0), None, Limit(2.0)]
    polled_at: list[float] = []

    async def poll() -> Limit | None:
        polled_at.append(trio.current_time())
        return answers.pop(0) if answers else None

    limits = PollingAccumulator(LIMITS, PassThrough[Limit](), poll, interval=5.0)
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        handle = await start_reactor(nursery, Reactor("r", graph, accumulators=[limits]))
        await trio.sleep(12)
        assert [round(t - start, 6) for t in polled_at] == [0.0, 5.0, 10.0]
        assert [s[LIMITS] for s in graph.snapshots] == [Limit(1.0), Limit(2.0)]
        assert limits.health.current() is AccumulatorHealth.LIVE
        await stop(handle)
    with pytest.raises(ValueError, match="interval"):
        PollingAccumulator(LIMITS, PassThrough[Limit](), poll, interval=0)


async def test_a_failing_poll_is_restarted(autojump_clock: MockClock) -> None:
    calls = 0

    async def poll() -> int | None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise TimeoutError("config server slow")
        return calls

    numbers = PollingAccumulator(NUMBERS, PassThrough[int](), poll, interval=1.0)
    graph = Recorder()
    reactor = Reactor("r", graph, accumulators=[numbers], restart_backoff=BACKOFF)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await until(lambda: len(graph.snapshots) == 2)
        assert graph.values(NUMBERS) == [1, 3], "restarted 0.5s after the failed poll"
        await stop(handle)


TRADES = Source("trades", tuple[int, ...])


async def test_batches_wait_for_the_firing_that_used_the_previous_one() -> None:
    trades = BatchAccumulator(TRADES, Doubler())
    batches: list[tuple[int, ...]] = []
    release = trio.Event()

    async def graph(cache: InputCache) -> Completed[int]:
        batches.append(cache[TRADES])
        if len(batches) == 1:
            await release.wait()
        return Completed(len(batches))

    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", graph, accumulators=[trades]))
        await trades.push(1)
        await settle()
        assert batches == [(2,)], "the first boundary goes out at once"
        for value in (2, -1, 3, 4):
            await trades.push(value)
        await settle()
        assert trades.buffered == 3
        release.set()
        await settle()
        assert batches == [(2,), (4, 6, 8)]
        assert trades.buffered == 0
        await trades.push(5)
        await settle()
        assert batches[-1] == (10,), "credit came back with the firing: sent at once"
        await stop(handle)


async def test_a_full_batch_stops_reading_its_input() -> None:
    trades = BatchAccumulator(TRADES, PassThrough[int](), max_size=2, capacity=1)
    graph = Recorder()
    pushed = 0

    async def produce() -> None:
        nonlocal pushed
        for value in range(10):
            await trades.push(value)
            pushed += 1

    async with trio.open_nursery() as nursery:
        reactor = Reactor("r", graph, accumulators=[trades])
        handle = await start_reactor(nursery, reactor)
        await handle.pause()
        nursery.start_soon(produce)
        await settle()
        assert trades.buffered == 2 and pushed < 6, "credit never came back while paused"
        await handle.resume()
        await until(lambda: pushed == 10 and trades.buffered == 0)
        await settle()
        fired = [v for s in graph.snapshots for v in s[TRADES]]
        assert sorted(fired) == list(range(10)), "every boundary in exactly one batch"
        await stop(handle)
    with pytest.raises(ValueError, match="max_size"):
        BatchAccumulator(TRADES, PassThrough[int](), max_size=0)


def test_the_accumulator_spec_is_strict_and_drawable() -> None:
    from fsmflow.diagrams import to_mermaid

    spec = AccumulatorSupervisor.fsm_spec()
    assert spec is accumulator_spec() and spec.strict
    text = to_mermaid(spec)
    assert "STARTING --> LIVE: Ready" in text and "LIVE --> DISCONNECTED" in text


async def test_an_accumulator_feeds_one_reactor_at_a_time() -> None:
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("a", Recorder(), accumulators=[numbers]))
        with pytest.raises(RuntimeError, match="already feeds"):
            await start_reactor(nursery, Reactor("b", Recorder(), accumulators=[numbers]))
        assert numbers.health.current() is AccumulatorHealth.PUSH_ONLY, "a is unaffected"
        await stop(handle)
    with pytest.raises(ValueError, match="two accumulators feed"):
        Reactor("c", Recorder(), accumulators=[numbers, PushAccumulator(NUMBERS, Doubler())])
