"""What a durable run keeps in the store, and under which names.

Layout (``ID`` is the run id):

* key/value namespace ``fsmflow.durable.runs``, key ``ID``: the :class:`RunRecord` — small
  and of constant size: status, FSM state and progress, input, result, bookkeeping;
* log ``fsmflow.durable.journal/ID``: the run's journal, one entry per fact a step
  produced (its output, an undo's result, a durable timer), appended in the same fenced
  batch as the record that says the fact exists; restoring a run reads it once;
* log ``fsmflow.durable.control/ID``: signals and cancel requests sent from outside;
* key/value namespace ``fsmflow.durable.idempotency``: idempotency key -> run id;
* notification channels: ``fsmflow.durable.queue:QUEUE`` wakes the queue's workers,
  ``fsmflow.durable.ended:N`` wakes the waiters of results (:func:`ended_channel`);
* leases: ``fsmflow.durable.run/QUEUE/LEVEL/VERSION/ID`` owns the run (whoever holds it may
  write the run; a free one offered for a time is a pending run, a durable timer or a
  retry); ``fsmflow.durable.gc/ID`` offered for the end of the run's retention;
  ``fsmflow.durable.slot/...`` are concurrency slots of queues.
"""

from __future__ import annotations

import enum
import json
import zlib
from typing import Any

import attrs

from ..store import Codec, DecodeError

RUNS = "fsmflow.durable.runs"
IDEMPOTENCY = "fsmflow.durable.idempotency"
RATES = "fsmflow.durable.rates"
RUN_LEASES = "fsmflow.durable.run/"
GC_LEASES = "fsmflow.durable.gc/"
SLOT_LEASES = "fsmflow.durable.slot/"


def journal_log(run_id: str) -> str:
    return f"fsmflow.durable.journal/{run_id}"


def control_log(run_id: str) -> str:
    return f"fsmflow.durable.control/{run_id}"


def run_prefix(queue: str, level: int, version: str) -> str:
    """The lease prefix a worker claims runs of one queue, priority level and version by."""
    return f"{RUN_LEASES}{queue}/{level}/{version}/"


def run_resource(queue: str, level: int, version: str, run_id: str) -> str:
    return run_prefix(queue, level, version) + run_id


def gc_resource(run_id: str) -> str:
    return GC_LEASES + run_id


#: Result waiters listen on one of this many channels (a run's is fixed by its id), so a
#: store keeps a bounded set of channels however many runs there are.
ENDED_CHANNELS = 64


def queue_channel(queue: str) -> str:
    """The notification channel that wakes the workers of ``queue``: new runs, signals,
    cancel requests and freed concurrency slots are announced on it."""
    return f"fsmflow.durable.queue:{queue}"


def ended_channel(run_id: str) -> str:
    """The notification channel on which a run's end is announced (shared by the runs
    whose ids fall in the same bucket: a waiter re-reads its run on every wake-up)."""
    return f"fsmflow.durable.ended:{zlib.crc32(run_id.encode()) % ENDED_CHANNELS}"


class RunStatus(enum.Enum):
    """Where a run is, as every process sees it (derived from its FSM state)."""

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.COMPENSATED,
        RunStatus.COMPENSATION_FAILED,
        RunStatus.CANCELLED,
        RunStatus.DEAD_LETTERED,
    }
)


@attrs.frozen
class RunRecord:
    """One durable run as stored. ``state``, ``progress``, ``input`` and ``result`` are
    JSON text encoded with the workflow's (or supervisor's) own codec, so this record can
    be read — listed, shown, cancelled — without the workflow's code."""

    run_id: str
    #: The workflow's (or durable supervisor's) name.
    workflow: str
    #: Hash of the workflow's spec: only a worker that knows it runs the run.
    version: str
    queue: str
    priority: int
    #: The lease that owns the run.
    resource: str
    status: RunStatus
    #: The FSM state, encoded.
    state: str
    #: The FSM context (the run's progress), encoded.
    progress: str
    input: str
    created_at: float
    updated_at: float
    #: The lease token of the last write (see :mod:`._recovery`).
    token: int = 0
    #: Whether the last write was made by a worker still running the run (``False``
    #: once the run was parked, handed back or finished: released cleanly).
    held: bool = False
    #: Times a worker took the run over from one that stopped without releasing it.
    recoveries: int = 0
    #: Events the run's FSM handled so far.
    transitions: int = 0
    result: str | None = None
    error: str | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    #: Seconds a finished run is kept before a sweeping worker deletes it.
    retention: float = 7 * 86400.0


RECORD_CODEC = Codec().register(RunRecord, RunStatus)


def encode_record(record: RunRecord) -> bytes:
    return RECORD_CODEC.encode(record)


def decode_record(data: bytes, run_id: str) -> RunRecord:
    record: RunRecord = RECORD_CODEC.decode(data, RunRecord, f"{RUNS}/{run_id}")
    return record


def dumps(raw: Any) -> str:
    """Compact JSON text of an unstructured value."""
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)


def encode_text(codec: Codec, value: object, as_type: Any) -> str:
    """``value`` as JSON text through ``codec`` (registered types only)."""
    return codec.encode(value, as_type).decode()


def decode_text(codec: Codec, text: str, as_type: Any, key: str) -> Any:
    """JSON text back into ``as_type``; bad text raises :class:`DecodeError` naming ``key``."""
    return codec.decode(text.encode(), as_type, key)


def load_json(data: bytes, key: str, expected: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(key, expected, f"not JSON text ({exc})") from exc
