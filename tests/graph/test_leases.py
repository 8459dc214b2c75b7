"""One process per thread: a graph run holds its thread's lease while it runs; others are
refused (``ThreadHeld``) or stand by; a run that loses the lease stops at once, writing
nothing more, and ends ``LEASE_LOST`` (``GraphLeaseLost``, ``ThreadLeaseLost``).

The in-process tests here run on every backend; ``test_lease_processes.py`` does it with
real processes killed and stopped.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio

from fsmflow.cli import main
from fsmflow.graph import (
    TERMINAL_EVENTS,
    CheckpointPolicy,
    ExecState,
    GraphEvent,
    GraphExecution,
    GraphLeaseLost,
    GraphStream,
    InterruptWaiting,
    RunContext,
    StateChanged,
    ThreadHeld,
    ThreadLeaseLost,
    delete_thread,
    execute,
    execute_stream,
    get_state,
    interrupt,
    resume,
    resume_from,
    update_state,
)
from fsmflow.graph._fsm import OwnershipLost
from fsmflow.graph._lease import thread_resource
from fsmflow.graph._listing import answer_stored
from fsmflow.graph._options import RunOptions
from fsmflow.store import (
    BackendError,
    BatchOp,
    Durability,
    Fence,
    Lease,
    LeaseHeld,
    LeaseLost,
    MemoryStore,
    ReleaseLease,
    SqliteStore,
    Store,
    Versioned,
)
from fsmflow.supervisor import Trigger
from fsmflow.testing import each_backend

from ._graphs import Counter, counter_builder, stored_records

EVERY_STEP = CheckpointPolicy(every_step=True, keep=None)


class FakeClock:
    """A store clock the test moves (lease expiry), apart from the event loop's."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _steps_graph(middle: Callable[[Counter], Awaitable[dict[str, object]]]) -> Any:
    """``first -> middle -> last``; each adds to ``trail``."""

    async def first(state: Counter) -> dict[str, object]:
        return {"n": 1, "trail": ["first"]}

    def last(state: Counter) -> dict[str, object]:
        return {"n": state.n + 1, "trail": ["last"]}

    b = counter_builder("steps")
    b.node("first", first).node("middle", middle).node("last", last)
    b.edge("first", "middle").edge("middle", "last")
    return b.start("first").end("last").build()


def _asking_graph() -> Any:
    """``ask`` interrupts for an int, then ``done``."""

    def ask(state: Counter) -> dict[str, object]:
        answer = interrupt("how many?", int)
        return {"n": answer, "trail": ["ask"]}

    b = counter_builder("asking")
    b.node("ask", ask).node("done", lambda s: {"trail": ["done"]})
    b.edge("ask", "done")
    return b.start("ask").end("done").build()


async def _until_waiting(run: GraphStream[Counter]) -> list[GraphEvent]:
    seen: list[GraphEvent] = []
    async for event in run:
        seen.append(event)
        if isinstance(event, InterruptWaiting):
            return seen
    raise AssertionError(f"the run ended without waiting: {seen}")


async def _lease_owner(store: Store, thread: str) -> str | None:
    lease = await store.get_lease(thread_resource(thread))
    return None if lease is None else lease.owner


# -- holding and releasing -------------------------------------------------------------


async def test_a_run_holds_its_threads_lease_and_releases_it_however_it_ends(
    any_store: Store,
) -> None:
    store = any_store
    seen: list[str | None] = []

    async def middle(state: Counter) -> dict[str, object]:
        seen.append(await _lease_owner(store, "done"))
        return {"trail": ["middle"]}

    await execute(_steps_graph(middle), Counter(), store=store, thread_id="done")
    assert seen[0] is not None and f":{os.getpid()}:" in seen[0]
    assert await _lease_owner(store, "done") == ""

    async def broken(state: Counter) -> dict[str, object]:
        raise RuntimeError("boom")

    with pytest.raises(Exception, match="boom"):
        await execute(_steps_graph(broken), Counter(), store=store, thread_id="failed")
    assert await _lease_owner(store, "failed") == ""

    stopped = await execute(_asking_graph(), Counter(), store=store, thread_id="paused")
    assert stopped.interrupts and await _lease_owner(store, "paused") == ""

    async with execute_stream(_asking_graph(), Counter(), store=store, thread_id="c") as run:
        await _until_waiting(run)
        assert await _lease_owner(store, "c") not in (None, "")  # held while it waits
        await run.handle.cancel()
    assert run.cancelled_at is not None and await _lease_owner(store, "c") == ""

    # The next owner of a thread gets a larger token, and its checkpoints carry it.
    await resume(_asking_graph(), "paused", store=store, value=3)
    tokens = [r.token for r in await stored_records(store, "paused")]
    assert tokens == sorted(tokens) and tokens[0] >= 1 and tokens[-1] > tokens[0]


