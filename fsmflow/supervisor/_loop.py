"""The supervisor loop: the single gateway through which an FSM is driven.

Only this loop calls ``machine.handle`` and runs actions. That is what lets every error —
in ``dispatch_state``, in an action — become an event the FSM decides about, and what
lets the loop promise that the completion event is written exactly once, on every exit:
a run that cannot start, one that terminates, fails or is cancelled (by a cancel scope,
or on asyncio natively, by ``task.cancel()`` or ``asyncio.wait_for``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

import anyio
import anyio.lowlevel
import attrs
import trio

from ..fsm import FsmError, StateMachine
from ._base import Supervisor
from ._completion import write_completion
from ._directives import Continue, Terminate, Trigger
from ._messages import action_failure, describe, dispatch_failure, label
from ._records import ExitKind, RunOutcome, SupervisorError, TransitionRecord

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")

logger = logging.getLogger("fsmflow.supervisor")


def _scheduler_checkpoint() -> Callable[[], Awaitable[None]]:
    """The checkpoint the loop yields with: trio's own in a trio task, since anyio's looks
    the running backend up on every call (which costs about as much as a transition), and
    anyio's on any other backend."""
    if trio.lowlevel.in_trio_task():
        return trio.lowlevel.checkpoint
    return anyio.lowlevel.checkpoint


class _Run:
    """The mutable state of one run, and the loop's less travelled paths (failures,
    timeouts, records), kept apart so the loop body stays flat and fast."""

    __slots__ = (
        "sup",
        "machine",
        "ctx",
        "transitions",
        "dispatches",
        "failures",
        "chain",
        "listeners",
        "budget",
        "checkpoint",
        "after_transition",
        "publish",
    )

    def __init__(
        self,
        sup: Supervisor[Any, Any, Any, Any],
        machine: StateMachine[Any, Any, Any, Any],
        ctx: Any,
    ) -> None:
        self.sup = sup
        self.machine = machine
        self.ctx = ctx
        self.transitions = 0
        self.dispatches = 0
        self.failures = 0
        #: The failure messages since the last progress.
        self.chain: list[str] = []
        self.listeners = sup._listeners
        self.budget = sup.yield_every
        self.checkpoint = _scheduler_checkpoint()
        self.after_transition = sup._after_transition_hook()
        watcher = sup._loop_watcher
        self.publish = None if watcher is None else watcher.publish

    def recording(self) -> bool:
        """Whether handled events are reported (to listeners or the debug log)."""
        return bool(self.listeners) or logger.isEnabledFor(logging.DEBUG)

    async def tick(self) -> None:
        """Spend one step of the scheduling budget; yield to the scheduler when it runs out,
        so neither a ``Trigger`` chain nor a failure chain starves sibling tasks."""
        self.budget -= 1
        if self.budget <= 0:
            self.budget = self.sup.yield_every
            await self.checkpoint()

    # -- failures -------------------------------------------------------------------------

    async def dispatch_failed(self, state: object, exc: Exception) -> None:
        message = dispatch_failure(state, exc)
        event = self.sup.event_for_action_error(message)
        self.note_failure(message, exc, event)
        await self.feed_failures(event)

    async def action_failed(
        self, from_state: object, event: object, action: object, exc: Exception
    ) -> None:
        """An action of an ordinary event failed: the rest were skipped; the failure is
        handled at once. If the event moved the state on, that counts as progress."""
        state = self.machine.state
        if state is not from_state and state != from_state:
            self.chain.clear()
        if self.publish is not None:
            self.publish(state)
        message = action_failure(action, state, exc)
        self.note_failure(message, exc, event)
        await self.feed_failures(self.sup.event_for_action_error(message))

    async def feed_failures(self, event: object) -> None:
        """Feed a failure event; while its own actions fail, feed the next at once.

        A failure event is progress only when all its actions ran and it changed the
        state: failure events whose actions keep failing end the run once the chain
        passes ``max_consecutive_failures``, even if each moves the state (two states
        bouncing a failure between them), so such a chain is always bounded.
        """
        machine = self.machine
        ctx = self.ctx
        while True:
            from_state = machine.state
            actions = await self.handle(event, from_state)
            self.transitions += 1
            self.failures += 1
            if self.listeners or logger.isEnabledFor(logging.DEBUG):
                self.record(from_state, event, actions, True)
            failed: tuple[object, Exception] | None = None
            for action in actions:
                try:
                    await action.execute(ctx)
                except Exception as exc:
                    failed = (action, exc)
                    break
            state = machine.state
            if self.publish is not None:
                self.publish(state)
            if failed is None:
                if state is not from_state and state != from_state:
                    # Compared by value: re-entering an equal state (``Failed(msg)`` from
                    # ``Failed(msg)``) is no progress, so such a loop stays bounded too.
                    self.chain.clear()
                if self.after_transition is not None:
                    await self.after_transition(state, ctx)
                return
            message = action_failure(failed[0], state, failed[1])
            self.note_failure(message, failed[1], event)
            event = self.sup.event_for_action_error(message)
            await self.tick()

    def note_failure(self, message: str, error: BaseException, event: object) -> None:
        """Add a failure to the chain; past ``max_consecutive_failures`` end the run."""
        chain = self.chain
        chain.append(message)
        if len(chain) > self.sup.max_consecutive_failures:
            raise SupervisorError(
                self.sup.name,
                label(self.machine.state),
                label(event),
                f"{len(chain)} consecutive failure events without progress; the last: {message}",
                chain,
            ) from error

    async def handle(self, event: object, from_state: object) -> list[Any]:
        """``machine.handle``, its FSM errors turned into the run's ``SupervisorError``."""
        try:
            return await self.machine.handle(event, self.ctx)
        except FsmError as exc:
            raise self.fsm_error(from_state, event, exc) from exc

    def fsm_error(self, state: object, event: object, exc: FsmError) -> SupervisorError:
        return SupervisorError(self.sup.name, label(state), label(event), describe(exc), self.chain)

    # -- timeouts and records -------------------------------------------------------------

    async def fire_timeout(self) -> None:
        """Fire the current state's timeout if it is due, like an ordinary event."""
        machine = self.machine
        deadline = machine.timeout_deadline()
        if deadline is None or anyio.current_time() < deadline:
            return
        from_state = machine.state
        try:
            actions = await machine.check_timeout(self.ctx)
        except FsmError as exc:
            raise self.fsm_error(from_state, "timeout", exc) from exc
        self.transitions += 1
        if self.listeners or logger.isEnabledFor(logging.DEBUG):
            self.record(from_state, "timeout", actions, False)
        ctx = self.ctx
        for action in actions:
            try:
                await action.execute(ctx)
            except Exception as exc:
                await self.action_failed(from_state, "timeout", action, exc)
                return
        self.settled()
        if self.after_transition is not None:
            await self.after_transition(machine.state, ctx)

    def settled(self) -> None:
        """An ordinary event was handled with all its actions: progress."""
        if self.chain:
            self.chain.clear()
        if self.publish is not None:
            self.publish(self.machine.state)

    def record(self, from_state: object, event: object, actions: list[Any], failure: bool) -> None:
        record = TransitionRecord(
            supervisor=self.sup.name,
            from_state=from_state,
            event=event,
            to_state=self.machine.state,
            actions=tuple(actions),
            at=anyio.current_time(),
            failure=failure,
        )
        for listener in self.listeners:
            listener(record)
        if not logger.isEnabledFor(logging.DEBUG):
            return
        labels = (label(from_state), label(event), label(record.to_state))
        logger.debug(
            "%s: %s --%s--> %s",
            record.supervisor,
            *labels,
            extra={
                "fsm_supervisor": record.supervisor,
                "fsm_from": labels[0],
                "fsm_event": labels[1],
                "fsm_to": labels[2],
                "fsm_actions": len(actions),
                "fsm_failure": failure,
            },
        )

    def outcome(self, kind: ExitKind, error: BaseException | None) -> RunOutcome[Any]:
        return RunOutcome(
            supervisor=self.sup.name,
            exit=kind,
            final_state=self.machine.state,
            transitions=self.transitions,
            dispatches=self.dispatches,
            failures=self.failures,
            error=error,
            completion_written=False,
        )


