"""Workers: versions, recovery, dead letters, retention, queues, fencing, the throttle."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio
import trio.testing

from fsmflow.durable import (
    Queue,
    RunFailed,
    RunSettings,
    RunStatus,
    StepContext,
    Worker,
    Workflow,
    list_durable_runs,
    retry_durable_run,
    show_durable_run,
    start_run,
)
from fsmflow.durable._records import RUNS
from fsmflow.store import BackendError, MemoryStore, Store

from . import workflows
from .conftest import running_worker


def _versioned(version: str, compatible: tuple[str, ...] = ()) -> Workflow[int, int]:
    flow = Workflow("versioned", input=int, output=int, version=version, compatible_with=compatible)

    @flow.step()
    async def double(ctx: StepContext, n: int) -> int:
        return 2 * n

    return flow


async def test_a_run_waits_for_a_worker_that_knows_its_version(store: Store) -> None:
    old, new = _versioned("1"), _versioned("2")
    handle = await start_run(store, old, 21)
    async with running_worker(store, [new]) as worker:
        await anyio.sleep(0.1)
        assert worker.stats.claimed == 0
    rows = await list_durable_runs(store)
    assert [(r.status, r.version) for r in rows] == [("pending", old.version_hash)]
    # A worker that declares the old hash compatible takes it over.
    compatible = _versioned("2", compatible=(old.version_hash,))
    async with running_worker(store, [compatible]):
        assert await handle.result() == 42


async def test_dead_letter_after_max_recoveries_and_retry(store: Store) -> None:
    flow = Workflow("crashy", input=int, output=int)
    crashes = [3]

    @flow.step()
    async def explode(ctx: StepContext, n: int) -> int:
        if crashes[0] > 0:
            crashes[0] -= 1
            raise _WorkerDeath()  # as if the process died mid-step
        return n

    handle = await start_run(store, flow, 7)
    for _ in range(3):
        try:
            async with running_worker(store, [flow], lease_ttl=0.05, max_recoveries=1) as worker:
                worker._let_go = _no_hand_back  # type: ignore[method-assign,assignment]
                await anyio.sleep(1)
        except* _WorkerDeath:
            pass
        await anyio.sleep(0.06)  # the dead worker's lease expires
        if await handle.status() is RunStatus.DEAD_LETTERED:
            break
    assert await handle.status() is RunStatus.DEAD_LETTERED
    with pytest.raises(RunFailed, match="taken over 2 times"):
        await handle.result()
    crashes[0] = 0
    await retry_durable_run(store, handle.run_id)
    async with running_worker(store, [flow]):
        assert await handle.result() == 7


class _WorkerDeath(BaseException):
    """Escapes every handler, like a process dying."""


async def _no_hand_back(*args: Any) -> None:
    return None


async def test_finished_runs_are_deleted_past_their_retention(store: Store) -> None:
    flow = Workflow("brief", input=int, output=int, retention=0.0)

    @flow.step()
    async def same(ctx: StepContext, n: int) -> int:
        return n

    handles = [await start_run(store, flow, i, idempotency_key=f"k{i}") for i in range(5)]
    async with running_worker(store, [flow], gc_batch=2) as worker:
        for handle in handles:
            await handle.result()
        assert await worker.sweep_once() == 2  # bounded batches
        assert await worker.sweep_once() == 2
        assert await worker.sweep_once() == 1
    assert await store.keys(RUNS) == []
    assert await store.length(f"fsmflow.durable.journal/{handles[0].run_id}") == 0
    assert await store.get("fsmflow.durable.idempotency", "k0") is None
    assert await store.get_lease(f"fsmflow.durable.gc/{handles[0].run_id}") is None


async def test_global_and_per_key_limits_and_priorities(store: Store) -> None:
    handles = [
        await start_run(store, workflows.limited, f"r{i}", concurrency_key=f"c{i % 3}")
        for i in range(6)
    ]
    async with (
        running_worker(store, [workflows.limited], concurrency=4, queue_backoff=0.01),
        running_worker(store, [workflows.limited], concurrency=4, queue_backoff=0.01),
    ):
        for handle in handles:
            await handle.result()
    assert max(workflows.PEAK) <= 2  # concurrency=2 across both workers
    # Priorities: the highest level is claimed first.
    workflows.PEAK.clear()
    order: list[str] = []
    flow = Workflow("ranked", input=str, output=str, queue=Queue("ranked", priorities=3))

    @flow.step()
    async def note(ctx: StepContext, name: str) -> str:
        order.append(name)
        return name

    low = await start_run(store, flow, "low", priority=0)
    high = await start_run(store, flow, "high", priority=2)
    mid = await start_run(store, flow, "mid", priority=1)
    async with running_worker(store, [flow], concurrency=1):
        for handle in (low, high, mid):
            await handle.result()
    assert order == ["high", "mid", "low"]


async def test_per_key_limit_serialises_one_key(store: Store) -> None:
    running: list[str] = []
    peak: list[int] = []
    flow = Workflow("keyed", input=str, output=str, queue=Queue("keyed", per_key=1))

    @flow.step()
    async def one_at_a_time(ctx: StepContext, name: str) -> str:
        running.append(name)
        peak.append(len(running))
        await anyio.sleep(0.02)
        running.remove(name)
        return name

    handles = [await start_run(store, flow, f"n{i}", concurrency_key="acme") for i in range(4)]
    async with running_worker(store, [flow], concurrency=4, queue_backoff=0.01):
        for handle in handles:
            await handle.result()
    assert max(peak) == 1


async def test_rate_limit_and_delayed_start(store: Store) -> None:
    flow = Workflow("rated", input=int, output=int, queue=Queue("rated", rate=(2, 3600.0)))

    @flow.step()
    async def same(ctx: StepContext, n: int) -> int:
        return n

    handles = [await start_run(store, flow, i) for i in range(3)]
    async with running_worker(store, [flow], concurrency=4) as worker:
        while True:  # whichever two got into the window first complete
            statuses = [await h.status() for h in handles]
            if statuses.count(RunStatus.COMPLETED) == 2:
                break
            await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        statuses = [await h.status() for h in handles]
        assert statuses.count(RunStatus.PENDING) == 1  # the window is full
        assert worker.stats.handed_back >= 1
    later = await start_run(store, workflows.chores, 3, delay=3600)
    async with running_worker(store, [workflows.chores]) as worker:
        await anyio.sleep(0.05)
        assert worker.stats.claimed == 0
    assert await later.status() is RunStatus.PENDING


async def test_recovery_latency_is_bounded_by_lease_ttl_plus_poll_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """On virtual time: a worker dies mid-step (no hand-back, no renewals); another
    claims the run no later than ``lease_ttl + poll_interval`` after the dead worker's last
    renewal, and the run completes."""
    store = MemoryStore(clock=trio.current_time)
    flow = Workflow("recover", input=int, output=int)
    started: list[float] = []
    gate = trio.Event()

    @flow.step()
    async def long_step(ctx: StepContext, n: int) -> int:
        started.append(trio.current_time())
        if len(started) == 1:
            await gate.wait()  # the first worker never finishes this step
        return n

    ttl, poll = 3.0, 0.5
    handle = await start_run(store, flow, 1)
    frozen = _Freezable(store)
    dying = Worker(frozen, [flow], lease_ttl=ttl, poll_interval=poll)
    dying._let_go = _no_hand_back  # type: ignore[method-assign,assignment]
    # Nothing announces a death: the other worker must notice the lapse on its own, by
    # looking ahead for leases falling due.
    async with trio.open_nursery() as nursery:
        await nursery.start(dying.run)
        while True:
            if started:
                break
            await trio.sleep(0.01)
        await trio.sleep(10)  # renewing, still alive
        frozen.frozen = True  # the process dies: no more renewals, nothing released
        resource = (await show_durable_run(store, handle.run_id))["resource"]
        lease = await store.get_lease(resource)
        assert lease is not None
        last_renewal = lease.expires_at - ttl
        async with running_worker(store, [flow], lease_ttl=ttl, poll_interval=poll):
            assert await handle.result() == 1
        nursery.cancel_scope.cancel()
    recovered_at = started[1]
    assert last_renewal + ttl <= recovered_at <= last_renewal + ttl + poll + 0.01
    record = await show_durable_run(store, handle.run_id)
    assert record["recoveries"] == 1


async def test_a_stale_worker_cannot_commit_after_a_takeover() -> None:
    """Fencing in one process: worker A stops renewing while its step runs, B takes the
    run over and finishes it; A's step then returns and its commit is refused."""
    store = MemoryStore()
    flow = Workflow("fenced", input=int, output=str)
    a_may_finish = anyio.Event()
    calls: list[str] = []

    @flow.step()
    async def work(ctx: StepContext, n: int) -> str:
        calls.append(f"token {ctx.token}")
        if len(calls) == 1:
            await a_may_finish.wait()
            return "from A"
        return "from B"

    @flow.step(work)
    async def finish(ctx: StepContext, n: int, made: str) -> str:
        return made

    handle = await start_run(store, flow, 1)
    async with anyio.create_task_group() as tg:
        # A believes it still holds the lease (a stopped process does, too).
        stale = _Freezable(store, renewals_pretend=True)
        stale.frozen = True
        a = Worker(stale, [flow], lease_ttl=0.1, poll_interval=0.01, concurrency=1)
        await tg.start(a.run)
        async with running_worker(store, [flow], lease_ttl=5):
            assert await handle.result() == "from B"
        a_may_finish.set()
        while True:
            if not a.running:
                break
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert calls == ["token 1", "token 2"]
    assert a.stats.lost == 1 and a.stats.finished == 0
    shown = await show_durable_run(store, handle.run_id)
    assert [e["k"] for e in shown["journal"]] == ["out", "out"]  # B's outputs only
    assert shown["result"] == "from B"


