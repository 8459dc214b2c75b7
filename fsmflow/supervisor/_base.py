"""The supervisor classes users subclass.

A supervisor owns one FSM and is driven by one loop (:mod:`._loop`). The split between
:class:`SelfSupervised` (it owns its work) and :class:`HandlerSupervised` (it drives a
user-supplied handler and belongs to a stage) is about identity, not mechanics: both run
the same loop, so every engine built on them shares one set of guarantees.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ..fsm import FsmSpec, StateMachine
from ._directives import EventLoopDirective
from ._records import CompletionEvent, ExitKind, Journal, RunOutcome, TransitionRecord
from ._watcher import StateWatcher

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")
H = TypeVar("H")

TransitionListener = Callable[[TransitionRecord], None]


class Supervisor(ABC, Generic[S, E, C, A]):
    """Something that owns an FSM.

    Subclasses provide the spec as a classmethod, :meth:`fsm_spec`, so tools (diagrams,
    ``fsmflow diagram pkg.mod:MySupervisor``) read it from the class alone.
    """

    #: How many consecutive failures (dispatch or action errors) without progress a run
    #: tolerates; one more ends it with a :class:`SupervisorError` carrying the chain.
    #: Progress: the state changed value, an ordinary event was handled with all its
    #: actions, or ``dispatch_state`` returned ``Continue``.
    max_consecutive_failures: int = 32
    #: A chain of ``Trigger`` directives or failure events yields to the scheduler after
    #: this many steps.
    yield_every: int = 64
    #: Seconds ``write_completion_event`` may take. It runs shielded from cancellation, so
    #: this bounds how long it can hold up a cancelled run; past it the write is abandoned.
    completion_timeout: float = 5.0

    def __init__(self, name: str, *, journal: Journal | None = None) -> None:
        self._name = name
        self.journal = journal
        self._listeners: list[TransitionListener] = []
        #: Where the loop publishes the state after each handled event (set by
        #: ``start_supervisor`` and the external-event wrappers for their watcher).
        self._loop_watcher: StateWatcher[S] | None = None
        #: Called once the run has started: its machine is built and its loop is about
        #: to make its first dispatch (set by ``start_supervisor``'s ``on_started``).
        self._on_started: Callable[[], None] | None = None
        self._exit: tuple[ExitKind, object, str | None] | None = None
        self._last_outcome: RunOutcome[S] | None = None

    @property
    def name(self) -> str:
        return self._name

    @classmethod
    @abstractmethod
    def fsm_spec(cls) -> FsmSpec[S, E, C, A]:
        """The supervisor's FSM definition (build it once and cache it)."""

    def build_state_machine(self, initial_state: S) -> StateMachine[S, E, C, A]:
        """A fresh machine for one run; the default creates it from :meth:`fsm_spec`."""
        return self.fsm_spec().new_machine(initial_state)

    def initial_state(self) -> S:
        """The state ``run()`` starts in when none is given.

        The default is the spec's initial variant: the member itself for an enum, or an
        instance made with no arguments for a class. Override it when that is not enough.
        """
        initial: Any = self.fsm_spec().initial
        if isinstance(initial, enum.Enum):
            return initial  # type: ignore[return-value]
        try:
            return initial()  # type: ignore[no-any-return]
        except TypeError as exc:
            raise TypeError(
                f"{type(self).__name__}: cannot create the initial state {initial.__name__}() "
                "without arguments; override initial_state() or pass initial_state to run()"
            ) from exc

    def initial_context(self) -> C:
        """The context ``run()`` uses when none is given; override it or pass one."""
        raise TypeError(
            f"{type(self).__name__} has no default context; override initial_context() "
            "or pass context to run()"
        )

    @property
    def writer_id(self) -> str:
        """Who wrote this supervisor's journal entries."""
        return self._name

    @abstractmethod
    def event_for_action_error(self, msg: str) -> E:
        """The event the FSM receives when ``dispatch_state`` or an action fails."""

    @abstractmethod
    async def dispatch_state(self, state: S, ctx: C) -> EventLoopDirective[E]:
        """What to do now in ``state``. May raise: the error becomes
        ``Trigger(event_for_action_error(msg))``."""

    async def after_transition(self, state: S, ctx: C) -> None:
        """Called after each handled event once its actions ran; the default does nothing."""

    def _after_transition_hook(self) -> Callable[[S, C], Awaitable[None]] | None:
        """``after_transition``, or ``None`` when it is the base class's no-op (so the
        loop need not await it after every transition)."""
        hook = self.after_transition
        if getattr(hook, "__func__", None) is Supervisor.after_transition:
            return None
        return hook

    async def write_completion_event(self) -> None:
        """Record that the run ended. Called exactly once per run, whatever the exit.

        The default appends a :class:`CompletionEvent` to ``journal`` when there is one.
        """
        if self.journal is None or self._exit is None:
            return
        kind, final_state, error = self._exit
        await self.journal.append(
            CompletionEvent(self.writer_id, self._name, kind, final_state, error)
        )

    @property
    def exit_info(self) -> tuple[ExitKind, object, str | None] | None:
        """How the last run ended (kind, final state, error message), once it has."""
        return self._exit

    @property
    def last_outcome(self) -> RunOutcome[S] | None:
        """The outcome of the last run, whichever way it ended (also when cancelled)."""
        return self._last_outcome

    def add_transition_listener(self, listener: TransitionListener) -> None:
        """Call ``listener`` with a :class:`TransitionRecord` for every handled event.

        Listeners run inline in the loop; keep them fast and non-blocking (an exception
        in one ends the run). A listener added while a run is going hears from it from
        the loop's next yield to the scheduler on, at most ``yield_every`` events later.
        """
        self._listeners.append(listener)

    def remove_transition_listener(self, listener: TransitionListener) -> None:
        self._listeners.remove(listener)

    async def run(self, initial_state: S | None = None, context: C | None = None) -> RunOutcome[S]:
        """Drive the FSM until ``dispatch_state`` says ``Terminate``.

        Returns a ``TERMINATED`` :class:`RunOutcome`; raises :class:`SupervisorError` for a
        failed run — also for a run that cannot start (:meth:`initial_state`,
        :meth:`initial_context` or :meth:`build_state_machine` raising, or a state that
        is not a declared variant), with the original error as ``__cause__``; lets
        cancellation propagate. The completion event is written exactly once on each of
        those exits, and :attr:`last_outcome` set before it is written.
        ``trio.run(supervisor.run)`` starts from :meth:`initial_state` with
        :meth:`initial_context`.
        """
        from ._loop import run_supervisor

        return await run_supervisor(self, initial_state, context)


class SelfSupervised(Supervisor[S, E, C, A]):
    """A supervisor that owns its work: ``dispatch_state`` does it directly."""


class HandlerSupervised(Supervisor[S, E, C, A], Generic[S, E, C, A, H]):
    """A supervisor that drives a user-supplied ``handler`` on behalf of a pipeline stage.

    ``stage_id`` identifies the stage; it is also the default ``writer_id``.
    """

    def __init__(
        self, name: str, handler: H, stage_id: str, *, journal: Journal | None = None
    ) -> None:
        super().__init__(name, journal=journal)
        self.handler = handler
        self.stage_id = stage_id

    @property
    def writer_id(self) -> str:
        return f"stage:{self.stage_id}"
