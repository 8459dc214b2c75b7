"""Running any supervisor durably: its state persisted after each transition, under a
lease, so it resumes where it stopped — in this process or another.

This is the one mechanism durable runs are built on. :class:`DurableBinding` ties one
run (a :class:`RunRecord`) to a held :class:`~fsmflow.store.Lease`; :class:`Durable`
wraps a supervisor so that after every transition the loop's ``after_transition`` commits
the new state and context in one fenced ``write_batch``. A stale owner's commit fails with
:class:`~fsmflow.store.LeaseLost`, which ends the run at once: nothing it did after
losing the lease is ever stored. Workflows (:mod:`._supervisor`) are supervisors whose
checkpoints also carry what their steps produced (:class:`CheckpointPlan`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import attrs

from ..fsm import FsmSpec, StateMachine
from ..store import (
    BatchOp,
    Codec,
    HeldLease,
    Lease,
    Notify,
    OfferLease,
    Put,
    ReleaseLease,
    Store,
    keep_lease,
)
from ..supervisor import EventLoopDirective, ExitKind, RunOutcome, SelfSupervised, Supervisor
from ._records import (
    FINAL_STATUSES,
    RUNS,
    RunRecord,
    RunStatus,
    decode_record,
    decode_text,
    encode_record,
    encode_text,
    ended_channel,
    gc_resource,
    run_resource,
)

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")
S_contra = TypeVar("S_contra", contravariant=True)
C_contra = TypeVar("C_contra", contravariant=True)


@attrs.frozen
class CheckpointPlan:
    """What one commit writes besides the state and context."""

    #: Extra operations committed in the same fenced batch (a step's journal entry).
    ops: tuple[BatchOp, ...] = ()
    #: The run's status after the commit (``None``: running).
    status: RunStatus | None = None
    #: Release the lease in the same batch, claimable again after this many seconds
    #: (``math.inf``: a final state, never).
    release_after: float | None = None
    #: The run's output (JSON text) or error, for a final state.
    result: str | None = None
    error: str | None = None
    #: Commit even when the checkpoint throttle would defer it.
    force: bool = False
    #: Called after the batch committed (still holding nothing: the lease may be gone).
    after_commit: Callable[[], Awaitable[None]] | None = None


@runtime_checkable
class PlansCheckpoints(Protocol[S_contra, C_contra]):
    """A supervisor that says what each of its checkpoints carries."""

    def checkpoint_plan(self, state: S_contra, ctx: C_contra) -> CheckpointPlan | None:
        """The plan for the transition that led to ``state`` (``None``: nothing new to
        persist, e.g. a resumed run entering the step it was parked in)."""


@attrs.frozen
class StateCodec(Generic[S, C]):
    """How a run's FSM state and context become JSON text and back."""

    encode_state: Callable[[S], str]
    decode_state: Callable[[str, str], S]
    encode_context: Callable[[C], str]
    decode_context: Callable[[str, str], C]

    @classmethod
    def of(cls, codec: Codec, state_type: Any, context_type: Any) -> StateCodec[S, C]:
        """State and context encoded as ``state_type`` and ``context_type``, which must
        be registered with ``codec`` (they are registered here if not)."""
        codec.register(state_type, context_type)
        return cls(
            lambda s: encode_text(codec, s, state_type),
            lambda text, key: decode_text(codec, text, state_type, key),
            lambda c: encode_text(codec, c, context_type),
            lambda text, key: decode_text(codec, text, context_type, key),
        )


