"""Requests to a running tree: start, terminate, restart and delete a child.

A handle never touches the tree's children itself. It posts a request event to the
tree's channel and waits for the :class:`Reply`; the tree's loop handles the request
like any event, in order with the exits it learns of, so requests from any number of
tasks never race each other or a restart. That is what makes the handle safe to call
from any task (of the tree's event loop; not from other threads).
"""

from __future__ import annotations

from typing import Generic, TypeVar

import anyio
import attrs

from ._tree_values import ChildSpec

T = TypeVar("T")


class Reply(Generic[T]):
    """The one answer to one request: a value, or the error that refused it."""

    __slots__ = ("_done", "_value", "_error")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def answered(self) -> bool:
        return self._done.is_set()

    def resolve(self, value: T) -> None:
        """Answer with ``value`` (the first answer wins)."""
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """Answer with ``error``, raised in the requesting task (the first answer wins)."""
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> T:
        """Wait for the answer; raise the error if the request was refused.

        Cancelling the wait does not withdraw the request: the tree still carries it out.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


@attrs.frozen(eq=False)
class StartChild:
    """Add ``spec`` as the tree's last child and start it (``start_child``)."""

    spec: ChildSpec
    reply: Reply[object] = attrs.field(repr=False)


@attrs.frozen(eq=False)
class TerminateChild:
    """Stop the child's run, keeping its spec unless it is temporary or pooled
    (``terminate_child``)."""

    child_id: str
    reply: Reply[object] = attrs.field(repr=False)


@attrs.frozen(eq=False)
class RestartChild:
    """Start a stopped child again (``restart_child``)."""

    child_id: str
    reply: Reply[object] = attrs.field(repr=False)


@attrs.frozen(eq=False)
class DeleteChild:
    """Forget a stopped child's spec (``delete_child``)."""

    child_id: str
    reply: Reply[object] = attrs.field(repr=False)


ChildRequest = StartChild | TerminateChild | RestartChild | DeleteChild
