"""``LATEST`` reactors: the seed's reactor tests, criteria, coalescing, manual commands,
and graph errors that never stop the reactor."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from fsmflow.reactor import (
    Completed,
    Criteria,
    InputCache,
    Live,
    PassThrough,
    Paused,
    PushAccumulator,
    Reactor,
    ReactorHandle,
    Source,
    start_reactor,
)

from ._support import LIMITS, NUMBERS, PRICES, Limit, Price, Recorder, is_live, settle, stop


async def start(
    nursery: trio.Nursery, graph: Recorder, *accumulators: PushAccumulator[Any, Any], **kw: Any
) -> ReactorHandle[int]:
    handle = await start_reactor(nursery, Reactor("r", graph, accumulators=accumulators, **kw))
    await handle.wait_for(is_live)
    return handle


# -- the seed's tests -------------------------------------------------------------------


async def test_reactor_fires_on_boundary() -> None:
    graph = Recorder()
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, numbers)
        await numbers.push(42)
        await settle()
        assert graph.values(NUMBERS) == [42]
        assert handle.get_state().firings == 1
        await stop(handle)


async def test_reactor_manual_force_fire() -> None:
    graph = Recorder()
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph)
        await handle.force_fire()
        await settle()
        assert len(graph.snapshots) == 1
        assert len(graph.snapshots[0]) == 0, "fired with the (empty) cache"
        await stop(handle)


async def test_reactor_cache_snapshot_isolation() -> None:
    graph = Recorder()
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, numbers)
        await numbers.push(1)
        await settle()
        captured = graph.snapshots[0]
        await numbers.push(2)
        await settle()
        assert captured[NUMBERS] == 1, "a snapshot never changes after the firing"
        assert graph.snapshots[1][NUMBERS] == 2
        assert handle.get_state().cache[NUMBERS] == 2
        await stop(handle)


# -- criteria ---------------------------------------------------------------------------


async def test_when_all_waits_for_every_source_each_time() -> None:
    graph = Recorder()
    prices = PushAccumulator(PRICES, PassThrough[Price]())
    limits = PushAccumulator(LIMITS, PassThrough[Limit]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, prices, limits, criteria=Criteria.WHEN_ALL)
        await prices.push(Price("A", 1.0))
        await prices.push(Price("A", 2.0))
        await settle()
        assert graph.snapshots == [], "limits has not delivered yet"
        assert handle.get_state().dirty == {"prices"}
        await limits.push(Limit(3.0))
        await settle()
        assert len(graph.snapshots) == 1
        first = graph.snapshots[0]
        assert first[PRICES] == Price("A", 2.0) and first[LIMITS] == Limit(3.0)
        assert first.updated(PRICES) and first.updated(LIMITS)
        await limits.push(Limit(4.0))
        await settle()
        assert len(graph.snapshots) == 1, "prices has nothing new since the firing"
        await prices.push(Price("A", 5.0))
        await settle()
        assert len(graph.snapshots) == 2
        assert graph.snapshots[1][LIMITS] == Limit(4.0)
        await stop(handle)


async def test_when_any_fires_on_each_source() -> None:
    graph = Recorder()
    prices = PushAccumulator(PRICES, PassThrough[Price]())
    limits = PushAccumulator(LIMITS, PassThrough[Limit]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, prices, limits)
        await limits.push(Limit(1.0))
        await settle()
        await prices.push(Price("B", 2.0))
        await settle()
        assert [s.get(PRICES) for s in graph.snapshots] == [None, Price("B", 2.0)]
        assert [s.updated(PRICES) for s in graph.snapshots] == [False, True]
        await stop(handle)


# -- coalescing and bursts --------------------------------------------------------------


async def test_boundaries_arriving_during_a_firing_coalesce() -> None:
    graph = Recorder()
    graph.block = True
    async with trio.open_nursery() as nursery:
        reactor = Reactor("r", graph, accumulators=[PushAccumulator(NUMBERS, PassThrough[int]())])
        handle = await start_reactor(nursery, reactor)
        await handle.send_boundary(NUMBERS, 1)
        await graph.entered.wait()
        for value in (2, 3, 4):
            handle.send_boundary_nowait(NUMBERS, value)
        graph.block = False
        graph.release.set()
        await settle()
        assert graph.values(NUMBERS) == [1, 4], "newest wins, one firing for the three"
        await stop(handle)


async def test_max_burst_bounds_the_boundaries_taken_between_firings() -> None:
    graph = Recorder()
    graph.block = True
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, numbers, max_burst=2)
        handle.send_boundary_nowait(NUMBERS, 1)
        await graph.entered.wait()
        for value in range(2, 7):
            handle.send_boundary_nowait(NUMBERS, value)
        graph.block = False
        graph.release.set()
        await settle()
        assert graph.values(NUMBERS) == [1, 3, 5, 6]
        await stop(handle)


# -- manual commands --------------------------------------------------------------------


async def test_pause_keeps_accepting_and_resume_fires_with_the_newest() -> None:
    graph = Recorder()
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, numbers)
        await handle.resume()  # not paused: nothing happens
        await handle.pause()
        await handle.pause()  # already paused: nothing happens
        for value in (1, 2, 3):
            await numbers.push(value)
        await handle.force_fire()
        await settle()
        assert handle.state == Paused(Live()) and handle.paused
        assert handle.health == Live()
        assert graph.snapshots == []
        snapshot = handle.get_state()
        assert snapshot.paused and snapshot.cache[NUMBERS] == 3 and snapshot.dirty == {"numbers"}
        await handle.resume()
        await settle()
        assert handle.health == Live() and not handle.paused
        assert graph.values(NUMBERS) == [3], "the forced firing and the dirty flag fire once"
        await numbers.push(4)
        await settle()
        assert graph.values(NUMBERS) == [3, 4]
        await stop(handle)


async def test_fire_with_replaces_the_cache_and_fires() -> None:
    graph = Recorder()
    prices = PushAccumulator(PRICES, PassThrough[Price]())
    limits = PushAccumulator(LIMITS, PassThrough[Limit]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, prices, limits)
        await prices.push(Price("A", 1.0))
        await settle()
        await handle.fire_with({LIMITS: Limit(9.0)})
        await settle()
        injected = graph.snapshots[-1]
        assert injected.as_dict() == {"limits": Limit(9.0)}
        assert handle.get_state().cache.as_dict() == {"limits": Limit(9.0)}
        with pytest.raises(KeyError, match="not a source"):
            await handle.fire_with({NUMBERS: 1})
        with pytest.raises(TypeError, match="must be a Limit"):
            await handle.fire_with({LIMITS: Price("A", 1.0)})
        with pytest.raises(KeyError, match="not a source"):
            await handle.send_boundary(Source("limits", float), 1.0)
        await stop(handle)


# -- graph errors never stop the reactor ------------------------------------------------


@pytest.mark.parametrize("error_result", [False, True])
async def test_graph_errors_are_recorded_and_the_reactor_carries_on(error_result: bool) -> None:
    graph = Recorder()
    graph.fail = lambda cache: cache[NUMBERS] == 2
    graph.error_result = error_result
    numbers = PushAccumulator(NUMBERS, PassThrough[int]())
    async with trio.open_nursery() as nursery:
        handle = await start(nursery, graph, numbers)
        for value in (1, 2, 3):
            await numbers.push(value)
            await settle()
        state = handle.get_state()
        assert graph.values(NUMBERS) == [1, 2, 3]
        assert (state.firings, state.failed_firings) == (2, 1)
        assert state.last_error is not None and "2}" in state.last_error
        assert state.last_outputs == 3
        assert handle.state == Live()
        await stop(handle)


async def test_a_graph_returning_something_else_is_a_failed_firing() -> None:
    async def sloppy(cache: InputCache) -> Any:
        return 42

    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("r", sloppy))
        await handle.force_fire()
        await settle()
        state = handle.get_state()
        assert state.failed_firings == 1 and state.last_error is not None
        assert "not Completed(...) or GraphError(...)" in state.last_error
        outcome = await handle.shutdown()
        assert outcome.final_state.__class__.__name__ == "Stopped"


async def test_completed_outputs_are_typed(autojump_clock: MockClock) -> None:
    async def total(cache: InputCache) -> Completed[float]:
        return Completed(sum(p.value for p in [cache.get(PRICES)] if p is not None))

    prices = PushAccumulator(PRICES, PassThrough[Price]())
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("typed", total, accumulators=[prices]))
        await prices.push(Price("A", 2.5))
        await settle()
        outputs: float | None = handle.get_state().last_outputs
        assert outputs == 2.5
        await handle.shutdown()