@each_backend
async def test_a_run_cancelled_from_outside_releases_its_lease() -> None:
    store = MemoryStore()
    started = anyio.Event()

    async def middle(state: Counter) -> dict[str, object]:
        started.set()
        await anyio.sleep(30)
        return {}

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: execute(_steps_graph(middle), Counter(), store=store, thread_id="x"))
        await started.wait()
        tg.cancel_scope.cancel()
    assert await _lease_owner(store, "x") == ""


async def test_asyncio_native_cancellation_releases_the_lease() -> None:
    async def scenario() -> None:
        store = MemoryStore()

        async def middle(state: Counter) -> dict[str, object]:
            await asyncio.sleep(30)
            return {}

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                execute(_steps_graph(middle), Counter(), store=store, thread_id="x"), 0.2
            )
        assert await _lease_owner(store, "x") == ""

    await trio.to_thread.run_sync(asyncio.run, scenario())


@each_backend
async def test_renewal_keeps_a_run_longer_than_its_ttl_alive() -> None:
    store = MemoryStore()

    async def middle(state: Counter) -> dict[str, object]:
        await anyio.sleep(0.5)  # several TTLs
        return {"trail": ["middle"]}

    result = await execute(
        _steps_graph(middle), Counter(), store=store, thread_id="long", lease_ttl=0.12
    )
    assert result.state.trail == ["first", "middle", "last"]


# -- refused while held, or standing by ------------------------------------------------


async def test_a_thread_a_live_run_holds_refuses_every_other_writer(any_store: Store) -> None:
    store = any_store
    graph = _asking_graph()
    async with execute_stream(graph, Counter(), store=store, thread_id="t", lease_ttl=20) as run:
        await _until_waiting(run)
        holder = await _lease_owner(store, "t")
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: execute(graph, {"n": 1}, store=store, thread_id="t"),
            lambda: execute(graph, Counter(), store=store, trace_id="t", replace=True),
            lambda: resume(graph, "t", store=store, value=1),
            lambda: update_state(graph, "t", {"n": 5}, store=store),
            lambda: delete_thread(store, "t"),
            lambda: answer_stored(store, "t", "ask", 1),
        ]
        for attempt in attempts:
            with pytest.raises(ThreadHeld) as refused:
                await attempt()
            assert refused.value.holder == holder and refused.value.thread_id == "t"
            assert 0 < refused.value.expires_in <= 20
            assert f"'{holder}'" in str(refused.value) and "standby=True" in str(refused.value)
        with pytest.raises(ThreadHeld):
            async with resume_from(graph, "t", store=store):
                pass
        # Reading never needs the lease.
        assert (await get_state(graph, "t", store=store)).status == "waiting"
        assert run.handle.state is ExecState.AWAITING_DECISION
        await run.handle.resume(7)
        async for _ in run:
            pass
    assert run.result is not None and run.result.state.n == 7


async def test_the_shell_is_refused_while_a_live_run_holds_the_thread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.sqlite3"
    async with (
        await SqliteStore.open(db, durability=Durability.NORMAL) as store,
        execute_stream(_asking_graph(), Counter(), store=store, thread_id="t") as run,
    ):
        await _until_waiting(run)
        code = await trio.to_thread.run_sync(main, ["runs", "resume", str(db), "t", "4"])
        shown = await trio.to_thread.run_sync(main, ["runs", "show", str(db), "t"])
        await run.handle.cancel()
    assert code == 1 and shown == 0
    out, err = capsys.readouterr()
    assert "thread 't' is being run by" in err and f":{os.getpid()}:" in err
    assert f"run by {socket.gethostname()}:{os.getpid()}:" in out and "lease expires in" in out
    assert await trio.to_thread.run_sync(main, ["runs", "show", str(db), "t", "--json"]) == 0
    assert '"running": null' in capsys.readouterr().out  # it ended


