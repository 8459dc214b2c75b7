"""A workflow run as a supervisor: ``dispatch_state`` runs the current step or undo.

The loop asks "what now?" in the run's state: in ``RUN_<step>`` it calls the step (with
its timeout, in a worker thread when it blocks) and answers ``StepDone``, ``Retry``,
``StepFailed``, or ``Sleep`` / ``Wait`` when the step parks on a durable timer or a
signal; in ``UNDO_<step>`` it calls the undo. What the call produced goes to the outbox
and :meth:`WorkflowRun.checkpoint_plan` hands it to the durable mechanism, which commits
it with the new state in one fenced batch — after the step ran, never before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import attrs

from ..fsm import FsmSpec, StateMachine
from ..store import Append, BatchOp, EncodeError, Notify, OfferLease, StoreError
from ..supervisor import TERMINATE, EventLoopDirective, SelfSupervised, Trigger
from ._durable import CheckpointPlan, DurableBinding
from ._errors import OutputTooLarge, SignalTimeout, StepFailed, UnknownSignal
from ._fsm import (
    CancelRequested,
    CompiledWorkflow,
    GiveUp,
    Resume,
    Retry,
    RunError,
    RunEvent,
    RunProgress,
    Sleep,
    Start,
    StepDone,
    UndoDone,
    UndoFailed,
    Wait,
)
from ._fsm import StepFailed as StepFailedEvent
from ._journal import field, frame, unframe
from ._records import RunStatus, control_log, encode_text, journal_log, queue_channel

if TYPE_CHECKING:
    from ..store import LogEntry
    from ._workflow import Step, Workflow

T = TypeVar("T")


@attrs.frozen
class RunSettings:
    """How a worker runs steps (see :class:`~fsmflow.durable.Worker`)."""

    #: Waits (sleeps, retry backoffs, signal timeouts) up to this long happen in place,
    #: holding the lease; longer ones park the run on a durable timer.
    inline_wait: float = 1.0
    #: How often an in-place signal wait looks for a signal.
    poll_interval: float = 0.05
    #: How often a running run looks for cancel requests, between steps.
    control_interval: float = 1.0
    #: See :class:`~fsmflow.durable.DurableBinding` (0: commit after every step).
    checkpoint_throttle: float = 0.0


class _Park(BaseException):
    """Raised inside a step to park the run (never seen by user code that catches
    ``Exception``)."""

    def __init__(self, event: Sleep | Wait, entry: bytes | None) -> None:
        super().__init__("park")
        self.event = event
        self.entry = entry


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class StepContext:
    """What a step (or an undo) gets as its first argument.

    ``idempotency_key`` is the same on every attempt and every re-run of this step of
    this run (after a crash, in another worker): pass it to outside systems so a repeated
    call has no second effect. ``token`` is the run's current fencing token.
    """

    def __init__(self, run: WorkflowRun, step: Step[Any, Any], attempt: int, undo: bool) -> None:
        self._run = run
        self.run_id: str = run.binding.record.run_id
        self.workflow: str = run.workflow.name
        self.step: str = step.name
        self.attempt = attempt
        self.token: int = run.binding.lease.token
        self.idempotency_key = f"{self.run_id}:{'undo:' if undo else ''}{step.name}"
        self._step_index = step.index
        self._op = 0
        #: Control-log seq up to which this attempt consumed signals.
        self.signal_cursor = run.progress.signal_cursor

    def _next_timer(self) -> tuple[tuple[int, int, int], float | None]:
        key = (self._step_index, self.attempt, self._op)
        self._op += 1
        return key, self._run.timers.get(key)

    def _timer_entry(self, key: tuple[int, int, int], at: float) -> bytes:
        self._run.timers[key] = at
        return frame({"k": "timer", "s": key[0], "a": key[1], "o": key[2], "at": at})

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the deadline is stored, so after a crash or a hand-off the run
        wakes when it is due, not ``seconds`` after the restart. Sleeps up to the worker's
        ``inline_wait`` happen in place; longer ones release the run until due (the step
        runs again from its start then, and this call returns at once)."""
        run = self._run
        key, due = self._next_timer()
        now = await run.binding.store.clock()
        if due is None:
            if seconds <= run.settings.inline_wait:
                await anyio.sleep(max(0.0, seconds))
                return
            due = now + seconds
            raise _Park(Sleep(due), self._timer_entry(key, due))
        remaining = due - now
        if remaining <= 0:
            return
        if remaining <= run.settings.inline_wait:
            await anyio.sleep(remaining)
            return
        raise _Park(Sleep(due), None)

    async def wait_for_signal(
        self,
        signal_type: type[T],
        *,
        timeout: float,  # noqa: ASYNC109 - a durable deadline, not a cancel scope
    ) -> T:
        """The next signal sent to this run (``handle.signal(value)``), which must be a
        ``signal_type``; raises :class:`SignalTimeout` when none came within ``timeout``
        seconds (a durable deadline, like :meth:`sleep`). A long wait releases the run:
        a signal then wakes it at once."""
        run = self._run
        key, due = self._next_timer()
        store = run.binding.store
        now = await store.clock()
        entry = None
        if due is None:
            due = now + timeout
            entry = self._timer_entry(key, due)
        await run.read_control()  # a signal sent since the run last looked
        while True:
            found = run.next_signal(self.signal_cursor, signal_type)
            if found is not None:
                self.signal_cursor, value = found
                return value
            remaining = due - now
            if remaining <= 0:
                raise SignalTimeout(self.run_id, signal_type.__name__, timeout)
            if remaining > run.settings.inline_wait:
                raise _Park(Wait(due), entry)
            await anyio.sleep(min(remaining, run.settings.poll_interval))
            await run.read_control()
            now = await store.clock()


