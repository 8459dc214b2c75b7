"""``SEQUENTIAL`` reactors: order, retries and dead letters, replay, durability in a
store at O(1) writes per boundary, restore, and backpressure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from fsmflow.reactor import (
    Completed,
    Criteria,
    DeadLetter,
    InputCache,
    InputStrategy,
    PassThrough,
    PushAccumulator,
    Reactor,
    ReactorHandle,
    ReplayDeadLetters,
    RetryPolicy,
    Shutdown,
    start_reactor,
)
from fsmflow.store import Append, BatchOp, Fence, MemoryStore, Put, Remove, Store
from fsmflow.supervisor import ExitKind

from ._support import LIMITS, NUMBERS, PRICES, Limit, Price, Recorder, is_live, settle, stop, until

SEQUENTIAL = InputStrategy.SEQUENTIAL


class CountingStore(MemoryStore):
    """A memory store that keeps every batch it was asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[BatchOp]] = []

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        self.batches.append(list(ops))
        return await super().write_batch(ops, fence=fence)


def numbers_reactor(graph: Recorder, store: Store | None = None, **kw: Any) -> Reactor[int]:
    accumulator = PushAccumulator(NUMBERS, PassThrough[int]())
    return Reactor("seq", graph, accumulators=[accumulator], strategy=SEQUENTIAL, store=store, **kw)


async def start(nursery: trio.Nursery, reactor: Reactor[int]) -> ReactorHandle[int]:
    handle = await start_reactor(nursery, reactor)
    await handle.wait_for(is_live)
    return handle


async def test_every_boundary_fires_once_in_arrival_order() -> None:
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(graph))
        for value in range(10):
            handle.send_boundary_nowait(NUMBERS, value)
        await settle()
        assert graph.values(NUMBERS) == list(range(10))
        assert all(s.updated(NUMBERS) for s in graph.snapshots)
        assert handle.get_state().pending == 0
        await stop(handle)


async def test_when_all_boundaries_before_every_source_only_fill_the_cache() -> None:
    graph = Recorder()
    prices = PushAccumulator(PRICES, PassThrough[Price]())
    limits = PushAccumulator(LIMITS, PassThrough[Limit]())
    reactor = Reactor(
        "seq",
        graph,
        accumulators=[prices, limits],
        strategy=SEQUENTIAL,
        criteria=Criteria.WHEN_ALL,
    )
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, reactor)
        for value in (1.0, 2.0):
            await handle.send_boundary(PRICES, Price("A", value))
        await settle()
        assert graph.snapshots == []
        assert handle.get_state().cache[PRICES] == Price("A", 2.0)
        await handle.send_boundary(LIMITS, Limit(5.0))
        await handle.send_boundary(PRICES, Price("A", 3.0))
        await settle()
        assert [s.as_dict() for s in graph.snapshots] == [
            {"prices": Price("A", 2.0), "limits": Limit(5.0)},
            {"prices": Price("A", 3.0), "limits": Limit(5.0)},
        ]
        assert [s.updated(LIMITS) for s in graph.snapshots] == [True, False]
        assert handle.get_state().firings == 2
        await stop(handle)


async def test_force_fire_uses_the_committed_cache_and_leaves_the_queue(
    autojump_clock: MockClock,
) -> None:
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(graph))
        await handle.send_boundary(NUMBERS, 7)
        await settle()
        await handle.pause()
        await handle.send_boundary(NUMBERS, 8)
        await handle.force_fire()
        await handle.resume()
        await settle()
        assert graph.values(NUMBERS) == [7, 7, 8], "the manual firing goes first"
        await stop(handle)


async def test_failed_firing_is_retried_with_backoff_in_order(autojump_clock: MockClock) -> None:
    graph = Recorder()
    times: list[float] = []
    failures = {2: 2}  # value -> failures left

    async def flaky(cache: InputCache) -> Completed[int]:
        value = cache[NUMBERS]
        times.append(trio.current_time())
        await graph(cache)
        if failures.get(value, 0):
            failures[value] -= 1
            raise ValueError(f"not yet: {value}")
        return Completed(value)

    retry = RetryPolicy(max_attempts=3, initial_delay=0.1, factor=2.0)
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(graph, retry=retry))
        reactor_graph_start = trio.current_time()
        handle.reactor.graph = flaky
        for value in (1, 2, 3):
            handle.send_boundary_nowait(NUMBERS, value)
        await until(lambda: handle.get_state().firings == 3)
        assert graph.values(NUMBERS) == [1, 2, 2, 2, 3]
        offsets = [round(t - reactor_graph_start, 6) for t in times]
        assert offsets == [0.0, 0.0, 0.1, 0.3, 0.3], "waits 0.1 then 0.2; 3 waits behind 2"
        state = handle.get_state()
        assert (state.firings, state.failed_firings, state.dead_letters) == (3, 2, ())
        assert state.last_error == "ValueError: not yet: 2"
        await stop(handle)


