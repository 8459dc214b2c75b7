"""Property-based: random workflows (step count, undos, a failing step, failing undos,
steps that wait for signals, a worker dying mid-step) end as the saga model says."""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from fsmflow.durable import (
    RetryPolicy,
    RunFailed,
    RunSettings,
    RunStatus,
    StepContext,
    Worker,
    Workflow,
    start_run,
)
from fsmflow.store import MemoryStore


@attrs.frozen
class Ping:
    value: int


class Refused(Exception):
    pass


class WorkerDeath(BaseException):
    """The worker process dies (nothing handles it)."""


@attrs.frozen
class Plan:
    steps: int
    undoable: frozenset[int]
    fail_at: int | None
    failing_undos: frozenset[int]
    waiting: frozenset[int]
    crash_at: int | None
    #: An undo during which the worker dies (compensation resumes in the next worker).
    crash_in_undo: int | None


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    steps = draw(st.integers(1, 4))
    indices = st.sampled_from(range(steps))
    return Plan(
        steps,
        frozenset(draw(st.sets(indices))),
        draw(st.none() | indices),
        frozenset(draw(st.sets(indices))),
        frozenset(draw(st.sets(indices, max_size=2))),
        draw(st.none() | indices),
        draw(st.none() | indices),
    )


def build(plan: Plan, log: list[str]) -> Workflow[int, int]:
    flow = Workflow("random", input=int, output=int, signals=[Ping])
    crashed: list[int] = []
    undo_crashed: list[int] = []
    previous = None
    for i in range(plan.steps):

        async def step(ctx: StepContext, base: int, *earlier: int, i: int = i) -> int:
            log.append(f"run {i}")
            if plan.crash_at == i and not crashed:
                crashed.append(i)
                raise WorkerDeath()
            got = 0
            if i in plan.waiting:
                got = (await ctx.wait_for_signal(Ping, timeout=60)).value
            if plan.fail_at == i:
                raise Refused(f"step {i}")
            return base + (earlier[0] if earlier else 0) + 10 * i + got

        step.__name__ = f"s{i}"
        options: dict[str, Any] = {"retry": RetryPolicy(attempts=1)}
        made = flow.step(previous, **options)(step) if previous else flow.step(**options)(step)
        if i in plan.undoable:

            async def undo(ctx: StepContext, base: int, out: int, i: int = i) -> None:
                log.append(f"undo {i}")
                if plan.crash_in_undo == i and i not in undo_crashed:
                    undo_crashed.append(i)
                    raise WorkerDeath()
                if i in plan.failing_undos:
                    raise Refused(f"undo {i}")

            made.undo(undo)
        previous = made
    return flow


def expected(plan: Plan) -> tuple[RunStatus, int | None, list[str], list[str]]:
    """(status, output, undone steps, failed undos) by the saga model."""
    if plan.fail_at is None:
        total = 0
        signal = 0
        for i in range(plan.steps):
            got = 0
            if i in plan.waiting:
                signal += 1
                got = signal
            total = 1 + total + 10 * i + got
        return RunStatus.COMPLETED, total, [], []
    before = [i for i in reversed(range(plan.fail_at)) if i in plan.undoable]
    undone = [f"s{i}" for i in before if i not in plan.failing_undos]
    failed = [f"s{i}" for i in before if i in plan.failing_undos]
    if not before:
        return RunStatus.FAILED, None, [], []
    return (
        RunStatus.COMPENSATION_FAILED if failed else RunStatus.COMPENSATED,
        None,
        undone,
        failed,
    )


async def _no_hand_back(*args: Any) -> None:
    return None


async def _run(plan: Plan) -> tuple[RunStatus, int | None, list[str], list[str], list[str]]:
    log: list[str] = []
    flow = build(plan, log)
    store = MemoryStore()
    handle = await start_run(store, flow, 1)
    for value in range(1, len(plan.waiting) + 1):
        await handle.signal(Ping(value))
    settings_ = RunSettings(inline_wait=0.2, poll_interval=0.005)
    while True:
        worker = Worker(store, [flow], lease_ttl=0.3, poll_interval=0.005, settings=settings_)
        worker._let_go = _no_hand_back  # type: ignore[method-assign,assignment]
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(worker.run)
                while True:
                    if (await handle.status()).is_final:
                        break
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
            break
        except* WorkerDeath:
            await anyio.sleep(0.31)  # its lease expires; the next worker recovers the run
    try:
        output: int | None = await handle.result()
        return RunStatus.COMPLETED, output, [], [], log
    except RunFailed as failed:
        return failed.status, None, list(failed.undone), [s for s, _ in failed.undo_failed], log


@settings(max_examples=40, deadline=None)
@given(plans())
def test_random_workflows_end_as_the_saga_model_says(plan: Plan) -> None:
    status, output, undone, failed, log = trio.run(_run, plan)
    assert (status, output, undone, failed) == expected(plan)
    # A crash re-runs the step it interrupted, once; no other step runs twice.
    for i in range(plan.steps):
        assert log.count(f"run {i}") <= (2 if plan.crash_at == i else 1)
        assert log.count(f"undo {i}") <= (2 if plan.crash_in_undo == i else 1)
