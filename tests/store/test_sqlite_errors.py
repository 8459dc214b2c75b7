"""SQLite failures surface as typed StoreErrors carrying SQLite's own cause (issue 9)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from fsmflow.store import (
    Append,
    BackendError,
    Durability,
    Put,
    SqliteStore,
    StoreError,
)


@pytest.mark.parametrize("durability", [Durability.NORMAL, Durability.FULL])
async def test_disk_full_names_the_cause_and_spares_the_other_batches(
    tmp_path: Path, durability: Durability
) -> None:
    path = tmp_path / "full.sqlite3"
    async with await SqliteStore.open(path, durability=durability) as store:
        await store.put("ns", "seed", b"x")
        (pages,) = store._writer.execute("PRAGMA page_count").fetchone()
        store._writer.execute(f"PRAGMA max_page_count={pages + 8}")
        outcomes: dict[str, object] = {}

        async def write(name: str, size: int) -> None:
            try:
                outcomes[name] = await store.write_batch(
                    [Put("ns", name, b"v" * size), Append("log", name.encode())]
                )
            except StoreError as exc:
                outcomes[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, "small-1", 10)
            tg.start_soon(write, "huge", 1_000_000)
            tg.start_soon(write, "small-2", 10)
        huge = outcomes["huge"]
        assert isinstance(huge, BackendError), huge
        assert "database or disk is full" in str(huge)
        assert str(path) in str(huge)
        assert "cannot rollback" not in str(huge)
        assert not isinstance(huge.__cause__, StoreError)
        assert isinstance(outcomes["small-1"], list) and isinstance(outcomes["small-2"], list)
        assert await store.get("ns", "huge") is None
        assert sorted(e.value for e in await store.read("log")) == [b"small-1", b"small-2"]
        store._writer.execute("PRAGMA max_page_count=1073741823")
        assert await store.put("ns", "after", b"ok") == 1


async def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    with pytest.raises(BackendError) as caught:
        await SqliteStore.open(path)
    assert "file is not a database" in str(caught.value)
    assert str(path) in str(caught.value)


async def test_a_truncated_file_gives_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "truncated.sqlite3"
    async with await SqliteStore.open(path, durability=Durability.FULL) as store:
        for i in range(300):
            await store.put("ns", f"k{i}", bytes(500))
    data = path.read_bytes()
    assert len(data) > 16384
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError) as caught:
        async with await SqliteStore.open(path) as store:
            for i in range(300):
                await store.get("ns", f"k{i}")
            await store.keys("ns")
    assert str(path) in str(caught.value)
    assert "malformed" in str(caught.value) or "not a database" in str(caught.value)


@pytest.mark.parametrize("durability", [Durability.NORMAL, Durability.FULL])
async def test_a_lock_held_by_another_process_is_waited_for_then_named(
    tmp_path: Path, durability: Durability
) -> None:
    path = tmp_path / "locked.sqlite3"
    async with await SqliteStore.open(path, durability=durability, busy_timeout=0.2) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendError, match="database is locked") as caught:
            await store.put("ns", "k", b"v")
        assert str(path) in str(caught.value)
        # While it waits, the event loop stays free; once the lock goes, writes go through.
        async with anyio.create_task_group() as tg:
            results: list[int] = []

            async def write() -> None:
                results.append(await store.put("ns", "k", b"v"))

            tg.start_soon(write)
            await anyio.sleep(0.05)
            other.execute("COMMIT")
        other.close()
        assert results == [1]


async def test_closing_takes_no_lock_of_its_own(tmp_path: Path) -> None:
    """Closing waits for the writes already submitted, not for the file's write lock: a
    store closes even while another process (say, one frozen mid-transaction) holds it."""
    path = tmp_path / "busy.sqlite3"
    store = await SqliteStore.open(path, busy_timeout=0.2)
    await store.put("ns", "k", b"v")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        await store.aclose()
    finally:
        other.execute("ROLLBACK")
        other.close()
    with pytest.raises(StoreError, match="closed"):
        await store.get("ns", "k")


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "closed.sqlite3")
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.put("ns", "k", b"v")


async def test_memory_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MemoryStore"):
        await SqliteStore.open(":memory:")
