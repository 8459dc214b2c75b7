"""A ``SEQUENTIAL`` reactor whose store refuses writes loses nothing it accepted.

While the store refuses, what the reactor took from its channel stays staged, producers
are held back by ``max_pending`` (backpressure, never a silent drop), and the reactor
retries the write after a capped backoff; once the store recovers, every boundary fires,
in order. The same holds for a real ``SQLITE_FULL``. Retry delays never overflow, so
thousands of consecutive failures (of a graph or of the store) leave the reactor running,
and the pending bound holds while the reactor is ``Paused`` or ``Warming`` too.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
from trio.testing import MockClock

from fsmflow.reactor import (
    Completed,
    GraphError,
    InputCache,
    InputStrategy,
    NotAccepted,
    PassThrough,
    PushAccumulator,
    Reactor,
    ReactorHandle,
    Receipt,
    RetryPolicy,
    StreamAccumulator,
    Warming,
    start_reactor,
)
from fsmflow.store import BackendError, BatchOp, Durability, MemoryStore, SqliteStore, Store
from fsmflow.supervisor import ExternalChannelClosed
from fsmflow.testing import each_backend

from ._support import NUMBERS, PRICES, Price, Recorder, is_live, stop, until

SEQUENTIAL = InputStrategy.SEQUENTIAL
QUEUE = "reactor:faults:queue"
FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.5)


class RefusingStore(MemoryStore):
    """A memory store that refuses every batch while ``refusing`` (as a full disk does),
    counting the refusals."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = False
        self.refused = 0

    async def write_batch(self, ops: Sequence[BatchOp], **options: Any) -> list[int | bool | None]:
        if self.refusing:
            self.refused += 1
            await anyio.lowlevel.checkpoint()
            raise BackendError("write_batch", "database or disk is full")
        return await super().write_batch(ops, **options)


def numbers_reactor(graph: Any, store: Store | None, **options: Any) -> Reactor[Any]:
    accumulator = PushAccumulator(NUMBERS, PassThrough[int]())
    options.setdefault("retry", FAST_RETRY)
    return Reactor(
        "faults", graph, accumulators=[accumulator], strategy=SEQUENTIAL, store=store, **options
    )


async def feed(handle: ReactorHandle[Any], values: range, sent: list[int]) -> None:
    for value in values:
        await handle.send_boundary(NUMBERS, value)
        sent.append(value)


async def test_boundaries_taken_while_the_store_refuses_fire_in_order_once_it_recovers(
    autojump_clock: MockClock,
) -> None:
    store = RefusingStore()
    graph = Recorder()
    reactor = numbers_reactor(graph, store, capacity=4, max_pending=8, max_burst=4)
    sent: list[int] = []
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(is_live)
        store.refusing = True
        nursery.start_soon(feed, handle, range(1, 101), sent)
        await trio.sleep(30)
        assert store.refused >= 5, "the reactor keeps retrying the write"
        assert len(sent) <= 8, "producers are held back at max_pending while it refuses"
        assert graph.snapshots == [], "nothing fires before its boundary is accepted"
        error = handle.get_state().last_error
        assert error is not None and "database or disk is full" in error
        store.refusing = False
        await until(lambda: len(graph.snapshots) == 100)
        assert graph.values(NUMBERS) == list(range(1, 101)), "every one, in order, once"
        assert await store.read(QUEUE) == []
        assert handle.get_state().pending == 0
        await stop(handle)


async def test_a_store_that_refuses_commits_repeats_the_firing_and_keeps_the_queue(
    autojump_clock: MockClock,
) -> None:
    store = RefusingStore()
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, numbers_reactor(graph, store))
        await handle.wait_for(is_live)
        await handle.pause()
        await handle.send_boundary(NUMBERS, 1)
        await handle.send_boundary(NUMBERS, 2)
        await until(lambda: handle.get_state().pending == 2)
        store.refusing = True
        await handle.resume()
        await trio.sleep(5)
        fired = len(graph.snapshots)
        assert 5 <= fired <= 20, "its commit fails: fired again after a growing, capped delay"
        assert set(graph.values(NUMBERS)) == {1}, "2 waits behind 1"
        assert handle.get_state().pending == 2
        store.refusing = False
        await until(lambda: handle.get_state().pending == 0 and graph.values(NUMBERS)[-1] == 2)
        assert graph.values(NUMBERS) == [1] * (fired + 1) + [2], "1 once more, committed"
        assert handle.get_state().cache[NUMBERS] == 2
        await stop(handle)


