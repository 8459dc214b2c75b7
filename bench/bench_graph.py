"""Graph executor benchmark: fsmflow.graph against LangGraph, side by side in one run.

* **loop**: a 2-node loop (``a`` increments a counter, ``b`` routes back to ``a``) run for
  2 000 steps; steps per second with no checkpoints, with a checkpoint after every step in
  memory, and with a checkpoint after every step in SQLite — both sides in WAL mode at the
  same ``synchronous`` setting (``NORMAL``, then ``FULL``), LangGraph in its ``"sync"``
  durability mode, which like fsmflow stores each checkpoint before the next step starts
  (its default ``"async"`` mode, which overlaps the write with the next step and can lose
  the last one in a crash, is shown as a labelled extra row).
* **Send map-reduce**: one node fans out to 100 branches (LangGraph's ``Send``, fsmflow's
  ``fan_out``) whose results an append reducer joins, then a reduce node; runs per second,
  without checkpoints and with SQLite checkpoints (``NORMAL``, every step / ``"sync"``).
* **interrupt and resume**: a node asks with ``interrupt()``, the run stops
  (checkpointed), and a second call resumes it with a value to completion; cycles per
  second on a new thread each, with SQLite checkpoints at ``NORMAL`` and at ``FULL``.
* **static fan-out**: one node with 100 parallel branches joined by an append reducer.

``python bench/bench_graph.py [--quick] [--repeats N] [--json PATH]``. Every contestant
runs in the same process, in interleaved rounds after a warm-up (see ``_common``); each row
shows the median rate with the min..max over the rounds, each ratio the ratio of medians
with the spread of the per-round ratios. Results are checked after timing.
"""

from __future__ import annotations

import operator
import os
import sqlite3
import tempfile
from collections.abc import Callable
from itertools import count
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
    ratio,
    time_async,
    time_sync,
    write_json,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send
from langgraph.types import interrupt as lg_interrupt

from fsmflow.graph import (
    CheckpointPolicy,
    Graph,
    GraphBuilder,
    append,
    execute,
    interrupt,
    resume,
)
from fsmflow.store import Durability, MemoryStore, SqliteStore, Store

LOOP_STEPS = 2000
BRANCHES = 100
MAP_REDUCES = 20
CYCLES = 100
FAN_OUTS = 20
EVERY_STEP = CheckpointPolicy(every_step=True)
_threads = count()

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
class Item:
    value: int


@attrs.frozen
class MapReduce:
    items: list[int] = attrs.field(factory=list)
    results: list[int] = attrs.field(factory=list)
    total: int = 0


def fsmflow_map_reduce() -> Graph[MapReduce]:
    def split(state: MapReduce) -> dict[str, Any]:
        return {"items": list(range(BRANCHES))}

    def work(item: Item) -> dict[str, Any]:
        return {"results": [item.value * 2]}

    def reduce(state: MapReduce) -> dict[str, Any]:
        return {"total": sum(state.results)}

    b = GraphBuilder(MapReduce, name="mapreduce", reducers={"results": append})
    b.node("split", split).node("work", work, input=Item).node("reduce", reduce)
    b.fan_out("split", "work", lambda s: [Item(i) for i in s.items]).edge("work", "reduce")
    return b.start("split").end("reduce").build()


@attrs.frozen
class Ask:
    n: int = 0
    answer: int = 0


def fsmflow_ask() -> Graph[Ask]:
    def ask(state: Ask) -> dict[str, Any]:
        return {"answer": interrupt("how many?", int)}

    def done(state: Ask) -> dict[str, Any]:
        return {"n": state.answer + 1}

    b = GraphBuilder(Ask, name="ask").node("ask", ask).node("done", done).edge("ask", "done")
    return b.start("ask").end("done").build()


@attrs.frozen
class Fan:
    results: list[int] = attrs.field(factory=list)


def fsmflow_fan_out() -> Graph[Fan]:
    def branch(i: int) -> Callable[[Fan], dict[str, list[int]]]:
        return lambda state: {"results": [i]}

    builder = GraphBuilder(Fan, name="fan", reducers={"results": append})
    builder.parallel("fan", {f"b{i}": branch(i) for i in range(BRANCHES)})
    builder.node("join", lambda s: None).edge("fan", "join")
    return builder.start("fan").end("join").build()


async def _open(kind: str | None, tmp: str) -> Store | None:
    if kind is None:
        return None
    if kind == "memory":
        return MemoryStore()
    durability = Durability.FULL if kind == "FULL" else Durability.NORMAL
    return await SqliteStore.open(os.path.join(tmp, "f.sqlite3"), durability=durability)


