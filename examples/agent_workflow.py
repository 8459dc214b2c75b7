"""An agent-style workflow on the graph executor, offline and deterministic.

``plan`` splits a question into topics; ``research`` fans out, one branch per topic
(decided at run time, like LangGraph's ``Send``), with a retry policy for a flaky search;
``draft`` asks a (fake, flaky) model for an answer and falls back to a template after
three failures; ``review`` asks a human with ``interrupt(...)`` and gets a typed answer
back; an approved answer is published, a rejected one drafted again with the reviewer's
note.

Checkpoints go to SQLite, into a *thread* (the conversation). The first process stops
at the review; a second one resumes the thread with the reviewer's answer and finishes
it; then a follow-up question on the same thread continues from the saved state.
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
    CheckpointPolicy,
    Fallback,
    Graph,
    GraphBuilder,
    GraphResult,
    NodeOutput,
    RetryPolicy,
    add,
    append,
    execute,
    interrupt,
    merge,
    resume,
)
from fsmflow.store import Durability, SqliteStore

MAX_ATTEMPTS = 3
THREAD = "support-42"


@attrs.frozen
class Task:
    """The workflow's state; ``findings``, ``attempts`` and ``log`` grow through their
    reducers."""

    question: str
    topics: list[str] = attrs.field(factory=list)
    findings: dict[str, str] = attrs.field(factory=dict)
    attempts: int = 0
    answer: str = ""
    note: str = ""
    published: list[str] = attrs.field(factory=list)
    log: list[str] = attrs.field(factory=list)


@attrs.frozen
class Topic:
    """One research branch's input."""

    name: str


@attrs.frozen
class ReviewRequest:
    """What the human is asked."""

    answer: str
    attempts: int


@attrs.frozen
class ReviewAnswer:
    """What the human answers."""

    approved: bool
    note: str = ""


searches: list[str] = []


def fake_model(prompt: str, attempt: int) -> str:
    """A stand-in for a model call: deterministic, and down for the first attempts when
    the prompt asks for too much."""
    if len(prompt) > 60 and attempt < MAX_ATTEMPTS + 1:
        raise TimeoutError(f"model timed out (attempt {attempt})")
    return f"answer based on {prompt}"


def plan(task: Task) -> Mapping[str, Any]:
    topics = sorted({w.strip("?").lower() for w in task.question.split() if len(w) > 4})
    return {"topics": topics, "attempts": -task.attempts, "note": "", "answer": ""}


async def research(topic: Topic) -> Mapping[str, Any]:
    await trio.lowlevel.checkpoint()  # a real agent would await a search API here
    searches.append(topic.name)
    if searches.count(topic.name) == 1 and topic.name.startswith("c"):
        raise ConnectionError(f"search for {topic.name!r} dropped")  # retried
    return {"findings": {topic.name: f"notes on {topic.name}"}, "log": [f"searched {topic.name}"]}


def draft(task: Task) -> NodeOutput | Fallback:
    attempt = task.attempts + 1
    prompt = "; ".join(task.findings[t] for t in task.topics)
    try:
        answer = fake_model(prompt, attempt)
    except TimeoutError as exc:
        if attempt >= MAX_ATTEMPTS:
            return Fallback(str(exc), {"attempts": 1, "log": ["model gave up"]})
        return NodeOutput(update={"attempts": 1, "log": [str(exc)]}, goto="draft")
    return NodeOutput(update={"answer": answer, "attempts": 1}, cost=0.5)


def template(task: Task) -> Mapping[str, Any]:
    topics = ", ".join(task.topics)
    return {"answer": f"Summary of {len(task.topics)} sources on {topics}{task.note}"}


def review(task: Task) -> Mapping[str, Any]:
    verdict = interrupt(ReviewRequest(task.answer, task.attempts), ReviewAnswer)
    if verdict.approved:
        return {"log": ["approved"], "note": ""}
    return {"note": f" ({verdict.note})", "attempts": -task.attempts, "log": ["revise"]}


def publish(task: Task) -> NodeOutput:
    return NodeOutput(update={"published": [task.answer], "log": ["published"]}, side_effects=True)


def workflow() -> Graph[Task]:
    b = GraphBuilder(
        Task,
        name="agent",
        reducers={"findings": merge, "log": append, "attempts": add, "published": append},
    )
    b.node("plan", plan)
    b.node("research", research, input=Topic, retry=RetryPolicy(initial_interval=0.01))
    b.node("draft", draft).node("template", template).node("review", review)
    b.node("publish", publish)
    b.fan_out("plan", "research", lambda t: [Topic(n) for n in t.topics], label="per topic")
    b.edge("research", "draft")
    b.edge("draft", "draft", when=lambda t: not t.answer, label="retry")
    b.edge("draft", "review").fallback("draft", "template").edge("template", "review")
    b.edge("review", "draft", when=lambda t: bool(t.note), label="revise")
    b.edge("review", "publish")
    return b.start("plan").end("publish").build()


POLICY = CheckpointPolicy(every_step=True)


async def first_process(db: str) -> ReviewRequest:
    """Run until the review asks a human, then stop (the run is checkpointed)."""
    async with await SqliteStore.open(db, durability=Durability.NORMAL) as store:
        question = Task("Which scheduler handles cancellation best?")
        paused = await execute(workflow(), question, store=store, thread_id=THREAD, policy=POLICY)
    (asked,) = paused.interrupts
    request: ReviewRequest = asked.payload
    print(f"waiting for a human at {asked.id}: {request.answer!r}")
    return request


async def second_process(db: str) -> GraphResult[Task]:
    """Resume the thread from the SQLite file with the reviewer's answer: rejected once
    (the answer is drafted again with the note), then approved."""
    async with await SqliteStore.open(db, durability=Durability.NORMAL) as store:
        graph = workflow()
        again = await resume(graph, THREAD, store=store, value=ReviewAnswer(False, "cite sources"))
        revised: ReviewRequest = again.interrupts[0].payload
        print(f"revised answer: {revised.answer!r}")
        return await resume(graph, THREAD, store=store, value=ReviewAnswer(True))


async def follow_up(db: str) -> GraphResult[Task]:
    """Ask a follow-up question on the same thread: the new input is merged into the
    saved state and the graph runs again from its start."""
    async with await SqliteStore.open(db, durability=Durability.NORMAL) as store:
        graph = workflow()
        paused = await execute(
            graph, {"question": "Why trio?"}, store=store, thread_id=THREAD, policy=POLICY
        )
        assert paused.interrupts, "the review asks again"
        return await resume(graph, THREAD, store=store, value=ReviewAnswer(True))


async def main(db: str | None = None) -> GraphResult[Task]:
    with tempfile.TemporaryDirectory() as tmp:
        path = db or os.path.join(tmp, "agent.sqlite3")
        await first_process(path)
        result = await second_process(path)
        print(f"published: {result.state.published[-1]!r}")
        print(f"log: {result.state.log}")
        followed = await follow_up(path)
    print(f"after the follow-up: {followed.state.published}")
    return followed


if __name__ == "__main__":
    trio.run(main)
