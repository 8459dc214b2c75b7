"""Reading and editing a thread's checkpoints: restore, state, history, updates, listing.

:func:`load_run` restores a checkpoint (the newest by default) exactly: the last full
state before it, the deltas after that replayed through the graph's reducers, and the
frame saying where the run continues. It reads the thread's head, at most
``compact_after`` checkpoints past it and one chain — never the whole history.
:func:`get_state`, :func:`state_history` and :func:`update_state` are LangGraph's
``get_state``, ``get_state_history`` and ``update_state(as_node=...)``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import attrs
import cattrs
from cattrs.errors import BaseValidationError

from ..diagrams import Flowchart, NodeClass
from ..store import Codec, DecodeError, Delete, Fence, Store
from ._checkpoint import (
    THREADS_NAMESPACE,
    Checkpointer,
    CheckpointPolicy,
    CheckpointRecord,
    CheckpointTrigger,
    Head,
    Lineage,
    checkpoint_key,
    decode_record,
    ensure_codec,
    policy_from_json,
    thread_namespace,
)
from ._errors import (
    CheckpointNotFound,
    GraphHashMismatch,
    GraphHashMismatchWarning,
    StateUpdateError,
)
from ._frame import Frame, decode_delta, decode_frame, find_pending
from ._graph import Graph, describe_changes
from ._interrupts import Interrupt
from ._lease import DEFAULT_LEASE_TTL, hold_thread
from ._results import FanOut
from ._state import Ownership

S = TypeVar("S")


@attrs.frozen(slots=True)
class Restored(Generic[S]):
    """A run's position rebuilt from one checkpoint."""

    thread_id: str
    run_id: str
    checkpoint: int
    parent: int | None
    state: S
    step: int
    run_start: int
    frame: Frame
    occurrences: dict[str, int]
    graph_hash: str
    status: str
    trigger: str
    policy: CheckpointPolicy
    #: Incremental checkpoints since the last full one, at this checkpoint.
    chain: int
    created_at: float

    @property
    def trace_id(self) -> str:
        return self.run_id

    @property
    def next_node(self) -> str | None:
        return self.frame.next_node


@attrs.frozen(slots=True)
class StateSnapshot(Generic[S]):
    """One checkpoint of a thread as :func:`get_state` and :func:`state_history` give it
    (LangGraph's ``StateSnapshot``)."""

    thread_id: str
    #: Its number in the thread; ``parent`` is the one it follows (``None``: the first,
    #: or a fork's first).
    checkpoint: int
    parent: int | None
    #: The run (trace) id that wrote it.
    run_id: str
    step: int
    state: S
    #: The nodes the run continues with (empty: it completed).
    next: tuple[str, ...]
    #: ``running``, ``waiting``, ``completed``, ``failed`` or ``cancelled``.
    status: str
    #: Why it was taken (``input``, ``step``, ``interrupt``, ``update``, ``fork``...).
    trigger: str
    #: The interrupts the run waits on there.
    interrupts: tuple[Interrupt, ...]
    #: The tasks of the next step that already finished (their writes are kept).
    pending_writes: tuple[str, ...]
    created_at: float


async def read_head(store: Store, thread_id: str, codec: Codec) -> Head | None:
    raw = await store.get(thread_namespace(thread_id), "head")
    if raw is None:
        return None
    head: Head = codec.decode(raw.value, Head, f"thread {thread_id} head")
    return head


async def _record(store: Store, thread_id: str, seq: int, codec: Codec) -> CheckpointRecord | None:
    raw = await store.get(thread_namespace(thread_id), checkpoint_key(seq))
    if raw is None:
        return None
    return decode_record(codec, raw.value, f"checkpoint {thread_id}@{seq}")


