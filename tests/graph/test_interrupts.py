"""Interrupts with typed values: pause anywhere in a node, resume with a value in this
process or another; several per node; in parallel branches; static ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from fsmflow.graph import (
    Approve,
    BarrierWaiting,
    CheckpointSaved,
    CustomEvent,
    ExecState,
    GraphBuilder,
    GraphInterrupted,
    InterruptId,
    InterruptKind,
    InterruptNeedsStore,
    InterruptResumed,
    InterruptResumeError,
    InterruptWaiting,
    NodeFailed,
    Reject,
    StreamMode,
    append,
    execute,
    execute_stream,
    get_state,
    interrupt,
    resume,
    resume_from,
    stream_writer,
)
from fsmflow.graph._listing import answer_stored
from fsmflow.store import Durability, MemoryStore, SqliteStore


@attrs.frozen
class Question:
    text: str


@attrs.frozen
class Answer:
    approved: bool
    note: str = ""


@attrs.frozen
class Review:
    draft: str = ""
    log: list[str] = attrs.field(factory=list)


runs: list[str] = []


def _review_graph() -> Any:
    def write(state: Review) -> dict[str, Any]:
        return {"draft": "v1"}

    def review(state: Review) -> dict[str, Any]:
        runs.append("review")
        answer = interrupt(Question(f"ship {state.draft}?"), Answer)
        return {"log": [f"approved={answer.approved} {answer.note}"]}

    b = GraphBuilder(Review, name="review", reducers={"log": append})
    b.node("write", write).node("review", review).node("ship", lambda s: {"log": ["shipped"]})
    b.edge("write", "review").edge("review", "ship")
    return b.start("write").end("ship").build()


async def test_a_resumed_interrupt_returns_the_supplied_value_in_another_process(
    tmp_path: Path,
) -> None:
    runs.clear()
    graph = _review_graph()
    path = tmp_path / "hitl.db"
    async with await SqliteStore.open(path, durability=Durability.OFF) as store:
        paused = await execute(graph, Review(), store=store, thread_id="r")
    assert not paused.completed and paused.state.draft == "v1"
    (pending,) = paused.interrupts
    assert pending.kind is InterruptKind.CALL and pending.payload == Question("ship v1?")
    assert pending.id == InterruptId("review", 2)
    async with await SqliteStore.open(path, durability=Durability.OFF) as store:  # "another"
        snapshot = await get_state(graph, "r", store=store)
        assert snapshot.status == "waiting" and snapshot.next == ("review",)
        assert snapshot.interrupts[0].payload == {"text": "ship v1?"}  # its stored form
        done = await resume(graph, "r", store=store, value=Answer(True, "lgtm"))
    assert done.completed and done.state.log == ["approved=True lgtm", "shipped"]
    assert runs == ["review", "review"]  # the node runs again from its start


async def test_a_stored_value_of_the_wrong_type_is_a_typed_error() -> None:
    graph = _review_graph()
    store = MemoryStore()
    await execute(graph, Review(), store=store, thread_id="w")
    with pytest.raises(NodeFailed) as info:
        await resume(graph, "w", store=store, value="yes")
    assert isinstance(info.value.cause, InterruptResumeError)
    assert "expects Answer, was resumed with str" in str(info.value)
    await execute(graph, Review(), store=store, thread_id="w2")
    await answer_stored(store, "w2", "review@2#0", {"note": "no approved field"})
    with pytest.raises(NodeFailed, match="does not decode to Answer"):
        await resume(graph, "w2", store=store)


async def test_several_interrupts_in_one_node_are_answered_in_order() -> None:
    def interview(state: Review) -> dict[str, Any]:
        name = interrupt("name?", str)
        age = interrupt("age?", int)
        return {"log": [f"{name}:{age}"]}

    b = GraphBuilder(Review, reducers={"log": append})
    graph = b.node("interview", interview).start("interview").end("interview").build()
    store = MemoryStore()
    first = await execute(graph, Review(), store=store, thread_id="i")
    assert [i.payload for i in first.interrupts] == ["name?"]
    second = await resume(graph, "i", store=store, value="ada")
    assert [(i.id.index, i.payload) for i in second.interrupts] == [(1, "age?")]
    done = await resume(graph, "i", store=store, value=36)
    assert done.state.log == ["ada:36"]


async def test_interrupts_in_parallel_branches_resume_each_with_its_value() -> None:
    ran: list[str] = []

    def asker(name: str) -> Any:
        def branch(state: Review) -> dict[str, Any]:
            ran.append(name)
            return {"log": [f"{name}={interrupt(name + '?', str)}"]}

        return branch

    def quiet(state: Review) -> dict[str, Any]:
        ran.append("quiet")
        return {"log": ["quiet"]}

    b = GraphBuilder(Review, reducers={"log": append})
    b.parallel("ask", {"a": asker("a"), "b": asker("b"), "q": quiet})
    graph = b.node("end", lambda s: None).edge("ask", "end").start("ask").end("end").build()
    store = MemoryStore()
    paused = await execute(graph, Review(), store=store, thread_id="p")
    ids = {i.id.task: i.id for i in paused.interrupts}
    assert set(ids) == {"a", "b"}
    with pytest.raises(ValueError, match="waits on"):
        await resume(graph, "p", store=store, value="x")
    done = await resume(graph, "p", store=store, values={ids["a"]: "A", str(ids["b"]): "B"})
    assert done.state.log == ["a=A", "b=B", "quiet"]
    assert sorted(ran) == ["a", "a", "b", "b", "quiet"]  # the quiet branch kept its write

    async with execute_stream(graph, Review()) as run:  # the same, answered live
        async for event in run:
            if isinstance(event, InterruptWaiting):
                await run.handle.resume(
                    event.interrupt.id.task.upper(), interrupt=event.interrupt.id
                )
    assert run.result is not None and run.result.state.log == ["a=A", "b=B", "quiet"]


async def test_a_streaming_run_waits_and_the_handle_resumes_it() -> None:
    graph = _review_graph()
    async with execute_stream(graph, Review()) as run:
        seen = []
        async for event in run:
            seen.append(type(event).__name__)
            if isinstance(event, InterruptWaiting):
                assert run.handle.state is ExecState.AWAITING_DECISION
                assert run.handle.waiting == (event.interrupt,)
                assert await run.handle.resume(Answer(False, "later"))
            if isinstance(event, InterruptResumed):
                assert event.value == Answer(False, "later")
    assert run.result is not None and run.result.state.log[0] == "approved=False later"
    assert seen.count("InterruptWaiting") == 1


async def test_without_a_store_or_a_handle_an_interrupt_is_a_clear_error() -> None:
    with pytest.raises(InterruptNeedsStore, match="pass store="):
        await execute(_review_graph(), Review())
    with pytest.raises(RuntimeError, match="only be called while a graph node runs"):
        interrupt("outside")
    with pytest.raises(RuntimeError, match="only be called while a graph node runs"):
        stream_writer()


async def test_static_interrupts_before_and_after_nodes() -> None:
    b = GraphBuilder(Review, reducers={"log": append})
    b.node("a", lambda s: {"log": ["a"]}).node("b", lambda s: {"log": ["b"]})
    b.node("c", lambda s: {"log": ["c"]}).edge("a", "b").edge("b", "c")
    graph = b.interrupt_before("b").interrupt_after("b").start("a").end("c").build()
    store = MemoryStore()
    first = await execute(graph, Review(), store=store, thread_id="s")
    assert [(i.kind, i.id.node) for i in first.interrupts] == [(InterruptKind.BEFORE, "b")]
    assert first.state.log == ["a"]
    second = await resume(graph, "s", store=store, value=None)
    assert [(i.kind, i.id.node) for i in second.interrupts] == [(InterruptKind.AFTER, "b")]
    assert second.state.log == ["a", "b"]
    snapshot = await get_state(graph, "s", store=store)
    assert snapshot.next == ("c",) and snapshot.interrupts[0].kind is InterruptKind.AFTER
    done = await resume(graph, "s", store=store, value=None)
    assert done.state.log == ["a", "b", "c"]


async def test_barriers_are_interrupts_whose_value_is_a_decision() -> None:
    b = GraphBuilder(Review, reducers={"log": append})
    b.node("a", lambda s: {"log": ["a"]}).barrier("gate", on_reject="no")
    b.node("yes", lambda s: {"log": ["yes"]}).node("no", lambda s: {"log": ["no"]})
    b.node("end", lambda s: None).edge("a", "gate").edge("gate", "yes")
    b.edge("yes", "end").edge("no", "end")
    graph = b.start("a").end("end").build()
    store = MemoryStore()
    stopped = await execute(graph, Review(), store=store, thread_id="g")
    (gate,) = stopped.interrupts
    assert gate.kind is InterruptKind.BARRIER and str(gate.barrier_id) == "gate#1"
    done = await resume(graph, "g", store=store, values={"gate": Reject("nope")})
    assert done.state.log == ["a", "no"]
    async with execute_stream(graph, Review(), stop_at_interrupts=True) as run:
        events = [e async for e in run]
    assert isinstance(run.error, InterruptNeedsStore)  # no store: it cannot stop there

    store = MemoryStore()
    async with execute_stream(
        graph, Review(), store=store, thread_id="h", stop_at_interrupts=True
    ) as run:
        events = [e async for e in run]
    assert isinstance(events[-1], GraphInterrupted)
    assert events[-1].result.interrupts[0].kind is InterruptKind.BARRIER
    async with resume_from(graph, "h", store=store) as again:
        async for event in again:
            if isinstance(event, BarrierWaiting):
                await again.handle.resume(Approve())
    assert again.result is not None and again.result.state.log == ["a", "yes"]


async def test_a_node_streams_its_own_events() -> None:
    async def talk(state: Review) -> dict[str, Any]:
        write = stream_writer()
        for token in ("he", "llo"):
            await write(token)
        return {"draft": "hello"}

    b = GraphBuilder(Review)
    graph = b.node("talk", talk).start("talk").end("talk").build()
    async with execute_stream(graph, Review(), stream_mode=StreamMode.CUSTOM) as run:
        events = [e async for e in run]
    assert [e.data for e in events if isinstance(e, CustomEvent)] == ["he", "llo"]
    assert [type(e).__name__ for e in events] == ["CustomEvent", "CustomEvent", "GraphCompleted"]
    result = await execute(graph, Review())  # no consumer: writing does nothing
    assert result.state.draft == "hello"


async def test_a_value_taken_while_others_wait_survives_the_process() -> None:
    def asker(name: str) -> Any:
        def branch(state: Review) -> dict[str, Any]:
            return {"log": [f"{name}={interrupt(name, str)}"]}

        return branch

    b = GraphBuilder(Review, reducers={"log": append})
    b.parallel("ask", {"a": asker("a"), "b": asker("b")})
    graph = b.node("end", lambda s: None).edge("ask", "end").start("ask").end("end").build()
    store = MemoryStore()
    with trio.move_on_after(30):  # a guard: without the checkpoint nothing ends the wait
        async with execute_stream(graph, Review(), store=store, thread_id="v") as run:
            async for event in run:
                if isinstance(event, CheckpointSaved) and event.trigger == "resume":
                    break  # the process goes away after one of two answers
                if isinstance(event, InterruptWaiting) and event.interrupt.id.task == "a":
                    await run.handle.resume("first", interrupt=event.interrupt.id)
    snapshot = await get_state(graph, "v", store=store)
    assert [i.id.task for i in snapshot.interrupts] == ["b"]  # "a" has its value
    done = await resume(graph, "v", store=store, value="second")
    assert done.state.log == ["a=first", "b=second"]