async def test_a_standby_takes_over_when_the_holder_ends(any_store: Store) -> None:
    store = any_store
    graph = _asking_graph()
    taken: list[Any] = []

    async def standby() -> None:
        taken.append(await resume(graph, "t", store=store, value=42, standby=True))

    async with execute_stream(graph, Counter(), store=store, thread_id="t") as run:
        await _until_waiting(run)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(standby)
            await trio.sleep(0.2)
            assert not taken  # waiting for the holder
            await run.handle.cancel()  # the holder ends (cancelled at its interrupt)
            async for _ in run:
                pass
    # The standby continued from the holder's last checkpoint and answered the interrupt.
    assert taken[0].state.n == 42 and taken[0].state.trail == ["ask", "done"]
    assert (await get_state(graph, "t", store=store)).status == "completed"


# -- losing the lease ------------------------------------------------------------------


async def _take_over(store: Store, clock: FakeClock, thread: str, ttl: float) -> None:
    """What another process does once this one's lease expired: take the thread."""
    clock.now += ttl + 1
    await store.acquire_lease(thread_resource(thread), "thief", 60)


def _three_steps(hook: Callable[[str], Awaitable[None]]) -> Any:
    """``first -> middle -> last``, each awaiting ``hook(its name)`` first."""

    def node(name: str) -> Callable[[Counter], Awaitable[dict[str, object]]]:
        async def run(state: Counter) -> dict[str, object]:
            await hook(name)
            return {"n": state.n + 1, "trail": [name]}

        return run

    b = counter_builder("three")
    for name in ("first", "middle", "last"):
        b.node(name, node(name))
    b.edge("first", "middle").edge("middle", "last")
    return b.start("first").end("last").build()


@pytest.mark.parametrize(
    ("where", "then", "written"),
    [
        ("middle", "return", [0, 1]),  # the step's checkpoint is refused
        ("last", "return", [0, 1, 2]),  # the completion checkpoint is refused
        ("last", "raise", [0, 1, 2]),  # the failure checkpoint is refused
    ],
)
async def test_a_run_whose_write_is_refused_stops_without_writing(
    where: str, then: str, written: list[int]
) -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    ran: list[str] = []
    thread = "t"

    async def hook(name: str) -> None:
        ran.append(name)
        if name == where:
            await _take_over(store, clock, thread, 30)
            if then == "raise":
                raise RuntimeError("after the takeover")

    graph = _three_steps(hook)
    async with execute_stream(
        graph, Counter(), store=store, policy=EVERY_STEP, trace_id="t"
    ) as run:
        events = [event async for event in run]
    assert isinstance(run.error, ThreadLeaseLost) and run.error.holder == "thief"
    assert isinstance(run.error.cause, LeaseLost) and run.error.__cause__ is run.error.cause
    assert "stopped without writing" in str(run.error)
    terminal = [e for e in events if isinstance(e, TERMINAL_EVENTS)]
    assert len(terminal) == 1 and isinstance(terminal[0], GraphLeaseLost)
    assert terminal[0].error is run.error and run.result is None and run.cancelled_at is None
    # Nothing written after the takeover; the lease stays the thief's (not released).
    assert [r.step for r in await stored_records(store, "t")] == written
    assert ran == ["first", "middle", "last"][: len(written)]
    assert await _lease_owner(store, "t") == "thief"
    # Without a stream, the run raises it.
    thread = "u"
    with pytest.raises(ThreadLeaseLost, match="thief"):
        await execute(graph, Counter(), store=store, policy=EVERY_STEP, trace_id="u")
    assert [r.step for r in await stored_records(store, "u")] == written


@each_backend
async def test_a_lost_lease_stops_a_running_node_at_once() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    after: list[str] = []
    started = anyio.Event()

    async def hook(name: str) -> None:
        if name == "middle":
            started.set()
            await anyio.sleep(60)  # a long call: cancelled by the loss
            after.append("middle went on")

    events: list[GraphEvent] = []
    with anyio.fail_after(10):
        async with (
            execute_stream(
                _three_steps(hook), Counter(), store=store, thread_id="t", lease_ttl=0.3
            ) as run,
            anyio.create_task_group() as tg,
        ):

            async def steal() -> None:
                await started.wait()
                await _take_over(store, clock, "t", 0.3)

            tg.start_soon(steal)
            events = [event async for event in run]
    assert not after and isinstance(events[-1], GraphLeaseLost)
    assert isinstance(run.error, ThreadLeaseLost) and run.error.holder == "thief"
    assert run.handle.state is ExecState.LEASE_LOST
    assert await _lease_owner(store, "t") == "thief"


