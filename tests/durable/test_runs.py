"""Durable runs end to end on every backend: steps, retries, timeouts, threads,
idempotent starts, compensation at every step position, cancel, signals, sleeps."""

from __future__ import annotations

import pytest

from fsmflow.durable import (
    OutputTooLarge,
    RunFailed,
    RunNotFinished,
    RunStatus,
    StepContext,
    UnknownSignal,
    Workflow,
    show_durable_run,
    start_run,
)
from fsmflow.store import Store
from fsmflow.testing import each_backend

from .conftest import running_worker, wait_for_status
from .workflows import EFFECTS, Approval, Order, Receipt, approval, chores, order, slow


async def test_a_run_completes_with_typed_output(store: Store) -> None:
    handle = await start_run(store, order, Order("o1", 20))
    assert await handle.status() is RunStatus.PENDING
    async with running_worker(store, [order]) as worker:
        receipt = await handle.result()
    assert receipt == Receipt("o1", "ch-o1", "track-o1")
    assert [e[0] for e in EFFECTS] == ["reserve", "charge", "ship"]
    # The idempotency key is stable per run and step.
    assert EFFECTS[1][1] == f"{handle.run_id}:charge"
    assert worker.stats.finished == 1
    shown = await show_durable_run(store, handle.run_id)
    assert shown["status"] == "completed" and shown["state"] == "COMPLETED"
    assert [e["k"] for e in shown["journal"]] == ["out", "out", "out"]
    assert shown["lease"]["owner"] == ""  # released for good


@each_backend
async def test_runs_on_trio_and_asyncio() -> None:
    from fsmflow.store import MemoryStore

    store = MemoryStore()
    handle = await start_run(store, chores, 10)
    async with running_worker(store, [chores]):
        assert await handle.result() == 45


async def test_blocking_steps_run_in_threads_and_retries_count_attempts(store: Store) -> None:
    from . import workflows

    handle = await start_run(store, chores, 100)
    async with running_worker(store, [chores]):
        assert await handle.result() == 4950
    assert workflows.ATTEMPTS == [1, 2, 3]


async def test_a_timeout_fails_the_attempt(store: Store) -> None:
    handle = await start_run(store, slow, 10.0)
    async with running_worker(store, [slow]):
        with pytest.raises(RunFailed) as caught:
            await handle.result()
    assert caught.value.status is RunStatus.FAILED
    assert "dawdle" in str(caught.value) and "2 attempt" in str(caught.value)
    quick = await start_run(store, slow, 0.0)
    async with running_worker(store, [slow]):
        assert await quick.result() == "done"


async def test_same_run_id_or_idempotency_key_returns_the_same_run(store: Store) -> None:
    first = await start_run(store, order, Order("a", 1), idempotency_key="order-a")
    again = await start_run(store, order, Order("a", 1), idempotency_key="order-a")
    assert again.run_id == first.run_id
    named = await start_run(store, order, Order("b", 1), run_id="run-b")
    assert (await start_run(store, order, Order("b", 1), run_id="run-b")).run_id == "run-b"
    async with running_worker(store, [order]):
        await first.result()
        await named.result()
    assert [e[0] for e in EFFECTS].count("ship") == 2


async def test_result_without_waiting_says_not_finished(store: Store) -> None:
    handle = await start_run(store, order, Order("w", 1))
    with pytest.raises(RunNotFinished):
        await handle.result(wait=False)


