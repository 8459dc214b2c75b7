"""In-process notification channels, shared by every backend.

:class:`NotificationHub` keeps the open listeners of one store by channel. ``publish``
may be called from any thread (PostgreSQL's listener thread does); each listener is woken
on its own event loop. A backend that can reach other processes adds its own transport
and publishes what arrives into the hub.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel

from ._threads import loop_call_soon


class Subscription:
    """One open listener of one channel: a flag that notifications set, and an event to
    sleep on. Level-triggered (see :class:`~fsmflow.store.Listener`)."""

    def __init__(
        self, channel: str, poll: Callable[[], Awaitable[bool]] | None, poll_interval: float
    ) -> None:
        self.channel = channel
        self._notified = False
        self._event = anyio.Event()
        self._call_soon = loop_call_soon()
        self._thread = threading.get_ident()
        self._poll = poll
        self._poll_interval = poll_interval

    def notify(self) -> None:
        """Mark the channel notified (from any thread)."""
        if threading.get_ident() == self._thread:
            self._set()
        else:
            # If its event loop has stopped, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self._call_soon(self._set)

    def _set(self) -> None:
        self._notified = True
        self._event.set()

    async def wait(self) -> None:
        """Sleep until notified (see :class:`~fsmflow.store.Listener`).

        With a ``poll`` function (a backend's way to see other processes' notifications),
        it is called every ``poll_interval`` seconds while waiting, and a ``True`` from it
        counts as a notification.
        """
        await anyio.lowlevel.checkpoint()
        while not self._notified:
            if self._poll is None:
                await self._event.wait()
                continue
            with anyio.move_on_after(self._poll_interval):
                await self._event.wait()
            if not self._notified and await self._poll():
                self._notified = True
        self._notified = False
        if self._event.is_set():
            self._event = anyio.Event()


class NotificationHub:
    """The open subscriptions of one store, by channel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}

    def publish(self, channel: str) -> None:
        """Wake every open listener of ``channel`` (from any thread)."""
        with self._lock:
            subscribers = list(self._subscriptions.get(channel, ()))
        for subscription in subscribers:
            subscription.notify()

    def publish_all(self) -> None:
        """Wake every open listener: something may have been missed (a reconnection)."""
        with self._lock:
            subscribers = [s for group in self._subscriptions.values() for s in group]
        for subscription in subscribers:
            subscription.notify()

    def channels(self) -> list[str]:
        with self._lock:
            return list(self._subscriptions)

    @asynccontextmanager
    async def subscribe(
        self,
        channel: str,
        *,
        poll: Callable[[], Awaitable[bool]] | None = None,
        poll_interval: float = 1.0,
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(channel, poll, poll_interval)
        with self._lock:
            self._subscriptions.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                group = self._subscriptions.get(channel)
                if group is not None:
                    group.discard(subscription)
                    if not group:
                        del self._subscriptions[channel]