async def newest(
    store: Store, thread_id: str, head: Head, codec: Codec
) -> tuple[int, CheckpointRecord]:
    """The newest checkpoint of the thread: the head's copy of it when it is a mark,
    else the head's or one written after it."""
    seq = head.latest
    if head.record is not None:
        where = f"checkpoint {thread_id}@{seq}"
        try:
            copy: CheckpointRecord = codec.converter.structure(head.record, CheckpointRecord)
        except Exception as exc:
            reason = (
                "; ".join(cattrs.transform_error(exc))
                if isinstance(exc, BaseValidationError)
                else f"{type(exc).__name__}: {exc}"
            )
            raise DecodeError(where, "CheckpointRecord", reason) from exc
        return seq, copy
    record = await _record(store, thread_id, seq, codec)
    if record is None:
        raise DecodeError(f"checkpoint {thread_id}@{seq}", "CheckpointRecord", "missing")
    while True:
        following = await _record(store, thread_id, seq + 1, codec)
        if following is None:
            return seq, record
        seq, record = seq + 1, following


async def _chain(
    store: Store, thread_id: str, record: CheckpointRecord, codec: Codec
) -> list[CheckpointRecord]:
    """``record`` and the checkpoints back to its last full one, oldest first."""
    chain = [record]
    while not chain[-1].full:
        parent = chain[-1].parent
        found = None if parent is None else await _record(store, thread_id, parent, codec)
        if found is None:
            raise DecodeError(
                f"checkpoint {thread_id}@{record.checkpoint}",
                "CheckpointRecord",
                f"its base checkpoint {parent} is missing",
            )
        chain.append(found)
    chain.reverse()
    return chain


def _state(graph: Graph[S], codec: Codec, chain: list[CheckpointRecord]) -> S:
    schema = graph.schema
    converter = codec.converter
    base = chain[0]
    where = f"checkpoint {base.thread_id}@{base.checkpoint}"
    try:
        state: S = converter.structure(base.state, schema.state_type)
    except Exception as exc:
        raise DecodeError(where, schema.state_type.__name__, str(exc)) from exc
    # Freshly decoded values belong to nobody else: replay the deltas in place.
    own = Ownership(set(schema.reducers), True)
    for record in chain[1:]:
        where = f"checkpoint {record.thread_id}@{record.checkpoint}"
        for raw in record.deltas:
            delta = decode_delta(raw, converter, graph, where)
            try:
                state = schema.apply(state, delta, f"<restore {record.checkpoint}>", own)
            except StateUpdateError as exc:
                raise DecodeError(where, "delta", str(exc)) from exc
    return state


async def check_hash(
    store: Store, graph: Graph[Any], thread_id: str, saved: str, *, force: bool
) -> None:
    """Raise :class:`GraphHashMismatch` (saying what changed) when ``graph`` is not the
    structure that wrote the checkpoint — unless ``force``, which warns instead."""
    if saved == graph.hash:
        return
    changes: list[str] = []
    raw = await store.get(thread_namespace(thread_id), f"structure/{saved}")
    if raw is not None:
        try:
            changes = describe_changes(json.loads(raw.value), graph.structure)
        except (ValueError, AttributeError, TypeError):
            changes = []
    mismatch = GraphHashMismatch(thread_id, saved, graph.hash, changes)
    if not force:
        raise mismatch
    warnings.warn(str(mismatch), GraphHashMismatchWarning, stacklevel=4)


@attrs.frozen(slots=True)
class Loaded(Generic[S]):
    """A restored checkpoint and where new checkpoints of the thread go."""

    restored: Restored[S]
    head: Head
    newest: int


async def load(
    store: Store,
    graph: Graph[S],
    thread_id: str,
    *,
    checkpoint: int | None = None,
    force: bool = False,
    codec: Codec | None = None,
) -> Loaded[S]:
    codec = ensure_codec(codec)
    head = await read_head(store, thread_id, codec)
    if head is None:
        raise CheckpointNotFound(thread_id)
    latest, record = await newest(store, thread_id, head, codec)
    if checkpoint is not None and checkpoint != latest:
        found = await _record(store, thread_id, checkpoint, codec)
        if found is None:
            raise CheckpointNotFound(thread_id, checkpoint)
        record = found
    await check_hash(store, graph, thread_id, record.graph_hash, force=force)
    chain = await _chain(store, thread_id, record, codec)
    state = _state(graph, codec, chain)
    where = f"checkpoint {thread_id}@{record.checkpoint}"
    restored = Restored(
        thread_id,
        record.run_id,
        record.checkpoint,
        record.parent,
        state,
        record.step,
        record.run_start,
        decode_frame(record.frame, codec.converter, graph, where),
        dict(record.occurrences),
        record.graph_hash,
        record.status,
        record.trigger,
        policy_from_json(record.policy, where),
        record.chain,
        record.created_at,
    )
    return Loaded(restored, head, latest)


