"""The agent workflow example: fan-out, retries, fallback, an interrupt answered in a
second process, a follow-up on the same thread."""

from __future__ import annotations

from pathlib import Path

from examples import agent_workflow
from fsmflow.graph import InterruptWaiting, execute_stream, state_history
from fsmflow.store import Durability, SqliteStore


async def test_the_example_resumes_from_sqlite_and_continues_its_thread(tmp_path: Path) -> None:
    db = tmp_path / "agent.sqlite3"
    agent_workflow.searches.clear()
    result = await agent_workflow.main(str(db))
    state = result.state
    assert state.published == [
        "Summary of 5 sources on best, cancellation, handles, scheduler, which (cite sources)",
        "answer based on notes on trio",
    ]
    assert state.question == "Why trio?" and state.topics == ["trio"]
    assert set(state.findings) == {"best", "cancellation", "handles", "scheduler", "which", "trio"}
    assert agent_workflow.searches.count("cancellation") == 2  # retried once
    assert state.log.count("model gave up") == 2 and "revise" in state.log
    async with await SqliteStore.open(db, durability=Durability.OFF) as store:
        history = await state_history(agent_workflow.workflow(), agent_workflow.THREAD, store=store)
    runs = {h.run_id for h in history}
    assert len(runs) == 2  # one conversation, two executions
    assert history[0].status == "completed" and history[-1].trigger == "input"


async def test_a_short_question_is_approved_live() -> None:
    task = agent_workflow.Task("Why trio?")
    async with execute_stream(agent_workflow.workflow(), task) as run:
        async for event in run:
            if isinstance(event, InterruptWaiting):
                await run.handle.resume(agent_workflow.ReviewAnswer(True))
    assert run.result is not None
    assert run.result.state.published == ["answer based on notes on trio"]