def _write_connection(store: SqliteStore) -> sqlite3.Connection:
    """The connection ``store`` writes with. Private to the store: this test reaches in
    because a page cap is a setting of the connection, not of the file."""
    for name in ("_writer", "_db"):
        connection = getattr(store, name, None)
        if isinstance(connection, sqlite3.Connection):
            return connection
    raise AssertionError("SqliteStore's write connection moved: update this test")


def _limit_pages(store: SqliteStore, pages: int | None) -> None:
    """Cap the pages SQLite may use for ``store``'s file (``None``: no cap)."""
    if pages is None:
        pages = 1 << 30
    _write_connection(store).execute(f"PRAGMA max_page_count={pages}")


async def test_sqlite_full_keeps_what_it_could_not_write_and_fires_it_later(
    tmp_path: Path,
) -> None:
    path = tmp_path / "full.sqlite3"
    graph = Recorder()
    async with await SqliteStore.open(path, durability=Durability.OFF) as store:
        reactor = numbers_reactor(graph, store, max_burst=16, max_pending=2000)
        async with trio.open_nursery() as nursery:
            handle = await start_reactor(nursery, reactor)
            await handle.wait_for(is_live)
            await handle.pause()  # the queue only grows: the file fills up
            (pages,) = _write_connection(store).execute("PRAGMA page_count").fetchone()
            _limit_pages(store, pages)
            sent: list[int] = []
            nursery.start_soon(feed, handle, range(1, 2001), sent)
            await until(lambda: "BackendError" in (handle.get_state().last_error or ""), 0.01)
            await trio.sleep(0.5)
            state = handle.get_state()
            assert state.staged > 0, "what the full file refused stays staged"
            assert 0 < state.pending < len(sent) <= 2000
            assert len(await store.read(QUEUE)) == state.pending
            _limit_pages(store, None)
            await handle.resume()
            await until(lambda: handle.get_state().cache.get(NUMBERS) == 2000, 0.01)
            assert graph.values(NUMBERS) == list(range(1, 2001)), "every one, once, in order"
            await stop(handle)
        assert await store.read(QUEUE) == []


def test_retry_delays_are_capped_before_they_are_computed() -> None:
    policy = RetryPolicy(initial_delay=0.1, factor=2.0, max_delay=10.0)
    delays = [policy.delay(n) for n in (1, 2, 3, 8, 9, 1_000, 10_000, 10**9)]
    assert delays == [0.1, 0.2, 0.4, 10.0, 10.0, 10.0, 10.0, 10.0]
    huge = RetryPolicy(initial_delay=1e-300, factor=1e300, max_delay=1e300)
    assert huge.delay(10**12) == pytest.approx(1e300)
    assert RetryPolicy(initial_delay=0.0, factor=5.0).delay(10**6) == 0.0
    assert RetryPolicy(initial_delay=3.0, factor=1.0, max_delay=2.0).delay(10**6) == 2.0
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError):
            RetryPolicy(max_delay=bad)
        with pytest.raises(ValueError):
            RetryPolicy(initial_delay=bad)
    with pytest.raises(ValueError):
        RetryPolicy(factor=float("inf"))


async def test_ten_thousand_graph_failures_in_a_row_leave_the_reactor_running(
    autojump_clock: MockClock,
) -> None:
    failures = 10_000
    calls: list[int] = []

    async def stubborn(cache: InputCache) -> Completed[int] | GraphError:
        calls.append(cache[NUMBERS])
        return GraphError("not yet") if len(calls) <= failures else Completed(len(calls))

    retry = RetryPolicy(max_attempts=failures + 1, initial_delay=0.001, max_delay=0.004)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, numbers_reactor(stubborn, None, retry=retry))
        await handle.send_boundary(NUMBERS, 7)
        await until(lambda: handle.get_state().firings == 1, 1.0)
        state = handle.get_state()
        assert (state.failed_firings, state.dead_letters) == (failures, ())
        assert set(calls) == {7}
        assert is_live(handle.state)
        await stop(handle)


