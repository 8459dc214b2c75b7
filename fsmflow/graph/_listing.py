"""Stored runs without their code: listing threads and checkpoints, showing a state,
recording a decision or a resume value — what ``fsmflow runs`` does from the shell.

Without the graph's code a state is shown in its JSON form: the thread's last full state
with the deltas after it replayed for the built-in reducers (``replace``, ``append``,
``add``, ``merge``); a key whose reducer is custom is shown as of the last full state and
named in :attr:`StoredState.stale_keys`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import attrs

from ..store import Codec, DecodeError, Fence, Store
from ._checkpoint import (
    THREADS_NAMESPACE,
    CheckpointRecord,
    CheckpointTrigger,
    ThreadWriter,
    checkpoint_key,
    decode_record,
    ensure_codec,
    shared_codec,
    thread_namespace,
    to_json,
)
from ._errors import CheckpointNotFound
from ._frame import decode_frame, encode_frame, find_pending, release
from ._history import newest, read_head
from ._interrupts import Interrupt, InterruptKind, Stored
from ._lease import DEFAULT_LEASE_TTL, hold_thread


@attrs.frozen(slots=True)
class CheckpointInfo:
    """One stored checkpoint, as ``fsmflow runs show`` lists it."""

    checkpoint: int
    parent: int | None
    run_id: str
    step: int
    trigger: str
    full: bool
    mark: bool
    next_node: str | None
    status: str
    deltas: int
    size: int
    created_at: float


@attrs.frozen(slots=True)
class RunSummary:
    """One stored thread, as ``fsmflow runs list`` shows it."""

    thread_id: str
    run_id: str
    graph: str
    graph_hash: str
    checkpoints: int
    latest_step: int
    next_node: str | None
    status: str
    updated_at: float

    @property
    def trace_id(self) -> str:
        return self.thread_id


async def _kept(store: Store, thread_id: str, codec: Codec) -> list[tuple[CheckpointRecord, int]]:
    namespace = thread_namespace(thread_id)
    out = []
    for key in await store.keys(namespace):
        if not key.startswith("c"):
            continue
        raw = await store.get(namespace, key)
        if raw is not None:
            where = f"checkpoint {thread_id}@{int(key[1:])}"
            out.append((decode_record(codec, raw.value, where), len(raw.value)))
    return out


async def inspect_run(store: Store, thread_id: str) -> list[CheckpointInfo]:
    """Every checkpoint ``thread_id`` keeps, oldest first (no state type needed)."""
    codec = shared_codec()
    return [
        CheckpointInfo(
            record.checkpoint,
            record.parent,
            record.run_id,
            record.step,
            record.trigger,
            record.full,
            record.mark,
            record.next_node,
            record.status,
            len(record.deltas),
            size,
            record.created_at,
        )
        for record, size in await _kept(store, thread_id, codec)
    ]


async def list_runs(store: Store) -> list[RunSummary]:
    """A summary of every graph thread in ``store``, by thread id."""
    codec = shared_codec()
    summaries = []
    for thread_id in await store.keys(THREADS_NAMESPACE):
        head = await read_head(store, thread_id, codec)
        if head is None:
            continue
        _, latest = await newest(store, thread_id, head, codec)
        count = sum(1 for k in await store.keys(thread_namespace(thread_id)) if k.startswith("c"))
        summaries.append(
            RunSummary(
                thread_id,
                latest.run_id,
                latest.graph,
                latest.graph_hash,
                count,
                latest.step,
                latest.next_node,
                latest.status,
                latest.created_at,
            )
        )
    return summaries


@attrs.frozen(slots=True)
class StoredState:
    """The newest checkpoint of a thread, read without the graph's code."""

    record: CheckpointRecord
    #: The state in JSON form (see the module docstring).
    state: Any
    #: Keys whose custom reducer could not be replayed: shown as of the last full state.
    stale_keys: tuple[str, ...]
    interrupts: tuple[Interrupt, ...]


_BUILTIN: dict[str, Callable[[Any, Any], Any]] = {
    "replace": lambda current, update: update,
    "append": lambda current, update: [*current, *update],
    "add": lambda current, update: current + update,
    "merge": lambda current, update: {**current, **update},
}


async def _structure(store: Store, thread_id: str, graph_hash: str) -> dict[str, Any]:
    raw = await store.get(thread_namespace(thread_id), f"structure/{graph_hash}")
    if raw is None:
        return {}
    try:
        found: dict[str, Any] = json.loads(raw.value)
    except ValueError:
        return {}
    return found


