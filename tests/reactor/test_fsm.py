"""The reactor's FSM as data: its spec, its health rules, its diagram, and the reactor
as a supervisor (``run()``, failures of its own, configuration errors)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from fsmflow.diagrams import to_mermaid
from fsmflow.reactor import (
    AccumulatorHealth,
    Degraded,
    InputStrategy,
    Live,
    PassThrough,
    PushAccumulator,
    Reactor,
    RetryPolicy,
    Stopped,
    Warming,
    reactor_spec,
    start_reactor,
)
from fsmflow.reactor._health import HealthTally
from fsmflow.store import BatchOp, MemoryStore, StoreError
from fsmflow.supervisor import ExitKind

from ._support import NUMBERS, Recorder, is_live, settle, until

H = AccumulatorHealth


def test_the_spec_is_strict_and_names_every_state() -> None:
    spec = Reactor.fsm_spec()
    assert spec is reactor_spec() and spec.strict
    assert spec.state_names() == ("Starting", "Warming", "Live", "Degraded", "Paused", "Stopped")


def test_the_diagram_draws_the_health_transitions() -> None:
    text = to_mermaid(reactor_spec())
    for edge in (
        "Starting --> Warming: StoreRestored",
        "Warming --> Live: HealthChanged",
        "Live --> Degraded: HealthChanged",
        "Degraded --> Live: HealthChanged",
        "Paused --> Live: Resume",
        "Live --> Stopped: Shutdown",
    ):
        assert edge in text
    assert "any state" not in text, "every handler declares its targets"


@pytest.mark.parametrize(
    ("healths", "warming", "expected"),
    [
        ({}, True, Live()),
        ({"a": H.STARTING, "b": H.PUSH_ONLY}, True, Warming(1, 1)),
        ({"a": H.LIVE, "b": H.STOPPED}, True, Live()),
        ({"a": H.DISCONNECTED}, True, Warming(0, 1)),
        ({"a": H.LIVE, "b": H.DISCONNECTED}, False, Degraded(("b",))),
        ({"a": H.STARTING, "b": H.STOPPED}, False, Degraded(("a",))),
        ({"a": H.PUSH_ONLY, "b": H.STOPPED}, False, Live()),
    ],
)
def test_health_rules(healths: dict[str, H], warming: bool, expected: object) -> None:
    tally = HealthTally(healths)
    for source, health in healths.items():
        tally.record(source, health)
    assert tally.derive(warming) == expected
    # Deriving "as if" one more change happened agrees with recording it.
    for source in healths:
        for health in H:
            preview = tally.derive(warming, source, health)
            scratch = HealthTally(healths)
            for name, recorded in tally.healths.items():
                scratch.record(name, recorded)
            scratch.record(source, health)
            assert preview == scratch.derive(warming), (source, health)


def test_degraded_names_the_sources_in_the_order_they_went_down() -> None:
    tally = HealthTally(["a", "b", "c"])
    for name in ("a", "b", "c"):
        tally.record(name, H.LIVE)
    assert tally.derive(False) == Live()
    tally.record("c", H.DISCONNECTED)
    tally.record("a", H.DISCONNECTED)
    assert tally.derive(False) == Degraded(("c", "a"))
    assert tally.derive(False, "c", H.LIVE) == Degraded(("a",))
    assert tally.derive(False, "b", H.STARTING) == Degraded(("c", "a", "b"))
    tally.record("c", H.LIVE)
    tally.record("a", H.STOPPED)
    assert tally.derive(False) == Live()


async def test_run_serves_until_cancelled(autojump_clock: MockClock) -> None:
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    graph = Recorder()
    reactor = Reactor("served", graph, accumulators=[numbers])
    with trio.move_on_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reactor.run)
            await until(lambda: numbers.health.current() is H.PUSH_ONLY)
            await numbers.push(1)
            await until(lambda: len(graph.snapshots) == 1)
            nursery.cancel_scope.cancel()
    assert reactor.last_outcome is not None
    assert reactor.last_outcome.exit is ExitKind.CANCELLED
    assert numbers.health.current() is H.STOPPED
    with pytest.raises(ValueError, match="takes no state or context"):
        await reactor.run(Live())


async def test_a_reactor_serves_one_run_at_a_time() -> None:
    reactor = Reactor("once", Recorder())
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        with pytest.raises(RuntimeError, match="already running"):
            await start_reactor(nursery, reactor)
        assert handle.state == Live(), "the running one is unaffected"
        await handle.shutdown()
        again = await start_reactor(nursery, reactor)
        await again.shutdown()


class BrokenStore(MemoryStore):
    """A store whose batches fail while ``broken``."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.refusals: list[float] = []

    async def write_batch(self, ops: Sequence[BatchOp], **options: Any) -> list[int | bool | None]:
        if self.broken:
            self.refusals.append(trio.current_time())
            raise StoreError("disk full")
        return await super().write_batch(ops, **options)


async def test_store_failures_are_retried_with_backoff(autojump_clock: MockClock) -> None:
    store = BrokenStore()
    graph = Recorder()
    reactor = Reactor(
        "r",
        graph,
        accumulators=[PushAccumulator(NUMBERS, PassThrough[int]())],
        strategy=InputStrategy.SEQUENTIAL,
        store=store,
        retry=RetryPolicy(initial_delay=1.0, max_delay=4.0),
    )
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(is_live)
        await handle.pause()
        await handle.send_boundary(NUMBERS, 1)
        await until(lambda: handle.get_state().pending == 1)
        store.broken = True
        await handle.send_boundary(NUMBERS, 2)
        await handle.resume()
        await trio.sleep(0.5)
        state = handle.get_state()
        assert state.last_error is not None and "disk full" in state.last_error
        assert (state.pending, state.staged) == (1, 1), "2 stays staged until its append commits"
        assert handle.state == Live(), "the reactor's own failures do not stop it"
        await trio.sleep(10)
        gaps = [round(b - a, 6) for a, b in itertools.pairwise(store.refusals)]
        assert gaps == [1.0, 2.0, 4.0], "retried after growing delays, capped at max_delay"
        assert graph.snapshots == [], "the append comes first; nothing fires meanwhile"
        store.broken = False
        await until(lambda: handle.get_state().pending == 0 and len(graph.snapshots) == 2)
        assert graph.values(NUMBERS) == [1, 2]
        assert handle.get_state().cache[NUMBERS] == 2
        await handle.shutdown()


async def test_shutdown_during_startup_and_after_stopping(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", Recorder()))
        assert (await handle.shutdown()).final_state == Stopped()
        assert (await handle.shutdown()).final_state == Stopped(), "idempotent"
        assert handle.done


async def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        Reactor("r", Recorder(), capacity=0)
    with pytest.raises(ValueError, match="max_pending must be >= 1"):
        Reactor("r", Recorder(), max_pending=0)
    with pytest.raises(ValueError, match="max_burst must be >= 1"):
        Reactor("r", Recorder(), max_burst=0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    assert RetryPolicy(initial_delay=1, factor=3, max_delay=5).delay(3) == 5


async def test_the_closed_channel_shuts_the_reactor_down() -> None:
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", Recorder()))
        handle._supervisor.close_events()
        handle._ctx.close()
        outcome = await handle.outcome()
        assert outcome.exit is ExitKind.TERMINATED and outcome.final_state == Stopped()
        await settle()
