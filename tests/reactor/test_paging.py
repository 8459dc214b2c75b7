"""A deep ``SEQUENTIAL`` queue is paged in: a restart reads its length and one page, the
reactor holds one page of it in memory, and the rest is read as the queue drains."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from fsmflow.reactor import (
    InputStrategy,
    PassThrough,
    PushAccumulator,
    Reactor,
    RetryPolicy,
    start_reactor,
)
from fsmflow.reactor._queue import PAGE_SIZE
from fsmflow.store import LogEntry, MemoryStore

from ._support import NUMBERS, Recorder, is_live, stop, until

QUEUE = "reactor:deep:queue"
DEPTH = 3 * PAGE_SIZE + 10


class ReadCountingStore(MemoryStore):
    """A memory store that notes how many entries each read of the queue returned."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        entries = await super().read(log, after=after, limit=limit)
        if log == QUEUE:
            self.reads.append(len(entries))
        return entries


def deep_reactor(graph: Recorder, store: MemoryStore) -> Reactor[int]:
    return Reactor(
        "deep",
        graph,
        accumulators=[PushAccumulator(NUMBERS, PassThrough[int]())],
        strategy=InputStrategy.SEQUENTIAL,
        store=store,
        max_pending=DEPTH,
        retry=RetryPolicy(initial_delay=0.01, max_delay=0.1),
    )


async def fill(store: MemoryStore, depth: int) -> None:
    """Queue ``0 .. depth-1`` in ``store`` through a paused reactor."""
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, deep_reactor(Recorder(), store))
        await handle.wait_for(is_live)
        await handle.pause()
        for value in range(depth):
            await handle.send_boundary(NUMBERS, value)
        await until(lambda: handle.get_state().pending == depth)
        handle.cancel()


async def test_a_restart_reads_one_page_of_a_deep_queue_and_pages_in_the_rest() -> None:
    store = ReadCountingStore()
    await fill(store, DEPTH)
    store.reads.clear()
    graph = Recorder()
    graph.block = True
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, deep_reactor(graph, store))
        await graph.entered.wait()
        assert store.reads == [PAGE_SIZE], "one page read at start, whatever the depth"
        assert handle.get_state().pending == DEPTH
        assert len(handle._ctx.queue.window) == PAGE_SIZE, "one page in memory"
        graph.block = False
        graph.release.set()
        await until(lambda: handle.get_state().pending == 0)
        assert graph.values(NUMBERS) == list(range(DEPTH))
        assert store.reads == [PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, 10]
        await stop(handle)


async def test_boundaries_accepted_behind_unread_pages_fire_after_them() -> None:
    store = ReadCountingStore()
    await fill(store, PAGE_SIZE + 1)
    graph = Recorder()
    graph.block = True
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, deep_reactor(graph, store))
        await graph.entered.wait()
        await handle.pause()
        graph.release.set()
        graph.block = False
        for value in range(PAGE_SIZE + 1, PAGE_SIZE + 6):
            await handle.send_boundary(NUMBERS, value)
        await until(lambda: handle.get_state().pending == PAGE_SIZE + 5)
        assert len(handle._ctx.queue.window) < PAGE_SIZE, "the new ones wait in the store"
        await handle.resume()
        await until(lambda: handle.get_state().pending == 0)
        assert graph.values(NUMBERS) == list(range(PAGE_SIZE + 6))
        await stop(handle)


async def test_a_bad_entry_deep_in_the_queue_is_reported_and_retried_until_removed(
    autojump_clock: MockClock,
) -> None:
    store = ReadCountingStore()
    await fill(store, PAGE_SIZE + 3)
    bad = (await store.read(QUEUE))[PAGE_SIZE + 1]
    await store.remove(QUEUE, bad.seq)
    seq = await store.append(QUEUE, b'{"source": "numbers"}\n"not a number"')
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, deep_reactor(graph, store))
        await until(lambda: len(graph.snapshots) == PAGE_SIZE)
        await trio.sleep(5)
        state = handle.get_state()
        assert state.last_error is not None and f"{QUEUE}#{seq}" in state.last_error
        assert is_live(handle.state), "the reactor keeps running and retrying"
        assert len(graph.snapshots) == PAGE_SIZE
        await store.remove(QUEUE, seq)
        await until(lambda: handle.get_state().pending == 0)
        assert handle._ctx.limit.pending == 0, "the entry removed by hand is not counted"
        expected = [v for v in range(PAGE_SIZE + 3) if v != PAGE_SIZE + 1]
        assert graph.values(NUMBERS) == expected
        await stop(handle)
