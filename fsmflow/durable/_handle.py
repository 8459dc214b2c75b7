"""Starting runs, and the handle any process can hold on one."""

from __future__ import annotations

import time
import uuid
from typing import Any, Generic, TypeVar

import anyio

from ..store import Notify, OfferLease, Put, Store, VersionConflict
from ._control import (
    cancel_durable_run,
    load_record,
    signal_durable_run,
    undo_entries,
)
from ._errors import DurableError, OutputTooLarge, RunFailed, RunNotFinished, UnknownSignal
from ._fsm import RunProgress
from ._records import (
    IDEMPOTENCY,
    RUNS,
    RunRecord,
    RunStatus,
    encode_record,
    encode_text,
    ended_channel,
    queue_channel,
    run_resource,
)
from ._workflow import Workflow

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class RunHandle(Generic[I, O]):
    """A durable run, seen from any process: its status, its typed result, and the ways
    to steer it (``cancel``, ``signal``). Holding a handle keeps nothing alive; make one
    with :func:`start_run` or :meth:`attach`."""

    def __init__(self, store: Store, workflow: Workflow[I, O], run_id: str) -> None:
        self.store = store
        self.workflow = workflow
        self.run_id = run_id

    @classmethod
    def attach(cls, store: Store, workflow: Workflow[I, O], run_id: str) -> RunHandle[I, O]:
        """A handle on an existing run (checked when first used)."""
        return cls(store, workflow, run_id)

    async def record(self) -> RunRecord:
        """The run's stored record; raises :class:`~fsmflow.durable.UnknownRun`."""
        return await load_record(self.store, self.run_id)

    async def status(self) -> RunStatus:
        return (await self.record()).status

    async def result(self, *, poll_interval: float = 1.0, wait: bool = True) -> O:
        """The run's output once it completed, waiting for it unless ``wait=False`` (then
        :class:`~fsmflow.durable.RunNotFinished` while it runs). A run that ended otherwise
        raises :class:`~fsmflow.durable.RunFailed` naming its final status, the error, and
        which undos ran and which failed.

        The wait sleeps until the store announces that a run ended (a notification the
        run's final commit sends: LISTEN/NOTIFY on PostgreSQL), then re-reads the run;
        ``poll_interval`` is only the fallback for a notification that never arrives (a
        ``SqliteStore`` in another process is heard at the store's own ``poll_interval``).
        Bound the wait with a cancel scope."""
        record = await self.record()
        if not record.status.is_final:
            if not wait:
                raise RunNotFinished(f"run {self.run_id!r} is {record.status.value}")
            # Read again once listening: an end committed in between is not missed.
            async with self.store.listen(ended_channel(self.run_id)) as ended:
                while not (record := await self.record()).status.is_final:
                    with anyio.move_on_after(poll_interval):
                        await ended.wait()
        if record.status is RunStatus.COMPLETED and record.result is not None:
            value: O = self.workflow.codec.decode(
                record.result.encode(), self.workflow.output_type, f"{RUNS}/{self.run_id} result"
            )
            return value
        undos = await undo_entries(self.store, self.run_id)
        steps = self.workflow.steps
        name = {s.index: s.name for s in steps}
        raise RunFailed(
            self.run_id,
            record.status,
            record.error,
            [name.get(i, str(i)) for i, error in undos if error is None],
            [(name.get(i, str(i)), error) for i, error in undos if error is not None],
        )

    async def cancel(self) -> bool:
        """Ask the run to stop (see :func:`~fsmflow.durable.cancel_durable_run`);
        ``False`` when it had already ended."""
        return await cancel_durable_run(self.store, self.run_id)

    async def signal(self, value: object) -> None:
        """Send ``value`` (of a type the workflow declares in ``signals=``) to the run;
        the run's ``ctx.wait_for_signal`` receives signals in the order sent."""
        name = type(value).__name__
        declared = self.workflow.signal_types.get(name)
        if declared is not type(value):
            raise UnknownSignal(
                f"workflow {self.workflow.name!r} declares no signal type {name} "
                f"(declared: {', '.join(self.workflow.signal_types) or 'none'})"
            )
        data = self.workflow.codec.encode(value, declared)
        _check_size(self.workflow, f"a {name} signal", data)
        await signal_durable_run(self.store, self.run_id, name, data)

    def __repr__(self) -> str:
        return f"<RunHandle {self.workflow.name}/{self.run_id}>"


def _check_size(workflow: Workflow[Any, Any], what: str, data: bytes) -> None:
    if len(data) > workflow.max_output_bytes:
        raise OutputTooLarge(what, len(data), workflow.max_output_bytes)


async def start_run(
    store: Store,
    workflow: Workflow[I, O],
    input: I,
    *,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    priority: int = 0,
    delay: float = 0.0,
    concurrency_key: str | None = None,
) -> RunHandle[I, O]:
    """Store a new run of ``workflow`` and hand it to the workers; return its handle.

    The run (record and its offered lease) is committed in one batch before any worker
    can see it (persist before hand-off), so a started run is never lost. The same
    ``run_id`` or ``idempotency_key`` as an earlier call returns that run instead of
    starting another. ``priority`` is a level of the workflow's queue (higher first),
    ``delay`` postpones the start (a durable timer), ``concurrency_key`` is what the
    queue's ``per_key`` limit counts by.
    """
    compiled = workflow.compile()
    queue = workflow.queue
    if not 0 <= priority < queue.priorities:
        raise ValueError(
            f"priority {priority} is outside queue {queue.name!r}'s levels "
            f"0..{queue.priorities - 1}"
        )
    if concurrency_key is not None and "/" in concurrency_key:
        raise ValueError(f"a concurrency key must not contain '/': {concurrency_key!r}")
    run_id = run_id or uuid.uuid4().hex
    if not run_id or "/" in run_id:
        raise ValueError(f"a run id must be non-empty and contain no '/': {run_id!r}")
    data = workflow.codec.encode(input, workflow.input_type)
    _check_size(workflow, f"the input of run {run_id!r}", data)
    version = workflow.version_hash
    now = time.time()
    resource = run_resource(queue.name, priority, version, run_id)
    record = RunRecord(
        run_id=run_id,
        workflow=workflow.name,
        version=version,
        queue=queue.name,
        priority=priority,
        resource=resource,
        status=RunStatus.PENDING,
        state=encode_text(workflow.codec, compiled.states["PENDING"], compiled.states),
        progress=encode_text(workflow.codec, RunProgress(), RunProgress),
        input=data.decode(),
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        concurrency_key=concurrency_key,
        retention=workflow.retention,
    )
    ops: list[Any] = []
    if idempotency_key is not None:
        ops.append(Put(IDEMPOTENCY, idempotency_key, run_id.encode(), expected_version=0))
    ops += [
        Put(RUNS, run_id, encode_record(record), expected_version=0),
        OfferLease(resource, delay),
    ]
    if delay <= 0:
        ops.append(Notify(queue_channel(queue.name)))  # a delayed start wakes by its timer
    try:
        await store.write_batch(ops)
    except VersionConflict:
        existing = run_id
        if idempotency_key is not None:
            stored = await store.get(IDEMPOTENCY, idempotency_key)
            if stored is not None:
                existing = stored.value.decode()
        found = await load_record(store, existing)
        if found.workflow != workflow.name:
            raise DurableError(
                f"run {existing!r} exists and is a run of {found.workflow!r}, not {workflow.name!r}"
            ) from None
        return RunHandle(store, workflow, existing)
    return RunHandle(store, workflow, run_id)
