"""``GraphHandle``: steer a running graph — decisions, resume values, cancel, checkpoints.

Every method of the handle is a coroutine (``await handle.cancel()`` like ``await
handle.approve(...)``); the properties (:attr:`done`, :attr:`state`, :attr:`waiting`) only
read.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ..supervisor import EventSender, ExternalChannelClosed, StateWatcher
from ._fsm import CANCEL, CheckpointRequested, Decide, ExecEvent, ExecState, Resume
from ._interrupts import BarrierId, Interrupt, InterruptId
from ._results import Approve, Decision, Reject, Route, Skip

if TYPE_CHECKING:
    from ._context import RunContext


class GraphHandle:
    """Sends a running graph its external events.

    Barrier decisions go to an exact :class:`BarrierId` or, given a node name, to every
    occurrence of that barrier node (a wildcard); addressing a node that is not a barrier
    of the graph raises ``ValueError`` listing the barriers. A decision sent before its
    barrier is reached is kept until then, as is a value sent to an exact
    :class:`InterruptId`. Every send returns whether the run took it (``False`` once the
    run has ended); a full queue makes senders wait.
    """

    def __init__(
        self,
        ctx: RunContext[Any],
        sender: EventSender[ExecEvent],
        watcher: StateWatcher[ExecState],
    ) -> None:
        self._ctx = ctx
        self._sender = sender
        self._watcher = watcher
        self.trace_id = ctx.trace_id
        self.thread_id = ctx.thread_id

    async def _send(self, event: ExecEvent) -> bool:
        try:
            await self._sender.send(event)
        except ExternalChannelClosed:
            return False
        return True

    async def decide(self, target: BarrierId | str, decision: Decision) -> bool:
        """Send ``decision`` for ``target`` (a barrier id, or a barrier node name for all
        of its occurrences)."""
        self._ctx.graph.check_barrier_target(target)
        return await self._send(Decide(target, decision))

    async def approve(self, target: BarrierId | str) -> bool:
        return await self.decide(target, Approve())

    async def reject(self, target: BarrierId | str, reason: str) -> bool:
        return await self.decide(target, Reject(reason))

    async def route(
        self, target: BarrierId | str, to: str, update: Mapping[str, Any] | None = None
    ) -> bool:
        """Decide with routing data: apply ``update`` and continue at ``to``."""
        return await self.decide(target, Route(to, dict(update or {})))

    async def skip(self, target: BarrierId | str) -> bool:
        return await self.decide(target, Skip())

    async def resume(
        self, value: Any = None, *, interrupt: InterruptId | BarrierId | str | None = None
    ) -> bool:
        """Answer an interrupt with ``value`` (LangGraph's ``Command(resume=value)``): the
        interrupted node runs again and its ``interrupt`` call returns ``value``.

        Without ``interrupt`` the value answers the one interrupt the run waits on; with
        several waiting, name it (an :class:`InterruptId`, its text, or for a barrier its
        :class:`BarrierId`). A barrier's value is a decision.
        """
        return await self._send(Resume(interrupt, value))

    async def request_checkpoint(self) -> bool:
        """Ask for a checkpoint now (taken between steps, or while interrupts wait)."""
        return await self._send(CheckpointRequested())

    async def cancel(self) -> bool:
        """Cancel the run at once: a running node is interrupted, a waiting interrupt
        stops waiting, and the run ends with :class:`GraphCancelled`. Returns whether the
        run was still going (``False``: it had ended; nothing happens)."""
        if self._watcher.closed:
            return False
        self._ctx.request_cancel()
        # When the queue is full the run still sees the flag between events.
        with suppress(anyio.WouldBlock, ExternalChannelClosed):
            self._sender.send_nowait(CANCEL)
        await anyio.lowlevel.checkpoint()
        return True

    @property
    def done(self) -> bool:
        """Whether the run has ended (however it ended)."""
        return self._watcher.closed

    @property
    def state(self) -> ExecState:
        """The execution FSM's current state."""
        return self._watcher.current()

    @property
    def waiting(self) -> tuple[Interrupt, ...]:
        """The interrupts the run waits on now."""
        if self._watcher.current() is not ExecState.AWAITING_DECISION:
            return ()
        return tuple(self._ctx.frame.interrupts)
