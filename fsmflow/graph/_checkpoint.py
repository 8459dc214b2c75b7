"""Checkpoints of graph runs on :mod:`fsmflow.store`.

A checkpoint is stored under the run's trace id and the step it was taken at; it holds
the node a resumed run continues with, the state, and the graph's structure hash.
States are written incrementally: the first checkpoint of a run (and every one after
``compact_after`` incremental ones) holds the full state, the others only the deltas
applied since the previous checkpoint. Restoring replays the deltas on the last full
state with the graph's reducers, so it yields exactly the state the run had.
"""

from __future__ import annotations

import enum
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from ..store import Checkpoint, CheckpointStore, Codec, DecodeError
from ._errors import CheckpointNotFound, GraphHashMismatch, GraphHashMismatchWarning
from ._graph import Graph
from ._state import Delta, StateSchema

S = TypeVar("S")

#: Version of the stored record layout.
RECORD_FORMAT = 1


class CheckpointTrigger(enum.Enum):
    """Why a checkpoint was taken."""

    STEP = "step"
    BARRIER = "barrier"
    COMPLETION = "completion"
    REQUEST = "request"
    ADAPTIVE = "adaptive"


@attrs.frozen(slots=True)
class AdaptiveScore:
    """Checkpoint after a step whose score reaches ``threshold``: seconds the node took
    times ``duration_weight``, plus the cost it reported times ``cost_weight``, plus
    ``side_effect_weight`` when it reported side effects. Expensive or irreversible work
    is then saved at once, cheap steps are not."""

    duration_weight: float = 1.0
    cost_weight: float = 1.0
    side_effect_weight: float = 1.0
    threshold: float = 1.0

    def score(self, duration: float, cost: float, side_effects: bool) -> float:
        return (
            duration * self.duration_weight
            + cost * self.cost_weight
            + (self.side_effect_weight if side_effects else 0.0)
        )

    def wants(self, duration: float, cost: float, side_effects: bool) -> bool:
        return self.score(duration, cost, side_effects) >= self.threshold


@attrs.frozen(slots=True)
class CheckpointPolicy:
    """When a run with a store saves checkpoints.

    ``every_step``: after every node. ``on_barrier``: when a barrier starts waiting (so
    another process can resume and wait) and once it is resolved. ``on_completion``: when
    the run completes. ``on_request``: when the handle asks. ``adaptive``: after steps
    whose :class:`AdaptiveScore` is high enough.
    """

    every_step: bool = False
    on_barrier: bool = True
    on_completion: bool = True
    on_request: bool = True
    adaptive: AdaptiveScore | None = None


@attrs.frozen(slots=True)
class CheckpointRecord:
    """What one checkpoint stores (JSON through the store's codec)."""

    trace_id: str
    step: int
    graph: str
    graph_hash: str
    #: Where a resumed run continues; ``None`` once the run completed.
    next_node: str | None
    trigger: str
    #: ``state`` holds the full state; otherwise ``deltas`` holds the deltas applied
    #: since the previous checkpoint.
    full: bool
    state: Any
    deltas: list[dict[str, Any]]
    #: How often each barrier node has been reached, so barrier ids continue.
    occurrences: dict[str, int]
    #: ``running``, ``waiting`` (at a barrier) or ``completed``.
    status: str
    format: int = RECORD_FORMAT


def _codec() -> Codec:
    return Codec().register(CheckpointRecord)


def decode_record(codec: Codec, checkpoint: Checkpoint) -> CheckpointRecord:
    """Decode one stored checkpoint; bad bytes raise ``DecodeError`` naming it."""
    key = f"checkpoint {checkpoint.run_id}@{checkpoint.step}"
    record: CheckpointRecord = codec.decode(checkpoint.value, CheckpointRecord, key)
    return record


@attrs.frozen(slots=True)
class Restored(Generic[S]):
    """A run's position rebuilt from its checkpoints."""

    trace_id: str
    state: S
    step: int
    next_node: str | None
    occurrences: dict[str, int]
    graph_hash: str


