"""Wake-ups: workers and result waiters sleep until the store notifies them, on every
backend, also when the notification comes from another store object (another process's
view of the same database: LISTEN/NOTIFY on PostgreSQL, the notification counter on
SQLite). The fallback polls are set to an hour, so only a notification can wake them; the
``fail_after`` bounds only turn a missed wake-up into a failure instead of a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import trio
import trio.testing

from fsmflow.durable import RunSettings, RunStatus, StepContext, Workflow, start_run
from fsmflow.store import MemoryStore, PostgresStore, SqliteStore, Store

from . import workflows
from .conftest import running_worker, wait_for_status

HOUR = 3600.0


@asynccontextmanager
async def twin(store: Store) -> AsyncIterator[Store]:
    """Another store object on the same data, as another process would open it."""
    if isinstance(store, SqliteStore):
        async with await SqliteStore.open(store.path, poll_interval=0.05) as other:
            yield other
    elif isinstance(store, PostgresStore):
        async with await PostgresStore.open(store.dsn, schema=store.schema) as other:
            yield other
    else:
        yield store


async def test_an_idle_worker_wakes_for_a_new_run_and_a_waiter_for_its_end(
    store: Store,
) -> None:
    async with (
        twin(store) as client,
        running_worker(store, [workflows.chores], poll_interval=HOUR) as worker,
    ):
        await anyio.sleep(0.2)  # idle: asleep on its notifications
        with anyio.fail_after(30):
            handle = await start_run(client, workflows.chores, 1)
            assert await handle.result(poll_interval=HOUR) == await _expected_chores(1)
        assert worker.stats.claimed == 1


async def _expected_chores(n: int) -> int:
    store = MemoryStore()
    handle = await start_run(store, workflows.chores, n)
    async with running_worker(store, [workflows.chores]):
        return await handle.result()


async def test_a_signal_from_elsewhere_wakes_a_parked_run(store: Store) -> None:
    settings = RunSettings(inline_wait=0.05, poll_interval=0.01)
    async with (
        twin(store) as client,
        running_worker(store, [workflows.approval], poll_interval=HOUR, settings=settings),
    ):
        handle = await start_run(client, workflows.approval, "ann")
        with anyio.fail_after(30):
            await wait_for_status(handle, RunStatus.WAITING)
            await handle.signal(workflows.Approval("bob"))
            assert await handle.result(poll_interval=HOUR) == "ann approved by bob"


async def test_a_durable_timer_fires_when_due_without_a_notification(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """On virtual time: a run parked for 100 s is resumed at its due time, not at the
    worker's next fallback poll (an hour later): the worker looks ahead for due leases."""
    store = MemoryStore(clock=trio.current_time)
    flow = Workflow("napper", input=int, output=float)

    @flow.step()
    async def nap(ctx: StepContext, n: int) -> float:
        await ctx.sleep(100)
        return trio.current_time()

    handle = await start_run(store, flow, 1)
    async with running_worker(
        store, [flow], poll_interval=HOUR, settings=RunSettings(inline_wait=1.0)
    ):
        started = trio.current_time()
        woke = await handle.result(poll_interval=HOUR)
    assert started + 100 <= woke < started + 101
