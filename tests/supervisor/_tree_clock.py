"""Deterministic time on both backends, for the supervision-tree tests.

On trio, :class:`trio.testing.MockClock` with ``autojump_threshold=0`` jumps the clock to
the next deadline whenever every task is blocked. On asyncio there is no such clock, so
:func:`virtual_time_loop` builds an event loop with the same behaviour: its ``time()`` is
a number that only moves when the loop would otherwise sleep, and then moves straight to
the next scheduled callback. Under both, ``anyio.current_time()`` starts at 0 and every
instant a test computes (a backoff, a shutdown deadline) is exact.

:func:`each_backend_mock_clock` runs an ``async def`` test once per backend under that
virtual time, like :func:`fsmflow.testing.each_backend` does in real time.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import selectors
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import trio.testing

from fsmflow.testing import BACKENDS

#: Real seconds the asyncio loop waits for I/O when nothing is scheduled at all before it
#: calls the run deadlocked (a test with nothing left to do would otherwise hang).
_IDLE_LIMIT = 10.0


class _VirtualTimeSelector(selectors.BaseSelector):
    """A selector that, instead of sleeping until the next timer, advances the loop's
    virtual clock to it. Real I/O readiness (the loop's self-pipe) is still polled."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.now = 0.0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            ready = self._real.select(_IDLE_LIMIT)
            if not ready:
                raise RuntimeError("virtual-time loop: nothing is scheduled (deadlock)")
            return ready
        self.now += timeout
        return []

    def close(self) -> None:
        self._real.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualTimeSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def virtual_time_loop() -> asyncio.AbstractEventLoop:
    """A new asyncio event loop on virtual time (a ``loop_factory`` for anyio)."""
    return _VirtualTimeLoop()


def run_with_mock_clock(function: Callable[[], Awaitable[Any]], backend: str) -> Any:
    """``anyio.run(function)`` on ``backend`` with time that jumps whenever all is idle."""
    options: dict[str, Any]
    if backend == "trio":
        options = {"clock": trio.testing.MockClock(autojump_threshold=0)}
    else:
        options = {"loop_factory": virtual_time_loop}
    return anyio.run(function, backend=backend, backend_options=options)


def each_backend_mock_clock(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an ``async def`` pytest test on every backend, each under virtual time.

    The test's own fixtures keep working (use backend-neutral ones); ``backend`` is
    supplied by the decorator, as with :func:`fsmflow.testing.each_backend`.
    """
    import pytest

    signature = inspect.signature(test)

    @functools.wraps(test)
    def run_on(backend: str, **fixtures: Any) -> None:
        run_with_mock_clock(functools.partial(test, **fixtures), backend)

    parameters = [inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY)]
    parameters += [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
    ]
    run_on.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    parametrised: Callable[..., None] = pytest.mark.parametrize("backend", BACKENDS)(run_on)
    return parametrised