class WorkflowRun(SelfSupervised[Any, RunEvent, RunProgress, Any]):
    """One run of a workflow, restored from its record and journal by a worker."""

    def __init__(
        self,
        workflow: Workflow[Any, Any],
        binding: DurableBinding[Any, RunProgress],
        journal: list[LogEntry],
        settings: RunSettings,
        *,
        give_up: str | None = None,
    ) -> None:
        super().__init__(f"{workflow.name}/{binding.record.run_id}")
        self.workflow = workflow
        self.compiled: CompiledWorkflow = workflow.compile()
        self.binding = binding
        self.settings = settings
        self.give_up = give_up
        record = binding.record
        self.journal_log = journal_log(record.run_id)
        self.control_log = control_log(record.run_id)
        codec = workflow.codec
        self.input: Any = codec.decode(
            record.input.encode(), workflow.input_type, self._key("input")
        )
        self.outputs: dict[int, Any] = {}
        self.timers: dict[tuple[int, int, int], float] = {}
        self.undo_results: dict[int, str | None] = {}
        for entry in journal:
            self._replay(entry)
        self.progress: RunProgress = RunProgress()
        self.control: list[tuple[int, dict[str, Any], bytes]] = []
        self.control_read_to = 0
        self.cancel_seen = False
        self.outbox: list[BatchOp] = []
        self.quiet = False
        self.parking: tuple[Sleep | Wait, float] | None = None
        self.parked = False
        self.result_text: str | None = None
        self._last_control_check = -math.inf

    def _key(self, what: str) -> str:
        return f"run {self.binding.record.run_id} {what}"

    def _replay(self, entry: LogEntry) -> None:
        key = f"{self.journal_log}#{entry.seq}"
        header, value = unframe(entry.value, key)
        kind = header["k"]
        steps = self.workflow.steps
        index = field(header, "s", int, key)
        if not 0 <= index < len(steps):
            from ..store import DecodeError

            raise DecodeError(key, "a journal entry", f"step index {index} out of range")
        if kind == "out":
            step = steps[index]
            self.outputs[index] = self.workflow.codec.decode(value, step.output_type, key)
        elif kind == "timer":
            attempt = field(header, "a", int, key)
            op = field(header, "o", int, key)
            self.timers[(index, attempt, op)] = float(field(header, "at", (int, float), key))
        elif kind == "undo":
            self.undo_results[index] = None if header.get("ok") else str(header.get("e"))

    # -- the supervisor -----------------------------------------------------------------

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Any, RunEvent, RunProgress, Any]:
        raise TypeError("a WorkflowRun's spec is its workflow's: workflow.fsm_spec()")

    def build_state_machine(
        self, initial_state: Any
    ) -> StateMachine[Any, RunEvent, RunProgress, Any]:
        return self.compiled.spec.new_machine(initial_state)

    def event_for_action_error(self, msg: str) -> RunEvent:
        self.quiet = True  # nothing new to persist: the run stays where it is
        return RunError(msg)

    async def dispatch_state(self, state: Any, ctx: RunProgress) -> EventLoopDirective[RunEvent]:
        self.progress = ctx
        self.quiet = False
        status = self.compiled.status_of(state)
        if status.is_final or self.parked:
            return TERMINATE
        if self.give_up is not None:
            reason, self.give_up = self.give_up, None
            return Trigger(GiveUp(reason))
        await self._check_control(status)
        if self.cancel_seen and not ctx.cancel_requested:
            return Trigger(CancelRequested())
        if status is RunStatus.PENDING:
            self.quiet = True
            return Trigger(Start())
        if status is RunStatus.SLEEPING or status is RunStatus.WAITING:
            self.quiet = True
            return Trigger(Resume())
        if ctx.retry_at is not None:
            wait = ctx.retry_at - await self.binding.store.clock()
            if wait > self.settings.inline_wait:
                return await self._park(_Park(Sleep(ctx.retry_at), None))
            if wait > 0:
                await anyio.sleep(wait)
        if status is RunStatus.RUNNING:
            return await self._run_step(ctx)
        return await self._run_undo(ctx)

    async def _check_control(self, status: RunStatus) -> None:
        """Read new control entries: always when a worker takes the run, then at most
        every ``control_interval`` between steps."""
        now = anyio.current_time()
        if now - self._last_control_check >= self.settings.control_interval:
            self._last_control_check = now
            await self.read_control()

    async def read_control(self) -> None:
        after = max(self.control_read_to, self.progress.signal_cursor)
        for entry in await self.binding.store.read(self.control_log, after=after):
            header, value = unframe(entry.value, f"{self.control_log}#{entry.seq}")
            if header["k"] == "cancel":
                self.cancel_seen = True
            self.control.append((entry.seq, header, value))
            self.control_read_to = entry.seq

    def next_signal(self, after: int, signal_type: type[T]) -> tuple[int, T] | None:
        """The first signal after control seq ``after``, decoded as ``signal_type``."""
        for seq, header, value in self.control:
            if seq <= after or header["k"] != "signal":
                continue
            key = f"{self.control_log}#{seq}"
            name = header.get("t")
            if name != signal_type.__name__:
                raise UnknownSignal(
                    f"run {self.binding.record.run_id} waits for a {signal_type.__name__} "
                    f"signal but the next one sent is a {name}"
                )
            decoded: T = self.workflow.codec.decode(value, signal_type, key)
            return seq, decoded
        return None

    async def _call(
        self, function: Callable[..., Any], is_async: bool, step: Step[Any, Any], args: list[Any]
    ) -> Any:
        timeout = step.timeout
        with anyio.fail_after(timeout) if timeout is not None else _no_timeout():
            if is_async:
                return await function(*args)
            if step.blocking:
                return await anyio.to_thread.run_sync(
                    partial(function, *args), abandon_on_cancel=True
                )
            return function(*args)

    async def _run_step(self, ctx: RunProgress) -> EventLoopDirective[RunEvent]:
        step = self.workflow.steps[ctx.position]
        sctx = StepContext(self, step, ctx.attempt, undo=False)
        args = [sctx, self.input, *(self.outputs[d.index] for d in step.dependencies)]
        try:
            output = await self._call(step.function, step.is_async, step, args)
        except _Park as park:
            return await self._park(park)
        except Exception as exc:
            return await self._failed(step, ctx, exc, StepFailedEvent)
        try:
            data = self.workflow.codec.encode(output, step.output_type)
            limit = self.workflow.max_output_bytes
            if len(data) > limit:
                raise OutputTooLarge(f"the output of step {step.name!r}", len(data), limit)
        except (EncodeError, OutputTooLarge) as exc:
            error = StepFailed(step.name, ctx.attempt, _describe(exc))
            return Trigger(StepFailedEvent(str(error)))
        self.outputs[step.index] = output
        self.outbox.append(Append(self.journal_log, frame({"k": "out", "s": step.index}, data)))
        if step is self.workflow.result_step:
            self.result_text = data.decode()
        return Trigger(StepDone(sctx.signal_cursor))

    async def _run_undo(self, ctx: RunProgress) -> EventLoopDirective[RunEvent]:
        step = self.workflow.steps[ctx.position]
        undo = step.undo_function
        assert undo is not None
        sctx = StepContext(self, step, ctx.attempt, undo=True)
        args = [sctx, self.input, self.outputs[step.index]]
        try:
            await self._call(undo, step.undo_is_async, step, args)
        except _Park as park:
            return await self._park(park)
        except Exception as exc:
            return await self._failed(step, ctx, exc, UndoFailed)
        self.undo_results[step.index] = None
        self.outbox.append(
            Append(self.journal_log, frame({"k": "undo", "s": step.index, "ok": True}))
        )
        return Trigger(UndoDone())

    async def _park(self, park: _Park) -> EventLoopDirective[RunEvent]:
        if park.entry is not None:
            self.outbox.append(Append(self.journal_log, park.entry))
        delay = max(0.0, park.event.until - await self.binding.store.clock())
        self.parking = (park.event, delay)
        return Trigger(park.event)

    async def _failed(
        self,
        step: Step[Any, Any],
        ctx: RunProgress,
        exc: Exception,
        final: type[StepFailedEvent] | type[UndoFailed],
    ) -> EventLoopDirective[RunEvent]:
        policy = step.undo_retry if final is UndoFailed else step.retry
        if policy.retries(exc) and ctx.attempt < policy.attempts:
            at = await self.binding.store.clock() + policy.delay(ctx.attempt)
            return Trigger(Retry(_describe(exc), at))
        error = str(StepFailed(step.name, ctx.attempt, _describe(exc)))
        if final is UndoFailed:
            self.undo_results[step.index] = error
            entry = frame({"k": "undo", "s": step.index, "ok": False, "e": error})
            self.outbox.append(Append(self.journal_log, entry))
            return Trigger(UndoFailed(error))
        return Trigger(StepFailedEvent(error))

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint_plan(self, state: Any, ctx: RunProgress) -> CheckpointPlan | None:
        status = self.compiled.status_of(state)
        ops = tuple(self.outbox)
        self.outbox.clear()
        if status.is_final:
            result = self.result_text if status is RunStatus.COMPLETED else None
            return CheckpointPlan(ops, status, math.inf, result, ctx.error)
        if status is RunStatus.SLEEPING or status is RunStatus.WAITING:
            parking, self.parking = self.parking, None
            assert parking is not None
            self.parked = True
            delay = parking[1]
            return CheckpointPlan(ops, status, release_after=delay, after_commit=self._after_park)
        if self.quiet and not ops:
            return None
        return CheckpointPlan(ops, status)

    async def _after_park(self) -> None:
        """A signal or cancel that arrived while the run was held found its lease taken,
        so its wake-up did nothing: look once more, after the release, and wake the run
        if anything came."""
        seen = self.control_read_to
        try:
            fresh = await self.binding.store.read(
                self.control_log, after=max(seen, self.progress.signal_cursor), limit=1
            )
            if fresh:
                record = self.binding.record
                await self.binding.store.write_batch(
                    [OfferLease(record.resource), Notify(queue_channel(record.queue))]
                )
        except StoreError:  # the next claim or signal will wake it; nothing is lost
            pass


class _no_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def encode_input(workflow: Workflow[Any, Any], value: object) -> str:
    return encode_text(workflow.codec, value, workflow.input_type)
