"""The process ``test_kill.py`` kills: a checkpointed graph run on a SQLite file.

Usage: ``python -m tests.graph._kill_child DB THREAD LIMIT``. It resumes ``THREAD`` from
its newest checkpoint, or starts it when it has none, checkpointing every step; it
prints ``start STEP`` when the run starts (the step it continues from), ``saved STEP``
after each checkpoint is stored, and ``final STEPS`` when it completes.
"""

from __future__ import annotations

import sys

import trio

from fsmflow.graph import (
    CheckpointNotFound,
    CheckpointPolicy,
    CheckpointSaved,
    GraphCompleted,
    GraphStarted,
    GraphStream,
    execute_stream,
    resume_from,
)
from fsmflow.store import Durability, SqliteStore

from ._graphs import Counter, kill_graph

POLICY = CheckpointPolicy(every_step=True, keep=60)
COMPACT_AFTER = 4


async def _follow(run: GraphStream[Counter]) -> None:
    async for event in run:
        if isinstance(event, GraphStarted):
            print(f"start {event.step}", flush=True)
        elif isinstance(event, CheckpointSaved):
            print(f"saved {event.step}", flush=True)
        elif isinstance(event, GraphCompleted):
            print(f"final {event.result.steps}", flush=True)
    assert run.result is not None, run.error


async def main(db: str, thread: str, limit: int) -> None:
    graph = kill_graph(limit, delay=0.02)
    async with await SqliteStore.open(db, durability=Durability.NORMAL) as store:
        try:
            async with resume_from(graph, thread, store=store, compact_after=COMPACT_AFTER) as run:
                await _follow(run)
        except CheckpointNotFound:
            async with execute_stream(
                graph,
                Counter(),
                store=store,
                policy=POLICY,
                trace_id=thread,
                compact_after=COMPACT_AFTER,
            ) as run:
                await _follow(run)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
