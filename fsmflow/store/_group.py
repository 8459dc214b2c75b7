"""Group commit: writes that arrive together share one transaction.

Every write of a store goes through one :class:`GroupCommit`. The first writer to find no
commit in progress becomes the *leader*: it yields once, so that every other task ready
to write can queue behind it, then takes everything queued and hands it to the backend,
which applies each caller's work in one transaction and commits once. The other writers
(*followers*) sleep until their own work is durable; when the leader is done, the first
follower still queued leads the next group. No background task and no thread hop is
involved unless the backend needs one (an fsync, a network round trip).

What a caller may rely on:

* Its work is applied atomically and on its own: another caller's failure in the same
  group never undoes it, and its failure never undoes another's (the backend isolates
  them; see :meth:`GroupCommit.submit`).
* It is resumed only after its work has committed (or failed).
* Cancellation: while a caller's work is still queued, cancelling it withdraws the work
  (nothing applied) and the cancellation is raised at once. Once a group has taken the
  work, it is committed or rolled back whole; a cancelled caller waits for that and then
  gets the cancellation, without learning which of the two happened (read the store to
  find out). This holds for trio, anyio cancel scopes and asyncio's ``task.cancel()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import sniffio
import trio

T = TypeVar("T")
Conn = TypeVar("Conn")


class _State(enum.Enum):
    QUEUED = enum.auto()
    TAKEN = enum.auto()
    DONE = enum.auto()


class Request(Generic[Conn]):
    """One caller's work: ``work(connection)`` runs inside the group's transaction."""

    __slots__ = (
        "cancelled",
        "channels",
        "error",
        "future",
        "operation",
        "promoted",
        "result",
        "state",
        "task",
        "work",
    )

    def __init__(
        self, work: Callable[[Conn], Any], operation: str, channels: tuple[str, ...]
    ) -> None:
        self.work = work
        #: What the caller asked for (``write_batch``, ``acquire_lease``...), for errors.
        self.operation = operation
        #: Notification channels to signal once this work has committed.
        self.channels = channels
        self.state = _State.QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.promoted = False
        self.cancelled = False
        # How a sleeping follower is woken: its trio task, or its asyncio future.
        self.task: trio.lowlevel.Task | None = None
        self.future: asyncio.Future[None] | None = None

    def succeed(self, result: Any) -> None:
        self.result = result
        self.error = None
        self.state = _State.DONE

    def fail(self, error: BaseException) -> None:
        self.result = None
        self.error = error
        self.state = _State.DONE

    @property
    def done(self) -> bool:
        return self.state is _State.DONE

    @property
    def sleeping(self) -> bool:
        return self.task is not None or self.future is not None

    def wake(self) -> None:
        """Resume the sleeping follower (once: it is then no longer sleeping)."""
        if self.task is not None:
            task, self.task = self.task, None
            trio.lowlevel.reschedule(task)
        elif self.future is not None:
            future, self.future = self.future, None
            if not future.done():
                future.set_result(None)


#: Applies a group's work in one transaction: calls ``succeed`` or ``fail`` on every
#: request, never raises, and is not cancelled (it runs to completion).
Execute = Callable[[list[Request[Any]]], Coroutine[Any, Any, None]]
#: Applies a group at once on the event loop's thread when it can do so without blocking
#: (returns ``True``, every request settled), or does nothing and returns ``False``.
ExecuteNow = Callable[[list[Request[Any]]], bool]


def _never_now(group: list[Request[Any]]) -> bool:
    return False


def _barrier(connection: object) -> None:
    """The work of :meth:`GroupCommit.barrier`: settled by the group itself, never handed
    to the backend, so waiting for the writes before it takes no lock."""


async def _settle_on_asyncio(execution: Coroutine[Any, Any, None]) -> None:
    """Run ``execution`` to its end even if the caller is cancelled meanwhile — by an
    anyio scope (shielded) or by asyncio's native ``task.cancel()``, which pierces
    shields and is therefore caught and re-raised once the execution has finished."""
    task = asyncio.ensure_future(execution)
    cancelled: BaseException | None = None
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError as exc:
                cancelled = exc
    task.result()
    if cancelled is not None:
        raise cancelled


class GroupCommit:
    """The leader/follower queue of one store's writes (see the module docstring).

    ``execute`` is the backend's way to apply a group, ``execute_now`` its way to apply
    one without awaiting when that cannot block (tried first); ``max_group`` caps how
    many callers share one transaction. All methods run on the event loop's thread;
    followers sleep on their event loop's own primitives (a trio task, an asyncio
    future), which keeps a write's overhead close to one task switch.
    """

    def __init__(
        self, execute: Execute, execute_now: ExecuteNow = _never_now, *, max_group: int = 512
    ) -> None:
        self._execute = execute
        self._execute_now = execute_now
        self._max_group = max_group
        self._queue: deque[Request[Any]] = deque()
        self._leading = False
        #: Groups committed and callers served, for statistics and tests.
        self.groups = 0
        self.requests = 0

    async def submit(
        self, work: Callable[[Any], T], operation: str, channels: tuple[str, ...] = ()
    ) -> T:
        """Run ``work(connection)`` in the next group; its result once committed."""
        request: Request[Any] = Request(work, operation, channels)
        on_trio = sniffio.current_async_library() == "trio"
        self._queue.append(request)
        if self._leading:
            if on_trio:
                await self._follow_on_trio(request)
            else:
                await self._follow_on_asyncio(request)
            if request.promoted and not request.done:
                await self._lead(request, on_trio)
        else:
            self._leading = True
            await self._lead(request, on_trio)
        if request.error is not None:
            raise request.error
        result: T = request.result
        return result

    async def barrier(self) -> None:
        """Wait until every write submitted before this call has settled. It joins the
        queue like a write but opens no transaction: closing a store with it never waits
        for another process's lock."""
        if self._leading:
            await self.submit(_barrier, "barrier")

    async def _lead(self, request: Request[Any], on_trio: bool) -> None:
        try:
            # Let every task that is ready to write queue behind us: they join this group.
            if on_trio:
                await trio.lowlevel.checkpoint()
            else:
                await asyncio.sleep(0)
        except BaseException:
            self._withdraw(request)
            self._hand_over()
            raise
        taken = self._take()
        group = [other for other in taken if other.work is not _barrier]
        for other in taken:
            if other.work is _barrier:
                other.succeed(None)
        try:
            if group and not self._execute_now(group):
                if on_trio:
                    with trio.CancelScope(shield=True):
                        await self._execute(group)
                else:
                    await _settle_on_asyncio(self._execute(group))
                # A cancellation that arrived while the group ran is delivered now, like
                # a follower's: the caller does not learn the outcome of work it cancelled.
                await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException as exc:
            for other in group:
                if not other.done:
                    other.fail(exc)
            raise
        finally:
            self.groups += 1
            self.requests += len(group)
            for other in taken:
                other.wake()
            self._hand_over()

    async def _follow_on_trio(self, request: Request[Any]) -> None:
        request.task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            if request.state is _State.QUEUED:
                request.task = None
                self._withdraw(request)
                return trio.lowlevel.Abort.SUCCEEDED
            # Taken: the group will settle it and wake us; the cancellation waits.
            request.cancelled = True
            return trio.lowlevel.Abort.FAILED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if request.cancelled:
            await trio.lowlevel.checkpoint_if_cancelled()

    async def _follow_on_asyncio(self, request: Request[Any]) -> None:
        loop = asyncio.get_running_loop()
        request.future = loop.create_future()
        try:
            await request.future
        except asyncio.CancelledError:
            if request.state is _State.QUEUED:
                request.future = None
                self._withdraw(request)
                if request.promoted:
                    self._hand_over()
                raise
            # Taken: wait for the group to settle it, through any further cancellation.
            with anyio.CancelScope(shield=True):
                while not request.done:
                    request.future = loop.create_future()
                    with contextlib.suppress(asyncio.CancelledError):
                        await request.future
            raise

    def _take(self) -> list[Request[Any]]:
        group: list[Request[Any]] = []
        while self._queue and len(group) < self._max_group:
            request = self._queue.popleft()
            request.state = _State.TAKEN
            group.append(request)
        return group

    def _withdraw(self, request: Request[Any]) -> None:
        if request.state is _State.QUEUED:
            self._queue.remove(request)
            request.fail(RuntimeError("withdrawn"))

    def _hand_over(self) -> None:
        """Make the first queued caller the next leader, or note that nobody leads."""
        if self._queue:
            successor = self._queue[0]
            successor.promoted = True
            successor.wake()
        else:
            self._leading = False