def fsmflow_loop_runner(kind: str | None) -> Runner:
    def run(operations: int, warmup: int) -> float:
        async def timed() -> float:
            with tempfile.TemporaryDirectory() as tmp:
                store = await _open(kind, tmp)

                async def body(steps: int) -> None:
                    graph = fsmflow_loop(steps // 2)
                    result = await execute(
                        graph,
                        Loop(),
                        store=store,
                        policy=EVERY_STEP if store is not None else None,
                        max_steps=steps + 10,
                    )
                    assert result.state.n == steps // 2

                elapsed = await time_async(body, operations, warmup)
                if store is not None:
                    await store.aclose()
                return elapsed

        return trio.run(timed)

    return run


def fsmflow_map_reduce_runner(kind: str | None) -> Runner:
    def run(operations: int, warmup: int) -> float:
        graph = fsmflow_map_reduce()

        async def timed() -> float:
            with tempfile.TemporaryDirectory() as tmp:
                store = await _open(kind, tmp)

                async def body(count_: int) -> None:
                    for _ in range(count_):
                        result = await execute(
                            graph,
                            MapReduce(),
                            store=store,
                            policy=EVERY_STEP if store is not None else None,
                        )
                        assert result.state.total == BRANCHES * (BRANCHES - 1)

                elapsed = await time_async(body, operations, warmup)
                if store is not None:
                    await store.aclose()
                return elapsed

        return trio.run(timed)

    return run


def fsmflow_interrupt_runner(kind: str) -> Runner:
    def run(operations: int, warmup: int) -> float:
        graph = fsmflow_ask()

        async def timed() -> float:
            with tempfile.TemporaryDirectory() as tmp:
                store = await _open(kind, tmp)
                assert store is not None

                async def body(cycles: int) -> None:
                    for _ in range(cycles):
                        thread = f"t{next(_threads)}"
                        paused = await execute(graph, Ask(), store=store, thread_id=thread)
                        assert paused.interrupts
                        done = await resume(graph, thread, store=store, value=41)
                        assert done.state.n == 42

                elapsed = await time_async(body, operations, warmup)
                await store.aclose()
                return elapsed

        return trio.run(timed)

    return run


def fsmflow_fan_out_runner(operations: int, warmup: int) -> float:
    graph = fsmflow_fan_out()

    async def body(count_: int) -> None:
        for _ in range(count_):
            result = await execute(graph, Fan())
            assert len(result.state.results) == BRANCHES

    async def timed() -> float:
        return await time_async(body, operations, warmup)

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


class MapReduceState(TypedDict):
    items: list[int]
    results: Annotated[list[int], operator.add]
    total: int


class ItemState(TypedDict):
    value: int


def langgraph_map_reduce(checkpointer: Any) -> Any:
    def split(state: MapReduceState) -> dict[str, Any]:
        return {"items": list(range(BRANCHES))}

    def fan(state: MapReduceState) -> list[Send]:
        return [Send("work", {"value": i}) for i in state["items"]]

    def work(state: ItemState) -> dict[str, Any]:
        return {"results": [state["value"] * 2]}

    def reduce(state: MapReduceState) -> dict[str, Any]:
        return {"total": sum(state["results"])}

    graph = StateGraph(MapReduceState)
    graph.add_node("split", split)
    graph.add_node("work", work)
    graph.add_node("reduce", reduce)
    graph.add_edge(START, "split")
    graph.add_conditional_edges("split", fan, ["work"])
    graph.add_edge("work", "reduce")
    graph.add_edge("reduce", END)
    return graph.compile(checkpointer=checkpointer)


class AskState(TypedDict):
    n: int
    answer: int


def langgraph_ask(checkpointer: Any) -> Any:
    def ask(state: AskState) -> dict[str, Any]:
        return {"answer": lg_interrupt("how many?")}

    def done(state: AskState) -> dict[str, Any]:
        return {"n": state["answer"] + 1}

    graph = StateGraph(AskState)
    graph.add_node("ask", ask)
    graph.add_node("done", done)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "done")
    graph.add_edge("done", END)
    return graph.compile(checkpointer=checkpointer)


class FanState(TypedDict):
    results: Annotated[list[int], operator.add]


def langgraph_fan_out() -> Any:
    graph = StateGraph(FanState)
    graph.add_node("fan", lambda s: {})
    graph.add_node("join", lambda s: {})
    graph.add_edge(START, "fan")
    for i in range(BRANCHES):

        def branch(state: FanState, i: int = i) -> dict[str, list[int]]:
            return {"results": [i]}

        graph.add_node(f"b{i}", branch)
        graph.add_edge("fan", f"b{i}")
        graph.add_edge(f"b{i}", "join")
    graph.add_edge("join", END)
    return graph.compile()


