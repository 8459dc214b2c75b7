"""``StateWatcher``: observe a supervisor's current state from outside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import anyio

S = TypeVar("S")


class WatcherClosed(Exception):
    """The supervisor's run ended before the awaited state was reached.

    ``final_state`` is the last state it published.
    """

    def __init__(self, final_state: object) -> None:
        self.final_state = final_state
        super().__init__(f"the supervisor stopped in {final_state!r}")


class StateWatcher(Generic[S]):
    """The latest state of one supervisor, with latest-value semantics.

    A slow observer never sees a backlog: :meth:`changes` yields the newest state each
    time it wakes, skipping states that came and went in between. Only the supervisor's
    loop publishes; any number of tasks may observe.
    """

    def __init__(self, initial_state: S) -> None:
        self._value = initial_state
        self._version = 0
        self._changed: anyio.Event | None = None
        self._closed = False

    def current(self) -> S:
        """The most recently published state."""
        return self._value

    @property
    def closed(self) -> bool:
        """True once the supervisor's run has ended; no more states will be published."""
        return self._closed

    async def wait_for(self, predicate: Callable[[S], bool]) -> S:
        """Wait until the current state satisfies ``predicate`` and return it.

        Returns at once if it already does. Raises :class:`WatcherClosed` if the run ends
        first. Cancellable at any point.
        """
        while True:
            value = self._value
            if predicate(value):
                return value
            if self._closed:
                raise WatcherClosed(value)
            await self._wait_change()

    async def changes(self) -> AsyncIterator[S]:
        """Yield the current state, then the newest state after each change, until the
        run ends."""
        version = self._version
        yield self._value
        while True:
            if self._version == version:
                if self._closed:
                    return
                await self._wait_change()
                continue
            version = self._version
            yield self._value

    async def _wait_change(self) -> None:
        """Wait for the next publish or close; callers first check there is none yet."""
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def publish(self, state: S) -> None:
        """Make ``state`` the current one (called by the supervisor's loop)."""
        if state is self._value:
            return
        self._value = state
        self._version += 1
        self._wake()

    def close(self) -> None:
        """Mark the run as ended and wake every observer."""
        self._closed = True
        self._wake()