class _Freezable:
    """A store whose lease renewals stop once ``frozen``: they hang (a dead process) or,
    with ``renewals_pretend``, report success without reaching the store (a process that
    was stopped and does not know its lease expired meanwhile)."""

    def __init__(self, inner: Store, *, renewals_pretend: bool = False) -> None:
        self._inner = inner
        self._pretend = renewals_pretend
        self.frozen = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def renew_lease(self, lease: Any, ttl: float) -> Any:
        if not self.frozen:
            return await self._inner.renew_lease(lease, ttl)
        if self._pretend:
            return lease
        await anyio.sleep_forever()


async def test_checkpoint_throttle_writes_fewer_batches() -> None:
    flow = Workflow("many", input=int, output=int)
    steps = []
    for i in range(5):

        async def add(ctx: StepContext, n: int) -> int:
            return n + 1

        steps.append(flow.step(name=f"s{i}")(add))
    commits = {}
    for throttle in (0.0, 3600.0):
        store = MemoryStore()
        handle = await start_run(store, flow, 0)
        counter = _CountingStore(store)
        async with running_worker(
            counter, [flow], settings=RunSettings(checkpoint_throttle=throttle)
        ):
            assert await handle.result() == 1
        commits[throttle] = counter.fenced
    assert commits[0.0] == 5 and commits[3600.0] == 2  # the first and the final one