def _saver(kind: str | None, tmp: str) -> tuple[Any, sqlite3.Connection | None]:
    """LangGraph's checkpointer for ``kind``: none, ``memory``, or SQLite at ``NORMAL`` /
    ``FULL`` (WAL, like fsmflow's store)."""
    if kind is None:
        return None, None
    if kind == "memory":
        return InMemorySaver(), None
    connection = sqlite3.connect(os.path.join(tmp, "lg.sqlite3"), check_same_thread=False)
    connection.execute(f"PRAGMA synchronous={kind}")
    saver = SqliteSaver(connection)
    saver.setup()
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    level = connection.execute("PRAGMA synchronous").fetchone()[0]
    assert mode == "wal" and level == {"NORMAL": 1, "FULL": 2}[kind], (mode, level)
    return saver, connection


def _config(extra: dict[str, Any]) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t{next(_threads)}"}, **extra}


def _durability(saver: Any, durability: str) -> dict[str, Any]:
    """``durability=`` for ``invoke`` (LangGraph refuses it without a checkpointer)."""
    return {} if saver is None else {"durability": durability}


def langgraph_loop_runner(kind: str | None, durability: str) -> Runner:
    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            saver, connection = _saver(kind, tmp)

            def body(steps: int) -> None:
                app = langgraph_loop(steps // 2, saver)
                config = _config({"recursion_limit": steps + 10})
                result = app.invoke({"n": 0}, config, **_durability(saver, durability))
                assert result["n"] == steps // 2

            elapsed = time_sync(body, operations, warmup)
            if connection is not None:
                connection.close()
            return elapsed

    return run


def langgraph_map_reduce_runner(kind: str | None, durability: str) -> Runner:
    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            saver, connection = _saver(kind, tmp)
            app = langgraph_map_reduce(saver)

            def body(count_: int) -> None:
                for _ in range(count_):
                    result = app.invoke(
                        {"items": [], "results": [], "total": 0},
                        _config({}),
                        **_durability(saver, durability),
                    )
                    assert result["total"] == BRANCHES * (BRANCHES - 1)

            elapsed = time_sync(body, operations, warmup)
            if connection is not None:
                connection.close()
            return elapsed

    return run


def langgraph_interrupt_runner(kind: str, durability: str) -> Runner:
    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            saver, connection = _saver(kind, tmp)
            app = langgraph_ask(saver)

            def body(cycles: int) -> None:
                for _ in range(cycles):
                    config = _config({})
                    paused = app.invoke({"n": 0, "answer": 0}, config, durability=durability)
                    assert "__interrupt__" in paused
                    done = app.invoke(Command(resume=41), config, durability=durability)
                    assert done["n"] == 42

            elapsed = time_sync(body, operations, warmup)
            assert connection is not None
            connection.close()
            return elapsed

    return run


def langgraph_fan_out_runner(operations: int, warmup: int) -> float:
    app = langgraph_fan_out()

    def body(count_: int) -> None:
        for _ in range(count_):
            result = app.invoke({"results": []})
            assert len(result["results"]) == BRANCHES

    return time_sync(body, operations, warmup)


# -- report ------------------------------------------------------------------------------

#: (label, fsmflow contestant, LangGraph contestant at equal durability)
LOOP_PAIRS = (
    ("no checkpoints", "fsmflow", "langgraph"),
    ("in-memory checkpoints, every step", "fsmflow memory", "langgraph InMemorySaver sync"),
    ("SQLite NORMAL, every step", "fsmflow sqlite NORMAL", "langgraph sqlite NORMAL sync"),
    ("SQLite FULL, every step", "fsmflow sqlite FULL", "langgraph sqlite FULL sync"),
)
MAP_PAIRS = (
    ("no checkpoints", "fsmflow", "langgraph"),
    ("SQLite NORMAL, every step", "fsmflow sqlite NORMAL", "langgraph sqlite NORMAL sync"),
)
CYCLE_PAIRS = (
    ("SQLite NORMAL", "fsmflow sqlite NORMAL", "langgraph sqlite NORMAL sync"),
    ("SQLite FULL", "fsmflow sqlite FULL", "langgraph sqlite FULL sync"),
)


def _report(
    title: str,
    unit: str,
    measured: dict[str, Measurement],
    pairs: tuple[tuple[str, str, str], ...],
) -> dict[str, str]:
    print()
    print(
        format_table(
            [title, f"{unit} median (min..max)"],
            [[m.name, m.summary()] for m in measured.values()],
        )
    )
    ratios = {label: ratio(measured[ours], measured[theirs]) for label, ours, theirs in pairs}
    for label, ours, theirs in pairs:
        print(f"  {label}: {ours} / {theirs} = {ratios[label]}")
    return ratios


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(__doc__.splitlines()[0], argv)
    loop_runners: list[tuple[str, int, Runner]] = [
        ("fsmflow", LOOP_STEPS, fsmflow_loop_runner(None)),
        ("langgraph", LOOP_STEPS, langgraph_loop_runner(None, "sync")),
        ("fsmflow memory", LOOP_STEPS, fsmflow_loop_runner("memory")),
        ("langgraph InMemorySaver sync", LOOP_STEPS, langgraph_loop_runner("memory", "sync")),
        ("fsmflow sqlite NORMAL", LOOP_STEPS, fsmflow_loop_runner("NORMAL")),
        ("langgraph sqlite NORMAL sync", LOOP_STEPS, langgraph_loop_runner("NORMAL", "sync")),
        ("langgraph sqlite NORMAL async", LOOP_STEPS, langgraph_loop_runner("NORMAL", "async")),
        ("fsmflow sqlite FULL", LOOP_STEPS, fsmflow_loop_runner("FULL")),
        ("langgraph sqlite FULL sync", LOOP_STEPS, langgraph_loop_runner("FULL", "sync")),
        ("langgraph sqlite FULL async", LOOP_STEPS, langgraph_loop_runner("FULL", "async")),
    ]
    map_runners: list[tuple[str, int, Runner]] = [
        ("fsmflow", MAP_REDUCES, fsmflow_map_reduce_runner(None)),
        ("langgraph", MAP_REDUCES, langgraph_map_reduce_runner(None, "sync")),
        ("fsmflow sqlite NORMAL", MAP_REDUCES, fsmflow_map_reduce_runner("NORMAL")),
        (
            "langgraph sqlite NORMAL sync",
            MAP_REDUCES,
            langgraph_map_reduce_runner("NORMAL", "sync"),
        ),
    ]
    cycle_runners: list[tuple[str, int, Runner]] = [
        ("fsmflow sqlite NORMAL", CYCLES, fsmflow_interrupt_runner("NORMAL")),
        ("langgraph sqlite NORMAL sync", CYCLES, langgraph_interrupt_runner("NORMAL", "sync")),
        ("langgraph sqlite NORMAL async", CYCLES, langgraph_interrupt_runner("NORMAL", "async")),
        ("fsmflow sqlite FULL", CYCLES, fsmflow_interrupt_runner("FULL")),
        ("langgraph sqlite FULL sync", CYCLES, langgraph_interrupt_runner("FULL", "sync")),
    ]
    fan_runners: list[tuple[str, int, Runner]] = [
        ("fsmflow", FAN_OUTS, fsmflow_fan_out_runner),
        ("langgraph", FAN_OUTS, langgraph_fan_out_runner),
    ]
    print(f"2-node loop, {settings.operations(LOOP_STEPS)} steps per run")
    loop = {m.name: m for m in measure_rounds(loop_runners, settings)}
    print(f"{BRANCHES}-branch Send map-reduce, {settings.operations(MAP_REDUCES)} per run")
    maps = {m.name: m for m in measure_rounds(map_runners, settings)}
    print(f"interrupt-and-resume cycles, {settings.operations(CYCLES)} per run")
    cycles = {m.name: m for m in measure_rounds(cycle_runners, settings)}
    print(f"{BRANCHES}-branch static fan-out, {settings.operations(FAN_OUTS)} per run")
    fans = {m.name: m for m in measure_rounds(fan_runners, settings)}

    results = {
        "loop": _report("2-node loop", "steps/s", loop, LOOP_PAIRS),
        "map_reduce": _report(f"{BRANCHES}-branch Send map-reduce", "runs/s", maps, MAP_PAIRS),
        "interrupt": _report("interrupt and resume", "cycles/s", cycles, CYCLE_PAIRS),
        "fan_out": _report(
            f"{BRANCHES}-branch static fan-out",
            "runs/s",
            fans,
            (("no checkpoints", "fsmflow", "langgraph"),),
        ),
    }
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "graph",
                "environment": environment(["fsmflow", "langgraph", "langgraph-checkpoint-sqlite"]),
                "loop": [m.as_json() for m in loop.values()],
                "map_reduce": [m.as_json() for m in maps.values()],
                "interrupt": [m.as_json() for m in cycles.values()],
                "fan_out": [m.as_json() for m in fans.values()],
                "ratios": results,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
