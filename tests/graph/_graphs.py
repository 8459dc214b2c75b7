"""Graphs and states shared by the graph executor's tests (and its kill child)."""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable
from typing import TypedDict, TypeVar

import attrs
import trio

from fsmflow.graph import (
    CheckpointRecord,
    Graph,
    GraphBuilder,
    StateValues,
    StreamMode,
    add,
    append,
    execute_stream,
    merge,
)
from fsmflow.store import Codec, Store

S = TypeVar("S")


@attrs.frozen
class Counter:
    """A small attrs state: a counter, a trail of visited nodes, and notes."""

    n: int = 0
    trail: list[str] = attrs.field(factory=list)
    notes: dict[str, str] = attrs.field(factory=dict)
    total: int = 0


def counter_builder(name: str = "counter") -> GraphBuilder[Counter]:
    return GraphBuilder(
        Counter, name=name, reducers={"trail": append, "notes": merge, "total": add}
    )


def loop_graph(limit: int, name: str = "loop", delay: float = 0.0) -> Graph[Counter]:
    """``tick -> tock -> tick ...`` until ``n`` reaches ``limit``, then ``done``.

    Each step's delta depends on the state, so a resumed run that restored a wrong state
    ends with a different final state. With ``delay``, ``tick`` sleeps that long (the
    structure, and so the hash, stays the same)."""

    async def tick(state: Counter) -> dict[str, object]:
        if delay:
            await trio.sleep(delay)
        return {"n": state.n + 1, "trail": ["tick"], "total": state.n * 3 + 1}

    def tock(state: Counter) -> dict[str, object]:
        return {"trail": ["tock"], "notes": {f"k{state.n % 4}": f"v{state.n}"}}

    def done(state: Counter) -> dict[str, object]:
        return {"trail": ["done"]}

    def again(state: Counter) -> bool:
        return state.n < limit

    b = counter_builder(name)
    b.node("tick", tick).node("tock", tock).node("done", done)
    b.edge("tick", "tock").edge("tock", "tick", when=again).edge("tock", "done")
    return b.start("tick").end("done").build()


class Doc(TypedDict):
    """A TypedDict state."""

    text: str
    words: list[str]
    count: int


async def stored_records(store: Store, thread_id: str) -> list[CheckpointRecord]:
    """Every checkpoint record the thread keeps, oldest first."""
    codec = Codec().register(CheckpointRecord)
    namespace = f"fsmflow.graph/{thread_id}"
    out: list[CheckpointRecord] = []
    for key in await store.keys(namespace):
        if key.startswith("c"):
            raw = await store.get(namespace, key)
            assert raw is not None
            out.append(codec.decode(raw.value, CheckpointRecord, key))
    return out


async def states_by_step(graph: Graph[S], state: S) -> list[S]:
    """The state before the first step and after every step of an uninterrupted run."""
    states: list[S] = []
    async with execute_stream(graph, state, stream_mode=StreamMode.VALUES) as run:
        async for event in run:
            if isinstance(event, StateValues):
                states.append(copy.deepcopy(event.state))
    assert run.result is not None, run.error
    return states


@attrs.frozen
class Item:
    """A fan-out input of :func:`kill_graph`."""

    index: int


def kill_graph(
    limit: int,
    delay: float = 0.0,
    effect: Callable[[int], None] | None = None,
    before: Callable[[int], Awaitable[None]] | None = None,
    blocking: bool = False,
) -> Graph[Counter]:
    """A loop whose steps write several deltas each, through every reducer: ``tick``,
    then a parallel node of three branches, then a fan-out over 1-3 items, then back to
    ``tick`` until ``n`` reaches ``limit``. A restore that loses any delta of a step ends
    in a different state. ``tick`` awaits ``before(n)``, sleeps ``delay`` (``blocking``:
    without yielding, as a busy process would), then calls ``effect(n)``: the side
    effect tests count."""

    async def tick(state: Counter) -> dict[str, object]:
        if before is not None:
            await before(state.n)
        if blocking:
            time.sleep(delay)  # noqa: ASYNC251  (on purpose: a busy, unresponsive process)
        elif delay:
            await trio.sleep(delay)
        if effect is not None:
            effect(state.n)
        return {"n": state.n + 1, "trail": [f"t{state.n}"]}

    def branch_a(state: Counter) -> dict[str, object]:
        return {"trail": [f"a{state.n}"], "total": state.n}

    def branch_b(state: Counter) -> dict[str, object]:
        return {"notes": {f"k{state.n % 5}": f"b{state.n}"}, "total": 2}

    def branch_c(state: Counter) -> dict[str, object]:
        return {"trail": [f"c{len(state.trail)}"]}

    def square(item: Item) -> dict[str, object]:
        return {"total": item.index * item.index, "trail": [f"s{item.index}"]}

    def items(state: Counter) -> list[Item]:
        return [Item(i) for i in range(state.n % 3 + 1)]

    def again(state: Counter) -> bool:
        return state.n < limit

    b = counter_builder("kill")
    b.node("tick", tick).parallel("par", {"a": branch_a, "b": branch_b, "c": branch_c})
    b.node("square", square, input=Item).node("done", lambda s: {"trail": ["done"]})
    b.edge("tick", "par").fan_out("par", "square", items)
    b.edge("square", "tick", when=again).edge("square", "done")
    return b.start("tick").end("done").build()