class _CountingStore:
    """A store that counts fenced batches (the run's commits)."""

    def __init__(self, inner: MemoryStore) -> None:
        self._inner = inner
        self.fenced = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def write_batch(self, ops: Any, *, fence: Any = None) -> Any:
        if fence is not None and fence.resource.startswith("fsmflow.durable.run/"):
            self.fenced += 1
        return await self._inner.write_batch(ops, fence=fence)


def test_worker_rejects_bad_configuration() -> None:
    store = MemoryStore()
    with pytest.raises(ValueError, match="at least one workflow"):
        Worker(store, [])
    with pytest.raises(ValueError, match="concurrency"):
        Worker(store, [workflows.chores], concurrency=0)
    with pytest.raises(ValueError, match="both claim version"):
        Worker(store, [_versioned("1"), _versioned("1")])
    twin = Workflow("twin", input=int, output=int, queue=Queue("limited", concurrency=9))

    @twin.step()
    async def same(ctx: StepContext, n: int) -> int:
        return n

    with pytest.raises(ValueError, match="configured twice differently"):
        Worker(store, [workflows.limited, twin])


async def test_a_cancelled_worker_hands_its_runs_back_at_once(store: Store) -> None:
    """Stopping a worker mid-step releases the run cleanly: another worker resumes it
    right away (no lease to wait for) and it counts as no recovery."""
    flow = Workflow("handed", input=int, output=int)
    entered = anyio.Event()
    runs: list[int] = []

    @flow.step()
    async def slow_step(ctx: StepContext, n: int) -> int:
        runs.append(ctx.token)
        if len(runs) == 1:
            entered.set()
            await anyio.sleep(3600)
        return n

    handle = await start_run(store, flow, 5)
    async with running_worker(store, [flow], lease_ttl=3600, queue_backoff=0.0):
        await entered.wait()
    async with running_worker(store, [flow], lease_ttl=3600):
        assert await handle.result() == 5
    shown = await show_durable_run(store, handle.run_id)
    assert shown["recoveries"] == 0 and len(runs) == 2


