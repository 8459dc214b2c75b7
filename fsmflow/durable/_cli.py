"""The command line of durable runs.

* ``fsmflow worker MODULE:ATTR [MODULE:ATTR ...] --store PATH_OR_DSN`` runs a :class:`Worker`
  for the workflows named (an attribute may also be a list or tuple of workflows) until
  SIGINT or SIGTERM, which hand its runs back at once.
* The durable runs' part of ``fsmflow runs`` (assembled in :mod:`fsmflow._runs_cli`):
  their rows in ``list``, ``show`` for a run, and ``cancel``, ``retry`` and ``signal``;
  each is a thin layer over the functions of :mod:`._control` (``list_durable_runs`` and
  friends), which other front ends can call directly.

Exit status of ``worker``: 0 once stopped; 2 (with usage) for a bad reference; 1 when it
failed (a store error).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import trio

from .. import store as stores
from ..store import Store, StoreError, is_postgres_dsn
from ._control import (
    cancel_durable_run,
    list_durable_runs,
    retry_durable_run,
    show_durable_run,
    signal_durable_run,
)
from ._errors import DurableError
from ._records import RunStatus
from ._supervisor import RunSettings
from ._worker import Worker
from ._workflow import Workflow

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

Command = Callable[[Store, argparse.Namespace], Awaitable[Any]]


def register(commands: Commands) -> None:
    """Add the ``worker`` subcommand to the ``fsmflow`` parser."""
    parser = commands.add_parser(
        "worker",
        help="run durable workflows from a store until stopped",
        description=(
            "Claim and run the durable runs of the workflows named by MODULE:ATTR (a "
            "Workflow, or a list or tuple of them) in the store at PATH. SIGINT and SIGTERM "
            "stop the worker and hand its runs back, to resume in another worker."
        ),
    )
    parser.add_argument("targets", metavar="MODULE:ATTR", nargs="+")
    parser.add_argument(
        "--store",
        required=True,
        metavar="PATH_OR_DSN",
        help="a SQLite file, or a PostgreSQL DSN (postgresql://user@host/db)",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--lease-ttl", type=float, default=30.0)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help=(
            "how far ahead an idle worker looks for due runs (it wakes on notifications; "
            "on SQLite it also looks this often for other processes' notifications)"
        ),
    )
    parser.add_argument("--sweep-interval", type=float, default=10.0)
    parser.add_argument("--max-recoveries", type=int, default=5)
    parser.add_argument("--inline-wait", type=float, default=1.0)
    parser.add_argument("--owner", help="this worker's name in leases (default: random)")
    parser.set_defaults(handler=functools.partial(_worker, parser))


def load_workflows(reference: str) -> list[Workflow[Any, Any]]:
    """The workflows ``MODULE:ATTR`` names; raises :class:`ValueError` saying why not."""
    module_name, colon, attr_path = reference.partition(":")
    if not colon or not module_name or not attr_path:
        raise ValueError(f"{reference!r} is not a MODULE:ATTR reference")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"module {module_name!r} not found: {exc}") from None
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    items: list[object] = list(target) if isinstance(target, list | tuple) else [target]
    flows: list[Workflow[Any, Any]] = []
    for item in items:
        if not isinstance(item, Workflow):
            raise ValueError(f"{reference} is a {type(item).__name__}, not a Workflow")
        flows.append(item)
    return flows


async def open_store(location: str, *, poll_interval: float | None = None) -> Store:
    """The store ``location`` names: a PostgreSQL DSN (``postgresql://...`` or a libpq
    ``key=value`` string) or the path of a SQLite file (see
    :func:`fsmflow.store.open_store`). On SQLite, ``poll_interval`` is how often a
    listener looks for other processes' notifications (PostgreSQL delivers them)."""
    if poll_interval is None or is_postgres_dsn(location):
        return await stores.open_store(location)
    return await stores.open_store(location, poll_interval=poll_interval)