async def load_run(
    store: Store,
    graph: Graph[S],
    thread_id: str,
    *,
    checkpoint: int | None = None,
    force: bool = False,
    codec: Codec | None = None,
) -> Restored[S]:
    """Rebuild the newest checkpoint of ``thread_id`` (or checkpoint number
    ``checkpoint``).

    Raises :class:`CheckpointNotFound`, :class:`GraphHashMismatch` (unless ``force``,
    which warns with :class:`GraphHashMismatchWarning` instead) and ``DecodeError``.
    """
    loaded = await load(store, graph, thread_id, checkpoint=checkpoint, force=force, codec=codec)
    return loaded.restored


def snapshot(restored: Restored[S]) -> StateSnapshot[S]:
    frame = restored.frame
    return StateSnapshot(
        restored.thread_id,
        restored.checkpoint,
        restored.parent,
        restored.run_id,
        restored.step,
        restored.state,
        _next_nodes(frame),
        restored.status,
        restored.trigger,
        tuple(frame.interrupts) + ((frame.after,) if frame.after is not None else ()),
        tuple(frame.writes),
        restored.created_at,
    )


def _next_nodes(frame: Frame) -> tuple[str, ...]:
    if frame.sends:
        return tuple(dict.fromkeys(s.node for s in frame.sends))
    return frame.next_nodes


async def get_state(
    graph: Graph[S],
    thread_id: str,
    *,
    store: Store,
    checkpoint: int | None = None,
    force: bool = False,
) -> StateSnapshot[S]:
    """The thread's newest checkpoint (or number ``checkpoint``) as a snapshot: its
    state, where the run continues, what it waits on."""
    return snapshot(await load_run(store, graph, thread_id, checkpoint=checkpoint, force=force))


async def state_history(
    graph: Graph[S], thread_id: str, *, store: Store, force: bool = False
) -> list[StateSnapshot[S]]:
    """Every checkpoint the thread keeps, newest first, each restored exactly (forks
    included: follow ``parent`` to tell the branches apart)."""
    codec = ensure_codec(None)
    namespace = thread_namespace(thread_id)
    keys = [k for k in await store.keys(namespace) if k.startswith("c")]
    if not keys:
        raise CheckpointNotFound(thread_id)
    records: dict[int, CheckpointRecord] = {}
    for key in keys:
        raw = await store.get(namespace, key)
        if raw is not None:
            record = decode_record(codec, raw.value, f"checkpoint {thread_id}@{key[1:]}")
            records[record.checkpoint] = record
    for record in records.values():
        await check_hash(store, graph, thread_id, record.graph_hash, force=force)
    snapshots = []
    for seq in sorted(records):
        record = records[seq]
        chain = [record]
        while not chain[-1].full:
            parent = chain[-1].parent
            if parent is None or parent not in records:
                chain = await _chain(store, thread_id, record, codec)
                break
            chain.append(records[parent])
        else:
            chain.reverse()
        where = f"checkpoint {thread_id}@{seq}"
        restored = Restored(
            thread_id,
            record.run_id,
            seq,
            record.parent,
            _state(graph, codec, chain),
            record.step,
            record.run_start,
            decode_frame(record.frame, codec.converter, graph, where),
            dict(record.occurrences),
            record.graph_hash,
            record.status,
            record.trigger,
            policy_from_json(record.policy, where),
            record.chain,
            record.created_at,
        )
        snapshots.append(snapshot(restored))
    snapshots.reverse()
    return snapshots


