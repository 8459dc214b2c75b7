"""The supervisor loop: the single gateway through which an FSM is driven.

Only this loop calls ``machine.handle`` and runs actions. That is what lets every error —
in ``dispatch_state``, in an action — become an event the FSM decides about, and what
lets the loop promise that the completion event is written exactly once.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import trio

from ..fsm import FsmError, StateMachine, variant_name
from ._base import Supervisor
from ._directives import Continue, Terminate, Trigger
from ._records import ExitKind, RunOutcome, SupervisorError, TransitionRecord

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")

logger = logging.getLogger("fsmflow.supervisor")


def _variant_label(value: object) -> str:
    """The variant name of a state or event value (a plain string is shown as is)."""
    if isinstance(value, str):
        return value
    return variant_name(value if isinstance(value, enum.Enum) else type(value))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _scheduler_checkpoint() -> Callable[[], Awaitable[None]]:
    """The checkpoint the loop yields with: trio's own in a trio task, since anyio's looks
    the running backend up on every call (which costs about as much as a transition), and
    anyio's on any other backend."""
    if trio.lowlevel.in_trio_task():
        return trio.lowlevel.checkpoint
    return anyio.lowlevel.checkpoint


def _after_transition_hook(
    sup: Supervisor[Any, Any, Any, Any],
) -> Callable[[Any, Any], Awaitable[None]] | None:
    """``sup.after_transition``, or ``None`` when it is the base class's no-op (so the
    loop need not await it after every transition)."""
    hook = sup.after_transition
    if getattr(hook, "__func__", None) is Supervisor.after_transition:
        return None
    return hook


class _Run:
    """The mutable state of one run; kept apart so the loop body stays flat and fast."""

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
        self.chain: list[str] = []
        self.listeners = sup._listeners
        self.budget = sup.yield_every
        self.checkpoint = _scheduler_checkpoint()
        self.after_transition = _after_transition_hook(sup)

    async def tick(self) -> None:
        """Spend one step of the scheduling budget; yield to the scheduler when it runs out,
        so neither a ``Trigger`` chain nor a failure chain starves sibling tasks."""
        self.budget -= 1
        if self.budget <= 0:
            self.budget = self.sup.yield_every
            await self.checkpoint()

    async def handle(self, event: Any, failure: bool) -> None:
        """Feed ``event`` and run its actions; a failing action feeds a failure event at
        once, skipping the rest. Bounded by ``max_consecutive_failures``."""
        machine = self.machine
        while True:
            from_state = machine.state
            try:
                actions = await machine.handle(event, self.ctx)
            except FsmError as exc:
                raise SupervisorError(
                    self.sup.name,
                    _variant_label(from_state),
                    _variant_label(event),
                    _describe(exc),
                    self.chain,
                ) from exc
            failed_message = await self.apply(from_state, event, actions, failure)
            if failed_message is None:
                return
            event = self.sup.event_for_action_error(failed_message)
            failure = True
            await self.tick()

    async def apply(
        self, from_state: object, event: object, actions: list[Any], failure: bool
    ) -> str | None:
        """Record a handled event and run its actions in order.

        Returns ``None`` once every action ran (``after_transition`` has then been
        called), else the failure message of the first failing action (the rest are
        skipped), already counted in the failure chain.
        """
        machine = self.machine
        ctx = self.ctx
        self.transitions += 1
        if failure:
            self.failures += 1
        if self.listeners or logger.isEnabledFor(logging.DEBUG):
            self._record(from_state, event, actions, failure)
        failed_message = None
        for action in actions:
            try:
                await action.execute(ctx)
            except Exception as exc:
                failed_message = (
                    f"action {action!r} failed in state "
                    f"{_variant_label(machine.state)}: {_describe(exc)}"
                )
                break
        state = machine.state
        if (failed_message is None and not failure) or (
            state is not from_state and state != from_state
        ):
            # Progress: an ordinary event was fully handled, or the state moved on. The
            # state is compared by value: re-entering an equal state (``Failed(msg)`` from
            # ``Failed(msg)``) is no progress, so such a failure loop stays bounded.
            self.chain.clear()
        if failed_message is None:
            if self.after_transition is not None:
                await self.after_transition(state, ctx)
            return None
        self.note_failure(failed_message, event)
        return failed_message

    def note_failure(self, message: str, event: object) -> None:
        self.chain.append(message)
        if len(self.chain) > self.sup.max_consecutive_failures:
            raise SupervisorError(
                self.sup.name,
                _variant_label(self.machine.state),
                _variant_label(event),
                f"{len(self.chain)} consecutive failure events without progress",
                self.chain,
            )

    def _record(self, from_state: object, event: object, actions: list[Any], failure: bool) -> None:
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
        labels = (
            _variant_label(from_state),
            _variant_label(event),
            _variant_label(record.to_state),
        )
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

    def outcome(
        self, kind: ExitKind, error: BaseException | None, written: bool
    ) -> RunOutcome[Any]:
        return RunOutcome(
            supervisor=self.sup.name,
            exit=kind,
            final_state=self.machine.state,
            transitions=self.transitions,
            dispatches=self.dispatches,
            failures=self.failures,
            error=error,
            completion_written=written,
        )


