"""Typed errors of durable runs."""

from __future__ import annotations

from collections.abc import Sequence

from ._records import RunStatus


class DurableError(Exception):
    """Base class of every error raised by :mod:`fsmflow.durable`."""


class WorkflowDefinitionError(DurableError):
    """A workflow is malformed; the message names the workflow and the step."""

    def __init__(self, workflow: str, problems: Sequence[str]) -> None:
        self.workflow = workflow
        self.problems = tuple(problems)
        super().__init__(
            f"workflow {workflow!r} is invalid:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class UnknownRun(DurableError):
    """No run with this id is stored (never started, or deleted past its retention)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no durable run {run_id!r} in this store")


class RunNotFinished(DurableError):
    """``result(wait=False)`` on a run that has not reached a final state."""


class RunFailed(DurableError):
    """The run ended without an output: a step failed for good (``FAILED``; its undos then
    ran: ``COMPENSATED`` or ``COMPENSATION_FAILED``), it was cancelled or dead-lettered.

    ``status`` is the final :class:`~fsmflow.durable.RunStatus`, ``error`` the message of
    the failure that ended it, ``undone`` the steps whose undo ran and ``undo_failed``
    the steps whose undo failed for good (each with its error).
    """

    def __init__(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None,
        undone: Sequence[str] = (),
        undo_failed: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.run_id = run_id
        self.status = status
        self.error = error
        self.undone = tuple(undone)
        self.undo_failed = tuple(undo_failed)
        text = f"durable run {run_id!r} ended {status.name}"
        if error:
            text += f": {error}"
        if self.undone:
            text += f"; undone: {', '.join(self.undone)}"
        if self.undo_failed:
            text += "; undo failed: " + ", ".join(f"{s} ({e})" for s, e in self.undo_failed)
        super().__init__(text)


class StepFailed(DurableError):
    """A step failed for good (its retries exhausted, or an error its policy does not
    retry). ``step`` names it, ``attempts`` counts the tries; the last error is chained."""

    def __init__(self, step: str, attempts: int, error: str) -> None:
        self.step = step
        self.attempts = attempts
        self.error = error
        super().__init__(f"step {step!r} failed after {attempts} attempt(s): {error}")


class SignalTimeout(DurableError):
    """``wait_for_signal`` found no signal before its durable timeout ran out."""

    def __init__(self, run_id: str, signal: str, timeout: float) -> None:
        self.run_id = run_id
        self.signal = signal
        self.timeout = timeout
        super().__init__(f"run {run_id!r} got no {signal} signal within {timeout}s")


class OutputTooLarge(DurableError):
    """A value to store (a step's output, an input, a signal) encodes to more bytes than
    the configured limit; nothing was stored. Store a reference (a path, a URL, a key)
    instead of the data."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} encodes to {size} bytes, over the limit of {limit} bytes; store a "
            "reference to the data instead (or raise max_output_bytes)"
        )


class UnknownSignal(DurableError):
    """A signal of a type the run's workflow does not declare in ``signals=``."""
