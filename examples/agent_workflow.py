"""An agent-style workflow on the graph executor, offline and deterministic.

``plan`` splits a question into topics, three research branches run side by side,
``draft`` asks a (fake, flaky) model for an answer and retries, falling back to a
template after three failures, then a human approves at the ``approval`` barrier before
``publish``. Checkpoints go to SQLite: the first process stops while the barrier waits,
a second one resumes the run from the file, approves, and finishes it.
Run it with ``python examples/agent_workflow.py``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import attrs
import trio
import trio.lowlevel

from fsmflow.graph import (
    BarrierWaiting,
    CheckpointPolicy,
    Fallback,
    Graph,
    GraphBuilder,
    GraphResult,
    NodeOutput,
    ParallelStrategy,
    add,
    append,
    execute_stream,
    merge,
    resume_from,
)
from fsmflow.store import Durability, SqliteStore

MAX_ATTEMPTS = 3


@attrs.frozen
class Task:
    """The workflow's state; ``findings`` and ``log`` grow through their reducers."""

    question: str
    topics: list[str] = attrs.field(factory=list)
    findings: dict[str, str] = attrs.field(factory=dict)
    attempts: int = 0
    answer: str = ""
    log: list[str] = attrs.field(factory=list)


def fake_model(prompt: str, attempt: int) -> str:
    """A stand-in for a model call: deterministic, and down for the first attempts when
    the prompt asks for too much."""
    if len(prompt) > 60 and attempt < MAX_ATTEMPTS + 1:
        raise TimeoutError(f"model timed out (attempt {attempt})")
    return f"answer based on {prompt}"


def plan(task: Task) -> Mapping[str, Any]:
    topics = sorted({w.strip("?").lower() for w in task.question.split() if len(w) > 4})
    return {"topics": topics, "log": [f"planned {len(topics)} topics"]}


def researcher(source: str) -> Any:
    async def research(task: Task) -> Mapping[str, Any]:
        await trio.lowlevel.checkpoint()  # a real agent would await a search API here
        found = ", ".join(f"{source}:{t}" for t in task.topics)
        return {"findings": {source: found}, "log": [f"{source} done"]}

    return research


def draft(task: Task) -> NodeOutput | Fallback:
    attempt = task.attempts + 1
    prompt = "; ".join(task.findings[s] for s in sorted(task.findings))
    try:
        answer = fake_model(prompt, attempt)
    except TimeoutError as exc:
        if attempt >= MAX_ATTEMPTS:
            return Fallback(str(exc), {"attempts": 1, "log": ["model gave up"]})
        return NodeOutput(update={"attempts": 1, "log": [str(exc)]}, goto="draft")
    return NodeOutput(update={"answer": answer, "attempts": 1}, cost=0.5)


def template(task: Task) -> Mapping[str, Any]:
    return {"answer": f"Summary of {len(task.findings)} sources on {', '.join(task.topics)}"}


def publish(task: Task) -> NodeOutput:
    return NodeOutput(update={"log": ["published"]}, side_effects=True)


def archive(task: Task) -> Mapping[str, Any]:
    return {"log": ["archived"]}


def workflow() -> Graph[Task]:
    b = GraphBuilder(
        Task, name="agent", reducers={"findings": merge, "log": append, "attempts": add}
    )
    b.node("plan", plan)
    b.parallel(
        "research",
        {s: researcher(s) for s in ("web", "papers", "code")},
        strategy=ParallelStrategy.COLLECT_ALL,
    )
    b.node("draft", draft).node("template", template)
    b.barrier("approval", on_reject="archive")
    b.node("publish", publish).node("archive", archive).node("finish", lambda t: None)
    b.edge("plan", "research").edge("research", "draft")
    b.edge("draft", "draft", when=lambda t: not t.answer, label="retry")
    b.edge("draft", "approval").fallback("draft", "template").edge("template", "approval")
    b.edge("approval", "publish").edge("publish", "finish").edge("archive", "finish")
    return b.start("plan").end("finish").build()


POLICY = CheckpointPolicy(every_step=True)


async def first_process(db: str) -> str:
    """Run until the approval barrier waits, then stop (as if the process went away)."""
    async with (
        await SqliteStore.open(db, durability=Durability.NORMAL) as store,
        execute_stream(
            workflow(),
            Task("Which scheduler handles cancellation best?"),
            store=store,
            policy=POLICY,
        ) as run,
    ):
        async for event in run:
            if isinstance(event, BarrierWaiting):
                print(f"waiting for a human at {event.barrier_id}")
                break
        return run.trace_id


async def second_process(db: str, trace_id: str) -> GraphResult[Task]:
    """Resume the run from the SQLite file, approve, and finish it."""
    async with (
        await SqliteStore.open(db, durability=Durability.NORMAL) as store,
        resume_from(workflow(), trace_id, store=store, policy=POLICY) as run,
    ):
        async for event in run:
            if isinstance(event, BarrierWaiting):
                print(f"resumed at {event.barrier_id}: approving")
                await run.handle.approve(event.barrier_id)
        assert run.result is not None, run.error
        return run.result


async def main(db: str | None = None) -> GraphResult[Task]:
    with tempfile.TemporaryDirectory() as tmp:
        path = db or os.path.join(tmp, "agent.sqlite3")
        trace_id = await first_process(path)
        result = await second_process(path, trace_id)
    print(f"answer: {result.state.answer}")
    print(f"log: {result.state.log}")
    print(f"{result.steps} steps: {' -> '.join(e.node for e in result.log)}")
    return result


if __name__ == "__main__":
    trio.run(main)
