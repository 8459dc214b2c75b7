"""The process the graph's multi-process tests start, kill, stop and race: a checkpointed
run of :func:`kill_graph` on SQLite or PostgreSQL.

Usage: ``python -m tests.graph._kill_child TARGET SCHEMA THREAD LIMIT [options]`` (see
``_processes.py`` for TARGET and SCHEMA). It resumes ``THREAD`` from its newest
checkpoint, or starts it when it has none, checkpointing every step — by default as a
standby: a process killed before it may still hold the thread's lease, so it waits until
that lease expires. It prints ``start STEP`` when the run starts (the step it continues
from), ``saved STEP NUMBER`` after each checkpoint is stored, ``final STEPS`` when it
completes (exit 0); ``held HOLDER`` when another live process runs the thread and it is
no standby (exit 4); ``lost STEP`` when its run lost the lease and stopped (exit 3).

Options: ``--ttl`` the lease's TTL (default 0.5 s), ``--delay`` how long each ``tick``
sleeps (default 20 ms), ``--effects FILE`` appends ``PID N`` to FILE each time ``tick``
runs (the side effect the tests count), ``--announce`` prints ``tick N`` when ``tick``
starts (before its sleep), ``--blocking`` makes that sleep block the event loop (a busy
or paused process: nothing else of it runs meanwhile, not even its lease renewal),
``--gate FILE --gate-at N`` makes ``tick`` wait at ``n == N`` until FILE exists,
``--no-standby``, ``--plain`` runs without a stream (``execute``/``resume``: it prints
only ``tick``, ``final`` and ``lost``, without the step).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import trio

from fsmflow.graph import (
    CheckpointNotFound,
    CheckpointPolicy,
    CheckpointSaved,
    Graph,
    GraphCompleted,
    GraphLeaseLost,
    GraphStarted,
    GraphStream,
    RunExists,
    ThreadHeld,
    ThreadLeaseLost,
    execute,
    execute_stream,
    resume,
    resume_from,
)
from fsmflow.store import Store

from ._graphs import Counter, kill_graph
from ._processes import open_target

POLICY = CheckpointPolicy(every_step=True, keep=60)
COMPACT_AFTER = 4


async def _follow(run: GraphStream[Counter]) -> int:
    async for event in run:
        if isinstance(event, GraphStarted):
            print(f"start {event.step}", flush=True)
        elif isinstance(event, CheckpointSaved):
            print(f"saved {event.step} {event.checkpoint}", flush=True)
        elif isinstance(event, GraphCompleted):
            print(f"final {event.result.steps}", flush=True)
        elif isinstance(event, GraphLeaseLost):
            print(f"lost {event.step}", flush=True)
            return 3
    assert run.result is not None, run.error
    return 0


async def main(args: argparse.Namespace) -> int:
    effects = args.effects

    def effect(n: int) -> None:
        if effects is not None:
            with open(effects, "a") as log:
                log.write(f"{os.getpid()} {n}\n")

    async def before(n: int) -> None:
        if args.announce:
            print(f"tick {n}", flush=True)
        if args.gate is not None and n == args.gate_at:
            # The test creates the file from another process: poll for it.
            while not await trio.Path(args.gate).exists():  # noqa: ASYNC110
                await trio.sleep(0.02)

    graph = kill_graph(
        args.limit, delay=args.delay, effect=effect, before=before, blocking=args.blocking
    )
    options: dict[str, Any] = {
        "compact_after": COMPACT_AFTER,
        "lease_ttl": args.ttl,
        "standby": not args.no_standby,
    }
    async with await open_target(args.target, args.schema) as store:
        while True:
            try:
                if args.plain:
                    return await _plain(graph, store, args.thread, options)
                try:
                    async with resume_from(graph, args.thread, store=store, **options) as run:
                        return await _follow(run)
                except CheckpointNotFound:
                    pass
                async with execute_stream(
                    graph, Counter(), store=store, policy=POLICY, trace_id=args.thread, **options
                ) as run:
                    return await _follow(run)
            except RunExists:
                continue  # started by another process meanwhile: resume it
            except ThreadHeld as held:
                print(f"held {held.holder}", flush=True)
                return 4


async def _plain(graph: Graph[Counter], store: Store, thread: str, options: dict[str, Any]) -> int:
    """The run without a stream: nothing of it yields between a step and its checkpoint
    (no events are sent)."""
    try:
        try:
            result = await resume(graph, thread, store=store, **options)
        except CheckpointNotFound:
            result = await execute(
                graph, Counter(), store=store, policy=POLICY, trace_id=thread, **options
            )
    except ThreadLeaseLost:
        print("lost", flush=True)
        return 3
    print(f"final {result.steps}", flush=True)
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("schema")
    parser.add_argument("thread")
    parser.add_argument("limit", type=int)
    parser.add_argument("--ttl", type=float, default=0.5)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--effects")
    parser.add_argument("--announce", action="store_true")
    parser.add_argument("--blocking", action="store_true")
    parser.add_argument("--gate")
    parser.add_argument("--gate-at", type=int, default=-1)
    parser.add_argument("--no-standby", action="store_true")
    parser.add_argument("--plain", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(trio.run(main, parse(sys.argv[1:])))