def _worker(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        flows = [flow for reference in args.targets for flow in load_workflows(reference)]
    except ValueError as exc:
        parser.error(str(exc))
    try:
        trio.run(_serve, flows, args)
    except (StoreError, DurableError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return 0


async def _serve(flows: list[Workflow[Any, Any]], args: argparse.Namespace) -> None:
    store = await open_store(args.store, poll_interval=args.poll_interval)
    try:
        worker = Worker(
            store,
            flows,
            concurrency=args.concurrency,
            owner=args.owner,
            lease_ttl=args.lease_ttl,
            poll_interval=args.poll_interval,
            sweep_interval=args.sweep_interval,
            max_recoveries=args.max_recoveries,
            settings=RunSettings(inline_wait=args.inline_wait),
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                names = ", ".join(f"{f.name} ({f.version_hash})" for f in flows)
                print(f"worker {worker.owner} serving {names} on {args.store}", file=sys.stderr)
                sys.stderr.flush()
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()


# -- runs ---------------------------------------------------------------------------------


def configure_list(listing: argparse.ArgumentParser) -> None:
    """The options ``runs list`` has for durable runs."""
    listing.add_argument(
        "--status", choices=[s.value for s in RunStatus], help="only durable runs in it"
    )
    listing.add_argument("--workflow", help="only durable runs of this workflow")


def add_actions(action: Callable[[str, str, Command], argparse.ArgumentParser]) -> None:
    """Add the durable runs' own actions through ``action(name, help, command)``, which
    makes a subparser taking the store as its first argument."""
    specs: list[tuple[str, str, Command, list[tuple[str, str]]]] = [
        (
            "cancel",
            "ask a durable run to stop (its steps are undone)",
            _cancel,
            [("run_id", "RUN_ID")],
        ),
        ("retry", "resume a dead-lettered durable run", _retry, [("run_id", "RUN_ID")]),
        (
            "signal",
            "send a signal (TYPE and JSON VALUE) to a durable run",
            _signal,
            [("run_id", "RUN_ID"), ("type", "TYPE"), ("value", "JSON")],
        ),
    ]
    for name, help_text, command, positionals in specs:
        parser = action(name, help_text, command)
        for dest, metavar in positionals:
            parser.add_argument(dest, metavar=metavar)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


async def list_runs(store: Store, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The durable runs ``runs list`` shows (``--status``, ``--workflow``), as JSON data."""
    status = None if args.status is None else RunStatus(args.status)
    rows = await list_durable_runs(store, status=status, workflow=args.workflow)
    return [attrs.asdict(row) for row in rows]


def run_line(row: dict[str, Any]) -> str:
    """One line of ``runs list`` for a run of :func:`list_runs`."""
    return (
        f"{row['run_id']}  {row['workflow']}@{row['version']}  {row['status']:<19} "
        f"{row['state']:<20} queue={row['queue']}/{row['priority']}  "
        f"recoveries={row['recoveries']}  {_when(row['updated_at'])}"
        + (f"  error: {row['error']}" if row["error"] else "")
    )


async def show_run(store: Store, run_id: str, args: argparse.Namespace) -> Any:
    """``runs show`` for a durable run; raises :class:`UnknownRun` when there is none."""
    shown = await show_durable_run(store, run_id)
    if args.json:
        return shown
    lines = [
        f"run {shown['run_id']}: {shown['workflow']}@{shown['version']} {shown['status']} "
        f"(state {shown['state']}, recoveries {shown['recoveries']})",
        f"input: {json.dumps(shown['input'])}",
    ]
    if "result" in shown:
        lines.append(f"result: {json.dumps(shown['result'])}")
    if shown["error"]:
        lines.append(f"error: {shown['error']}")
    lines.append(f"progress: {json.dumps(shown['progress'])}")
    for entry in shown["journal"]:
        rest = {k: v for k, v in entry.items() if k not in ("seq", "k")}
        lines.append(f"  journal #{entry['seq']} {entry['k']} {json.dumps(rest)}")
    for entry in shown["control"]:
        rest = {k: v for k, v in entry.items() if k not in ("seq", "k")}
        lines.append(f"  control #{entry['seq']} {entry['k']} {json.dumps(rest)}")
    return "\n".join(lines)


async def _cancel(store: Store, args: argparse.Namespace) -> Any:
    if await cancel_durable_run(store, args.run_id):
        return f"cancel requested for {args.run_id}"
    return f"{args.run_id} has already ended"


async def _retry(store: Store, args: argparse.Namespace) -> Any:
    await retry_durable_run(store, args.run_id)
    return f"{args.run_id} will be resumed by a worker"


async def _signal(store: Store, args: argparse.Namespace) -> Any:
    try:
        json.loads(args.value)
    except ValueError as exc:
        raise DurableError(f"VALUE is not JSON: {exc}") from None
    await signal_durable_run(store, args.run_id, args.type, args.value.encode())
    return f"{args.type} signal sent to {args.run_id}"
