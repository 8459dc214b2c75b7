"""Scripted child supervisors for the supervision-tree tests.

Each run of a :class:`Worker` follows a :class:`Life`: it may be unable to start, it
works for a while, then crashes or finishes; writing its completion event may take a
while (the loop shields that write, so such a child ignores cancellation until it is
done), and it may ignore being stopped for a while. A :class:`Recorder` makes the
workers and logs what they do on the loop's clock. Everything runs on any backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import attrs

from fsmflow import FsmBuilder, FsmSpec, StateMachine, Transition, goto
from fsmflow.supervisor import (
    TERMINATE,
    EventLoopDirective,
    ExitKind,
    MemoryJournal,
    SelfSupervised,
    Trigger,
)


@attrs.frozen
class Working:
    pass


@attrs.frozen
class Finished:
    pass


WorkerState = Working | Finished


@attrs.frozen
class Finish:
    pass


@attrs.frozen
class Fault:
    message: str


WorkerEvent = Finish | Fault


def _finish(state: Working, event: Finish, ctx: None) -> Transition[WorkerState, object]:
    return goto(Finished())


_SPEC: FsmSpec[WorkerState, WorkerEvent, None, object] | None = None


def worker_spec() -> FsmSpec[WorkerState, WorkerEvent, None, object]:
    global _SPEC
    if _SPEC is None:
        builder = FsmBuilder[WorkerState, WorkerEvent, None, object](
            states=WorkerState, events=WorkerEvent, initial=Working, name="worker"
        )
        builder.when(Working).on(Finish, _finish, to=[Finished])
        _SPEC = builder.build()
    return _SPEC


@attrs.frozen
class Life:
    """One run's script."""

    #: Seconds of work before the run ends by itself.
    lasts: float = math.inf
    #: True: it ends by crashing (FAILED); False: it finishes (TERMINATED).
    crashes: bool = True
    #: Seconds that writing its completion event takes.
    linger: float = 0.0
    #: Seconds it carries on, shielded from cancellation, once asked to stop.
    ignores_stop: float = 0.0
    #: The step that raises so the run cannot start: "initial_state",
    #: "initial_context" or "build_state_machine".
    cannot_start: str | None = None


FOREVER = Life()


@attrs.frozen
class Entry:
    at: float
    child: str
    #: "start" (the factory made it), "running" (its first dispatch began), "stopping"
    #: (its run ended or was cancelled), "exit" (its completion event was written).
    what: str
    exit: ExitKind | None = None


@attrs.define
class Recorder:
    entries: list[Entry] = attrs.Factory(list)
    journal: MemoryJournal = attrs.Factory(MemoryJournal)

    def log(self, child: str, what: str, exit: ExitKind | None = None) -> None:
        """Note ``what`` happened to ``child`` now."""
        self.entries.append(Entry(anyio.current_time(), child, what, exit))

    def factory(self, child: str, *lives: Life) -> Callable[[], Worker]:
        """Make ``child``'s workers: the n-th run lives ``lives[n]`` (the last one
        repeats); no lives means it works until stopped."""
        scripts = lives or (FOREVER,)
        runs = 0

        def make() -> Worker:
            nonlocal runs
            life = scripts[min(runs, len(scripts) - 1)]
            runs += 1
            self.log(child, "start")
            return Worker(child, life, self)

        return make

    def of(self, what: str) -> list[tuple[float, str]]:
        return [(e.at, e.child) for e in self.entries if e.what == what]

    def exits(self) -> list[tuple[float, str, ExitKind | None]]:
        return [(e.at, e.child, e.exit) for e in self.entries if e.what == "exit"]

    def completions(self, child: str) -> list[ExitKind]:
        return [c.exit for c in self.journal.events if c.supervisor == child]


class Worker(SelfSupervised[WorkerState, WorkerEvent, None, object]):
    """Any failure ends its run (``max_consecutive_failures = 0``): a crash is FAILED."""

    max_consecutive_failures = 0

    def __init__(self, name: str, life: Life, recorder: Recorder) -> None:
        super().__init__(name, journal=recorder.journal)
        self.life = life
        self.recorder = recorder
        self._began = False

    @classmethod
    def fsm_spec(cls) -> FsmSpec[WorkerState, WorkerEvent, None, object]:
        return worker_spec()

    def initial_state(self) -> WorkerState:
        self._cannot("initial_state")
        return Working()

    def initial_context(self) -> None:
        self._cannot("initial_context")

    def build_state_machine(
        self, initial_state: WorkerState
    ) -> StateMachine[WorkerState, WorkerEvent, None, object]:
        self._cannot("build_state_machine")
        return super().build_state_machine(initial_state)

    def _cannot(self, step: str) -> None:
        if self.life.cannot_start == step:
            raise LookupError(f"{self.name}: {step} is broken")

    def event_for_action_error(self, msg: str) -> WorkerEvent:
        return Fault(msg)

    async def dispatch_state(
        self, state: WorkerState, ctx: None
    ) -> EventLoopDirective[WorkerEvent]:
        if not self._began:
            self._began = True
            self.recorder.log(self.name, "running")
        match state:
            case Working():
                try:
                    await anyio.sleep(self.life.lasts)
                except anyio.get_cancelled_exc_class():
                    with anyio.CancelScope(shield=True):
                        await anyio.sleep(self.life.ignores_stop)
                    raise
                if self.life.crashes:
                    raise RuntimeError(f"{self.name} crashed")
                return Trigger(Finish())
            case Finished():
                return TERMINATE

    async def write_completion_event(self) -> None:
        assert self.exit_info is not None
        kind = self.exit_info[0]
        self.recorder.log(self.name, "stopping", kind)
        await anyio.sleep(self.life.linger)
        self.recorder.log(self.name, "exit", kind)
        await super().write_completion_event()
