"""Group commit: concurrent writers share a transaction, each batch atomic on its own, and
cancellation never leaves a batch half-applied — on trio, anyio scopes and asyncio."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from fsmflow.store import (
    Append,
    Durability,
    Fence,
    LeaseLost,
    Put,
    Store,
    VersionConflict,
)
from fsmflow.store._group import GroupCommit, Request
from fsmflow.testing import each_backend

from ._backends import BACKENDS, open_backend


class Scripted:
    """A backend whose groups run one at a time and block until released."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.groups: list[list[str]] = []
        self.release = anyio.Event()
        self.started = anyio.Event()
        self.group = GroupCommit(self.execute)

    async def execute(self, group: list[Request[Any]]) -> None:
        self.groups.append([r.operation for r in group])
        self.started.set()
        await self.release.wait()
        for request in group:
            self.applied.append(request.operation)
            request.succeed(request.operation)

    async def write(self, name: str) -> str:
        result: str = await self.group.submit(lambda db: name, name)
        return result


@each_backend
async def test_writes_that_wait_share_the_next_group() -> None:
    backend = Scripted()
    results: dict[str, str] = {}

    async def write(name: str) -> None:
        results[name] = await backend.write(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, "a")
        await backend.started.wait()
        for name in "bcd":
            tg.start_soon(write, name)
        await anyio.sleep(0.01)
        backend.release.set()
    assert [sorted(group) for group in backend.groups] == [["a"], ["b", "c", "d"]]
    assert results == {name: name for name in "abcd"}


@each_backend
async def test_cancelled_while_queued_is_withdrawn_at_once() -> None:
    backend = Scripted()
    async with anyio.create_task_group() as tg:
        tg.start_soon(backend.write, "leader")
        await backend.started.wait()
        with anyio.move_on_after(0.02) as scope:
            await backend.write("queued")
        assert scope.cancelled_caught
        backend.release.set()
    assert backend.applied == ["leader"], "the withdrawn write never ran"


@each_backend
async def test_cancelled_after_being_taken_waits_for_the_commit() -> None:
    backend = Scripted()
    outcome: list[str] = []

    async def follower() -> None:
        with anyio.CancelScope() as scope:
            scope_holder.append(scope)
            outcome.append(await backend.write("taken"))
        outcome.append("cancelled" if scope.cancelled_caught else "finished")

    scope_holder: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(backend.write, "first")
        await backend.started.wait()
        tg.start_soon(follower)
        await anyio.sleep(0.01)
        first_release = backend.release
        backend.started, backend.release = anyio.Event(), anyio.Event()
        first_release.set()  # the first group ends; "taken" joins the second...
        await backend.started.wait()
        assert backend.groups[-1] == ["taken"]
        scope_holder[0].cancel()  # ...and is cancelled while that group runs
        await anyio.sleep(0.02)
        assert outcome == [], "a taken write does not return before its group settles"
        backend.release.set()
    assert backend.applied[-1] == "taken"
    assert outcome == ["cancelled"], "the caller gets the cancellation, not the result"


def test_asyncio_native_cancel_of_a_taken_write_waits_for_the_commit() -> None:
    async def main() -> None:
        backend = Scripted()
        first = asyncio.ensure_future(backend.write("first"))
        await backend.started.wait()
        taken = asyncio.ensure_future(backend.write("taken"))
        await asyncio.sleep(0.01)
        backend.started = anyio.Event()
        old, backend.release = backend.release, anyio.Event()
        old.set()
        await first
        await backend.started.wait()
        taken.cancel()
        await asyncio.sleep(0.02)
        assert not taken.done()
        backend.release.set()
        with pytest.raises(asyncio.CancelledError):
            await taken
        assert backend.applied == ["first", "taken"]

    asyncio.run(main())


@each_backend
async def test_a_leader_cancelled_before_taking_hands_over() -> None:
    backend = Scripted()
    backend.release.set()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await backend.write("never")
    assert backend.applied == []
    assert await backend.write("next") == "next"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_one_failing_batch_does_not_sink_the_others(kind: str, tmp_path: Path) -> None:
    async with open_backend(kind, tmp_path, durability=Durability.NORMAL) as store:
        await store.put("ns", "contested", b"v1")
        lease = await store.acquire_lease("run", "owner", 30)
        results: dict[int, object] = {}

        async def write(i: int) -> None:
            ops: list[Any] = [Put("ns", f"k{i}", b"x"), Append("log", str(i).encode())]
            fence = None
            if i % 10 == 3:
                ops.append(Put("ns", "contested", b"stale", expected_version=0))
            if i % 10 == 7:
                fence = Fence("run", lease.token + 1)
            try:
                results[i] = await store.write_batch(ops, fence=fence)
            except (VersionConflict, LeaseLost) as exc:
                results[i] = exc

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(write, i)
        failed = {i for i, r in results.items() if isinstance(r, Exception)}
        assert failed == {i for i in range(40) if i % 10 in (3, 7)}
        assert sorted(await store.keys("ns")) == sorted(
            ["contested", *(f"k{i}" for i in range(40) if i not in failed)]
        )
        logged = sorted(int(e.value) for e in await store.read("log"))
        assert logged == sorted(set(range(40)) - failed)
        seqs = [r[1] for r in results.values() if isinstance(r, list)]
        assert len(set(seqs)) == len(seqs), "every committed append got its own seq"


@pytest.mark.parametrize("kind", BACKENDS)
async def test_cancelled_writers_leave_whole_batches_or_nothing(kind: str, tmp_path: Path) -> None:
    durability = Durability.FULL if kind == "sqlite" else Durability.OFF
    async with open_backend(kind, tmp_path, durability=durability) as store:

        async def write(i: int, delay: float) -> None:
            with anyio.move_on_after(delay):
                await store.write_batch(
                    [Put("a", str(i), b"1"), Append("b", str(i).encode()), Put("c", str(i), b"1")]
                )

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(write, i, (i % 6) * 0.002)
        await _check_whole(store)


async def _check_whole(store: Store) -> None:
    a = set(await store.keys("a"))
    b = {e.value.decode() for e in await store.read("b")}
    c = set(await store.keys("c"))
    assert a == b == c, "each batch is applied whole or not at all"
