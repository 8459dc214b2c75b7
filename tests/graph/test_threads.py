"""Threads: a thread id names the conversation, a run (trace) id one execution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from fsmflow.graph import (
    CheckpointPolicy,
    GraphBuilder,
    GraphHashMismatch,
    ThreadBusy,
    append,
    execute,
    get_state,
    interrupt,
    state_history,
)
from fsmflow.store import Durability, SqliteStore, Store


@attrs.frozen
class Chat:
    messages: list[str] = attrs.field(factory=list)
    turns: int = 0


def _chat_graph() -> Any:
    def reply(state: Chat) -> dict[str, Any]:
        return {"messages": [f"echo: {state.messages[-1]}"], "turns": state.turns + 1}

    b = GraphBuilder(Chat, name="chat", reducers={"messages": append})
    return b.node("reply", reply).start("reply").end("reply").build()


async def test_a_second_invocation_on_a_thread_continues_from_its_state(tmp_path: Path) -> None:
    graph = _chat_graph()
    async with await SqliteStore.open(tmp_path / "t.db", durability=Durability.OFF) as store:
        first = await execute(graph, Chat(messages=["hi"]), store=store, thread_id="c1")
        second = await execute(graph, {"messages": ["again"]}, store=store, thread_id="c1")
        assert second.state == Chat(["hi", "echo: hi", "again", "echo: again"], 2)
        assert first.thread_id == second.thread_id == "c1"
        assert first.trace_id != second.trace_id  # two executions of one conversation
        assert second.steps == 2  # the step count continues
        other = await execute(graph, Chat(messages=["yo"]), store=store, thread_id="c2")
        assert other.state.messages == ["yo", "echo: yo"]  # threads are independent
        snapshot = await get_state(graph, "c1", store=store)
        assert snapshot.state == second.state and snapshot.next == () and snapshot.step == 2
        assert snapshot.run_id == second.trace_id and snapshot.status == "completed"
        history = await state_history(graph, "c1", store=store)
        assert [h.state.turns for h in history] == [2, 1]
        assert [h.run_id for h in history] == [second.trace_id, first.trace_id]


async def test_new_input_is_merged_through_the_reducers_and_recorded(any_store: Store) -> None:
    graph = _chat_graph()
    store = any_store
    policy = CheckpointPolicy(every_step=True, keep=None)
    await execute(graph, Chat(messages=["a"]), store=store, thread_id="t", policy=policy)
    await execute(graph, {"messages": ["b"]}, store=store, thread_id="t", policy=policy)
    history = await state_history(graph, "t", store=store)
    inputs = [h for h in history if h.trigger == "input"]
    assert [i.state.messages for i in inputs] == [["a", "echo: a", "b"], ["a"]]


async def test_input_for_a_busy_or_changed_thread_is_refused(any_store: Store) -> None:
    def ask(state: Chat) -> dict[str, Any]:
        return {"messages": [interrupt("who?", str)]}

    b = GraphBuilder(Chat, name="ask", reducers={"messages": append})
    asking = b.node("ask", ask).start("ask").end("ask").build()
    store = any_store
    stopped = await execute(asking, Chat(), store=store, thread_id="b")
    assert stopped.interrupts
    with pytest.raises(ThreadBusy, match="unfinished run"):
        await execute(asking, {"messages": ["x"]}, store=store, thread_id="b")
    await execute(_chat_graph(), Chat(messages=["x"]), store=store, thread_id="d")
    with pytest.raises(TypeError, match="pass a mapping"):
        await execute(_chat_graph(), Chat(messages=["y"]), store=store, thread_id="d")
    with pytest.raises(GraphHashMismatch):
        await execute(asking, {"messages": ["y"]}, store=store, thread_id="d")
    with pytest.raises(TypeError, match="cannot build a Chat"):
        await execute(_chat_graph(), {"nope": 1})
