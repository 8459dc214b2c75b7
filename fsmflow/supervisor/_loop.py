"""The supervisor loop: the single gateway through which an FSM is driven.

Only this loop calls ``machine.handle`` and runs actions. That is what lets every error —
in ``dispatch_state``, in an action — become an event the FSM decides about, and what
lets the loop promise that the completion event is written exactly once.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

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

    async def handle(self, event: Any, failure: bool) -> None:
        """Feed ``event`` and run its actions; a failing action feeds a failure event at
        once, skipping the rest. Bounded by ``max_consecutive_failures``."""
        machine = self.machine
        ctx = self.ctx
        while True:
            from_state = machine.state
            try:
                actions = await machine.handle(event, ctx)
            except FsmError as exc:
                raise SupervisorError(
                    self.sup.name,
                    _variant_label(from_state),
                    _variant_label(event),
                    _describe(exc),
                    self.chain,
                ) from exc
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
            if machine.state is not from_state or (failed_message is None and not failure):
                # Progress: the state moved on, or an ordinary event was fully handled.
                self.chain.clear()
            if failed_message is None:
                await self.sup.after_transition(machine.state, ctx)
                return
            self.note_failure(failed_message, event)
            event = self.sup.event_for_action_error(failed_message)
            failure = True

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
        logger.debug(
            "%s: %s --%s--> %s",
            record.supervisor,
            _variant_label(from_state),
            _variant_label(event),
            _variant_label(record.to_state),
            extra={
                "fsm_supervisor": record.supervisor,
                "fsm_from": _variant_label(from_state),
                "fsm_event": _variant_label(event),
                "fsm_to": _variant_label(record.to_state),
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
        budget = sup.yield_every
        dispatch = sup.dispatch_state
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
                    budget = sup.yield_every
                    await anyio.lowlevel.checkpoint()
                    continue
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
            budget -= 1
            if budget <= 0:
                budget = sup.yield_every
                await anyio.lowlevel.checkpoint()
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
    machine = run.machine
    from_state = machine.state
    try:
        actions = await machine.check_timeout(run.ctx)
    except FsmError as exc:
        raise SupervisorError(
            run.sup.name, _variant_label(from_state), "timeout", _describe(exc), run.chain
        ) from exc
    if not actions and machine.state is from_state:
        return
    run.transitions += 1
    if run.listeners or logger.isEnabledFor(logging.DEBUG):
        run._record(from_state, "timeout", actions, False)
    for action in actions:
        try:
            await action.execute(run.ctx)
        except Exception as exc:
            message = (
                f"action {action!r} failed in state {_variant_label(machine.state)}: "
                f"{_describe(exc)}"
            )
            event = run.sup.event_for_action_error(message)
            run.note_failure(message, event)
            await run.handle(event, True)
            return
    await run.sup.after_transition(machine.state, run.ctx)


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
