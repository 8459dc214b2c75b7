"""The agent workflow example: retries, falls back, waits for approval, resumes."""

from __future__ import annotations

from pathlib import Path

from examples import agent_workflow
from fsmflow.graph import execute_stream
from fsmflow.store import MemoryStore


async def test_the_example_resumes_from_sqlite_and_finishes(tmp_path: Path) -> None:
    result = await agent_workflow.main(str(tmp_path / "agent.sqlite3"))
    assert result.state.answer.startswith("Summary of 3 sources")
    assert result.state.attempts == agent_workflow.MAX_ATTEMPTS
    assert result.state.log[-2:] == ["model gave up", "published"]
    assert set(result.state.findings) == {"web", "papers", "code"}
    assert [e.node for e in result.log] == ["approval", "publish", "finish"]
    assert result.steps == 9


async def test_a_short_prompt_needs_no_retry_and_can_be_rejected() -> None:
    task = agent_workflow.Task("Why trio?")
    async with execute_stream(agent_workflow.workflow(), task, store=MemoryStore()) as run:
        async for event in run:
            if type(event).__name__ == "BarrierWaiting":
                await run.handle.reject("approval", "not now")
    assert run.result is not None
    assert run.result.state.answer.startswith("answer based on")
    assert run.result.state.log[-1] == "archived"
