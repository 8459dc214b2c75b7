"""Blocking work off the event loop, and waits that a cancellation cannot cut short.

A backend hands blocking calls (an fsync, a network round trip) to a :class:`Worker`: one
long-lived thread per purpose, fed by a queue, that wakes the waiting task through its
event loop's thread-safe callback. Unlike a fresh hop through a thread pool per call, a
worker costs one queue put and one wake-up, and it keeps the call's connection on one
thread.

A call handed to a worker is never abandoned: :func:`wait_through_cancellation` waits for
it to finish even when the caller is cancelled (on trio, on anyio's cancel scopes, and on
asyncio's native ``task.cancel()`` alike), then re-raises the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import sniffio
import trio

T = TypeVar("T")

#: Schedules a callable on an event loop from any thread, without waiting for it.
CallSoon = Callable[[Callable[[], object]], object]


def loop_call_soon() -> CallSoon:
    """A thread-safe way to run a callable on the current task's event loop."""
    if sniffio.current_async_library() == "trio":
        token = trio.lowlevel.current_trio_token()
        return lambda fn: token.run_sync_soon(fn)
    loop = asyncio.get_running_loop()
    return lambda fn: loop.call_soon_threadsafe(fn)


def _call_quietly(call_soon: CallSoon, fn: Callable[[], object]) -> None:
    """Schedule ``fn`` unless its event loop has already stopped (nobody waits any more)."""
    with contextlib.suppress(RuntimeError, trio.RunFinishedError):
        call_soon(fn)


async def wait_through_cancellation(done: anyio.Event) -> BaseException | None:
    """Wait until ``done`` is set, whatever cancellation arrives meanwhile.

    Returns the cancellation exception that arrived (to be re-raised by the caller once
    the work is finished), or ``None``. A shielded scope holds off trio's and anyio's
    cancellations; asyncio's native ``task.cancel()`` pierces shields, so it is caught
    and the wait resumed.
    """
    cancelled: BaseException | None = None
    with anyio.CancelScope(shield=True):
        while not done.is_set():
            try:
                await done.wait()
            except anyio.get_cancelled_exc_class() as exc:
                cancelled = exc
    return cancelled


class _Call(Generic[T]):
    __slots__ = ("args", "call_soon", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.done = anyio.Event()
        self.call_soon = loop_call_soon()
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:
            self.error = exc
        _call_quietly(self.call_soon, self.done.set)


class Worker:
    """One long-lived daemon thread that runs blocking calls one after another.

    :meth:`run` hands a call over and waits for it; a call, once handed over, always
    runs to completion (see :func:`wait_through_cancellation`).
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            call()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker thread; its result or exception.

        Cancellation is delivered after ``fn`` has returned; its result is then lost to the
        caller (the work itself happened).
        """
        call = _Call(fn, args)
        self._calls.put(call.run)
        cancelled = await wait_through_cancellation(call.done)
        if cancelled is not None:
            raise cancelled
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def submit(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` in the worker thread without waiting; its errors are ignored (for
        best-effort housekeeping such as a WAL checkpoint)."""

        def call() -> None:
            with contextlib.suppress(Exception):  # housekeeping: the next attempt retries
                fn()

        self._calls.put(call)

    async def aclose(self) -> None:
        """Finish the calls already queued, then let the thread exit."""
        await self.run(lambda: None)
        self._calls.put(None)
