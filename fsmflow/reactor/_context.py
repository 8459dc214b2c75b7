"""``ReactorContext``: the mutable state of one reactor run.

Only the reactor's loop touches it: its dispatch reads it to decide what to fire, and
the FSM's actions change it. Every durable change goes through the store before the
in-memory state follows, so a failed write leaves memory and store agreeing: boundaries
staged for an append stay staged, a firing whose commit failed is simply done again,
and both wait for the backoff the failure scheduled.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import anyio
import anyio.abc

from ..supervisor import (
    EventSender,
    ExternalChannelClosed,
    ExternalEventMode,
    RestartBackoff,
    RestartIntensity,
    SupervisionTree,
    SupervisorHandle,
    start_supervisor,
)
from ._accumulators import Accumulator, BatchAccumulator, accumulator_tree, forward_health
from ._admission import BoundaryInlet, PendingLimit, Receipt
from ._cache import DirtyFlags, InputCache
from ._fsm import Firing, FiringKind, ReactorEvent, RetryDue
from ._health import HealthTally
from ._persistence import DELETED, Queued, ReactorStore, Restored
from ._queue import PAGE_SIZE, PendingQueue
from ._types import Criteria, DeadLetter, InputStrategy, RetryPolicy, Source

logger = logging.getLogger("fsmflow.reactor")

#: A ``SEQUENTIAL`` boundary taken from the channel and not yet accepted.
Staged: TypeAlias = tuple[str, object, Receipt | None]


class ReactorContext:
    """The context (``C``) of a reactor's FSM; the reactor makes one per run."""

    def __init__(
        self,
        *,
        name: str,
        sources: Mapping[str, Source[Any]],
        accumulators: Sequence[Accumulator[Any, Any]],
        criteria: Criteria,
        strategy: InputStrategy,
        store: ReactorStore | None,
        retry: RetryPolicy,
        max_pending: int,
        max_burst: int,
        intensity: RestartIntensity,
        backoff: RestartBackoff,
    ) -> None:
        self.name = name
        self.sources = sources
        self.accumulators = tuple(accumulators)
        self.criteria = criteria
        self.latest = strategy is InputStrategy.LATEST
        self.store = store
        self.retry = retry
        self.max_pending = max_pending
        self.max_burst = max_burst
        self.intensity = intensity
        self.backoff = backoff
        #: The newest boundary of each source (``SEQUENTIAL``: of each committed one).
        self.cache: dict[str, object] = {}
        self.dirty = DirtyFlags(sources)
        self.queue = PendingQueue()
        #: ``SEQUENTIAL`` boundaries taken from the channel, to be accepted together; they
        #: stay here until their append has committed.
        self.staged: deque[Staged] = deque()
        #: The bound on ``SEQUENTIAL`` boundaries sent and not yet settled.
        self.limit = PendingLimit(
            None if self.latest else max_pending, batch=min(max_burst, max_pending // 2)
        )
        #: Receipts of boundaries sent and not yet accepted.
        self.receipts: set[Receipt] = set()
        self.dead: dict[int, DeadLetter] = {}
        self.health = HealthTally(a.name for a in accumulators)
        self.force_requests = 0
        self.retry_token = 0
        #: Firings wait for a backoff (a failed firing, or a failure of the reactor's own).
        self.retry_waiting = False
        #: Store writes wait for a backoff too (the store failed).
        self.writes_held = False
        self.consecutive_failures = 0
        self.head_attempts = 0
        #: Boundaries accepted since the last firing began.
        self.burst = 0
        #: Cache keys changed since they were last written to the store.
        self.unpersisted: set[str] = set()
        self.persisted_dirty: frozenset[str] = frozenset()
        self.firings = 0
        self.failed_firings = 0
        self.last_error: str | None = None
        self.last_outputs: object = None
        #: What made the start fail (a bad store, say); raised to whoever started it.
        self.startup_error: Exception | None = None
        #: True once the run is over.
        self.closed = False
        self._next_local_id = 0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._sender: EventSender[ReactorEvent] | None = None
        self._attached: list[Accumulator[Any, Any]] = []
        self._batches = {a.name: a for a in accumulators if isinstance(a, BatchAccumulator)}
        self._tree: SupervisionTree | None = None
        self._tree_handle: SupervisorHandle[Any, Any] | None = None

    # -- the run's lifetime ---------------------------------------------------------------

    def bind(self, task_group: anyio.abc.TaskGroup, sender: EventSender[ReactorEvent]) -> None:
        """Attach the run's task group (accumulators and timers live in it) and a sender
        on the reactor's own channel, which the context clones and closes."""
        self._task_group = task_group
        self._sender = sender

    def close(self) -> None:
        """The run is over: detach the accumulators, close the sender, and refuse the
        receipts of boundaries that were never accepted."""
        self.closed = True
        self.limit.close()
        for accumulator in self._attached:
            accumulator.detach()
        self._attached.clear()
        if self._sender is not None:
            self._sender.close()
        if self.staged:
            logger.error(
                "%s: stopped with %d boundary(ies) taken but never accepted (the store "
                "refused them: %s); their receipts are refused",
                self.name,
                len(self.staged),
                self.last_error,
            )
        reason = f"reactor {self.name!r} stopped before it accepted the boundary"
        if self.staged and self.last_error is not None:
            reason += f" (last error: {self.last_error})"
        for receipt in self.receipts:
            receipt.refuse(reason)
        self.receipts.clear()

    def _spawner(self) -> tuple[anyio.abc.TaskGroup, EventSender[ReactorEvent]]:
        assert self._task_group is not None and self._sender is not None, "bind() first"
        return self._task_group, self._sender

    async def restore(self) -> Restored:
        """What the store holds (the queue's first page only)."""
        return Restored() if self.store is None else await self.store.restore(PAGE_SIZE)

    def apply_restored(self, restored: Restored) -> None:
        self.cache.update(restored.cache)
        for source in restored.dirty:
            self.dirty.set(source)
        self.persisted_dirty = restored.dirty
        self.queue.restore(restored.queue, restored.queue_length)
        self.limit.add(restored.queue_length)
        self.dead.update((letter.id, letter) for letter in restored.dead)
        logger.info(
            "%s: restored %d cached source(s), %d queued boundary(ies), %d dead letter(s)",
            self.name,
            len(restored.cache),
            restored.queue_length,
            len(restored.dead),
        )

    def attach_accumulators(self) -> None:
        """Make every accumulator feed this reactor (raises if one already feeds another)."""
        _, sender = self._spawner()
        for accumulator in self.accumulators:
            accumulator.attach(sender.clone(), self.limit)
            self._attached.append(accumulator)

    def inlet(self, sender: Any) -> BoundaryInlet:
        """Sends boundaries through ``sender`` (the reactor's channel) under the pending
        bound."""
        return BoundaryInlet(sender, self.limit)

    def register(self, receipt: Receipt) -> None:
        """A boundary is about to be sent with ``receipt``: resolve it when accepted, or
        refuse it when the run ends first."""
        receipt.use()
        if self.closed:
            receipt.refuse(f"reactor {self.name!r} has stopped")
        else:
            self.receipts.add(receipt)

    def unregister(self, receipt: Receipt, reason: str) -> None:
        """``receipt``'s boundary was not sent after all."""
        self.receipts.discard(receipt)
        receipt.refuse(reason)

    def _accepted(self, receipt: Receipt | None) -> None:
        if receipt is not None:
            receipt.accept()
            self.receipts.discard(receipt)

    async def start_accumulators(self) -> None:
        """Run the attached accumulators under a supervision tree and forward their
        health changes to the reactor."""
        if not self.accumulators:
            return
        task_group, sender = self._spawner()
        self._tree = accumulator_tree(self.name, self.accumulators, self.intensity, self.backoff)
        self._tree_handle = await start_supervisor(task_group, self._tree)
        for accumulator in self.accumulators:
            task_group.start_soon(forward_health, accumulator, sender.clone())

    async def stop_accumulators(self) -> None:
        """Stop the accumulators' tree (in reverse order) and wait for it."""
        if self._tree is None or self._tree_handle is None:
            return
        self._tree.shutdown()
        await self._tree_handle.outcome()

    @property
    def tree(self) -> SupervisionTree | None:
        """The tree running the accumulators, once started."""
        return self._tree

    # -- deciding what to fire --------------------------------------------------------

    def _criteria_met(self) -> bool:
        if self.criteria is Criteria.WHEN_ALL:
            return self.dirty.all_set()
        return self.dirty.any_set()

    def work_due(self) -> bool:
        """Whether a firing is due now (in a state that fires)."""
        if self.force_requests:
            return True
        if self.retry_waiting:
            return False
        return self._criteria_met() if self.latest else bool(self.queue)

    def mode(self, fires: bool) -> ExternalEventMode:
        """How an accepting state (one that ``fires`` or not) treats the channel.

        ``BLOCK`` while there is nothing to do, and while a failure of the store holds
        writes back (the timer's ``RetryDue`` ends that wait; commands still come in).
        Once there is work (boundaries taken but not yet accepted, or a firing due in a
        state that fires), ``POLL``: take what is ready first, so ``LATEST`` boundaries
        coalesce and ``SEQUENTIAL`` ones are accepted together; but ``IGNORE`` (do the
        work now) after ``max_burst`` boundaries. The ``SEQUENTIAL`` queue needs no rule
        here: ``max_pending`` holds producers back before their boundaries reach the
        channel, in every state.
        """
        if self.writes_held:
            return ExternalEventMode.BLOCK
        staged = len(self.staged)
        if staged >= self.max_burst:
            return ExternalEventMode.IGNORE
        if not fires:
            return ExternalEventMode.POLL if staged else ExternalEventMode.BLOCK
        if not (staged or self.work_due()):
            return ExternalEventMode.BLOCK
        if self.burst >= self.max_burst:
            return ExternalEventMode.IGNORE
        return ExternalEventMode.POLL

    async def next_firing(self) -> Firing:
        """The firing due now (call it only when :meth:`work_due`): a manual one first,
        then by strategy. The queue's next page is read from the store if its window
        ran dry."""
        if self.force_requests:
            consumed = self.dirty.dirty if self.latest else frozenset()
            return Firing(FiringKind.MANUAL, self._snapshot(consumed), consumed=consumed)
        if self.latest:
            consumed = self.dirty.dirty
            return Firing(FiringKind.LATEST, self._snapshot(consumed), consumed=consumed)
        if self.queue.needs_page:
            assert self.store is not None
            counted = len(self.queue)
            page = await self.store.read_queue(self.queue.last_seq, PAGE_SIZE)
            self.queue.load(page, PAGE_SIZE)
            # Entries removed from the store by hand were counted but are gone.
            self.limit.settle(counted - len(self.queue))
        item = self.queue.head()
        values = {**self.cache, item.source: item.value}
        complete = self.criteria is Criteria.WHEN_ANY or all(s in values for s in self.sources)
        updated = frozenset((item.source,))
        return Firing(
            FiringKind.SEQUENTIAL,
            InputCache(values, self.sources, updated),
            item=item,
            attempt=self.head_attempts + 1,
            runs_graph=complete,
            consumed=updated,
        )

    def _snapshot(self, updated: frozenset[str]) -> InputCache:
        return InputCache(dict(self.cache), self.sources, updated)

    # -- boundaries -------------------------------------------------------------------

    def accept_latest(self, source: str, value: object, receipt: Receipt | None) -> None:
        """Take a ``LATEST`` boundary: overwrite the source's slot and mark it dirty."""
        self.burst += 1
        self.cache[source] = value
        self.dirty.set(source)
        self.unpersisted.add(source)
        if receipt is not None:
            self._accepted(receipt)

    def take_sequential(self, source: str, value: object, receipt: Receipt | None) -> None:
        """Take a ``SEQUENTIAL`` boundary: without a store it joins the queue at once;
        with one it is staged, and the boundaries staged together are accepted (appended
        to the persisted queue) in one batch before anything else happens."""
        self.burst += 1
        if self.store is None:
            self.queue.extend((Queued(self._local_id(), source, value),))
            self._accepted(receipt)
        else:
            self.staged.append((source, value, receipt))

    async def accept_staged(self) -> None:
        """Accept the oldest staged boundaries, at most ``max_burst``: one batch of
        appends, after which they join the queue and their receipts are resolved. If the
        write fails they stay staged, in order, for the next attempt."""
        assert self.store is not None
        batch = list(itertools.islice(self.staged, self.max_burst))
        queued = await self.store.accept([(source, value) for source, value, _ in batch])
        for _ in batch:
            self.staged.popleft()
        self.queue.extend(queued)
        self.consecutive_failures = 0
        for _, _, receipt in batch:
            self._accepted(receipt)

    def _local_id(self) -> int:
        self._next_local_id += 1
        return self._next_local_id

    def replace_cache(self, values: Mapping[str, object]) -> None:
        self.unpersisted.update(self.cache, values)
        self.cache = dict(values)

    # -- settling firings ---------------------------------------------------------------

    def _cache_writes(self, skip: str | None = None) -> dict[str, bytes]:
        assert self.store is not None
        return {
            name: self.store.encode(name, self.cache[name]) if name in self.cache else DELETED
            for name in self.unpersisted
            if name != skip
        }

    def _dirty_write(self, dirty: frozenset[str]) -> frozenset[str] | None:
        return dirty if self.latest and dirty != self.persisted_dirty else None

    async def commit(self, firing: Firing, outputs: object) -> None:
        """A firing completed: persist what it settled (one batch), then update memory.

        ``SEQUENTIAL``: remove its boundary from the queue and put its source's cache
        key. Otherwise: put the cache keys changed since the last write and the dirty
        flags left after clearing the ones it used.
        """
        item = firing.item
        dirty_after = self.dirty.dirty - firing.consumed
        if self.store is not None:
            writes = self._cache_writes(skip=None if item is None else item.source)
            if item is not None:
                assert item.data is not None
                writes[item.source] = item.data
            dirty = self._dirty_write(dirty_after)
            await self.store.commit(done=item, cache=writes, dirty=dirty)
            if dirty is not None:
                self.persisted_dirty = dirty
        self.unpersisted.clear()
        if item is not None:
            self.cache[item.source] = item.value
            self._pop_head()
        self._settle(firing)
        if firing.runs_graph:
            self.firings += 1
            self.last_outputs = outputs
        self.consecutive_failures = 0

    def _pop_head(self) -> None:
        """The queue's head was settled: it leaves the queue and frees its place."""
        self.queue.pop()
        self.limit.settle()
        self.head_attempts = 0

    def _settle(self, firing: Firing) -> None:
        """What every settled firing (committed, failed for good, dead-lettered) does: use
        up its dirty flags and manual request, and let its batch sources send again."""
        self.dirty.clear(firing.consumed)
        if firing.kind is FiringKind.MANUAL:
            self.force_requests -= 1
        for source in firing.consumed:
            batch = self._batches.get(source)
            if batch is not None:
                batch.release()

    def record_graph_failure(self, firing: Firing, error: str) -> None:
        self.failed_firings += 1
        self.last_error = error
        logger.warning(
            "%s: %s firing failed (attempt %d): %s",
            self.name,
            firing.kind.value,
            firing.attempt,
            error,
        )
        if firing.kind is FiringKind.SEQUENTIAL:
            self.head_attempts = firing.attempt
        else:
            self._settle(firing)

    async def dead_letter(self, firing: Firing, error: str) -> None:
        """Move a ``SEQUENTIAL`` boundary whose attempts ran out to the dead letters."""
        item = firing.item
        assert item is not None
        if self.store is not None:
            letter = await self.store.dead_letter(item, error, firing.attempt)
        else:
            letter = DeadLetter(self._local_id(), item.source, item.value, error, firing.attempt)
        self.dead[letter.id] = letter
        self._pop_head()
        self._settle(firing)
        self.consecutive_failures = 0
        logger.error(
            "%s: boundary from %r moved to the dead letters (#%d) after %d attempt(s): %s",
            self.name,
            item.source,
            letter.id,
            firing.attempt,
            error,
        )

    async def replay(self, ids: tuple[int, ...] | None) -> None:
        """Queue dead letters again (at the end of the queue, in id order), after the
        boundaries taken before the command."""
        letters = [d for d in self.dead.values() if ids is None or d.id in ids]
        if not letters:
            return
        await self._accept_all_staged()
        if self.store is not None:
            queued = await self.store.replay(letters)
        else:
            queued = [Queued(self._local_id(), d.source, d.boundary) for d in letters]
        for letter in letters:
            del self.dead[letter.id]
        self.queue.extend(queued)
        self.limit.add(len(queued))

    async def _accept_all_staged(self) -> None:
        while self.staged:
            await self.accept_staged()

    async def persist_cache(self) -> None:
        """Write the cache keys and dirty flags no firing has written yet, and accept the
        boundaries still staged (they fire after a restart)."""
        if self.store is None:
            return
        await self._accept_all_staged()
        dirty = self._dirty_write(self.dirty.dirty)
        await self.store.commit(cache=self._cache_writes(), dirty=dirty)
        self.unpersisted.clear()
        if dirty is not None:
            self.persisted_dirty = dirty

    # -- waiting ------------------------------------------------------------------------

    def schedule_retry(self, delay: float, *, writes: bool) -> None:
        """Hold automatic firings (and, with ``writes``, store writes) back until a
        :class:`RetryDue` arrives ``delay`` seconds from now; a newer schedule supersedes
        an older one, and what it holds back adds to what the older one held."""
        task_group, sender = self._spawner()
        self.retry_token += 1
        self.retry_waiting = True
        self.writes_held = self.writes_held or writes
        task_group.start_soon(_send_later, delay, sender.clone(), RetryDue(self.retry_token))

    def clear_retry(self, token: int) -> None:
        if token == self.retry_token:
            self.retry_waiting = False
            self.writes_held = False

    def record_failure(self, message: str) -> None:
        self.consecutive_failures += 1
        self.last_error = message
        logger.error("%s: %s", self.name, message)


async def _send_later(delay: float, sender: EventSender[ReactorEvent], event: ReactorEvent) -> None:
    try:
        await anyio.sleep(delay)
        await sender.send(event)
    except ExternalChannelClosed:
        pass  # the reactor stopped meanwhile
    finally:
        sender.close()