async def test_exhausted_retries_dead_letter_and_replay(autojump_clock: MockClock) -> None:
    graph = Recorder()
    graph.fail = lambda cache: cache[NUMBERS] == 2
    store = MemoryStore()
    async with trio.open_nursery() as nursery:
        reactor = numbers_reactor(graph, store, retry=RetryPolicy(max_attempts=2))
        handle = await start(nursery, reactor)
        for value in (1, 2, 3):
            handle.send_boundary_nowait(NUMBERS, value)
        await trio.sleep(1)
        assert graph.values(NUMBERS) == [1, 2, 2, 3]
        (letter,) = handle.dead_letters()
        assert letter == DeadLetter(letter.id, "numbers", 2, letter.error, 2)
        assert "graph broke" in letter.error
        assert len(await store.read("reactor:seq:dead")) == 1
        assert await store.read("reactor:seq:queue") == []
        assert handle.get_state().cache[NUMBERS] == 3, "a dead letter never reaches the cache"

        await stop(handle)

    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(graph, store))
        assert handle.dead_letters() == (letter,), "dead letters are restored"
        graph.fail = lambda cache: False
        with pytest.raises(KeyError, match="no dead letter"):
            await handle.replay((letter.id + 100,))
        handle.send_boundary_nowait(NUMBERS, 4)
        handle._supervisor.send_nowait(ReplayDeadLetters())  # right behind it: 4 is staged
        await trio.sleep(1)
        assert graph.values(NUMBERS)[4:] == [4, 2], "replayed at the end of the queue"
        assert handle.dead_letters() == ()
        assert await store.read("reactor:seq:dead") == []
        await handle.replay()  # nothing left to replay: nothing happens
        await settle()
        assert len(graph.snapshots) == 6
        await stop(handle)


async def test_dead_letters_without_a_store_replay_too(autojump_clock: MockClock) -> None:
    graph = Recorder()
    graph.fail = lambda cache: cache[NUMBERS] == 1
    async with trio.open_nursery() as nursery:
        reactor = numbers_reactor(graph, retry=RetryPolicy(max_attempts=1))
        handle = await start(nursery, reactor)
        await handle.send_boundary(NUMBERS, 1)
        await trio.sleep(1)
        (letter,) = handle.dead_letters()
        graph.fail = lambda cache: False
        await handle.replay((letter.id,))
        await trio.sleep(1)
        assert graph.values(NUMBERS) == [1, 1]
        assert handle.get_state().dead_letters == ()
        await stop(handle)


async def test_each_boundary_costs_one_append_and_one_remove_put_batch() -> None:
    graph = Recorder()
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(graph, store))
        await handle.pause()
        for value in range(50):
            await handle.send_boundary(NUMBERS, value)
        await settle()
        assert handle.get_state().pending == 50
        accepts = store.batches[:]
        assert sum(len(b) for b in accepts) == 50
        assert all(0 < len(b) <= 64 and all(isinstance(op, Append) for op in b) for b in accepts), (
            "accepting appends one entry per boundary (those taken together in one batch)"
        )
        await handle.resume()
        await settle()
        commits = store.batches[len(accepts) :]
        assert len(commits) == 50
        assert all([type(op) for op in batch] == [Remove, Put] for batch in commits), (
            "completing removes one entry and puts one cache key, in one batch"
        )
        assert graph.values(NUMBERS) == list(range(50))
        await stop(handle)


async def test_the_queue_and_cache_are_restored_after_a_restart() -> None:
    store = MemoryStore()
    first = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(first, store))
        await handle.send_boundary(NUMBERS, 1)
        await settle()
        await handle.pause()
        for value in (2, 3, 4):
            await handle.send_boundary(NUMBERS, value)
        await settle()
        handle.cancel()  # no orderly stop: what the store holds is all there is
    assert first.values(NUMBERS) == [1]

    second = Recorder()
    second.block = True
    async with trio.open_nursery() as nursery:
        reactor = numbers_reactor(second, store)
        handle = await start_reactor(nursery, reactor)
        await second.entered.wait()
        state = handle.get_state()
        assert state.cache[NUMBERS] == 1 and state.pending == 3
        second.block = False
        second.release.set()
        await settle()
        assert second.values(NUMBERS) == [2, 3, 4]
        await stop(handle)


async def test_a_slow_graph_slows_the_producer_and_memory_stays_bounded(
    autojump_clock: MockClock,
) -> None:
    pending: list[int] = []
    handle: ReactorHandle[int] | None = None

    async def slow(cache: InputCache) -> Completed[int]:
        assert handle is not None
        pending.append(handle.get_state().pending)
        await trio.sleep(0.01)
        return Completed(cache[NUMBERS])

    numbers = PushAccumulator(NUMBERS, PassThrough[int](), capacity=2)
    reactor = Reactor(
        "slow",
        slow,
        accumulators=[numbers],
        strategy=SEQUENTIAL,
        capacity=2,
        max_pending=4,
        max_burst=3,
    )
    pushed = 0

    async def produce() -> None:
        nonlocal pushed
        for value in range(200):
            await numbers.push(value)
            pushed += 1

    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        nursery.start_soon(produce)
        await trio.sleep(0.1)
        assert pushed < 20, "the producer waits for the graph"
        await until(lambda: handle is not None and handle.get_state().firings == 200)
        assert max(pending) <= 4
        await stop(handle)


async def test_boundaries_taken_together_are_accepted_in_one_bounded_batch() -> None:
    graph = Recorder()
    store = CountingStore()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(graph, store, max_burst=4))
        for value in range(10):
            handle.send_boundary_nowait(NUMBERS, value)
        await settle()
        appends = [len(b) for b in store.batches if isinstance(b[0], Append)]
        assert appends == [4, 4, 2], "one batch per group taken, at most max_burst each"
        assert graph.values(NUMBERS) == list(range(10))
        await stop(handle)


async def test_an_orderly_shutdown_accepts_what_was_taken() -> None:
    store = MemoryStore()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(Recorder(), store))
        for value in (1, 2, 3):
            handle.send_boundary_nowait(NUMBERS, value)
        handle._supervisor.send_nowait(Shutdown())  # queued right behind them
        outcome = await handle.outcome()
        assert outcome.exit is ExitKind.TERMINATED
    assert len(await store.read("reactor:seq:queue")) == 3, "taken, accepted, not fired"

    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, numbers_reactor(graph, store))
        await settle()
        assert graph.values(NUMBERS) == [1, 2, 3]
        await stop(handle)