class Checkpointer(Generic[S]):
    """Writes one run's checkpoints and keeps its incremental chain."""

    def __init__(
        self,
        store: CheckpointStore,
        graph: Graph[S],
        trace_id: str,
        policy: CheckpointPolicy,
        compact_after: int,
        codec: Codec | None = None,
    ) -> None:
        if compact_after < 0:
            raise ValueError(f"compact_after must be >= 0, not {compact_after}")
        self.store = store
        self.graph = graph
        self.schema: StateSchema[S] = graph.schema
        self.trace_id = trace_id
        self.policy = policy
        self.compact_after = compact_after
        self.codec = codec or _codec()
        if not self.codec.is_registered(CheckpointRecord):
            self.codec.register(CheckpointRecord)
        #: Deltas applied since the last saved checkpoint.
        self.pending: list[Delta] = []
        #: Incremental records since the last full one; ``None`` before any full one.
        self.chain: int | None = None
        self.last_step: int | None = None

    def record(self, deltas: Sequence[Delta]) -> None:
        """Note deltas applied to the state (they go into the next incremental record)."""
        self.pending.extend(d for d in deltas if d)

    def _unstructure_delta(self, delta: Delta) -> dict[str, Any]:
        converter = self.codec.converter
        return {k: converter.unstructure(v, self.schema.update_type(k)) for k, v in delta.items()}

    async def save(
        self,
        state: S,
        step: int,
        next_node: str | None,
        trigger: CheckpointTrigger,
        occurrences: Mapping[str, int],
        status: str,
    ) -> bool:
        """Store a checkpoint; returns whether it was incremental. A full record is
        written first, after ``compact_after`` incremental ones, and whenever a second
        checkpoint is taken at the same step (it replaces the first, so it must not lose
        the deltas the first one carried)."""
        full = self.chain is None or self.chain >= self.compact_after or self.last_step == step
        converter = self.codec.converter
        # The layout cattrs gives a CheckpointRecord (what ``load_run`` decodes), built
        # directly: unstructuring the record itself would cost as much as a whole step.
        record = {
            "trace_id": self.trace_id,
            "step": step,
            "graph": self.graph.name,
            "graph_hash": self.graph.hash,
            "next_node": next_node,
            "trigger": trigger.value,
            "full": full,
            "state": converter.unstructure(state, self.schema.state_type) if full else None,
            "deltas": [] if full else [self._unstructure_delta(d) for d in self.pending],
            "occurrences": dict(occurrences),
            "status": status,
            "format": RECORD_FORMAT,
        }
        data = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        await self.store.save_checkpoint(self.trace_id, step, data)
        self.pending.clear()
        self.chain = 0 if full else (self.chain or 0) + 1
        self.last_step = step
        return not full


async def load_run(
    store: CheckpointStore,
    graph: Graph[S],
    trace_id: str,
    *,
    force: bool = False,
    codec: Codec | None = None,
) -> Restored[S]:
    """Rebuild the latest position of ``trace_id``.

    Raises :class:`CheckpointNotFound`, :class:`GraphHashMismatch` (unless ``force``,
    which warns with :class:`GraphHashMismatchWarning` instead) and ``DecodeError``.
    """
    codec = codec or _codec()
    if not codec.is_registered(CheckpointRecord):
        codec.register(CheckpointRecord)
    stored = await store.checkpoints(trace_id)
    if not stored:
        raise CheckpointNotFound(trace_id)
    latest = decode_record(codec, stored[-1])
    if latest.graph_hash != graph.hash:
        mismatch = GraphHashMismatch(trace_id, latest.graph_hash, graph.hash)
        if not force:
            raise mismatch
        warnings.warn(str(mismatch), GraphHashMismatchWarning, stacklevel=3)
    chain = [latest]
    index = len(stored) - 1
    while not chain[-1].full:
        index -= 1
        if index < 0:
            raise DecodeError(
                f"checkpoint {trace_id}@{latest.step}", "CheckpointRecord", "no full base state"
            )
        chain.append(decode_record(codec, stored[index]))
    chain.reverse()
    schema = graph.schema
    converter = codec.converter
    base = chain[0]
    try:
        state: S = converter.structure(base.state, schema.state_type)
    except Exception as exc:
        raise DecodeError(
            f"checkpoint {trace_id}@{base.step}", schema.state_type.__name__, str(exc)
        ) from exc
    for record in chain[1:]:
        for raw in record.deltas:
            try:
                delta = {k: converter.structure(v, schema.update_type(k)) for k, v in raw.items()}
            except Exception as exc:
                raise DecodeError(
                    f"checkpoint {trace_id}@{record.step}", "delta", str(exc)
                ) from exc
            state = schema.apply(state, delta, f"<restore {record.step}>")
    return Restored(
        trace_id, state, latest.step, latest.next_node, dict(latest.occurrences), latest.graph_hash
    )


@attrs.frozen(slots=True)
class CheckpointInfo:
    """One stored checkpoint, as ``fsmflow runs show`` lists it."""

    step: int
    trigger: str
    full: bool
    next_node: str | None
    status: str
    deltas: int
    size: int
    created_at: float


@attrs.frozen(slots=True)
class RunSummary:
    """One stored run, as ``fsmflow runs list`` shows it."""

    trace_id: str
    graph: str
    graph_hash: str
    checkpoints: int
    latest_step: int
    next_node: str | None
    status: str
    updated_at: float


async def inspect_run(store: CheckpointStore, trace_id: str) -> list[CheckpointInfo]:
    """Every checkpoint of ``trace_id``, oldest first (no state type needed)."""
    codec = _codec()
    infos = []
    for checkpoint in await store.checkpoints(trace_id):
        record = decode_record(codec, checkpoint)
        infos.append(
            CheckpointInfo(
                record.step,
                record.trigger,
                record.full,
                record.next_node,
                record.status,
                len(record.deltas),
                len(checkpoint.value),
                checkpoint.created_at,
            )
        )
    return infos


async def list_runs(store: CheckpointStore) -> list[RunSummary]:
    """A summary of every run in ``store`` that has graph checkpoints (runs whose
    checkpoints another engine wrote are left out)."""
    codec = _codec()
    summaries = []
    for run_id in await store.runs():
        stored = await store.checkpoints(run_id)
        try:
            latest = decode_record(codec, stored[-1])
        except DecodeError:
            continue
        summaries.append(
            RunSummary(
                run_id,
                latest.graph,
                latest.graph_hash,
                len(stored),
                latest.step,
                latest.next_node,
                latest.status,
                stored[-1].created_at,
            )
        )
    return summaries