async def test_cancel_reaches_a_running_run_at_the_next_step_boundary(store: Store) -> None:
    flow = Workflow("stoppable", input=int, output=int)
    in_second = anyio.Event()
    may_finish = anyio.Event()
    undone: list[str] = []

    @flow.step()
    async def first(ctx: StepContext, n: int) -> int:
        return n

    @first.undo
    async def undo_first(ctx: StepContext, n: int, out: int) -> None:
        undone.append("first")

    @flow.step(first)
    async def second(ctx: StepContext, n: int, a: int) -> int:
        in_second.set()
        await may_finish.wait()
        return a

    @second.undo
    async def undo_second(ctx: StepContext, n: int, out: int) -> None:
        undone.append("second")

    @flow.step(second)
    async def third(ctx: StepContext, n: int, b: int) -> int:
        undone.append("third ran")  # must not happen
        return b

    handle = await start_run(store, flow, 1)
    settings = RunSettings(inline_wait=0.5, poll_interval=0.01, control_interval=0.0)
    async with running_worker(store, [flow], settings=settings):
        await in_second.wait()
        assert await handle.cancel() is True
        may_finish.set()
        with pytest.raises(RunFailed) as caught:
            await handle.result()
    assert caught.value.status is RunStatus.CANCELLED
    assert undone == ["second", "first"]


class _Outage:
    """A store whose writes fail with a BackendError once ``down`` (the database went
    away), reads still answering."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def write_batch(self, ops: Any, *, fence: Any = None) -> Any:
        if self.down:
            raise BackendError("write_batch", "the database went away")
        return await self._inner.write_batch(ops, fence=fence)


async def test_a_store_outage_while_letting_go_does_not_stop_the_worker() -> None:
    """The worker is stopped while the store refuses writes: its run can be neither
    handed back nor released. The worker still stops cleanly (the run's lease expires
    and another worker recovers it), and the run is not lost."""
    memory = MemoryStore()
    store = _Outage(memory)
    flow = Workflow("outage", input=int, output=int)
    inside = anyio.Event()

    @flow.step()
    async def wait_forever(ctx: StepContext, n: int) -> int:
        if ctx.token == 1:
            inside.set()
            await anyio.sleep_forever()
        return n

    handle = await start_run(memory, flow, 3)
    async with running_worker(store, [flow], lease_ttl=0.3) as worker:
        await inside.wait()
        store.down = True
    assert worker.stats.finished == 0
    store.down = False
    async with running_worker(memory, [flow], lease_ttl=0.3):
        assert await handle.result() == 3
