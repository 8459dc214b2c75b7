"""Acknowledged starts: a child counts as started only once it said so.

Like trio's ``nursery.start`` and OTP's ``init``: a tree starts its children one after
the other, each once the one before has reported that it started, so the order of
``children`` is the order in which they begin running, on every backend, every time.

What "started" means:

* an ordinary supervisor has started once ``initial_state()``, ``initial_context()`` and
  ``build_state_machine()`` returned and its loop is about to make its first dispatch
  (``start_supervisor``'s ``on_started``); its run ending before that means it could not
  start;
* a tree has started once every child of its own spec started; its run ending before
  that (failed) means it could not start.

The tree runs each child through :func:`~fsmflow.supervisor.start_supervisor`, handing it
a :class:`GuardedSpawner` instead of its task group: the spawner starts the child's task
inside a guard that reports the start, turns anything the run lets escape into the run's
outcome (so nothing a child does can reach the tree's task group as an exception group),
and reports the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from ._handle import TaskSpawner
from ._records import ExitKind, RunOutcome

logger = logging.getLogger("fsmflow.supervisor")


class StartAck:
    """The start acknowledgement of one run: waited for by whoever starts the run.

    A tree calls :meth:`started` once every child of its spec started; any other run
    calls it through ``start_supervisor``'s ``on_started``, just before its first
    dispatch. :meth:`ended` wakes the waiter too, so a run that ends before it started
    never leaves anyone waiting.
    """

    __slots__ = ("acknowledged", "_event")

    def __init__(self) -> None:
        #: True once the run reported that it started.
        self.acknowledged = False
        self._event = anyio.Event()

    def started(self) -> None:
        self.acknowledged = True
        self._event.set()

    def ended(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def failed_to_start(self, outcome: RunOutcome[object] | None) -> bool:
        """Whether a run that ended with ``outcome`` (``None``: still going) failed before
        it reported that it started."""
        if outcome is None or outcome.exit is not ExitKind.FAILED:
            return False
        return not self.acknowledged


class GuardedSpawner:
    """The :class:`TaskSpawner` a tree hands to ``start_supervisor`` for one child run.

    It starts the run's one task in ``group``, inside a guard that catches any exception
    the run lets escape (passing it to ``on_end``; cancellation still propagates), and
    finally calls ``ack.ended()`` and ``on_end(error)`` — synchronously, so the end is
    reported even under cancellation. Whatever ``on_end`` returns (an error, or ``None``)
    is raised into ``group``.
    """

    __slots__ = ("_group", "_ack", "_on_end", "_used")

    def __init__(
        self,
        group: TaskSpawner,
        ack: StartAck,
        on_end: Callable[[BaseException | None], BaseException | None],
    ) -> None:
        self._group = group
        self._ack = ack
        self._on_end = on_end
        self._used = False

    def start_soon(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, name: Any = None
    ) -> object:
        if self._used:
            raise RuntimeError("a GuardedSpawner starts exactly one run")
        self._used = True
        return self._group.start_soon(self._guard, func, args, name=name)

    async def _guard(
        self, func: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]
    ) -> None:
        error: BaseException | None = None
        try:
            await func(*args)
        except Exception as exc:
            error = exc
        finally:
            self._ack.ended()
            to_raise = self._on_end(error)
        if to_raise is not None:
            raise to_raise