@each_backend
async def test_a_run_waiting_at_an_interrupt_learns_of_the_loss_at_once() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    with anyio.fail_after(10):  # a run that never learns would wait for its value forever
        async with execute_stream(
            _asking_graph(), Counter(), store=store, thread_id="t", lease_ttl=0.3
        ) as run:
            async for event in run:
                if isinstance(event, InterruptWaiting):
                    await _take_over(store, clock, "t", 0.3)
                    break
            rest = [event async for event in run]
    assert [type(e) for e in rest] == [GraphLeaseLost]
    assert isinstance(run.error, ThreadLeaseLost) and run.error.holder == "thief"


@each_backend
async def test_a_value_sent_after_the_takeover_never_lands() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    with anyio.fail_after(10):
        async with execute_stream(
            _asking_graph(), Counter(), store=store, thread_id="t", lease_ttl=0.3
        ) as run:
            async for event in run:
                if isinstance(event, InterruptWaiting):
                    await _take_over(store, clock, "t", 0.3)
                    await run.handle.resume(1)
                    break
            rest = [event async for event in run]
    assert isinstance(rest[-1], GraphLeaseLost) and isinstance(run.error, ThreadLeaseLost)
    snapshot = await get_state(_asking_graph(), "t", store=store)
    assert snapshot.status == "waiting" and snapshot.state.n == 0 and snapshot.checkpoint == 1


async def test_a_subgraph_run_stops_with_its_parent() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    async def hook(name: str) -> None:
        if name == "middle":
            await _take_over(store, clock, "p", 30)

    inner = _three_steps(hook)
    b = counter_builder("outer")
    b.subgraph("sub", inner, enter=lambda s: Counter(), leave=lambda s, c: {"n": c.n})
    b.node("after", lambda s: {"trail": ["after"]}).edge("sub", "after")
    outer = b.start("sub").end("after").build()
    with pytest.raises(ThreadLeaseLost):
        await execute(outer, Counter(), store=store, policy=EVERY_STEP, thread_id="p")
    # The subgraph's "first" step was checkpointed by its parent; nothing after.
    assert [r.step for r in await stored_records(store, "p")] == [0, 0]


class UnreachableForRenewals(MemoryStore):
    """A store whose renewals fail (as when the database is briefly unreachable)."""

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        raise BackendError("renew_lease", "connection refused")


@each_backend
async def test_a_run_whose_renewals_keep_failing_stops_before_its_lease_expires() -> None:
    store = UnreachableForRenewals()
    after: list[str] = []

    async def hook(name: str) -> None:
        if name == "middle":
            await anyio.sleep(60)  # the lease would expire meanwhile
            after.append("middle went on")

    with anyio.fail_after(10):
        with pytest.raises(ThreadLeaseLost) as lost:
            await execute(
                _three_steps(hook),
                Counter(),
                store=store,
                policy=EVERY_STEP,
                thread_id="t",
                lease_ttl=0.3,
            )
    assert isinstance(lost.value.cause, BackendError) and lost.value.holder is None
    assert not after
    # Nobody took the thread over, so the token still matches: the run itself wrote
    # nothing after giving up (the input and "first" only) and released nothing.
    assert [r.step for r in await stored_records(store, "t")] == [0, 1]
    assert await _lease_owner(store, "t") not in (None, "")


@each_backend
async def test_nothing_is_written_once_the_lease_is_lost_not_even_a_step_in_hand() -> None:
    # The run is held up by a slow consumer in the middle of committing "first" while its
    # renewals fail past the TTL; its lease is then lost (though nobody took the thread
    # over, so the store would still take its token): it must not write that step.
    store = UnreachableForRenewals()
    events: list[GraphEvent] = []

    async def hook(name: str) -> None:
        pass

    with anyio.fail_after(10):
        async with execute_stream(
            _three_steps(hook),
            Counter(),
            store=store,
            policy=EVERY_STEP,
            thread_id="t",
            lease_ttl=0.3,
            buffer=0,
        ) as run:
            async for event in run:
                events.append(event)
                if isinstance(event, StateChanged):
                    await anyio.sleep(1.0)  # the run waits to send its next event
    assert isinstance(events[-1], GraphLeaseLost)
    assert [r.step for r in await stored_records(store, "t")] == [0]


