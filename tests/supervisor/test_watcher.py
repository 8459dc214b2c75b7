"""``StateWatcher``: the latest state, awaited predicates, latest-value iteration, and
closing. On trio and asyncio."""

from __future__ import annotations

import anyio
import pytest

from fsmflow.supervisor import StateWatcher, WatcherClosed
from fsmflow.testing import each_backend


@each_backend
async def test_current_and_immediate_wait() -> None:
    watcher = StateWatcher("a")
    assert watcher.current() == "a" and not watcher.closed
    assert await watcher.wait_for(lambda s: s == "a") == "a"


@each_backend
async def test_wait_for_waits_until_the_predicate_holds() -> None:
    watcher = StateWatcher("a")
    got: list[str] = []

    async def waiter() -> None:
        got.append(await watcher.wait_for(lambda s: s.startswith("go")))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        watcher.publish("b")
        await anyio.wait_all_tasks_blocked()
        assert got == []
        watcher.publish("go!")
    assert got == ["go!", "go!"], "every waiter woke"


@each_backend
async def test_wait_for_raises_when_the_run_ends_first() -> None:
    watcher = StateWatcher("a")

    async def closer() -> None:
        await anyio.wait_all_tasks_blocked()
        watcher.publish("final")
        watcher.close()

    async with anyio.create_task_group() as tg:
        tg.start_soon(closer)
        with pytest.raises(WatcherClosed) as info:
            await watcher.wait_for(lambda s: s == "never")
    assert info.value.final_state == "final"
    assert str(info.value) == "the supervisor stopped in 'final'"
    assert watcher.closed
    assert await watcher.wait_for(lambda s: s == "final") == "final", "a match still returns"
    with pytest.raises(WatcherClosed):
        await watcher.wait_for(lambda s: s == "never")


@each_backend
async def test_wait_for_is_cancellable() -> None:
    watcher = StateWatcher("a")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.wait_for, lambda s: s == "never")
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    watcher.publish("b")  # a cancelled waiter leaves nothing behind that breaks publishing
    assert watcher.current() == "b"


@each_backend
async def test_changes_has_latest_value_semantics() -> None:
    watcher = StateWatcher(0)
    seen: list[int] = []

    async def observe() -> None:
        async for value in watcher.changes():
            seen.append(value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(observe)
        await anyio.wait_all_tasks_blocked()
        assert seen == [0], "the current value comes first"
        for value in (1, 2, 3):  # no yield in between: the observer sees only 3
            watcher.publish(value)
        await anyio.wait_all_tasks_blocked()
        assert seen == [0, 3]
        watcher.publish(4)
        await anyio.wait_all_tasks_blocked()
        watcher.publish(5)
        watcher.close()  # the change before closing is still delivered
    assert seen == [0, 3, 4, 5]


@each_backend
async def test_publishing_the_same_state_is_not_a_change() -> None:
    state = ("same",)
    watcher = StateWatcher(state)
    seen: list[tuple[str]] = []

    async def observe() -> None:
        async for value in watcher.changes():
            seen.append(value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(observe)
        await anyio.wait_all_tasks_blocked()
        watcher.publish(state)
        await anyio.wait_all_tasks_blocked()
        assert seen == [state]
        watcher.close()
    assert seen == [state]


@each_backend
async def test_changes_of_a_closed_watcher_yields_once() -> None:
    watcher = StateWatcher("end")
    watcher.close()
    assert [v async for v in watcher.changes()] == ["end"]
