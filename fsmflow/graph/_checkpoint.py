"""Checkpoints of graph runs, stored through the :class:`~fsmflow.store.Store` protocol.

Every checkpoint belongs to a *thread* (the conversation) and has a number in it,
``checkpoint`` (1, 2, 3... never reused), and the number of the checkpoint it follows,
``parent`` — so a thread's history is a tree: resuming from an old checkpoint (a fork)
adds a branch and leaves the others as they were. A checkpoint holds the graph's structure
hash, the run (trace) id that wrote it, the step count, where the run continues (its
:class:`~fsmflow.graph._frame.Frame`: next node or fan-out, pending writes, resume values,
pending interrupts) and the state:

* **Incremental.** A run's checkpoints hold only the deltas applied since the previous
  one, until ``compact_after`` of them have been written; then one holds the full state
  again. *Marks* — a run's input, interrupts and resumes, ``update_state`` edits,
  completion, failure, cancellation, forks — always hold the full state. Restoring any
  checkpoint replays at most ``compact_after`` checkpoints' deltas through the reducers.
* **Pruned.** With ``CheckpointPolicy(keep=N)`` (default 1000) a thread keeps its last
  ``N`` checkpoints, every mark, and the full checkpoint the oldest of those builds on;
  older checkpoints are deleted (in the same transaction as the full checkpoint that
  makes them unnecessary), so storage does not grow with the length of a run. Every
  checkpoint that is kept restores exactly. ``keep=None`` keeps everything.

Layout in the key/value part of the store: namespace ``fsmflow.graph/<thread>`` holds
``c<checkpoint:012d>`` (the records), ``head`` (the newest checkpoint number known, the
full checkpoints and marks not yet past the pruning line), and ``structure/<hash>`` (each
graph structure that wrote there, so a hash mismatch can say what changed); namespace
``fsmflow.graph.threads`` lists the threads. Loading the latest checkpoint reads the head,
at most ``compact_after`` checkpoints past it, and one chain: never the whole history.
"""

from __future__ import annotations

import enum
import functools
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from ..store import BatchOp, Codec, DecodeError, Delete, Fence, Put, Store
from ._frame import Frame, encode_delta, encode_frame
from ._state import Delta

if TYPE_CHECKING:
    from ._graph import Graph

S = TypeVar("S")

#: Version of the stored record layout.
RECORD_FORMAT = 2
THREADS_NAMESPACE = "fsmflow.graph.threads"
DEFAULT_KEEP = 1000


def thread_namespace(thread_id: str) -> str:
    return f"fsmflow.graph/{thread_id}"


def checkpoint_key(seq: int) -> str:
    return f"c{seq:012d}"


class CheckpointTrigger(enum.Enum):
    """Why a checkpoint was taken."""

    INPUT = "input"
    STEP = "step"
    BARRIER = "barrier"
    INTERRUPT = "interrupt"
    RESUME = "resume"
    COMPLETION = "completion"
    FAILURE = "failure"
    CANCEL = "cancel"
    REQUEST = "request"
    ADAPTIVE = "adaptive"
    UPDATE = "update"
    FORK = "fork"


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
    """When a run with a store saves checkpoints, and how many a thread keeps.

    ``every_step``: the input before the first node, and after every node.
    ``on_barrier``: when the run pauses at a barrier or an interrupt (so another process
    can resume it), when values for it are taken, and after a barrier step.
    ``on_completion``: when the run completes. ``on_failure``: when a node fails (with
    the writes of the branches that had succeeded, so a resume re-runs only what
    failed), and when the run is cancelled. ``on_request``: when the handle asks.
    ``adaptive``: after steps whose :class:`AdaptiveScore` is high enough. ``keep``: the
    number of recent checkpoints a thread keeps besides its marks (``None``: all).

    A run that pauses without a handle to resume it (``execute``, ``resume``) always
    checkpoints the pause, whatever the policy: otherwise nothing could continue it.
    """

    every_step: bool = False
    on_barrier: bool = True
    on_completion: bool = True
    on_request: bool = True
    adaptive: AdaptiveScore | None = None
    on_failure: bool = True
    keep: int | None = DEFAULT_KEEP

    def __attrs_post_init__(self) -> None:
        if self.keep is not None and self.keep < 1:
            raise ValueError(f"CheckpointPolicy.keep must be >= 1 or None, not {self.keep}")