class SlowAndUnreachable(UnreachableForRenewals):
    """Reads take longer than the lease lasts, and renewals fail meanwhile."""

    async def get(self, namespace: str, key: str) -> Versioned | None:
        await anyio.sleep(0.5)
        return await super().get(namespace, key)


@each_backend
async def test_a_lease_lost_while_the_thread_loads_ends_the_run_before_it_begins() -> None:
    store = SlowAndUnreachable()
    ran: list[str] = []

    async def hook(name: str) -> None:
        ran.append(name)

    with anyio.fail_after(10), pytest.raises(ThreadLeaseLost):
        await execute(_three_steps(hook), Counter(), store=store, policy=EVERY_STEP, lease_ttl=0.2)
    assert not ran and not await store.keys("fsmflow.graph.threads")


@each_backend
async def test_a_run_that_writes_only_at_its_end_stops_between_steps() -> None:
    # No every-step checkpoints: the loss, noticed while a step commits (a slow consumer
    # holds it up), stops the run before its next step, which never runs.
    store = UnreachableForRenewals()
    ran: list[str] = []

    async def hook(name: str) -> None:
        ran.append(name)

    events: list[GraphEvent] = []
    with anyio.fail_after(10):
        async with execute_stream(
            _three_steps(hook), Counter(), store=store, thread_id="t", lease_ttl=0.3, buffer=0
        ) as run:
            async for event in run:
                events.append(event)
                if isinstance(event, StateChanged):
                    await anyio.sleep(1.0)
    assert ran == ["first"] and isinstance(events[-1], GraphLeaseLost)
    assert not await stored_records(store, "t")


@pytest.mark.parametrize(
    "state", [ExecState.STARTING, ExecState.RUNNING, ExecState.AWAITING_DECISION]
)
async def test_every_active_state_turns_a_lost_lease_into_ownership_lost(
    state: ExecState,
) -> None:
    # Also when the wake-up could not be queued (a full channel): the flag decides.
    async def hook(name: str) -> None:
        raise AssertionError("no step runs once the lease is lost")

    options = RunOptions(store=MemoryStore())
    ctx: RunContext[Counter] = RunContext(_three_steps(hook), Counter(), options, "t")
    lost = LeaseLost("fsmflow.graph/t", 1, "thief", 2)
    ctx.lose(lost)
    directive = await GraphExecution(ctx).dispatch_state(state, ctx)
    assert directive == Trigger(OwnershipLost(lost))


async def test_a_run_that_never_wrote_ends_normally_after_a_takeover() -> None:
    # Nothing to protect: a run with no checkpoint before its end whose lease was taken
    # over (unnoticed: renewals are far off) completes; giving the lease up finds it gone.
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    async def hook(name: str) -> None:
        if name == "middle":
            await _take_over(store, clock, "t", 30)

    quiet = CheckpointPolicy(on_completion=False)
    result = await execute(_three_steps(hook), Counter(), store=store, policy=quiet, thread_id="t")
    assert result.state.trail == ["first", "middle", "last"]
    assert await _lease_owner(store, "t") == "thief"


class ReleaseFails(MemoryStore):
    """A store whose lease releases fail (once)."""

    failed = False

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        if not self.failed and any(isinstance(op, ReleaseLease) for op in ops):
            self.failed = True
            raise BackendError("write_batch", "disk I/O error")
        return await super().write_batch(ops, fence=fence)


async def test_a_release_that_fails_is_tried_again_when_the_run_is_left() -> None:
    store = ReleaseFails()

    async def hook(name: str) -> None:
        pass

    quiet = CheckpointPolicy(on_completion=False)
    await execute(_three_steps(hook), Counter(), store=store, policy=quiet, thread_id="t")
    assert store.failed and await _lease_owner(store, "t") == ""


async def test_a_lease_error_of_the_callers_own_is_not_mistaken_for_the_threads() -> None:
    store = MemoryStore()
    await store.acquire_lease("elsewhere", "someone", 30)
    # (What the block raises comes out of the stream's task group, as without a store.)
    with pytest.RaisesGroup(LeaseHeld):
        async with execute_stream(_asking_graph(), Counter(), store=store, thread_id="t"):
            await store.acquire_lease("elsewhere", "me", 30)
    assert await _lease_owner(store, "t") == ""