async def run_supervisor(
    sup: Supervisor[S, E, C, A], initial_state: S | None, context: C | None
) -> RunOutcome[S]:
    """Run ``sup`` until it terminates, fails or is cancelled (see ``Supervisor.run``).

    A run that cannot start — ``initial_state()``, ``initial_context()`` or
    ``build_state_machine()`` raising, the state not a declared variant — fails like any
    other run: its completion event is written and a ``SupervisorError`` raised.
    """
    state = initial_state
    step = "initial_state()"
    try:
        if state is None:
            state = sup.initial_state()
        step = "initial_context()"
        ctx = sup.initial_context() if context is None else context
        step = "build_state_machine()"
        machine = sup.build_state_machine(state)
    except Exception as exc:
        await fail_to_start(sup, state, step, exc)
    return await _drive(sup, machine, ctx)


async def fail_to_start(
    sup: Supervisor[S, E, C, A], state: S | None, step: str, exc: Exception
) -> NoReturn:
    """End a run that never started because ``step`` raised ``exc``: write its completion
    event (exit ``FAILED``; the final state is the state it was to start in, ``None``
    if even that is unknown), record the outcome and raise its ``SupervisorError``."""
    error = SupervisorError(
        sup.name,
        "-" if state is None else label(state),
        "start",
        f"the run could not start: {step} raised {describe(exc)}",
    )
    error.__cause__ = exc
    outcome: RunOutcome[S] = RunOutcome(
        sup.name, ExitKind.FAILED, cast(S, state), 0, 0, 0, error, completion_written=False
    )
    await _finish(sup, outcome, error)
    raise error


