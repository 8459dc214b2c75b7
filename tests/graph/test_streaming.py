"""Stream modes: values, updates, debug and custom events, with backpressure."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from fsmflow.graph import (
    BarrierWaiting,
    CustomEvent,
    GraphCompleted,
    GraphStarted,
    NodeStarted,
    StateValues,
    StepUpdates,
    StreamMode,
    execute_stream,
    stream_writer,
)

from ._graphs import Counter, counter_builder, loop_graph


async def test_values_mode_streams_the_whole_state_after_every_step() -> None:
    async with execute_stream(loop_graph(2), Counter(), stream_mode=StreamMode.VALUES) as run:
        events = [e async for e in run]
    values = [e for e in events if isinstance(e, StateValues)]
    assert [v.step for v in values] == list(range(6))
    assert values[0].state == Counter() and values[-1].state == run.result.state  # type: ignore[union-attr]
    assert values[2].state.trail == ["tick", "tock"]
    assert values[1].state.trail == ["tick"]  # handed out: never changed afterwards
    assert isinstance(events[-1], GraphCompleted) and len(events) == len(values) + 1


async def test_updates_mode_streams_what_each_step_wrote() -> None:
    b = counter_builder().parallel("fan", {"a": lambda s: {"n": 1}, "b": lambda s: None})
    graph = b.node("end", lambda s: {"trail": ["end"]}).edge("fan", "end")
    async with execute_stream(
        graph.start("fan").end("end").build(), Counter(), stream_mode=[StreamMode.UPDATES]
    ) as run:
        updates = [(e.node, e.updates) async for e in run if isinstance(e, StepUpdates)]
    assert updates == [("fan", (("a", {"n": 1}), ("b", {}))), ("end", (("", {"trail": ["end"]}),))]


async def test_custom_events_come_with_backpressure() -> None:
    produced: list[int] = []

    async def talk(state: Counter) -> None:
        write = stream_writer()
        for i in range(20):
            produced.append(i)
            await write({"token": i})

    graph = counter_builder().node("talk", talk).start("talk").end("talk").build()
    async with execute_stream(graph, Counter(), buffer=2, stream_mode=StreamMode.CUSTOM) as run:
        await trio.testing.wait_all_tasks_blocked()
        assert len(produced) <= 3  # the writer waits for the consumer
        data = [e.data["token"] async for e in run if isinstance(e, CustomEvent)]
    assert data == list(range(20))


async def test_steering_events_come_whatever_the_mode() -> None:
    b = counter_builder().node("a", lambda s: None).barrier("gate").node("end", lambda s: None)
    graph = b.edge("a", "gate").edge("gate", "end").start("a").end("end").build()
    async with execute_stream(graph, Counter(), stream_mode=StreamMode.VALUES) as run:
        kinds: list[str] = []
        async for event in run:
            kinds.append(type(event).__name__)
            if isinstance(event, BarrierWaiting):
                await run.handle.approve(event.barrier_id)
    assert "BarrierWaiting" in kinds and kinds[-1] == "GraphCompleted"
    assert "NodeStarted" not in kinds and "GraphStarted" not in kinds

    def nothing(events: list[Any]) -> bool:
        return not any(isinstance(e, NodeStarted | GraphStarted) for e in events)

    async with execute_stream(loop_graph(1), Counter(), stream_mode=()) as run:
        events = [e async for e in run]
    assert nothing(events) and [type(e).__name__ for e in events] == ["GraphCompleted"]