async def update_state(
    graph: Graph[S],
    thread_id: str,
    delta: Mapping[str, Any],
    *,
    store: Store,
    as_node: str | None = None,
    checkpoint: int | None = None,
    force: bool = False,
    standby: bool = False,
) -> StateSnapshot[S]:
    """Edit a saved state outside any run: apply ``delta`` through the reducers to the
    newest checkpoint (or number ``checkpoint``, which forks the thread there) and save
    the result as a new checkpoint (trigger ``update``) in the thread's history.

    With ``as_node``, the edit counts as that node's output: the run continues where the
    node's edges lead (its pending writes and interrupts are dropped). Without it, the
    run continues where it was, waiting on the same interrupts.

    The edit takes the thread's lease for as long as it reads and writes: while a live
    run holds it, :class:`ThreadHeld` is raised (naming the holder) — or, with
    ``standby``, the edit waits until that run ends.
    """
    async with hold_thread(store, thread_id, DEFAULT_LEASE_TTL, standby=standby) as lease:
        loaded = await load(store, graph, thread_id, checkpoint=checkpoint, force=force)
        restored = loaded.restored
        if as_node is not None and as_node not in graph.nodes:
            raise ValueError(f"as_node {as_node!r} is not a node of graph {graph.name!r}")
        state = graph.schema.apply(restored.state, delta, as_node or "<update_state>")
        frame = restored.frame
        status = restored.status
        if as_node is not None:
            nxt = None if as_node == graph.end else graph.route(as_node, state)
            frame = Frame(nxt.node, nxt.sends) if isinstance(nxt, FanOut) else Frame(nxt)
            status = "completed" if nxt is None else "running"
        checkpointer = Checkpointer(
            store,
            graph,
            thread_id,
            restored.run_id,
            restored.policy,
            0,
            Lineage(loaded.head, restored.checkpoint, None, loaded.newest + 1),
            lease.fence,
        )
        checkpointer.record([delta])
        seq, _ = await checkpointer.save(
            state,
            restored.step,
            restored.run_start,
            frame,
            restored.occurrences,
            CheckpointTrigger.UPDATE,
            status,
            mark=True,
        )
    return await get_state(graph, thread_id, store=store, checkpoint=seq, force=force)


async def stored_flowchart(
    graph: Graph[Any],
    thread_id: str,
    *,
    store: Store,
    checkpoint: int | None = None,
    force: bool = False,
) -> Flowchart:
    """The graph with a stored run's position highlighted: the node(s) it continues with
    (``current``), waits at (``waiting``) or failed at (``failed``)."""
    restored = await load_run(store, graph, thread_id, checkpoint=checkpoint, force=force)
    frame = restored.frame
    marks: dict[str, NodeClass] = {}
    for interrupt in find_pending(frame, None):
        marks["/".join((*interrupt.id.path, interrupt.id.node))] = NodeClass.WAITING
    if not marks:
        shown = NodeClass.FAILED if restored.status == "failed" else NodeClass.CURRENT
        marks = dict.fromkeys(_next_nodes(frame), shown)
    title = f"{graph.name}: {thread_id} at step {restored.step} ({restored.status})"
    return graph.flowchart(title=title, highlight=marks)


async def delete_thread(store: Store, thread_id: str, *, standby: bool = False) -> int:
    """Delete every checkpoint of ``thread_id``; returns how many there were.

    Takes the thread's lease for the deletion: :class:`ThreadHeld` while a live run
    holds it (``standby``: wait for that run to end)."""
    async with hold_thread(store, thread_id, DEFAULT_LEASE_TTL, standby=standby) as lease:
        return await remove_thread(store, thread_id, lease.fence)


async def remove_thread(store: Store, thread_id: str, fence: Fence) -> int:
    """Delete the thread's checkpoints in one batch fenced by its lease."""
    namespace = thread_namespace(thread_id)
    keys = await store.keys(namespace)
    if not keys:
        return 0
    ops: list[Any] = [Delete(namespace, k) for k in keys]
    ops.append(Delete(THREADS_NAMESPACE, thread_id))
    await store.write_batch(ops, fence=fence)
    return sum(1 for k in keys if k.startswith("c"))