@attrs.frozen(slots=True)
class CheckpointRecord:
    """What one checkpoint stores (JSON, decoded strictly through the store's codec)."""

    thread_id: str
    run_id: str
    checkpoint: int
    parent: int | None
    step: int
    #: The step the run that wrote it started at (``max_steps`` counts from there).
    run_start: int
    graph: str
    graph_hash: str
    trigger: str
    #: ``running``, ``waiting`` (at interrupts), ``completed``, ``failed``, ``cancelled``.
    status: str
    #: ``state`` holds the full state; otherwise restoring replays ``deltas`` (the
    #: deltas applied since the ``parent`` checkpoint, which a full record keeps too)
    #: on the parent's state.
    full: bool
    #: A mark: never pruned, always full.
    mark: bool
    #: Incremental checkpoints since the last full one.
    chain: int
    state: Any
    deltas: list[dict[str, Any]]
    frame: dict[str, Any]
    #: How often each barrier node has been passed, so barrier ids continue.
    occurrences: dict[str, int]
    #: The run's checkpoint policy (a resumed run keeps it unless told otherwise).
    policy: dict[str, Any]
    created_at: float
    format: int = RECORD_FORMAT
    #: The fencing token of the thread's lease it was written under: a thread's
    #: checkpoints carry non-decreasing tokens, one token per process that owned it.
    token: int = 0

    @property
    def trace_id(self) -> str:
        return self.run_id

    @property
    def next_node(self) -> str | None:
        node = self.frame.get("next_node")
        return node if isinstance(node, str) else None


@attrs.frozen(slots=True)
class Head:
    """What a thread's ``head`` key holds."""

    #: A checkpoint number at or before the newest (the newest is found from it).
    latest: int
    #: Checkpoints below this number were pruned (marks excepted).
    pruned: int
    #: Full checkpoints at or above ``pruned``.
    bases: list[int]
    #: Marks at or above ``pruned``.
    marks: list[int]
    #: Structure hashes stored under ``structure/<hash>``.
    graphs: list[str]
    #: When the newest checkpoint is a mark: that record (its JSON form), so loading the
    #: newest checkpoint reads the head alone. ``None``: checkpoints may follow
    #: ``latest`` (loading looks for them).
    record: Any = None


@functools.cache
def shared_codec() -> Codec:
    """The codec graph checkpoints use unless given one: built once per process (a cattrs
    converter learns each type once; building one costs more than a checkpoint)."""
    return Codec().register(CheckpointRecord).register(Head)


def ensure_codec(codec: Codec | None) -> Codec:
    if codec is None:
        return shared_codec()
    for cls in (CheckpointRecord, Head):
        if not codec.is_registered(cls):
            codec.register(cls)
    return codec


def decode_record(codec: Codec, value: bytes, where: str) -> CheckpointRecord:
    """Decode one stored checkpoint; bad bytes raise ``DecodeError`` naming ``where``."""
    record: CheckpointRecord = codec.decode(value, CheckpointRecord, where)
    if record.format != RECORD_FORMAT:
        raise DecodeError(where, "CheckpointRecord", f"unknown record format {record.format}")
    return record


def to_json(value: Any) -> str:
    """The compact JSON text records are stored as."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def policy_to_json(policy: CheckpointPolicy) -> dict[str, Any]:
    out: dict[str, Any] = attrs.asdict(policy)
    return out


def policy_from_json(raw: dict[str, Any], where: str) -> CheckpointPolicy:
    try:
        adaptive = raw.get("adaptive")
        return CheckpointPolicy(
            every_step=bool(raw["every_step"]),
            on_barrier=bool(raw["on_barrier"]),
            on_completion=bool(raw["on_completion"]),
            on_request=bool(raw["on_request"]),
            adaptive=None if adaptive is None else AdaptiveScore(**adaptive),
            on_failure=bool(raw["on_failure"]),
            keep=raw["keep"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(where, "CheckpointPolicy", str(exc)) from exc


@attrs.frozen(slots=True)
class Lineage:
    """Where a run's checkpoints attach in its thread."""

    #: The thread's head as last read (``None``: a new thread).
    head: Head | None
    #: The checkpoint the run's first one follows (``None``: none).
    parent: int | None
    #: Incremental checkpoints since the last full one, at ``parent``; ``None`` makes
    #: the run's first checkpoint a full one.
    chain: int | None
    #: The number the run's first checkpoint gets.
    next_seq: int


