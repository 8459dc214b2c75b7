"""``Worker``: claims runnable runs with leases, runs them, sweeps.

There is no control plane: every worker claims runs (free ones that are due — new runs,
due timers, retries, woken runs — and held ones whose lease expired, which is how a dead
worker's runs are recovered), keeps the leases it holds with the store's
:func:`~fsmflow.store.keep_lease`, and sweeps finished runs past their retention.

An idle worker does not poll the store with writes: it sleeps until a notification on
its queues' channels (a new run, a signal, a cancel request, a freed slot: LISTEN/NOTIFY
on PostgreSQL) or until the next lease under its prefixes falls due, which it learns
with a read (:meth:`~fsmflow.store.LeaseStore.next_claimable`) looking ``poll_interval``
ahead. So a durable timer fires when due, and a dead worker's run is taken over as soon
as its lease expires: recovery latency is at most ``lease_ttl`` after the dead worker's
last renewal plus ``poll_interval`` (the look-ahead a worker missed while busy), as long
as some worker has a free slot.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import attrs

from ..store import (
    Delete,
    DropLease,
    HeldLease,
    Lease,
    LeaseLost,
    Notify,
    ReleaseLease,
    Remove,
    Store,
    StoreError,
    keep_lease,
)
from ..supervisor import SupervisorError
from ._admission import (
    admit_start,
    claim_key_slot,
    claim_queue_slots,
    offer_slots,
    queue_slot_prefix,
)
from ._durable import Durable, DurableBinding, StateCodec
from ._fsm import RunProgress
from ._policy import Queue
from ._records import (
    GC_LEASES,
    IDEMPOTENCY,
    RUN_LEASES,
    RUNS,
    RunRecord,
    RunStatus,
    control_log,
    decode_record,
    journal_log,
    queue_channel,
    run_prefix,
)
from ._supervisor import RunSettings, WorkflowRun
from ._workflow import Workflow

logger = logging.getLogger("fsmflow.durable")


@attrs.define
class WorkerStats:
    """What a worker did since it started."""

    #: Runs it claimed (new, due, woken or recovered).
    claimed: int = 0
    #: Of those, runs taken over from a worker that stopped without releasing them.
    recovered: int = 0
    #: Runs it stopped because their lease was lost (another worker took them over).
    lost: int = 0
    #: Runs handed back untouched (a queue limit) or after an error.
    handed_back: int = 0
    #: Runs that reached a final state here.
    finished: int = 0
    dead_lettered: int = 0
    #: Finished runs deleted past their retention.
    deleted: int = 0


class _Claimed:
    """What a claimed run holds: its lease, its slots, and its binding once there is one
    (for handing it back)."""

    def __init__(self, run: HeldLease, stack: AsyncExitStack) -> None:
        self.run = run
        self.slots: list[HeldLease] = []
        self.stack = stack
        self.binding: DurableBinding[Any, RunProgress] | None = None


def _state_codec(workflow: Workflow[Any, Any]) -> StateCodec[Any, RunProgress]:
    compiled = workflow.compile()
    return StateCodec.of(workflow.codec, compiled.states, RunProgress)


class Worker:
    """Runs the durable runs of ``workflows`` found in ``store``.

    ``await worker.run()`` (in a nursery / task group) claims up to ``concurrency`` runs
    at once and runs until cancelled; cancelling it hands its runs back at once (each run
    resumes from its last committed step in whichever worker claims it next).

    Only runs whose recorded version hash is one of the workflows' :attr:`known_versions`
    are claimed; other runs wait in the store, visible with ``fsmflow runs list``.

    ``lease_ttl`` bounds how long a dead worker's runs stay unclaimed; a step may block
    the event loop for at most a third of it (use ``blocking=True`` steps for CPU work).
    ``poll_interval`` is how far ahead an idle worker looks for leases falling due (and
    its fallback when a notification is lost): see the module docstring for the
    recovery-latency bound. ``sweep_interval`` paces the deletion of finished runs.
    ``max_recoveries``: a run taken over more often is dead-lettered (a step that kills
    its worker every time must not kill them all). ``settings`` tunes in-place waits and
    the checkpoint throttle.
    """

    def __init__(
        self,
        store: Store,
        workflows: Iterable[Workflow[Any, Any]],
        *,
        concurrency: int = 16,
        owner: str | None = None,
        lease_ttl: float = 30.0,
        poll_interval: float = 1.0,
        sweep_interval: float = 10.0,
        max_recoveries: int = 5,
        settings: RunSettings | None = None,
        gc_batch: int = 100,
        queue_backoff: float = 0.5,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {concurrency}")
        self.store = store
        self.concurrency = concurrency
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.max_recoveries = max_recoveries
        self.settings = settings or RunSettings()
        self.gc_batch = gc_batch
        self.queue_backoff = queue_backoff
        self.stats = WorkerStats()
        self._by_version: dict[str, Workflow[Any, Any]] = {}
        self._codecs: dict[str, StateCodec[Any, RunProgress]] = {}
        queues: dict[str, Queue] = {}
        for workflow in workflows:
            workflow.compile()
            seen = queues.setdefault(workflow.queue.name, workflow.queue)
            if seen != workflow.queue:
                raise ValueError(
                    f"queue {workflow.queue.name!r} is configured twice differently: "
                    f"{seen} and {workflow.queue}"
                )
            for version in workflow.known_versions:
                other = self._by_version.setdefault(version, workflow)
                if other is not workflow:
                    raise ValueError(
                        f"workflows {other.name!r} and {workflow.name!r} both claim version "
                        f"{version}"
                    )
            self._codecs[workflow.name] = _state_codec(workflow)
        if not self._by_version:
            raise ValueError("a worker needs at least one workflow")
        self.queues = queues
        #: (queue, prefix) in claim order: higher priority levels first.
        ordered: list[tuple[Queue, str]] = sorted(
            (
                (queue, run_prefix(queue.name, level, version))
                for version, workflow in self._by_version.items()
                for queue in (workflow.queue,)
                for level in range(queue.priorities)
            ),
            key=lambda item: -int(item[1].split("/")[-3]),
        )
        #: The claims one round makes, in order: prefixes of queues without a global
        #: limit are claimed together (one write); a limited queue's after its slots.
        self._claims: list[tuple[Queue | None, list[str]]] = []
        for queue, prefix in ordered:
            limited = queue if queue.concurrency is not None else None
            last = self._claims[-1] if self._claims else None
            if last is not None and last[0] is None and limited is None:
                last[1].append(prefix)
            else:
                self._claims.append((limited, [prefix]))
        self._prefixes = [prefix for _, prefix in ordered]
        self._running = 0
        self._wake = anyio.Event()

    @property
    def running(self) -> int:
        """Runs this worker is running now."""
        return self._running

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Claim and run until cancelled (``task_status.started()`` once set up: its
        notification listeners are in place, so a run started afterwards wakes it)."""
        for queue in self.queues.values():
            if queue.concurrency is not None:
                await offer_slots(self.store, queue_slot_prefix(queue), queue.concurrency)
        async with anyio.create_task_group() as tg:
            for name in self.queues:
                await tg.start(self._listen, queue_channel(name))
            tg.start_soon(self._sweep_loop)
            task_status.started()
            await self._claim_loop(tg)

    async def _listen(
        self, channel: str, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with self.store.listen(channel) as listener:
            task_status.started()
            while True:
                await listener.wait()
                self._wake.set()

    # -- claiming -------------------------------------------------------------------------

    async def _claim_loop(self, tg: anyio.abc.TaskGroup) -> None:
        while True:
            # From here on a notification or a run's end wakes the wait below.
            self._wake = anyio.Event()
            wait = self.poll_interval
            free = self.concurrency - self._running
            if free > 0:
                try:
                    due = await self.store.next_claimable(self._prefixes, within=wait)
                    if due == 0.0 and await self.claim(tg, free):
                        await anyio.lowlevel.checkpoint()
                        continue  # more may be due: look again
                    if due is not None and due > 0.0:
                        wait = due  # the next timer or expiring lease
                except StoreError as exc:
                    logger.warning("%s: claiming failed (will retry): %s", self.owner, exc)
            with anyio.move_on_after(wait):
                await self._wake.wait()

    async def claim(self, tg: anyio.abc.TaskGroup, free: int) -> int:
        """Claim up to ``free`` runs, highest priority first, and start them in ``tg``."""
        total = 0
        store = self.store
        for queue, prefixes in self._claims:
            limit = free - total
            if limit <= 0:
                break
            slots: list[Lease] = []
            if queue is not None:
                slots = await claim_queue_slots(store, queue, self.owner, self.lease_ttl, limit)
                if not slots:
                    continue
                limit = len(slots)
            leases = await store.claim_leases(prefixes, self.owner, self.lease_ttl, limit=limit)
            unused = slots[len(leases) :]
            if unused:
                await store.write_batch([ReleaseLease(s.resource, s.token, 0.0) for s in unused])
            for index, lease in enumerate(leases):
                self._running += 1
                self.stats.claimed += 1
                tg.start_soon(self._execute, lease, slots[index] if slots else None)
            total += len(leases)
        return total

    # -- running one claimed run ----------------------------------------------------------

    async def _execute(self, lease: Lease, slot: Lease | None) -> None:
        try:
            async with AsyncExitStack() as stack:
                # Let go without a word (an error that escaped everything), the run is
                # claimable again after the backoff; its record still says it was held,
                # so the next claim counts a recovery.
                held = await stack.enter_async_context(
                    keep_lease(self.store, lease, self.lease_ttl, release_after=self.queue_backoff)
                )
                claimed = _Claimed(held, stack)
                if slot is not None:
                    claimed.slots.append(
                        await stack.enter_async_context(
                            keep_lease(self.store, slot, self.lease_ttl, release_after=0.0)
                        )
                    )
                finished = False
                try:
                    finished = await self._run_claimed(claimed)
                except SupervisorError as exc:
                    if not isinstance(exc.__cause__, LeaseLost):
                        logger.error("%s: run failed, handing it back: %s", self.owner, exc)
                    else:
                        raise exc.__cause__ from None
                except (StoreError, ValueError) as exc:
                    if isinstance(exc, LeaseLost):
                        raise
                    logger.error("%s: cannot run %s: %s", self.owner, lease.resource, exc)
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        await self._let_go(claimed, finished)
        except LeaseLost as exc:
            self.stats.lost += 1
            logger.warning("%s: %s", self.owner, exc)
        except StoreError as exc:
            # The store failed while the run was let go (its lease could be neither handed
            # back nor released): the lease expires and a worker recovers the run.
            logger.error("%s: could not let go of %s: %s", self.owner, lease.resource, exc)
        finally:
            self._running -= 1
            self._wake.set()

    async def _let_go(self, claimed: _Claimed, finished: bool) -> None:
        """Hand the run back when it stopped without finishing or parking (an error, or
        this worker being cancelled) and release the slots, each in a write that tells
        its keeper (:meth:`~fsmflow.store.HeldLease.give_up`). A lease whose write did
        not happen (a store error, no time left) is released by its keeper on exit."""
        run = claimed.run
        binding = claimed.binding
        if binding is not None and binding.record.status.is_final:
            self.stats.finished += 1
            if binding.record.status is RunStatus.DEAD_LETTERED:
                self.stats.dead_lettered += 1
        # A run whose last commit released the lease (finished, parked, handed back) is
        # let go already, even if this worker was cancelled right after that commit.
        finished = finished or run.given_up
        try:
            if not finished and not run.lost.is_set():
                self.stats.handed_back += 1
                if claimed.binding is not None:
                    await claimed.binding.hand_back(self.queue_backoff)
                else:
                    await self.store.write_batch(
                        [ReleaseLease(run.lease.resource, run.lease.token, self.queue_backoff)],
                        fence=run.fence,
                    )
                run.give_up()
        except StoreError as exc:
            logger.info("%s: letting go of %s: %s", self.owner, run.lease.resource, exc)
        if finished:
            run.give_up()
        slots = [held for held in claimed.slots if not held.lost.is_set()]
        if slots:
            ops: list[Any] = [ReleaseLease(h.lease.resource, h.lease.token, 0.0) for h in slots]
            try:
                await self.store.write_batch([*ops, Notify(queue_channel(self._queue_of(run)))])
                for held in slots:
                    held.give_up()
            except StoreError as exc:
                logger.info("%s: releasing slots: %s", self.owner, exc)

    def _queue_of(self, run: HeldLease) -> str:
        return run.lease.resource[len(RUN_LEASES) :].split("/", 1)[0]

    async def _run_claimed(self, claimed: _Claimed) -> bool:
        """Run one claimed run (its binding goes in ``claimed`` as soon as there is one).
        Returns whether the lease needs no hand-back (the run finished, parked, or was
        handed back already)."""
        store = self.store
        held = claimed.run
        lease = held.lease
        run_id = lease.resource.rsplit("/", 1)[1]
        stored = await store.get(RUNS, run_id)
        if stored is None:  # a lease without a run: the run was deleted
            await store.write_batch([DropLease(lease.resource)], fence=lease.fence)
            return True
        record = decode_record(stored.value, run_id)
        if record.status.is_final:
            await store.write_batch(
                [ReleaseLease(lease.resource, lease.token, math.inf)], fence=lease.fence
            )
            return True
        workflow = self._by_version[record.version]
        lapsed = max(0, lease.token - record.token - 1) + (1 if record.held else 0)
        if lapsed:
            self.stats.recovered += 1
        record = attrs.evolve(
            record, recoveries=record.recoveries + lapsed, token=lease.token, held=True
        )
        binding = DurableBinding(
            store,
            record,
            lease,
            self._codecs[workflow.name],
            throttle=self.settings.checkpoint_throttle,
            holder=held,
        )
        claimed.binding = binding
        give_up = None
        if record.recoveries > self.max_recoveries:
            give_up = (
                f"taken over {record.recoveries} times (max_recoveries={self.max_recoveries}): "
                "its workers keep stopping while running it"
            )
        else:
            wait = await self._admit(workflow.queue, record, claimed)
            if wait is not None:
                self.stats.handed_back += 1
                await binding.hand_back(wait)
                return True
        # A run that never started has an empty journal: skip the read.
        fresh = record.status is RunStatus.PENDING and record.transitions == 0
        journal = [] if fresh else await store.read(journal_log(run_id))
        run = WorkflowRun(workflow, binding, journal, self.settings, give_up=give_up)
        state, progress = binding.restore()
        await Durable(run, binding).run(state, progress)
        return binding.record.status.is_final or run.parked

    async def _admit(self, queue: Queue, record: RunRecord, claimed: _Claimed) -> float | None:
        """``None`` when the run may run now (its key slot, if any, kept with the run),
        else the seconds to wait before it is claimable again."""
        first_start = record.status is RunStatus.PENDING
        if queue.rate is not None and first_start:
            wait = await admit_start(self.store, queue)
            if wait > 0:
                return wait
        if queue.per_key is not None and record.concurrency_key is not None:
            slot = await claim_key_slot(
                self.store, queue, record.concurrency_key, self.owner, self.lease_ttl
            )
            if slot is None:
                return self.queue_backoff
            claimed.slots.append(
                await claimed.stack.enter_async_context(
                    keep_lease(self.store, slot, self.lease_ttl, release_after=0.0)
                )
            )
        return None

    # -- sweeping -------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await anyio.sleep(self.sweep_interval)
            try:
                await self.sweep_once()
            except StoreError as exc:
                logger.warning("%s: sweep failed (will retry): %s", self.owner, exc)

    async def sweep_once(self) -> int:
        """Delete up to ``gc_batch`` finished runs past their retention (record, journal,
        control log, idempotency key, leases), each in one batch fenced by its gc lease.
        Returns how many were deleted."""
        store = self.store
        claimed = await store.claim_leases(
            GC_LEASES, self.owner, self.lease_ttl, limit=self.gc_batch
        )
        deleted = 0
        for gc in claimed:
            run_id = gc.resource[len(GC_LEASES) :]
            ops: list[Any] = [DropLease(gc.resource)]
            stored = await store.get(RUNS, run_id)
            if stored is not None:
                record = decode_record(stored.value, run_id)
                if not record.status.is_final:  # retried since: not ours to delete
                    await store.write_batch(ops, fence=gc.fence)
                    continue
                ops += [Delete(RUNS, run_id), DropLease(record.resource)]
                if record.idempotency_key is not None:
                    ops.append(Delete(IDEMPOTENCY, record.idempotency_key))
            for log in (journal_log(run_id), control_log(run_id)):
                ops += [Remove(log, entry.seq) for entry in await store.read(log)]
            try:
                await store.write_batch(ops, fence=gc.fence)
            except LeaseLost:
                continue
            deleted += 1
        self.stats.deleted += deleted
        return deleted
