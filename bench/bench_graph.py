"""Graph executor benchmark: fsmflow.graph against LangGraph, side by side in one run.

* **loop**: a 2-node loop (``a`` increments a counter, ``b`` routes back to ``a``) run for
  2 000 steps; steps per second with no checkpoints, with a checkpoint after every step in
  memory, and with a checkpoint after every step in SQLite (fsmflow at SQLite's ``NORMAL``
  and ``FULL`` durability; LangGraph's ``SqliteSaver`` with its own settings).
* **fan-out**: one node fans out to 100 branches whose results are joined by an append
  reducer; wall time per fan-out-and-join (no checkpoints).

``python bench/bench_graph.py [--quick] [--repeats N] [--json PATH]``. Every contestant
runs in the same process, in interleaved rounds (see ``_common``); ratios are what to
read, absolute figures depend on the machine.
"""

from __future__ import annotations

import operator
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import attrs
import trio
from _common import (
    Measurement,
    Runner,
    environment,
    format_table,
    measure_rounds,
    parse_settings,
    write_json,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from fsmflow.graph import CheckpointPolicy, Graph, GraphBuilder, append, execute
from fsmflow.store import CheckpointStore, Durability, MemoryStore, SqliteStore

LOOP_STEPS = 2000
FAN_OUT = 100
FAN_OUTS = 20
EVERY_STEP = CheckpointPolicy(every_step=True)

# -- fsmflow -----------------------------------------------------------------------------


@attrs.frozen
class Loop:
    n: int = 0


def fsmflow_loop(limit: int) -> Graph[Loop]:
    def a(state: Loop) -> dict[str, int]:
        return {"n": state.n + 1}

    def b(state: Loop) -> None:
        return None

    builder = GraphBuilder(Loop, name="loop").node("a", a).node("b", b).node("end", b)
    builder.edge("a", "b").edge("b", "a", when=lambda s: s.n < limit).edge("b", "end")
    return builder.start("a").end("end").build()


@attrs.frozen
class Fan:
    results: list[int] = attrs.field(factory=list)


def fsmflow_fan_out() -> Graph[Fan]:
    def branch(i: int) -> Callable[[Fan], dict[str, list[int]]]:
        return lambda state: {"results": [i]}

    builder = GraphBuilder(Fan, name="fan", reducers={"results": append})
    builder.parallel("fan", {f"b{i}": branch(i) for i in range(FAN_OUT)})
    builder.node("join", lambda s: None).edge("fan", "join")
    return builder.start("fan").end("join").build()


def fsmflow_loop_runner(store_kind: str | None) -> Runner:
    def run(operations: int, warmup: int) -> float:
        async def timed() -> float:
            with tempfile.TemporaryDirectory() as tmp:
                durability = Durability.FULL if store_kind == "sqlite-full" else Durability.NORMAL
                sqlite = None
                if store_kind is not None and store_kind.startswith("sqlite"):
                    sqlite = await SqliteStore.open(
                        os.path.join(tmp, "g.sqlite3"), durability=durability
                    )

                async def body(steps: int) -> None:
                    store: CheckpointStore | None = sqlite
                    if store_kind == "memory":
                        store = MemoryStore()
                    graph = fsmflow_loop(steps // 2)
                    policy = EVERY_STEP if store is not None else None
                    result = await execute(
                        graph, Loop(), store=store, policy=policy, max_steps=steps + 10
                    )
                    assert result.state.n == steps // 2

                await body(warmup)
                start = time.perf_counter()
                await body(operations)
                elapsed = time.perf_counter() - start
                if sqlite is not None:
                    await sqlite.aclose()
                return elapsed

        return trio.run(timed)

    return run


def fsmflow_fan_out_runner(operations: int, warmup: int) -> float:
    graph = fsmflow_fan_out()

    async def body(count: int) -> None:
        for _ in range(count):
            result = await execute(graph, Fan())
            assert len(result.state.results) == FAN_OUT

    async def timed() -> float:
        await body(warmup)
        start = time.perf_counter()
        await body(operations)
        return time.perf_counter() - start

    return trio.run(timed)


# -- LangGraph ---------------------------------------------------------------------------


class LoopState(TypedDict):
    n: int


def langgraph_loop(limit: int, checkpointer: Any) -> Any:
    def a(state: LoopState) -> dict[str, int]:
        return {"n": state["n"] + 1}

    def b(state: LoopState) -> dict[str, int]:
        return {}

    graph = StateGraph(LoopState)
    graph.add_node("a", a)
    graph.add_node("b", b)
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_conditional_edges("b", lambda s: "a" if s["n"] < limit else END)
    return graph.compile(checkpointer=checkpointer)


class FanState(TypedDict):
    results: Annotated[list[int], operator.add]


def langgraph_fan_out() -> Any:
    graph = StateGraph(FanState)
    graph.add_node("fan", lambda s: {})
    graph.add_node("join", lambda s: {})
    graph.add_edge(START, "fan")
    for i in range(FAN_OUT):

        def branch(state: FanState, i: int = i) -> dict[str, list[int]]:
            return {"results": [i]}

        graph.add_node(f"b{i}", branch)
        graph.add_edge("fan", f"b{i}")
        graph.add_edge(f"b{i}", "join")
    graph.add_edge("join", END)
    return graph.compile()


def langgraph_loop_runner(saver: str | None) -> Runner:
    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            connection = None
            threads = iter(range(1_000_000))

            def body(steps: int) -> None:
                nonlocal connection
                checkpointer: Any = None
                if saver == "memory":
                    checkpointer = InMemorySaver()
                elif saver == "sqlite":
                    if connection is None:
                        path = os.path.join(tmp, "lg.sqlite3")
                        connection = sqlite3.connect(path, check_same_thread=False)
                    checkpointer = SqliteSaver(connection)
                app = langgraph_loop(steps // 2, checkpointer)
                config = {
                    "recursion_limit": steps + 10,
                    "configurable": {"thread_id": f"t{next(threads)}"},
                }
                result = app.invoke({"n": 0}, config)
                assert result["n"] == steps // 2

            body(warmup)
            start = time.perf_counter()
            body(operations)
            elapsed = time.perf_counter() - start
            if connection is not None:
                connection.close()
            return elapsed

    return run


def langgraph_fan_out_runner(operations: int, warmup: int) -> float:
    app = langgraph_fan_out()

    def body(count: int) -> None:
        for _ in range(count):
            result = app.invoke({"results": []})
            assert len(result["results"]) == FAN_OUT

    body(warmup)
    start = time.perf_counter()
    body(operations)
    return time.perf_counter() - start


# -- report ------------------------------------------------------------------------------

LOOP_PAIRS = (
    ("no checkpoints", "fsmflow", "langgraph"),
    ("in-memory checkpoints", "fsmflow memory", "langgraph InMemorySaver"),
    ("SQLite checkpoints", "fsmflow sqlite NORMAL", "langgraph SqliteSaver"),
    ("SQLite checkpoints (fsync)", "fsmflow sqlite FULL", "langgraph SqliteSaver"),
)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(__doc__.splitlines()[0], argv)
    loop_runners: list[tuple[str, int, Runner]] = [
        ("fsmflow", LOOP_STEPS, fsmflow_loop_runner(None)),
        ("langgraph", LOOP_STEPS, langgraph_loop_runner(None)),
        ("fsmflow memory", LOOP_STEPS, fsmflow_loop_runner("memory")),
        ("langgraph InMemorySaver", LOOP_STEPS, langgraph_loop_runner("memory")),
        ("fsmflow sqlite NORMAL", LOOP_STEPS, fsmflow_loop_runner("sqlite")),
        ("fsmflow sqlite FULL", LOOP_STEPS, fsmflow_loop_runner("sqlite-full")),
        ("langgraph SqliteSaver", LOOP_STEPS, langgraph_loop_runner("sqlite")),
    ]
    fan_runners: list[tuple[str, int, Runner]] = [
        ("fsmflow", FAN_OUTS, fsmflow_fan_out_runner),
        ("langgraph", FAN_OUTS, langgraph_fan_out_runner),
    ]
    print(f"2-node loop, {settings.operations(LOOP_STEPS)} steps per run")
    loop = {m.name: m for m in measure_rounds(loop_runners, settings)}
    print(f"{FAN_OUT}-branch fan-out and join, {settings.operations(FAN_OUTS)} per run")
    fan = {m.name: m for m in measure_rounds(fan_runners, settings)}

    print()
    print(
        format_table(
            ["loop contestant", "steps/s (best)", "steps/s (median)"],
            [[m.name, f"{m.best_rate:,.0f}", f"{m.median_rate:,.0f}"] for m in loop.values()],
        )
    )
    print()
    ratios = {
        label: loop[ours].best_rate / loop[theirs].best_rate for label, ours, theirs in LOOP_PAIRS
    }
    for label, ours, theirs in LOOP_PAIRS:
        print(f"{label}: {ours} / {theirs} = {ratios[label]:.1f}x")
    print()

    def wall(m: Measurement) -> float:
        return 1 / m.best_rate

    print(
        format_table(
            ["fan-out contestant", "ms per fan-out (best)"],
            [[m.name, f"{wall(m) * 1000:.2f}"] for m in fan.values()],
        )
    )
    fan_ratio = wall(fan["langgraph"]) / wall(fan["fsmflow"])
    print(f"\nfan-out: fsmflow is {fan_ratio:.1f}x faster than langgraph")
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "graph",
                "environment": environment(["fsmflow", "langgraph", "langgraph-checkpoint-sqlite"]),
                "loop": [m.as_json() for m in loop.values()],
                "loop_ratios": ratios,
                "fan_out": [m.as_json() for m in fan.values()],
                "fan_out_ratio": fan_ratio,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