async def test_ten_thousand_store_failures_in_a_row_leave_the_reactor_running(
    autojump_clock: MockClock,
) -> None:
    failures = 10_000

    class FailingForAWhile(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.refused = 0
            self.armed = False

        async def write_batch(
            self, ops: Sequence[BatchOp], **options: Any
        ) -> list[int | bool | None]:
            if self.armed and self.refused < failures:
                self.refused += 1
                raise BackendError("write_batch", "database or disk is full")
            return await super().write_batch(ops, **options)

    store = FailingForAWhile()
    graph = Recorder()
    retry = RetryPolicy(initial_delay=0.001, max_delay=0.004)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, numbers_reactor(graph, store, retry=retry))
        await handle.wait_for(is_live)
        store.armed = True
        await handle.send_boundary(NUMBERS, 1)
        await handle.send_boundary(NUMBERS, 2)
        await until(lambda: store.refused == failures, 1.0)
        await until(lambda: handle.get_state().firings == 2, 1.0)
        assert graph.values(NUMBERS) == [1, 2]
        assert is_live(handle.state)
        await stop(handle)


@pytest.mark.parametrize("durable", [False, True], ids=["no store", "memory store"])
async def test_a_paused_sequential_reactor_holds_producers_back_at_max_pending(
    durable: bool, autojump_clock: MockClock
) -> None:
    graph = Recorder()
    sent: list[int] = []
    store = MemoryStore() if durable else None
    reactor = numbers_reactor(graph, store, capacity=2, max_pending=5, max_burst=2)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(is_live)
        await handle.pause()
        nursery.start_soon(feed, handle, range(50), sent)
        await trio.sleep(10)
        assert len(sent) <= 5 and handle.get_state().pending <= 5
        await handle.resume()
        await until(lambda: len(sent) == 50 and handle.get_state().pending == 0)
        assert graph.values(NUMBERS) == list(range(50))
        await stop(handle)


async def test_a_warming_sequential_reactor_holds_producers_back_at_max_pending(
    autojump_clock: MockClock,
) -> None:
    opened = trio.Event()

    class Late:
        """A source whose ``init`` waits for the test: the reactor stays ``Warming``."""

        async def init(self) -> None:
            await opened.wait()

        def process(self, event: Price) -> Price:
            return event

    async def nothing() -> AsyncIterator[Price]:
        return
        yield

    graph = Recorder()
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    late = StreamAccumulator(PRICES, Late(), nothing)
    reactor = Reactor(
        "warming",
        graph,
        accumulators=[numbers, late],
        strategy=SEQUENTIAL,
        store=MemoryStore(),
        capacity=2,
        max_pending=5,
        max_burst=2,
    )
    sent: list[int] = []
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(lambda state: isinstance(state, Warming))
        nursery.start_soon(feed, handle, range(50), sent)
        await trio.sleep(10)
        assert isinstance(handle.state, Warming)
        assert len(sent) <= 5 and handle.get_state().pending <= 5
        opened.set()
        await until(lambda: len(sent) == 50 and handle.get_state().pending == 0)
        assert graph.values(NUMBERS) == list(range(50))
        await stop(handle)


async def test_deliver_returns_once_the_append_has_committed(autojump_clock: MockClock) -> None:
    store = RefusingStore()
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, numbers_reactor(graph, store))
        await handle.wait_for(is_live)
        await handle.pause()
        await handle.deliver(NUMBERS, 1)
        assert [entry.seq for entry in await store.read(QUEUE)] == [1], "durable on return"
        store.refusing = True
        receipt = Receipt()
        await handle.send_boundary(NUMBERS, 2, receipt=receipt)
        await trio.sleep(5)
        assert not receipt.accepted, "not while the store refuses the append"
        store.refusing = False
        with trio.fail_after(60):
            await receipt.wait()
        assert receipt.accepted and len(await store.read(QUEUE)) == 2
        with pytest.raises(ValueError, match="fresh one"):
            await handle.send_boundary(NUMBERS, 3, receipt=receipt)
        await handle.resume()
        await until(lambda: graph.values(NUMBERS) == [1, 2])
        await stop(handle)


