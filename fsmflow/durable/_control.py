"""Operations on stored runs that need no workflow code: list, show, cancel, signal,
retry. ``RunHandle`` and the ``fsmflow runs`` command both use them."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

import attrs

from ..store import (
    Append,
    DropLease,
    LeaseHeld,
    LeaseLost,
    Notify,
    OfferLease,
    Put,
    ReleaseLease,
    Store,
)
from ._errors import DurableError, UnknownRun
from ._journal import frame, unframe
from ._records import (
    RUNS,
    RunRecord,
    RunStatus,
    control_log,
    decode_record,
    dumps,
    encode_record,
    ended_channel,
    gc_resource,
    journal_log,
    load_json,
    queue_channel,
)

#: How long an operation holds a run's lease to change its record.
_OPERATION_TTL = 30.0


async def load_record(store: Store, run_id: str) -> RunRecord:
    """The stored record of ``run_id``; raises :class:`UnknownRun`."""
    stored = await store.get(RUNS, run_id)
    if stored is None:
        raise UnknownRun(run_id)
    return decode_record(stored.value, run_id)


@attrs.frozen
class RunRow:
    """One line of ``fsmflow runs list``."""

    run_id: str
    workflow: str
    version: str
    queue: str
    priority: int
    status: str
    state: str
    recoveries: int
    created_at: float
    updated_at: float
    error: str | None


async def list_durable_runs(
    store: Store, *, status: RunStatus | None = None, workflow: str | None = None
) -> list[RunRow]:
    """Every stored run (optionally of one status or workflow), oldest first."""
    rows = []
    for run_id in await store.keys(RUNS):
        stored = await store.get(RUNS, run_id)
        if stored is None:
            continue
        record = decode_record(stored.value, run_id)
        if status is not None and record.status is not status:
            continue
        if workflow is not None and record.workflow != workflow:
            continue
        rows.append(
            RunRow(
                record.run_id,
                record.workflow,
                record.version,
                record.queue,
                record.priority,
                record.status.value,
                _state_name(record.state),
                record.recoveries,
                record.created_at,
                record.updated_at,
                record.error,
            )
        )
    rows.sort(key=lambda row: (row.created_at, row.run_id))
    return rows


def _state_name(state: str) -> str:
    try:
        value = json.loads(state)
    except ValueError:
        return state
    return value if isinstance(value, str) else state


async def show_durable_run(store: Store, run_id: str) -> dict[str, Any]:
    """Everything stored about a run: its record, journal (one line per entry) and
    control log (signals and cancel requests), as plain JSON-able values."""
    record = await load_record(store, run_id)
    journal = []
    for entry in await store.read(journal_log(run_id)):
        header, value = unframe(entry.value, f"{journal_log(run_id)}#{entry.seq}")
        item: dict[str, Any] = {"seq": entry.seq, **header}
        if value:
            item["value"] = load_json(value, f"{journal_log(run_id)}#{entry.seq}", "a value")
        journal.append(item)
    control = []
    for entry in await store.read(control_log(run_id)):
        header, value = unframe(entry.value, f"{control_log(run_id)}#{entry.seq}")
        item = {"seq": entry.seq, **header}
        if value:
            item["value"] = load_json(value, f"{control_log(run_id)}#{entry.seq}", "a value")
        control.append(item)
    lease = await store.get_lease(record.resource)
    data = attrs.asdict(record)
    data["status"] = record.status.value
    data["state"] = _state_name(record.state)
    data["progress"] = load_json(record.progress.encode(), run_id, "progress")
    data["input"] = load_json(record.input.encode(), run_id, "input")
    if record.result is not None:
        data["result"] = load_json(record.result.encode(), run_id, "result")
    data["lease"] = None if lease is None else attrs.asdict(lease)
    data["journal"] = journal
    data["control"] = control
    return data


async def undo_entries(store: Store, run_id: str) -> list[tuple[int, str | None]]:
    """The undos that ran, in order: (step index, ``None`` or the error it failed with)."""
    results = []
    for entry in await store.read(journal_log(run_id)):
        header, _ = unframe(entry.value, f"{journal_log(run_id)}#{entry.seq}")
        if header["k"] == "undo":
            index = header.get("s")
            if isinstance(index, int):
                results.append((index, None if header.get("ok") else str(header.get("e"))))
    return results


async def send_control(store: Store, run_id: str, header: dict[str, Any], value: bytes) -> bool:
    """Append a control entry and wake the run. ``False`` if the run already ended."""
    record = await load_record(store, run_id)
    if record.status.is_final:
        return False
    await store.write_batch(
        [
            Append(control_log(run_id), frame(header, value)),
            OfferLease(record.resource),
            Notify(queue_channel(record.queue)),
        ]
    )
    return True


async def cancel_durable_run(store: Store, run_id: str) -> bool:
    """Ask the run to stop. A run no worker has started yet ends ``CANCELLED`` at once;
    any other is stopped by its worker at the next step boundary, its completed steps are
    undone (in reverse), and it ends ``CANCELLED``. ``False`` when it already ended."""
    record = await load_record(store, run_id)
    if record.status.is_final:
        return False
    if record.status is RunStatus.PENDING and not record.held:
        try:
            lease = await store.acquire_lease(
                record.resource, f"cancel-{uuid.uuid4().hex}", _OPERATION_TTL
            )
        except LeaseHeld:
            pass
        else:
            try:
                record = await load_record(store, run_id)
                if record.status is RunStatus.PENDING:
                    progress = load_json(record.progress.encode(), run_id, "progress")
                    progress["cancel_requested"] = True
                    done = attrs.evolve(
                        record,
                        status=RunStatus.CANCELLED,
                        state=dumps("CANCELLED"),
                        progress=dumps(progress),
                        updated_at=time.time(),
                        token=lease.token,
                        held=False,
                        error="cancelled before it started",
                    )
                    await store.write_batch(
                        [
                            Put(RUNS, run_id, encode_record(done)),
                            ReleaseLease(record.resource, lease.token, math.inf),
                            OfferLease(gc_resource(run_id), record.retention),
                            Notify(ended_channel(run_id)),
                        ],
                        fence=lease.fence,
                    )
                    return True
                await store.write_batch(
                    [
                        Put(RUNS, run_id, encode_record(attrs.evolve(record, token=lease.token))),
                        ReleaseLease(record.resource, lease.token, 0.0),
                    ],
                    fence=lease.fence,
                )
            except LeaseLost:
                pass
    return await send_control(store, run_id, {"k": "cancel"}, b"")


async def signal_durable_run(store: Store, run_id: str, type_name: str, value: bytes) -> None:
    """Send a signal (``value``: JSON of the declared signal type ``type_name``). Raises
    :class:`DurableError` when the run already ended."""
    if not await send_control(store, run_id, {"k": "signal", "t": type_name}, value):
        raise DurableError(f"run {run_id!r} has ended; it takes no signals")


async def retry_durable_run(store: Store, run_id: str) -> None:
    """Give a dead-lettered run another go: its recovery count restarts at 0 and a worker
    resumes it from its last committed step (or undo). Raises :class:`DurableError` for a
    run that is not dead-lettered."""
    record = await load_record(store, run_id)
    if record.status is not RunStatus.DEAD_LETTERED:
        raise DurableError(
            f"run {run_id!r} is {record.status.value}; only dead-lettered runs can be retried"
        )
    lease = await store.acquire_lease(record.resource, f"retry-{uuid.uuid4().hex}", _OPERATION_TTL)
    record = await load_record(store, run_id)
    if record.status is not RunStatus.DEAD_LETTERED:
        await store.release_lease(lease)
        raise DurableError(f"run {run_id!r} changed meanwhile ({record.status.value})")
    revived = attrs.evolve(
        record,
        status=RunStatus.SLEEPING,
        state=dumps("SLEEPING"),
        updated_at=time.time(),
        token=lease.token,
        held=False,
        recoveries=0,
        error=None,
    )
    await store.write_batch(
        [
            Put(RUNS, run_id, encode_record(revived)),
            ReleaseLease(record.resource, lease.token, 0.0),
            DropLease(gc_resource(run_id)),
            Notify(queue_channel(record.queue)),
        ],
        fence=lease.fence,
    )
