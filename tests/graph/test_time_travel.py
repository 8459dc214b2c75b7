"""Time travel: resume or fork from any checkpoint; edit a saved state."""

from __future__ import annotations

from typing import Any

import pytest

from fsmflow.graph import (
    CheckpointPolicy,
    InterruptKind,
    execute,
    get_state,
    interrupt,
    resume,
    state_history,
    update_state,
)
from fsmflow.store import Store

from ._graphs import Counter, counter_builder, loop_graph, states_by_step, stored_records

EVERY_STEP = CheckpointPolicy(every_step=True, keep=None)


async def test_a_fork_from_step_n_leaves_the_original_history_intact(any_store: Store) -> None:
    graph = loop_graph(4)
    store = any_store
    original = await execute(graph, Counter(), store=store, thread_id="t", policy=EVERY_STEP)
    before = await stored_records(store, "t")
    at_step_3 = next(r for r in before if r.step == 3)
    forked = await resume(graph, "t", store=store, checkpoint=at_step_3.checkpoint)
    assert forked.state == original.state  # the same graph from the same point
    assert forked.trace_id != original.trace_id  # a new execution
    after = await stored_records(store, "t")
    assert after[: len(before)] == before  # nothing of the original changed
    new = after[len(before) :]
    assert new[0].trigger == "fork" and new[0].parent == at_step_3.checkpoint
    assert [r.parent for r in new[1:]] == [r.checkpoint for r in new[:-1]]
    history = await state_history(graph, "t", store=store)
    reference = await states_by_step(graph, Counter())
    assert all(h.state == reference[h.step] for h in history)
    # the newest checkpoint is the fork's end; the original's end still restores
    assert (await get_state(graph, "t", store=store)).run_id == forked.trace_id
    old_end = await get_state(graph, "t", store=store, checkpoint=before[-1].checkpoint)
    assert old_end.run_id == original.trace_id and old_end.status == "completed"


async def test_update_state_as_a_node_edits_history_and_routes_on(any_store: Store) -> None:
    graph = loop_graph(5)
    store = any_store
    await execute(graph, Counter(), store=store, thread_id="u", policy=EVERY_STEP)
    records = await stored_records(store, "u")
    after_tock = next(r for r in records if r.step == 4)  # n == 2, next is tick
    edited = await update_state(
        graph, "u", {"n": 10, "trail": ["edit"]}, store=store, as_node="tock",
        checkpoint=after_tock.checkpoint,
    )  # fmt: skip
    assert edited.trigger == "update" and edited.parent == after_tock.checkpoint
    assert edited.next == ("done",)  # as if tock wrote it: n >= 5 leads to done
    assert edited.state.n == 10 and edited.state.trail[-1] == "edit"
    result = await resume(graph, "u", store=store)
    assert result.state.trail[-2:] == ["edit", "done"]
    history = await state_history(graph, "u", store=store)
    assert [h.trigger for h in history[:3]] == ["completion", "update", "completion"]
    with pytest.raises(ValueError, match="as_node 'ghost' is not a node"):
        await update_state(graph, "u", {}, store=store, as_node="ghost")


async def test_update_state_without_a_node_keeps_the_run_waiting(any_store: Store) -> None:
    def ask(state: Counter) -> dict[str, Any]:
        return {"trail": [f"{state.n}:{interrupt('go?', str)}"]}

    b = counter_builder().node("ask", ask).start("ask").end("ask")
    graph = b.build()
    store = any_store
    await execute(graph, Counter(), store=store, thread_id="w")
    edited = await update_state(graph, "w", {"n": 7}, store=store)
    assert edited.status == "waiting" and edited.interrupts[0].kind is InterruptKind.CALL
    result = await resume(graph, "w", store=store, value="yes")
    assert result.state.trail == ["7:yes"]
