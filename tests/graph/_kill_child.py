"""The process ``test_kill.py`` kills: a checkpointed graph run on a SQLite file.

Usage: ``python -m tests.graph._kill_child DB TRACE_ID LIMIT``. It resumes ``TRACE_ID``
from its latest checkpoint, or starts it afresh when there is none, checkpointing every
step; it prints ``saved STEP`` after each checkpoint and ``final STEP`` at the end.
"""

from __future__ import annotations

import sys

import trio

from fsmflow.graph import (
    CheckpointNotFound,
    CheckpointPolicy,
    CheckpointSaved,
    GraphStream,
    execute_stream,
    load_run,
    resume_from,
)
from fsmflow.store import Durability, SqliteStore

from ._graphs import Counter, loop_graph

POLICY = CheckpointPolicy(every_step=True)


async def _follow(run: GraphStream[Counter]) -> None:
    async for event in run:
        if isinstance(event, CheckpointSaved):
            print(f"saved {event.step}", flush=True)
    assert run.result is not None, run.error
    print(f"final {run.result.steps}", flush=True)


async def main(db: str, trace_id: str, limit: int) -> None:
    graph = loop_graph(limit, delay=0.002)
    async with await SqliteStore.open(db, durability=Durability.NORMAL) as store:
        try:
            await load_run(store, graph, trace_id)
        except CheckpointNotFound:
            async with execute_stream(
                graph, Counter(), store=store, policy=POLICY, trace_id=trace_id, compact_after=8
            ) as run:
                await _follow(run)
            return
        async with resume_from(graph, trace_id, store=store, policy=POLICY, compact_after=8) as run:
            await _follow(run)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