async def _finish(
    sup: Supervisor[S, E, C, A], outcome: RunOutcome[S], error: SupervisorError | None
) -> RunOutcome[S]:
    """Record ``outcome`` first (so nothing can interrupt the run before it is known),
    write the completion event exactly once, then record whether it was written.

    A native asyncio cancellation that arrived during the write is re-raised here, once
    the write is done and recorded."""
    sup._exit = (outcome.exit, outcome.final_state, None if error is None else str(error))
    sup._last_outcome = outcome
    if error is not None:
        error.outcome = outcome
    written, cancellation = await write_completion(sup)
    if written:
        outcome = attrs.evolve(outcome, completion_written=True)
        sup._last_outcome = outcome
        if error is not None:
            error.outcome = outcome
    if cancellation is not None:
        raise cancellation
    return outcome


async def _drive(
    sup: Supervisor[S, E, C, A], machine: StateMachine[S, E, C, A], ctx: C
) -> RunOutcome[S]:
    """The loop itself. The ordinary ``Trigger`` path is inlined, with its counters in
    local variables: it is what every transition of every engine pays for. Whether
    transitions are reported (a listener registered, ``DEBUG`` logging on) is looked up
    again each time the loop yields to the scheduler."""
    run = _Run(sup, machine, ctx)
    has_timeouts = bool(machine.spec._timeouts)
    kind = ExitKind.CANCELLED
    error: SupervisorError | None = None
    dispatches = transitions = 0
    try:
        dispatch = sup.dispatch_state
        checkpoint = run.checkpoint
        handle_now: Callable[[Any, Any], Any] = machine._handle_now
        publish = run.publish
        after_transition = run.after_transition
        chain = run.chain
        recording = run.recording()
        budget = sup.yield_every
        deadline: float | None = None
        if publish is not None:
            publish(machine._state)
        if sup._on_started is not None:
            sup._on_started()
        while True:
            # machine._state, not the property: the loop is the machine's only driver.
            state = machine._state
            if has_timeouts:
                deadline = machine.timeout_deadline()
            dispatches += 1
            try:
                if deadline is None:
                    directive: Any = await dispatch(state, ctx)
                else:
                    with anyio.move_on_at(deadline) as scope:
                        directive = await dispatch(state, ctx)
                    if scope.cancelled_caught:
                        directive = _CUT_SHORT
            except Exception as exc:
                await run.dispatch_failed(state, exc)
            else:
                directive_type = type(directive)
                if directive_type is Trigger:
                    event = directive.event
                    try:
                        actions = handle_now(event, ctx)
                        if type(actions) is not tuple and type(actions) is not list:
                            actions = await actions
                    except FsmError as exc:
                        raise run.fsm_error(state, event, exc) from exc
                    transitions += 1
                    if recording:
                        run.record(state, event, actions, False)
                    for action in actions:
                        try:
                            await action.execute(ctx)
                        except Exception as exc:
                            await run.action_failed(state, event, action, exc)
                            break
                    else:
                        # run.settled(), inlined.
                        if chain:
                            chain.clear()
                        if publish is not None:
                            publish(machine._state)
                        if after_transition is not None:
                            await after_transition(machine._state, ctx)
                elif directive_type is Continue:
                    chain.clear()
                    budget = sup.yield_every
                    await checkpoint()
                    recording = run.recording()
                elif directive_type is Terminate:
                    kind = ExitKind.TERMINATED
                    break
                elif directive is not _CUT_SHORT:
                    raise SupervisorError(
                        sup.name, label(state), "dispatch", _not_a_directive(directive)
                    )
            if has_timeouts:
                await run.fire_timeout()
            budget -= 1
            if budget <= 0:
                budget = sup.yield_every
                await checkpoint()
                recording = run.recording()
    except SupervisorError as exc:
        kind = ExitKind.FAILED
        error = exc
        raise
    except Exception as exc:
        kind = ExitKind.FAILED
        error = SupervisorError(sup.name, label(machine.state), "-", describe(exc), run.chain)
        raise error from exc
    finally:
        run.dispatches += dispatches
        run.transitions += transitions
        outcome = await _finish(sup, run.outcome(kind, error), error)
    return outcome


#: What a dispatch cut short by its state's timeout answered: nothing, by design.
_CUT_SHORT: Any = object()


def _not_a_directive(directive: object) -> str:
    from .._util import bounded_repr

    if directive is None:
        return (
            "dispatch_state returned None (is a return statement missing?); it must "
            "return Continue(), Trigger(event) or Terminate()"
        )
    return (
        f"dispatch_state returned {bounded_repr(directive)}; expected Continue(), "
        "Trigger(event) or Terminate()"
    )
