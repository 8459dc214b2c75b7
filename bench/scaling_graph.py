"""Scaling cases of the graph executor: a step costs what it writes, a restore what it
restores.

- *graph step, state of N keys*: 2,000 steps of a loop that updates one key of a
  ``TypedDict`` state with 10 and with 20,000 keys, no store. The run builds its own copy
  of the state once and updates it in place, so the size of the state does not matter.
- *append reducer, 1,000 steps ending at step N*: one run of 8,000 steps appending one
  item per step; the time of its first 1,000 steps against its last 1,000 (the list is
  extended in place, never copied).
- *load_run after N checkpointed steps*: restoring the newest checkpoint of a thread
  that checkpointed every step (history kept whole, ``keep=None``) — 1,000 against 20,000
  steps. Loading reads the head, at most ``compact_after`` records past it and one chain.

Run through ``python bench/bench_scaling.py -k graph``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

import attrs
import trio
from _scaling import ScalingCase

from fsmflow.graph import CheckpointPolicy, Graph, GraphBuilder, append, execute, load_run
from fsmflow.store import Durability, SqliteStore

STEPS = 2_000


def _wide_state(keys: int) -> Any:
    fields = {"n": int, **{f"k{i}": int for i in range(keys - 1)}}
    return TypedDict(f"Wide{keys}", fields)  # type: ignore[operator]


def _wide_graph(keys: int) -> tuple[Graph[Any], dict[str, int]]:
    state_type = _wide_state(keys)

    def step(state: Any) -> dict[str, int]:
        return {"n": state["n"] + 1}

    b = GraphBuilder(state_type, name="wide").node("step", step).node("end", lambda s: None)
    b.edge("step", "step", when=lambda s: s["n"] < STEPS).edge("step", "end")
    initial = {"n": 0, **{f"k{i}": i for i in range(keys - 1)}}
    return b.start("step").end("end").build(), initial


def wide_step(keys: int) -> float:
    graph, initial = _wide_graph(keys)

    async def timed() -> float:
        start = time.perf_counter()
        result = await execute(graph, initial, max_steps=STEPS + 10)
        elapsed = time.perf_counter() - start
        assert result.state["n"] == STEPS and len(result.state) == keys
        assert initial["n"] == 0  # the caller's state was not changed
        return elapsed

    return trio.run(timed)


@attrs.frozen
class Log:
    n: int = 0
    items: list[int] = attrs.field(factory=list)


WINDOW = 1_000


def appending(steps: int) -> float:
    """Seconds of steps ``steps - WINDOW + 1 .. steps`` of a run of ``steps`` steps."""
    marks: dict[int, float] = {}

    def add_one(state: Log) -> dict[str, Any]:
        n = state.n + 1
        if n in (steps - WINDOW, steps):
            marks[n] = time.perf_counter()
        return {"n": n, "items": [n]}

    b = GraphBuilder(Log, name="log", reducers={"items": append})
    b.node("add", add_one).node("end", lambda s: None)
    b.edge("add", "add", when=lambda s: s.n < steps).edge("add", "end")
    graph = b.start("add").end("end").build()
    start = time.perf_counter()

    async def run() -> None:
        result = await execute(graph, Log(), max_steps=steps + 10)
        assert len(result.state.items) == steps and result.state.items[-1] == steps

    trio.run(run)
    first = marks.get(steps - WINDOW, start)
    return marks[steps] - first


_STORES: dict[int, Path] = {}
_TMP = tempfile.TemporaryDirectory()


def _loop(limit: int) -> Graph[Log]:
    b = GraphBuilder(Log, name="loop", reducers={"items": append})
    b.node("a", lambda s: {"n": s.n + 1, "items": [s.n]}).node("end", lambda s: None)
    b.edge("a", "a", when=lambda s: s.n < limit).edge("a", "end")
    return b.start("a").end("end").build()


def loading(steps: int) -> float:
    """Seconds to load the newest checkpoint of a run that checkpointed ``steps`` steps
    (the store is prepared once per size, untimed)."""
    graph = _loop(steps)
    path = _STORES.get(steps)
    if path is None:
        path = Path(_TMP.name) / f"load{steps}.sqlite3"

        async def prepare() -> None:
            policy = CheckpointPolicy(every_step=True, keep=None, on_completion=False)
            async with await SqliteStore.open(path, durability=Durability.OFF) as store:
                await execute(
                    graph, Log(), store=store, policy=policy, thread_id="t",
                    max_steps=steps + 10,
                )  # fmt: skip

        trio.run(prepare)
        _STORES[steps] = path

    async def timed() -> float:
        async with await SqliteStore.open(path) as store:
            start = time.perf_counter()
            for _ in range(20):
                restored = await load_run(store, graph, "t")
            elapsed = time.perf_counter() - start
        assert restored.step == steps and len(restored.state.items) == steps
        return elapsed

    return trio.run(timed)


CASES = [
    ScalingCase("graph step, TypedDict state", "keys", 10, 20_000, 3.0, wide_step),
    ScalingCase(
        "graph append reducer, 1,000 steps ending at step", "steps", WINDOW, 8_000, 1.5, appending
    ),
    ScalingCase("graph load_run after checkpointed steps", "steps", 1_000, 20_000, 3.0, loading),
]