class ThreadWriter:
    """Writes checkpoint records into one thread: the record, and with a full one or a
    mark the thread's head and the pruning the policy's ``keep`` asks for — all in one
    atomic batch, fenced by the thread's lease (a batch the store refuses raises
    :class:`~fsmflow.store.LeaseLost` and changes nothing)."""

    def __init__(
        self,
        store: Store,
        thread_id: str,
        codec: Codec,
        head: Head | None,
        keep: int | None,
        fence: Fence,
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.namespace = thread_namespace(thread_id)
        self.codec = codec
        self.head = head
        self.keep = keep
        self.fence = fence

    async def write(
        self,
        seq: int,
        data: bytes,
        *,
        full: bool,
        mark: dict[str, Any] | None,
        structure: tuple[str, dict[str, Any]] | None = None,
        extra: Sequence[BatchOp] = (),
    ) -> None:
        """Store record ``seq`` (``data``, its JSON form); ``structure`` (hash,
        description) is stored with it when the thread has not seen that graph structure
        yet. A ``mark`` (the record, given as a dict) is copied into the head too (the
        newest checkpoint then loads from the head alone). ``extra`` operations (a lease
        release) go into the same batch."""
        namespace = self.namespace
        key = checkpoint_key(seq)
        new_structure = structure is not None and (
            self.head is None or structure[0] not in self.head.graphs
        )
        head = self.head
        if (
            not full
            and mark is None
            and not new_structure
            and head is not None
            and head.record is None
        ):
            await self.store.write_batch([Put(namespace, key, data), *extra], fence=self.fence)
            return
        head, ops = self._next_head(seq, full, mark, structure if new_structure else None)
        await self.store.write_batch([Put(namespace, key, data), *ops, *extra], fence=self.fence)
        self.head = head

    def _next_head(
        self,
        seq: int,
        full: bool,
        mark: dict[str, Any] | None,
        structure: tuple[str, dict[str, Any]] | None,
    ) -> tuple[Head, list[Any]]:
        """The head after checkpoint ``seq`` and the operations that write it, with the
        pruning deletions."""
        old = self.head
        ops: list[Any] = []
        if old is None:
            old = Head(0, 1, [], [], [])
            ops.append(Put(THREADS_NAMESPACE, self.thread_id, b"{}"))
        graphs = old.graphs
        if structure is not None:
            graph_hash, description = structure
            graphs = [*graphs, graph_hash]
            text = json.dumps(description, sort_keys=True, separators=(",", ":"))
            ops.append(Put(self.namespace, f"structure/{graph_hash}", text.encode()))
        bases = [*old.bases, seq] if full else old.bases
        marks = [*old.marks, seq] if mark is not None else old.marks
        pruned = old.pruned
        keep = self.keep
        if full and keep is not None:
            window = seq - keep + 1
            below = [b for b in bases if b <= window]
            if below and below[-1] > pruned:
                cutoff = below[-1]
                kept_marks = set(marks)
                ops.extend(
                    Delete(self.namespace, checkpoint_key(n))
                    for n in range(pruned, cutoff)
                    if n not in kept_marks
                )
                pruned = cutoff
                bases = [b for b in bases if b >= cutoff]
                marks = [m for m in marks if m >= cutoff]
        head = Head(max(seq, old.latest), pruned, bases, marks, graphs, mark)
        ops.append(Put(self.namespace, "head", self.codec.encode(head)))
        return head, ops


class Checkpointer(Generic[S]):
    """Writes one run's checkpoints into its thread and keeps its incremental chain."""

    def __init__(
        self,
        store: Store,
        graph: Graph[S],
        thread_id: str,
        run_id: str,
        policy: CheckpointPolicy,
        compact_after: int,
        lineage: Lineage,
        fence: Fence,
        codec: Codec | None = None,
    ) -> None:
        if compact_after < 0:
            raise ValueError(f"compact_after must be >= 0, not {compact_after}")
        self.graph = graph
        self.thread_id = thread_id
        self.run_id = run_id
        self.policy = policy
        self.compact_after = compact_after
        self.codec = ensure_codec(codec)
        self.converter = self.codec.converter
        self.writer = ThreadWriter(store, thread_id, self.codec, lineage.head, policy.keep, fence)
        #: The fields every record of the run shares, and their JSON (encoded once).
        self._fixed: dict[str, Any] = {
            "thread_id": thread_id,
            "run_id": run_id,
            "graph": graph.name,
            "graph_hash": graph.hash,
            "policy": policy_to_json(policy),
            "format": RECORD_FORMAT,
            "token": fence.token,
        }
        self._fixed_json = to_json(self._fixed)[:-1]
        #: Deltas applied since the last saved checkpoint.
        self.pending: list[Delta] = []
        self.parent = lineage.parent
        #: Incremental records since the last full one; ``None``: the next is full.
        self.chain = lineage.chain
        self.next_seq = lineage.next_seq
        self._structure: tuple[str, dict[str, Any]] | None = (graph.hash, graph.structure)

    def record(self, deltas: Sequence[Delta]) -> None:
        """Note deltas applied to the state (they go into the next incremental record)."""
        self.pending.extend(d for d in deltas if d)

    def _frame_json(self, frame: Frame) -> dict[str, Any]:
        if (
            frame.sends is None
            and not frame.writes
            and not frame.resumes
            and not frame.interrupts
            and not frame.children
            and frame.after is None
            and not frame.released
        ):
            return {
                "next_node": frame.next_node,
                "sends": None,
                "released": False,
                "writes": {},
                "resumes": {},
                "interrupts": [],
                "children": {},
                "after": None,
            }
        return encode_frame(frame, self.converter, self.graph)

    async def save(
        self,
        state: S,
        step: int,
        run_start: int,
        frame: Frame,
        occurrences: dict[str, int],
        trigger: CheckpointTrigger,
        status: str,
        *,
        mark: bool = False,
        extra: Sequence[BatchOp] = (),
    ) -> tuple[int, bool]:
        """Store one checkpoint (with ``extra`` operations in the same batch); returns
        its number and whether it was incremental.

        Nothing changes here when the store raises: the next save writes the same
        number, in full."""
        seq = self.next_seq
        full = mark or self.chain is None or self.chain >= self.compact_after
        converter = self.converter
        graph = self.graph
        # The layout cattrs gives a CheckpointRecord (what loading decodes), built
        # directly: unstructuring the record itself would cost as much as a whole step.
        # The fields shared by every record of the run were encoded once.
        varying = {
            "checkpoint": seq,
            "parent": self.parent,
            "step": step,
            "run_start": run_start,
            "trigger": trigger.value,
            "status": status,
            "full": full,
            "mark": mark,
            "chain": 0 if full else (self.chain or 0) + 1,
            "state": converter.unstructure(state, graph.schema.state_type) if full else None,
            # A full record keeps them too, as history: what was written since ``parent``.
            "deltas": [encode_delta(d, converter, graph) for d in self.pending],
            "frame": self._frame_json(frame),
            "occurrences": dict(occurrences),
            "created_at": time.time(),
        }
        data = f"{self._fixed_json},{to_json(varying)[1:]}".encode()
        await self.writer.write(
            seq,
            data,
            full=full,
            mark={**self._fixed, **varying} if mark else None,
            structure=self._structure,
            extra=extra,
        )
        self._structure = None
        self.pending.clear()
        self.chain = 0 if full else (self.chain or 0) + 1
        self.parent = seq
        self.next_seq = seq + 1
        return seq, not full