class DurableBinding(Generic[S, C]):
    """One run bound to a held lease: every commit is a fenced batch.

    ``throttle`` (seconds, default 0: off) defers commits that the plan does not force
    until that long after the previous one, carrying their operations into the next: fewer
    writes, but a crash may then re-run every step completed since the last commit, so
    only use it when steps are idempotent. Final states, parking and hand-offs are always
    committed at once.

    ``holder`` is the :func:`~fsmflow.store.keep_lease` keeping the lease, if any: a
    commit that releases the lease (a final state, parking, a hand-back) tells it so, and
    it stops renewing.
    """

    def __init__(
        self,
        store: Store,
        record: RunRecord,
        lease: Lease,
        codec: StateCodec[S, C],
        *,
        throttle: float = 0.0,
        holder: HeldLease | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.lease = lease
        self.codec = codec
        self.throttle = throttle
        self.holder = holder
        self._deferred: list[BatchOp] = []
        self._last_commit = -math.inf
        #: Commits written (batches), for stats and tests.
        self.commits = 0

    def restore(self) -> tuple[S, C]:
        key = f"{RUNS}/{self.record.run_id}"
        state = self.codec.decode_state(self.record.state, key + " (state)")
        ctx = self.codec.decode_context(self.record.progress, key + " (progress)")
        return state, ctx

    async def commit(self, state: S, ctx: C, plan: CheckpointPlan, transitions: int) -> bool:
        """Write the state, context and ``plan`` in one batch fenced by the lease.
        Returns whether it was written (``False``: deferred by the throttle). Raises
        :class:`~fsmflow.store.LeaseLost` when the lease is no longer ours."""
        now = time.time()
        urgent = plan.force or plan.release_after is not None or plan.status in FINAL_STATUSES
        if not urgent and self.throttle > 0 and now - self._last_commit < self.throttle:
            self._deferred.extend(plan.ops)
            return False
        record = attrs.evolve(
            self.record,
            status=plan.status or RunStatus.RUNNING,
            state=self.codec.encode_state(state),
            progress=self.codec.encode_context(ctx),
            updated_at=now,
            token=self.lease.token,
            held=plan.release_after is None,
            transitions=transitions,
            result=plan.result,
            error=plan.error,
        )
        ops: list[BatchOp] = [*self._deferred, *plan.ops]
        ops.append(Put(RUNS, record.run_id, encode_record(record)))
        if plan.release_after is not None:
            ops.append(ReleaseLease(self.lease.resource, self.lease.token, plan.release_after))
        if record.status in FINAL_STATUSES:
            ops.append(OfferLease(gc_resource(record.run_id), record.retention))
            ops.append(Notify(ended_channel(record.run_id)))
        await self.store.write_batch(ops, fence=self.lease.fence)
        if plan.release_after is not None:
            self._released()
        self._deferred.clear()
        self._last_commit = now
        self.record = record
        self.commits += 1
        if plan.after_commit is not None:
            await plan.after_commit()
        return True

    async def hand_back(self, delay: float) -> None:
        """Release the lease without running (a queue limit said not now): the record
        says it was released cleanly, so the next claim is no recovery."""
        record = attrs.evolve(self.record, token=self.lease.token, held=False)
        await self.store.write_batch(
            [
                Put(RUNS, record.run_id, encode_record(record)),
                ReleaseLease(self.lease.resource, self.lease.token, delay),
            ],
            fence=self.lease.fence,
        )
        self.record = record
        self._released()

    def _released(self) -> None:
        if self.holder is not None:
            self.holder.give_up()


class Durable(SelfSupervised[S, E, C, A]):
    """Wraps ``inner`` so that its state and context are committed after each transition
    through ``binding`` (see :class:`DurableBinding`).

    When ``inner`` implements :class:`PlansCheckpoints` it says what each commit carries
    and marks its own final states; otherwise every transition commits the state and
    context, and a run that terminates is marked ``COMPLETED`` (its lease released for
    good) when its completion event is written.
    """

    def __init__(self, inner: Supervisor[S, E, C, A], binding: DurableBinding[S, C]) -> None:
        Supervisor.__init__(self, inner.name, journal=inner.journal)
        self.inner = inner
        self.binding = binding
        self._planner: PlansCheckpoints[S, C] | None = (
            inner if isinstance(inner, PlansCheckpoints) else None
        )
        self.max_consecutive_failures = inner.max_consecutive_failures
        self.yield_every = inner.yield_every
        self.completion_timeout = inner.completion_timeout
        self._listeners = inner._listeners
        self._transitions = binding.record.transitions
        self._last: tuple[S, C] | None = None

    @classmethod
    def fsm_spec(cls) -> FsmSpec[S, E, C, A]:
        raise TypeError(
            f"{cls.__name__} wraps another supervisor; read the spec from the wrapped one"
        )

    def build_state_machine(self, initial_state: S) -> StateMachine[S, E, C, A]:
        return self.inner.build_state_machine(initial_state)

    @property
    def writer_id(self) -> str:
        return self.inner.writer_id

    def event_for_action_error(self, msg: str) -> E:
        return self.inner.event_for_action_error(msg)

    async def dispatch_state(self, state: S, ctx: C) -> EventLoopDirective[E]:
        return await self.inner.dispatch_state(state, ctx)

    async def after_transition(self, state: S, ctx: C) -> None:
        await self.inner.after_transition(state, ctx)
        self._transitions += 1
        self._last = (state, ctx)
        plan = (
            CheckpointPlan() if self._planner is None else self._planner.checkpoint_plan(state, ctx)
        )
        if plan is not None:
            await self.binding.commit(state, ctx, plan, self._transitions)

    async def write_completion_event(self) -> None:
        self.inner._exit = self._exit
        if self._planner is None and self._exit is not None and self._last is not None:
            kind = self._exit[0]
            if kind is ExitKind.TERMINATED:
                state, ctx = self._last
                plan = CheckpointPlan(status=RunStatus.COMPLETED, release_after=math.inf)
                await self.binding.commit(state, ctx, plan, self._transitions)
        await self.inner.write_completion_event()


async def run_durably(
    store: Store,
    supervisor: Supervisor[S, E, C, A],
    *,
    run_id: str,
    state_type: Any,
    context_type: Any,
    codec: Codec | None = None,
    lease_ttl: float = 30.0,
    owner: str | None = None,
    throttle: float = 0.0,
) -> RunOutcome[S]:
    """Run ``supervisor`` as durable run ``run_id``: its state (``state_type``) and
    context (``context_type``), both registered with ``codec``, are committed after every
    transition under a lease this call holds and renews.

    The first call starts from the supervisor's initial state and context; a later call
    (after a crash, in any process) resumes from the last committed transition. A run that
    already terminated is not run again: its stored final state is returned. Raises
    :class:`~fsmflow.store.LeaseHeld` while another process runs it. A lost lease ends the
    run at once: with :class:`~fsmflow.store.LeaseLost` when a renewal found it taken
    over (the run is cancelled), or with a :class:`~fsmflow.supervisor.SupervisorError`
    caused by :class:`~fsmflow.store.LeaseLost` when a commit was refused first.
    """
    state_codec: StateCodec[S, C] = StateCodec.of(codec or Codec(), state_type, context_type)
    resource = run_resource("supervisors", 0, "any", run_id)
    lease = await store.acquire_lease(
        resource, owner or f"run_durably-{uuid.uuid4().hex}", lease_ttl
    )
    # The lease is kept (renewed, the run cancelled if it is lost) by the store's own
    # mechanism; a run that stops without finishing releases it, so a restart need not
    # wait for it to expire.
    async with keep_lease(store, lease, lease_ttl) as held:
        stored = await store.get(RUNS, run_id)
        if stored is None:
            now = time.time()
            record = RunRecord(
                run_id=run_id,
                workflow=supervisor.name,
                version="any",
                queue="supervisors",
                priority=0,
                resource=resource,
                status=RunStatus.RUNNING,
                state=state_codec.encode_state(supervisor.initial_state()),
                progress=state_codec.encode_context(supervisor.initial_context()),
                input="null",
                created_at=now,
                updated_at=now,
                token=lease.token,
            )
        else:
            record = decode_record(stored.value, run_id)
        binding = DurableBinding(store, record, lease, state_codec, throttle=throttle, holder=held)
        state, ctx = binding.restore()
        if record.status in FINAL_STATUSES:
            return RunOutcome(supervisor.name, ExitKind.TERMINATED, state, 0, 0, 0)
        return await Durable(supervisor, binding).run(state, ctx)