async def run_loop(sup: Supervisor[S, E, C, A], initial_state: S, ctx: C) -> RunOutcome[S]:
    """Run ``sup`` from ``initial_state`` until it terminates, fails or is cancelled."""
    machine = sup.build_state_machine(initial_state)
    run = _Run(sup, machine, ctx)
    has_timeouts = bool(machine.spec._timeouts)
    kind = ExitKind.CANCELLED
    error: BaseException | None = None
    try:
        dispatch = sup.dispatch_state
        checkpoint = run.checkpoint
        while True:
            state = machine.state
            directive: Any = None
            deadline = machine.timeout_deadline() if has_timeouts else None
            run.dispatches += 1
            try:
                if deadline is None:
                    directive = await dispatch(state, ctx)
                else:
                    with anyio.move_on_at(deadline):
                        directive = await dispatch(state, ctx)
            except Exception as exc:
                message = (
                    f"dispatch_state failed in state {_variant_label(state)}: {_describe(exc)}"
                )
                event = sup.event_for_action_error(message)
                run.note_failure(message, event)
                await run.handle(event, True)
            else:
                directive_type = type(directive)
                if directive_type is Trigger:
                    await run.handle(directive.event, False)
                elif directive_type is Continue:
                    run.chain.clear()
                    run.budget = sup.yield_every
                    await checkpoint()
                elif directive_type is Terminate:
                    kind = ExitKind.TERMINATED
                    break
                elif directive is not None:
                    raise SupervisorError(
                        sup.name,
                        _variant_label(state),
                        "dispatch",
                        f"dispatch_state returned {directive!r}; expected Continue(), "
                        "Trigger(event) or Terminate()",
                    )
            if has_timeouts:
                await _fire_timeout(run)
            # run.tick(), inlined: this is the hottest line of the loop.
            run.budget -= 1
            if run.budget <= 0:
                run.budget = sup.yield_every
                await checkpoint()
    except SupervisorError as exc:
        kind = ExitKind.FAILED
        error = exc
        raise
    except Exception as exc:
        kind = ExitKind.FAILED
        error = SupervisorError(
            sup.name, _variant_label(machine.state), "-", _describe(exc), run.chain
        )
        raise error from exc
    finally:
        sup._exit = (kind, machine.state, None if error is None else str(error))
        written = await _write_completion(sup)
        outcome = run.outcome(kind, error, written)
        sup._last_outcome = outcome
        if isinstance(error, SupervisorError):
            error.outcome = outcome
    return outcome


async def _fire_timeout(run: _Run) -> None:
    """Fire the current state's timeout if it is due, like an ordinary event."""
    machine = run.machine
    deadline = machine.timeout_deadline()
    if deadline is None or anyio.current_time() < deadline:
        return
    from_state = machine.state
    try:
        actions = await machine.check_timeout(run.ctx)
    except FsmError as exc:
        raise SupervisorError(
            run.sup.name, _variant_label(from_state), "timeout", _describe(exc), run.chain
        ) from exc
    failed_message = await run.apply(from_state, "timeout", actions, False)
    if failed_message is not None:
        await run.handle(run.sup.event_for_action_error(failed_message), True)


async def _write_completion(sup: Supervisor[Any, Any, Any, Any]) -> bool:
    """Write the completion event under a shielded scope with a deadline, so it happens
    even while the run is being cancelled, yet cannot hold cancellation up forever."""
    with anyio.move_on_after(sup.completion_timeout, shield=True):
        try:
            await sup.write_completion_event()
        except Exception:
            logger.exception("%s: write_completion_event failed", sup.name)
            return False
        return True
    logger.error(
        "%s: write_completion_event did not finish within %.1fs",
        sup.name,
        sup.completion_timeout,
    )
    return False