async def test_a_receipt_is_refused_when_the_reactor_stops_before_accepting(
    autojump_clock: MockClock,
) -> None:
    store = RefusingStore()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, numbers_reactor(Recorder(), store))
        await handle.wait_for(is_live)
        store.refusing = True
        receipt = Receipt()
        await handle.send_boundary(NUMBERS, 1, receipt=receipt)
        await trio.sleep(1)
        assert handle.get_state().staged == 1
        outcome = await handle.shutdown()
        assert outcome.failures >= 1, "the last save failed too, and says so"
        with pytest.raises(NotAccepted, match="database or disk is full"):
            await receipt.wait()
        late = Receipt()
        with pytest.raises(ExternalChannelClosed):
            await handle.send_boundary(NUMBERS, 2, receipt=late)
        with pytest.raises(NotAccepted, match="has stopped"):
            await late.wait()


@pytest.mark.parametrize("strategy", list(InputStrategy))
async def test_without_a_store_a_boundary_is_accepted_once_taken(strategy: InputStrategy) -> None:
    graph = Recorder()
    reactor = Reactor(
        "plain",
        graph,
        accumulators=[PushAccumulator(NUMBERS, PassThrough[int]())],
        strategy=strategy,
    )
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(is_live)
        await handle.deliver(NUMBERS, 5)
        receipt = Receipt()
        handle.send_boundary_nowait(NUMBERS, 6, receipt=receipt)
        await receipt.wait()
        await until(lambda: graph.values(NUMBERS)[-1:] == [6])
        await stop(handle)


@each_backend
async def test_a_refusing_store_loses_nothing_on_either_backend() -> None:
    store = RefusingStore()
    fired: list[int] = []

    async def note(cache: InputCache) -> Completed[None]:
        fired.append(cache[NUMBERS])
        return Completed(None)

    retry = RetryPolicy(initial_delay=0.001, max_delay=0.01)
    reactor = numbers_reactor(note, store, retry=retry, max_pending=4, max_burst=2)
    async with anyio.create_task_group() as task_group:
        handle = await start_reactor(task_group, reactor)
        await handle.wait_for(is_live)
        store.refusing = True
        receipts = [Receipt() for _ in range(4)]
        for value, receipt in enumerate(receipts):
            await handle.send_boundary(NUMBERS, value, receipt=receipt)
        with anyio.move_on_after(0.2):
            await handle.send_boundary(NUMBERS, 4)
            raise AssertionError("a fifth boundary got past max_pending")
        assert store.refused > 1 and not any(r.accepted for r in receipts)
        store.refusing = False
        with anyio.fail_after(10):
            await receipts[-1].wait()
            await handle.deliver(NUMBERS, 4)
            await until(lambda: len(fired) == 5)
        assert fired == [0, 1, 2, 3, 4]
        await stop(handle)


async def test_a_shutdown_ends_accumulators_waiting_at_max_pending(
    autojump_clock: MockClock,
) -> None:
    numbers = PushAccumulator(NUMBERS, PassThrough[int](), capacity=2)
    reactor = Reactor(
        "held",
        Recorder(),
        accumulators=[numbers],
        strategy=SEQUENTIAL,
        store=MemoryStore(),
        max_pending=3,
    )
    pushed: list[int] = []

    async def push_forever() -> None:
        with contextlib.suppress(ExternalChannelClosed):
            for value in range(100):
                await numbers.push(value)
                pushed.append(value)

    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(is_live)
        await handle.pause()
        nursery.start_soon(push_forever)
        await trio.sleep(5)
        assert handle.get_state().pending == 3 and len(pushed) <= 3 + 2 + 1
        with trio.fail_after(10):
            outcome = await handle.shutdown()
        assert outcome.exit.value == "terminated"