@pytest.mark.parametrize(
    ("fail_at", "status", "undone"),
    [
        ("reserve", RunStatus.FAILED, []),
        ("charge", RunStatus.COMPENSATED, ["reserve"]),
        ("ship", RunStatus.COMPENSATED, ["charge", "reserve"]),
    ],
)
async def test_compensation_at_every_step_position(
    store: Store, fail_at: str, status: RunStatus, undone: list[str]
) -> None:
    handle = await start_run(store, order, Order("c", 5, fail_at=fail_at))
    async with running_worker(store, [order]):
        with pytest.raises(RunFailed) as caught:
            await handle.result()
    assert caught.value.status is status
    assert list(caught.value.undone) == undone
    assert caught.value.undo_failed == ()
    assert fail_at in (caught.value.error or "")
    undos = [name for name, _ in EFFECTS if name in ("release", "refund")]
    assert undos == [{"reserve": "release", "charge": "refund"}[s] for s in undone]
    # The step that failed for good was tried once (Refused is not retried).
    assert [name for name, _ in EFFECTS].count(fail_at) == 1


async def test_a_failing_undo_is_reported_and_the_rest_still_run(store: Store) -> None:
    handle = await start_run(store, order, Order("d", 5, fail_at="ship", fail_undo_at="refund"))
    async with running_worker(store, [order]):
        with pytest.raises(RunFailed) as caught:
            await handle.result()
    assert caught.value.status is RunStatus.COMPENSATION_FAILED
    assert caught.value.undone == ("reserve",)
    assert [s for s, _ in caught.value.undo_failed] == ["charge"]
    assert "refund refused" in caught.value.undo_failed[0][1]


async def test_cancel_before_start_ends_the_run_at_once(store: Store) -> None:
    handle = await start_run(store, order, Order("x", 1), delay=3600)
    assert await handle.cancel() is True
    assert await handle.status() is RunStatus.CANCELLED
    assert await handle.cancel() is False
    with pytest.raises(RunFailed) as caught:
        await handle.result()
    assert caught.value.status is RunStatus.CANCELLED
    assert EFFECTS == []


async def test_cancel_a_waiting_run_undoes_its_steps(store: Store) -> None:
    flow = Workflow("gate", input=str, output=str, signals=[Approval])
    undone: list[str] = []

    @flow.step()
    async def prepare(ctx: StepContext, name: str) -> str:
        return f"prepared {name}"

    @prepare.undo
    async def unprepare(ctx: StepContext, name: str, prepared: str) -> None:
        undone.append(prepared)

    @flow.step(prepare)
    async def gate(ctx: StepContext, name: str, prepared: str) -> str:
        signal = await ctx.wait_for_signal(Approval, timeout=3600)
        return f"{prepared} by {signal.by}"

    handle = await start_run(store, flow, "it")
    async with running_worker(store, [flow]):
        await wait_for_status(handle, RunStatus.WAITING)
        assert await handle.cancel() is True
        with pytest.raises(RunFailed) as caught:
            await handle.result()
    assert caught.value.status is RunStatus.CANCELLED
    assert undone == ["prepared it"]


async def test_a_signal_wakes_a_parked_run_and_sleeps_are_durable(store: Store) -> None:
    handle = await start_run(store, approval, "ann")
    async with running_worker(store, [approval]):
        await wait_for_status(handle, RunStatus.WAITING)
        await handle.signal(Approval("bob"))
        assert await handle.result() == "ann approved by bob"
    shown = await show_durable_run(store, handle.run_id)
    kinds = [e["k"] for e in shown["journal"]]
    # Two durable timers (the wait's deadline and the 2s sleep), two outputs.
    assert kinds.count("timer") == 2 and kinds.count("out") == 2
    with pytest.raises(UnknownSignal):
        await handle.signal("not a declared signal type")


async def test_outputs_over_the_size_limit_fail_the_step_clearly(store: Store) -> None:
    flow = Workflow("big", input=str, output=str, max_output_bytes=100)

    @flow.step()
    async def blob(ctx: StepContext, text: str) -> str:
        return text * 10

    with pytest.raises(OutputTooLarge, match="the input of run"):
        await start_run(store, flow, "y" * 200)
    ok = await start_run(store, flow, "ab")
    big = await start_run(store, flow, "abcdefghij")
    async with running_worker(store, [flow]):
        assert await ok.result() == "ab" * 10
        with pytest.raises(RunFailed, match="over the limit of 100 bytes"):
            await big.result()
