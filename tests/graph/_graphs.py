"""Graphs and states shared by the graph executor's tests (and its kill child)."""

from __future__ import annotations

from typing import TypedDict

import attrs
import trio

from fsmflow.graph import Graph, GraphBuilder, add, append, merge


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
