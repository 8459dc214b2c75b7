"""The graph executor's part of ``fsmflow runs`` (assembled in :mod:`fsmflow._runs_cli`).

* ``fsmflow runs list DB`` — one line per thread (with the durable runs of the store).
* ``fsmflow runs show DB THREAD`` — which process runs it now (its lease's holder), its
  newest state (in JSON form, long strings and collections shortened), what it waits on,
  and its checkpoints; with ``--diagram MODULE:GRAPH``, the graph drawn (Mermaid) with the
  run's position highlighted.
* ``fsmflow runs approve|reject|skip DB THREAD BARRIER`` — decide a barrier the thread
  waits at (``BARRIER`` is its id, ``gate#2``, or its node name).
* ``fsmflow runs resume DB THREAD VALUE [--interrupt ID]`` — answer an interrupt with a
  JSON value.

Deciding and answering record the value as a new checkpoint of the thread; the next
``resume``/``resume_from`` of the thread (in any process) takes it. They take the
thread's lease for the write, so they are refused while a live run holds the thread.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ..diagrams import flowchart_to_mermaid, load_target
from ..store import Store
from ._graph import Graph
from ._history import stored_flowchart
from ._interrupts import Interrupt
from ._lease import running
from ._listing import answer_stored, inspect_run, list_runs, read_stored

Command = Callable[[Store, argparse.Namespace], Awaitable[Any]]

#: How much of a stored state ``runs show`` prints.
MAX_STRING = 200
MAX_ITEMS = 20
MAX_DEPTH = 6


def configure_show(show: argparse.ArgumentParser) -> None:
    """The options ``runs show`` has for graph threads."""
    show.add_argument(
        "--diagram",
        metavar="MODULE:GRAPH",
        help="for a graph thread: print the graph (as Mermaid) with the run's position "
        "highlighted instead",
    )


def add_actions(action: Callable[[str, str, Command], argparse.ArgumentParser]) -> None:
    """Add the graph's own actions through ``action(name, help, command)``, which makes a
    subparser taking the store as its first argument."""
    for decision in ("approve", "reject", "skip"):
        sub = action(decision, f"{decision} a barrier a graph thread waits at", _decide)
        sub.add_argument("thread", metavar="THREAD")
        sub.add_argument("barrier", metavar="BARRIER", help="a barrier id (gate#2) or node")
        if decision == "reject":
            sub.add_argument("--reason", default="rejected from the shell")
        sub.set_defaults(decision=decision)
    answer = action("resume", "answer an interrupt a graph thread waits on", _resume)
    answer.add_argument("thread", metavar="THREAD")
    answer.add_argument("value", metavar="VALUE", help="the value, as JSON")
    answer.add_argument("--interrupt", metavar="ID", help="which interrupt (when several wait)")


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def shorten(value: Any, depth: int = 0) -> Any:
    """``value`` (JSON data) cut down for printing: long strings, long lists and big
    objects shortened, deep nesting elided, each cut saying how much was left out."""
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            return f"{value[:MAX_STRING]}... ({len(value)} chars)"
        return value
    if depth >= MAX_DEPTH and isinstance(value, list | dict) and value:
        return f"... ({len(value)} items)"
    if isinstance(value, list):
        items = [shorten(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    if isinstance(value, dict):
        out = {k: shorten(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
        if len(value) > MAX_ITEMS:
            out["..."] = f"{len(value) - MAX_ITEMS} more keys"
        return out
    return value


def _describe(interrupt: Interrupt) -> dict[str, Any]:
    return {
        "id": str(interrupt.id),
        "kind": interrupt.kind.value,
        "barrier": None if interrupt.barrier_id is None else str(interrupt.barrier_id),
        "payload": shorten(interrupt.payload),
        "timeout": interrupt.timeout,
    }


async def list_threads(store: Store) -> list[dict[str, Any]]:
    """Every stored thread, as JSON data."""
    return [attrs.asdict(r) for r in await list_runs(store)]


def thread_line(row: dict[str, Any]) -> str:
    """One line of ``runs list`` for a thread of :func:`list_threads`."""
    return (
        f"{row['thread_id']}  {row['graph']}  step {row['latest_step']}  {row['status']}  "
        f"next={row['next_node'] or '-'}  checkpoints={row['checkpoints']}  "
        f"{_when(row['updated_at'])}"
    )


async def show_thread(store: Store, thread: str, args: argparse.Namespace) -> Any:
    """``runs show`` for a thread; raises :class:`CheckpointNotFound` when there is none."""
    if args.diagram is not None:
        graph = load_target(args.diagram)
        if not isinstance(graph, Graph):
            raise ValueError(f"{args.diagram} is not a Graph")
        return flowchart_to_mermaid(await stored_flowchart(graph, thread, store=store))
    stored = await read_stored(store, thread)
    infos = await inspect_run(store, thread)
    record = stored.record
    waiting = [_describe(i) for i in stored.interrupts]
    runner = await running(store, thread)
    if args.json:
        return {
            "thread_id": thread,
            "run_id": record.run_id,
            "graph": record.graph,
            "status": record.status,
            "running": None if runner is None else {"holder": runner[0], "expires_in": runner[1]},
            "step": record.step,
            "next_node": record.next_node,
            "state": stored.state,
            "stale_keys": list(stored.stale_keys),
            "waiting": waiting,
            "checkpoints": [attrs.asdict(i) for i in infos],
        }
    lines = [
        f"thread {thread}  graph {record.graph}  run {record.run_id}",
        f"status {record.status}  step {record.step}  next={record.next_node or '-'}",
        "run by nobody now"
        if runner is None
        else f"run by {runner[0]} now (its lease expires in {runner[1]:.1f}s unless renewed)",
        "state:",
        *("  " + line for line in json.dumps(shorten(stored.state), indent=2).splitlines()),
    ]
    if stored.stale_keys:
        lines.append(
            f"  (custom reducers: {', '.join(stored.stale_keys)} shown as of the last full "
            "checkpoint)"
        )
    if waiting:
        lines.append("waiting for:")
        for item in waiting:
            name = item["barrier"] or item["id"]
            payload = "" if item["payload"] is None else f"  {json.dumps(item['payload'])}"
            lines.append(f"  {item['kind']} {name}{payload}")
    lines.append("checkpoints:")
    lines += [
        f"  #{i.checkpoint:<5} step {i.step:>5}  {i.trigger:<10}  "
        f"{'full' if i.full else f'+{i.deltas} deltas':<12}  {i.status:<9}  "
        f"next={i.next_node or '-'}  {i.size} bytes  {_when(i.created_at)}"
        for i in infos
    ]
    return "\n".join(lines)


async def _decide(store: Store, args: argparse.Namespace) -> Any:
    value: dict[str, Any] = {"decision": args.decision}
    if args.decision == "reject":
        value["reason"] = args.reason
    interrupt = await answer_stored(store, args.thread, args.barrier, value)
    return f"{args.decision} recorded for {interrupt.barrier_id}; resume the thread to apply it"


async def _resume(store: Store, args: argparse.Namespace) -> Any:
    try:
        value = json.loads(args.value)
    except ValueError as exc:
        raise ValueError(f"VALUE is not JSON: {exc}") from exc
    stored = await read_stored(store, args.thread)
    target = args.interrupt
    if target is None:
        if len(stored.interrupts) != 1:
            shown = ", ".join(str(i.id) for i in stored.interrupts) or "nothing"
            raise ValueError(f"say which interrupt with --interrupt (waiting: {shown})")
        target = str(stored.interrupts[0].id)
    interrupt = await answer_stored(store, args.thread, target, value)
    return f"value recorded for {interrupt.id}; resume the thread to apply it"
