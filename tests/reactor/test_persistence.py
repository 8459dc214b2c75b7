"""What a reactor keeps in its store, how it reads it back, and the typed errors for
bytes it cannot read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from fsmflow.reactor import (
    Criteria,
    InputStrategy,
    PassThrough,
    PushAccumulator,
    Reactor,
    start_reactor,
)
from fsmflow.store import (
    BatchOp,
    DecodeError,
    Durability,
    Fence,
    MemoryStore,
    SqliteStore,
    Store,
    StoreError,
)
from fsmflow.supervisor import ExitKind

from ._support import LIMITS, NUMBERS, PRICES, Limit, Price, Recorder, is_live, settle, stop, until


def prices_reactor(graph: Recorder, store: Store, strategy: InputStrategy) -> Reactor[int]:
    return Reactor(
        "prices",
        graph,
        accumulators=[
            PushAccumulator(PRICES, PassThrough[Price]()),
            PushAccumulator(LIMITS, PassThrough[Limit]()),
        ],
        strategy=strategy,
        criteria=Criteria.WHEN_ALL,
        store=store,
    )


async def test_latest_cache_is_saved_after_each_firing_and_dirty_flags_on_shutdown() -> None:
    store = MemoryStore()
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, prices_reactor(graph, store, InputStrategy.LATEST))
        await handle.send_boundary(PRICES, Price("A", 1.0))
        await handle.send_boundary(LIMITS, Limit(2.0))
        await settle()
        assert len(graph.snapshots) == 1
        assert sorted(await store.keys("reactor:prices:cache")) == ["limits", "prices"]
        await handle.send_boundary(PRICES, Price("A", 3.0))
        await settle()
        stored = await store.get("reactor:prices:cache", "prices")
        assert stored is not None and b"1.0" in stored.value, "no firing yet: not saved"
        await stop(handle)
    stored = await store.get("reactor:prices:cache", "prices")
    assert stored is not None and b"3.0" in stored.value, "saved by the orderly shutdown"
    dirty = await store.get("reactor:prices", "dirty")
    assert dirty is not None and dirty.value == b'["prices"]'

    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, prices_reactor(graph, store, InputStrategy.LATEST))
        assert handle.get_state().dirty == {"prices"}
        assert handle.get_state().cache[PRICES] == Price("A", 3.0)
        await handle.send_boundary(LIMITS, Limit(4.0))
        await settle()
        (snapshot,) = graph.snapshots
        assert snapshot[PRICES] == Price("A", 3.0), "the restored dirty flag counts"
        await stop(handle)
    dirty = await store.get("reactor:prices", "dirty")
    assert dirty is not None and dirty.value == b"[]"


async def test_sequential_state_survives_reopening_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "reactor.sqlite3"
    graph = Recorder()
    opened = SqliteStore.open(path, durability=Durability.OFF)
    async with await opened as store, trio.open_nursery() as nursery:
        handle = await start_reactor(
            nursery, prices_reactor(graph, store, InputStrategy.SEQUENTIAL)
        )
        await handle.wait_for(is_live)
        await handle.send_boundary(LIMITS, Limit(1.0))
        await handle.send_boundary(PRICES, Price("A", 2.0))
        await until(lambda: handle.get_state().firings == 1)
        await handle.pause()
        await handle.send_boundary(PRICES, Price("A", 3.0))
        await until(lambda: handle.get_state().pending == 1)
        await stop(handle)

    graph = Recorder()
    opened = SqliteStore.open(path, durability=Durability.OFF)
    async with await opened as store, trio.open_nursery() as nursery:
        handle = await start_reactor(
            nursery, prices_reactor(graph, store, InputStrategy.SEQUENTIAL)
        )
        await until(lambda: not handle.get_state().pending and bool(graph.snapshots))
        assert graph.snapshots[0].as_dict() == {"limits": Limit(1.0), "prices": Price("A", 3.0)}
        await stop(handle)


async def test_corrupted_cache_bytes_make_the_start_fail_with_a_decode_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reactor.sqlite3"
    async with await SqliteStore.open(path) as store:
        await store.put("reactor:prices:cache", "prices", b'{"symbol": "A", "value": "lots"}')
    async with await SqliteStore.open(path) as store, trio.open_nursery() as nursery:
        reactor = prices_reactor(Recorder(), store, InputStrategy.LATEST)
        with pytest.raises(DecodeError) as caught:
            await start_reactor(nursery, reactor)
    assert caught.value.key == "reactor:prices:cache/prices"
    assert caught.value.expected == "Price" and "value" in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"source": "prices"}\n{"symbol": "A"}', "required field missing @ $.value"),
        (b'{"source": "volumes"}\n{}', "unknown source 'volumes'"),
        (b"no header", "no header line"),
        (b"\x80\n{}", "bad header"),
        (b'["prices"]\n{}', "header without a source"),
    ],
)
async def test_corrupted_queue_entries_name_the_entry(raw: bytes, problem: str) -> None:
    store = MemoryStore()
    seq = await store.append("reactor:prices:queue", raw)
    async with trio.open_nursery() as nursery:
        reactor = prices_reactor(Recorder(), store, InputStrategy.SEQUENTIAL)
        with pytest.raises(DecodeError) as caught:
            await start_reactor(nursery, reactor)
    assert caught.value.key == f"reactor:prices:queue#{seq}"
    assert problem in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"source": "prices"}\n{"symbol": "A", "value": 1}', "lacks error or attempts"),
        (b'{"source": "prices", "error": "x", "attempts": 1}\n[]', "Price"),
    ],
)
async def test_corrupted_dead_letters_name_the_entry(raw: bytes, problem: str) -> None:
    store = MemoryStore()
    seq = await store.append("reactor:prices:dead", raw)
    async with trio.open_nursery() as nursery:
        reactor = prices_reactor(Recorder(), store, InputStrategy.SEQUENTIAL)
        with pytest.raises(DecodeError) as caught:
            await start_reactor(nursery, reactor)
    assert caught.value.key == f"reactor:prices:dead#{seq}"
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "problem"), [(b"{nope", "not JSON"), (b'{"a": 1}', "list of source names")]
)
async def test_corrupted_dirty_flags(raw: bytes, problem: str) -> None:
    store = MemoryStore()
    await store.put("reactor:prices", "dirty", raw)
    async with trio.open_nursery() as nursery:
        reactor = prices_reactor(Recorder(), store, InputStrategy.LATEST)
        with pytest.raises(DecodeError, match=problem) as caught:
            await start_reactor(nursery, reactor)
    assert caught.value.key == "reactor:prices/dirty"


async def test_stored_state_of_sources_the_reactor_no_longer_has_is_ignored() -> None:
    store = MemoryStore()
    await store.put("reactor:prices:cache", "volumes", b"12")
    await store.put("reactor:prices", "dirty", b'["volumes", "prices"]')
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(
            nursery, prices_reactor(Recorder(), store, InputStrategy.LATEST)
        )
        state = handle.get_state()
        assert state.dirty == {"prices"} and len(state.cache) == 0
        await stop(handle)


async def test_numbers_round_trip_through_the_store() -> None:
    store = MemoryStore()
    graph = Recorder()
    reactor = Reactor(
        "n",
        graph,
        accumulators=[PushAccumulator(NUMBERS, PassThrough[int]())],
        store=store,
    )
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.send_boundary(NUMBERS, 12)
        await settle()
        await stop(handle)
    stored = await store.get("reactor:n:cache", "numbers")
    assert stored is not None and stored.value == b"12"


async def test_fire_with_deletes_the_cache_keys_it_drops() -> None:
    store = MemoryStore()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(
            nursery, prices_reactor(Recorder(), store, InputStrategy.LATEST)
        )
        await handle.send_boundary(PRICES, Price("A", 1.0))
        await handle.send_boundary(LIMITS, Limit(2.0))
        await settle()
        assert sorted(await store.keys("reactor:prices:cache")) == ["limits", "prices"]
        await handle.fire_with({LIMITS: Limit(3.0)})
        await settle()
        assert await store.keys("reactor:prices:cache") == ["limits"]
        await stop(handle)


class FailingStore(MemoryStore):
    """A store that refuses every batch once ``broken``."""

    broken = False

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        if self.broken:
            raise StoreError("read-only file system")
        return await super().write_batch(ops, fence=fence)


async def test_a_failed_last_save_is_recorded_and_the_reactor_still_stops() -> None:
    store = FailingStore()
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(
            nursery, prices_reactor(Recorder(), store, InputStrategy.LATEST)
        )
        await handle.wait_for(is_live)
        await handle.pause()
        await handle.send_boundary(PRICES, Price("A", 1.0))
        await settle()
        store.broken = True
        outcome = await handle.shutdown()
        assert outcome.exit is ExitKind.TERMINATED
        assert outcome.failures == 1
        error = handle.get_state().last_error
        assert error is not None and "read-only file system" in error