async def read_stored(store: Store, thread_id: str) -> StoredState:
    """The newest checkpoint of ``thread_id`` with its state in JSON form."""
    codec = ensure_codec(None)
    head = await read_head(store, thread_id, codec)
    if head is None:
        raise CheckpointNotFound(thread_id)
    _, record = await newest(store, thread_id, head, codec)
    chain = [record]
    while not chain[-1].full:
        parent = chain[-1].parent
        raw = (
            None
            if parent is None
            else await store.get(thread_namespace(thread_id), checkpoint_key(parent))
        )
        if raw is None:
            raise DecodeError(f"checkpoint {thread_id}@{record.checkpoint}", "chain", "broken")
        chain.append(decode_record(codec, raw.value, f"checkpoint {thread_id}@{parent}"))
    chain.reverse()
    reducers = (await _structure(store, thread_id, record.graph_hash)).get("reducers", {})
    state = chain[0].state
    stale: set[str] = set()
    for item in chain[1:]:
        for delta in item.deltas:
            for key, update in delta.items():
                combine = _BUILTIN.get(reducers.get(key, "replace"))
                if combine is None or not isinstance(state, dict):
                    stale.add(key)
                    continue
                try:
                    state[key] = combine(state[key], update) if key in state else update
                except TypeError:
                    stale.add(key)
    frame = decode_frame(record.frame, codec.converter, None, f"checkpoint {thread_id}")
    pending = tuple(find_pending(frame, None))
    return StoredState(record, state, tuple(sorted(stale)), pending)


async def answer_stored(store: Store, thread_id: str, target: str, value: Any) -> Interrupt:
    """Record ``value`` (its JSON form; a barrier's is a decision such as
    ``{"decision": "approve"}``) for the interrupt ``target`` names (its id, a barrier id
    or a barrier node name) as a new checkpoint of the thread; the next resume takes it.
    Raises ``ValueError`` when nothing that waits matches, and :class:`ThreadHeld` while
    a live run holds the thread (answer it through that run's handle instead)."""
    async with hold_thread(store, thread_id, DEFAULT_LEASE_TTL) as lease:
        return await _answer(store, thread_id, target, value, lease.fence)


async def _answer(store: Store, thread_id: str, target: str, value: Any, fence: Fence) -> Interrupt:
    codec = ensure_codec(None)
    head = await read_head(store, thread_id, codec)
    if head is None:
        raise CheckpointNotFound(thread_id)
    latest, record = await newest(store, thread_id, head, codec)
    frame = decode_frame(record.frame, codec.converter, None, f"checkpoint {thread_id}")
    if record.status not in ("waiting", "cancelled", "running"):
        raise ValueError(f"thread {thread_id!r} is {record.status}: nothing waits")
    matched = find_pending(frame, target)
    pending = find_pending(frame, None)
    if not matched:
        shown = ", ".join(
            str(i.barrier_id) if i.barrier_id is not None else str(i.id) for i in pending
        )
        raise ValueError(
            f"nothing named {target!r} waits in thread {thread_id!r} ({shown or 'nothing waits'})"
        )
    if len(matched) > 1:
        raise ValueError(f"{target!r} names {len(matched)} interrupts; name one by its id")
    interrupt = matched[0]
    if interrupt.kind is InterruptKind.BARRIER and not (
        isinstance(value, dict) and value.get("decision") in ("approve", "reject", "skip", "route")
    ):
        raise ValueError("a barrier takes a decision: approve, reject, skip or route")
    release(frame, interrupt, Stored(value))
    raw = attrs.asdict(record)
    seq = latest + 1
    raw.update(
        checkpoint=seq,
        trigger=CheckpointTrigger.RESUME.value,
        frame=encode_frame(frame, codec.converter, None),
        created_at=time.time(),
        token=fence.token,
    )
    if record.full:
        raw.update(parent=record.checkpoint, mark=True, deltas=[])
    else:  # the same state as ``record``: its deltas on its parent
        raw.update(mark=False)
    writer = ThreadWriter(store, thread_id, codec, head, record.policy.get("keep"), fence)
    await writer.write(
        seq, to_json(raw).encode(), full=record.full, mark=raw if record.full else None
    )
    return interrupt
