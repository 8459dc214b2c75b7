"""``GraphHandle``: steer a running graph — barrier decisions, cancel, checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import anyio

from ..supervisor import EventSender, ExternalChannelClosed, StateWatcher
from ._events import BarrierId
from ._fsm import CANCEL, CheckpointRequested, Decide, ExecEvent, ExecState
from ._graph import Approve, Decision, Reject, Route, Skip

if TYPE_CHECKING:
    from ._context import RunContext


class GraphHandle:
    """Sends a running graph its external events.

    Decisions go to an exact :class:`BarrierId` or, given a node name, to every
    occurrence of that barrier node (a wildcard). A decision sent before its barrier is
    reached is kept until then. Every send returns whether the run took it (``False``
    once the run has ended); a full queue makes ``await`` ing senders wait.
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

    async def _send(self, event: ExecEvent) -> bool:
        try:
            await self._sender.send(event)
        except ExternalChannelClosed:
            return False
        return True

    async def decide(self, target: BarrierId | str, decision: Decision) -> bool:
        """Send ``decision`` for ``target`` (a barrier id, or a node name for all of
        its occurrences)."""
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

    async def request_checkpoint(self) -> bool:
        """Ask for a checkpoint now (taken between nodes, or while a barrier waits)."""
        return await self._send(CheckpointRequested())

    def cancel(self) -> None:
        """Cancel the run at once: a running node is interrupted, a waiting barrier stops
        waiting, and the run ends with :class:`GraphCancelled`. Does nothing once the run
        has ended."""
        self._ctx.request_cancel()
        # When the queue is full the run still sees the flag between events.
        with suppress(anyio.WouldBlock, ExternalChannelClosed):
            self._sender.send_nowait(CANCEL)

    @property
    def done(self) -> bool:
        """Whether the run has ended (however it ended)."""
        return self._watcher.closed

    @property
    def state(self) -> ExecState:
        """The execution FSM's current state."""
        return self._watcher.current()
