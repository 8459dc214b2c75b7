"""Typed workflows: an input type, an output type, and steps.

A step is a sync or async function ``(ctx, input, *earlier_outputs) -> output``. Which
earlier outputs it takes is said by passing their :class:`Step` objects to the decorator,
so mypy checks each parameter against the type the earlier step returns; an earlier step
exists before a later one can name it, so the order is right by construction::

    order = Workflow("order", input=Order, output=Receipt)

    @order.step()
    async def reserve(ctx: StepContext, o: Order) -> Reservation: ...

    @order.step(reserve)
    async def charge(ctx: StepContext, o: Order, r: Reservation) -> Payment: ...

    @charge.undo
    async def refund(ctx: StepContext, o: Order, p: Payment) -> None: ...

Steps run in declaration order; the last step's output is the run's output unless
:meth:`Workflow.returns` names another.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from ..store import Codec
from ._errors import WorkflowDefinitionError
from ._policy import DEFAULT_QUEUE, NO_RETRY, Queue, RetryPolicy

if TYPE_CHECKING:
    from ..diagrams import Flowchart
    from ..fsm import FsmSpec
    from ._fsm import RunEvent
    from ._supervisor import StepContext

I = TypeVar("I")  # noqa: E741 - the workflow's input type
O = TypeVar("O")  # noqa: E741 - the workflow's output type
T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
D1 = TypeVar("D1", covariant=True)
D2 = TypeVar("D2", covariant=True)
D3 = TypeVar("D3", covariant=True)
D4 = TypeVar("D4", covariant=True)

#: An undo: ``(ctx, input, the step's output) -> None``, sync or async.
Undo = Callable[["StepContext", I, T], Awaitable[None]] | Callable[["StepContext", I, T], None]


def _type_name(tp: object) -> str:
    """A type's name as the version hash sees it: its qualified name without the module,
    so the hash does not depend on how the module was imported."""
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp)


class Step(Generic[I, T]):
    """One step of a workflow; returned by the :meth:`Workflow.step` decorator.

    Pass it to a later step's decorator to receive its output (typed ``T``); decorate a
    function with :meth:`undo` to give it a compensation.
    """

    def __init__(
        self,
        workflow: Workflow[Any, Any],
        index: int,
        name: str,
        function: Callable[..., Any],
        dependencies: tuple[Step[Any, Any], ...],
        output_type: Any,
        retry: RetryPolicy,
        timeout: float | None,
        blocking: bool,
    ) -> None:
        self.workflow = workflow
        self.index = index
        self.name = name
        self.function = function
        self.dependencies = dependencies
        self.output_type = output_type
        self.retry = retry
        self.timeout = timeout
        self.blocking = blocking
        self.is_async = inspect.iscoroutinefunction(function)
        self.undo_function: Callable[..., Any] | None = None
        self.undo_is_async = False
        self.undo_retry: RetryPolicy = retry

    def undo(self, function: Undo[I, T]) -> Undo[I, T]:
        """Register ``function(ctx, input, output)`` as this step's compensation: when a
        later step fails for good (or the run is cancelled), the undos of the completed
        steps run in reverse order, each durably and retried by this step's policy."""
        self.workflow._check_open(f"undo of step {self.name!r}")
        if self.undo_function is not None:
            raise WorkflowDefinitionError(self.workflow.name, [f"step {self.name!r} has two undos"])
        self.undo_function = function
        self.undo_is_async = inspect.iscoroutinefunction(function)
        return function

    @property
    def has_undo(self) -> bool:
        return self.undo_function is not None

    def __repr__(self) -> str:
        return f"<Step {self.workflow.name}.{self.name} #{self.index}>"


class _Decorator0(Protocol[I]):
    @overload
    def __call__(self, fn: Callable[[StepContext, I], Awaitable[T]], /) -> Step[I, T]: ...
    @overload
    def __call__(self, fn: Callable[[StepContext, I], T], /) -> Step[I, T]: ...


class _Decorator1(Protocol[I, D1]):
    @overload
    def __call__(self, fn: Callable[[StepContext, I, D1], Awaitable[T]], /) -> Step[I, T]: ...
    @overload
    def __call__(self, fn: Callable[[StepContext, I, D1], T], /) -> Step[I, T]: ...


class _Decorator2(Protocol[I, D1, D2]):
    @overload
    def __call__(self, fn: Callable[[StepContext, I, D1, D2], Awaitable[T]], /) -> Step[I, T]: ...
    @overload
    def __call__(self, fn: Callable[[StepContext, I, D1, D2], T], /) -> Step[I, T]: ...


class _Decorator3(Protocol[I, D1, D2, D3]):
    @overload
    def __call__(
        self, fn: Callable[[StepContext, I, D1, D2, D3], Awaitable[T]], /
    ) -> Step[I, T]: ...
    @overload
    def __call__(self, fn: Callable[[StepContext, I, D1, D2, D3], T], /) -> Step[I, T]: ...


class _Decorator4(Protocol[I, D1, D2, D3, D4]):
    @overload
    def __call__(
        self, fn: Callable[[StepContext, I, D1, D2, D3, D4], Awaitable[T]], /
    ) -> Step[I, T]: ...
    @overload
    def __call__(self, fn: Callable[[StepContext, I, D1, D2, D3, D4], T], /) -> Step[I, T]: ...


class Workflow(Generic[I, O]):
    """A typed, durable workflow: ``Workflow(name, input=I, output=O)`` then steps.

    ``version`` is part of the workflow's hash (:attr:`version_hash`) together with its
    structure (step names, order, dependencies, types, which steps have undos): a run
    records the hash it started with and only a worker that knows that hash runs it. Bump
    ``version`` when a step's behaviour changes in a way old checkpoints must not meet;
    list older hashes in ``compatible_with`` to let this code take their runs over.

    ``signals`` lists the types a run accepts through ``handle.signal(value)``; ``codec``
    (default: a fresh one) encodes the input, outputs and signals, whose types are
    registered automatically from the declarations and the steps' return annotations.
    """

    def __init__(
        self,
        name: str,
        *,
        input: type[I],
        output: type[O],
        version: str = "1",
        queue: Queue = DEFAULT_QUEUE,
        signals: Sequence[type[Any]] = (),
        compatible_with: Sequence[str] = (),
        codec: Codec | None = None,
        retention: float = 7 * 86400.0,
        max_output_bytes: int = 1 << 20,
    ) -> None:
        if not name or "/" in name:
            raise WorkflowDefinitionError(name, ["a workflow name must be non-empty, no '/'"])
        self.name = name
        self.input_type: type[I] = input
        self.output_type: type[O] = output
        self.version = version
        self.queue = queue
        self.signal_types: dict[str, type[Any]] = {}
        for tp in signals:
            self.signal_types[tp.__name__] = tp
        self.compatible_with = tuple(compatible_with)
        self.codec = codec or Codec()
        self.codec.register(input, output, *signals)
        self.retention = retention
        self.max_output_bytes = max_output_bytes
        self.steps: list[Step[I, Any]] = []
        self._returns: Step[I, O] | None = None
        self._compiled: Any = None

    # -- definition -----------------------------------------------------------------------

    @overload
    def step(
        self,
        *,
        name: str | None = ...,
        retry: RetryPolicy = ...,
        timeout: float | None = ...,
        blocking: bool = ...,
    ) -> _Decorator0[I]: ...
    @overload
    def step(
        self,
        d1: Step[I, T1],
        /,
        *,
        name: str | None = ...,
        retry: RetryPolicy = ...,
        timeout: float | None = ...,
        blocking: bool = ...,
    ) -> _Decorator1[I, T1]: ...
    @overload
    def step(
        self,
        d1: Step[I, T1],
        d2: Step[I, T2],
        /,
        *,
        name: str | None = ...,
        retry: RetryPolicy = ...,
        timeout: float | None = ...,
        blocking: bool = ...,
    ) -> _Decorator2[I, T1, T2]: ...
    @overload
    def step(
        self,
        d1: Step[I, T1],
        d2: Step[I, T2],
        d3: Step[I, T3],
        /,
        *,
        name: str | None = ...,
        retry: RetryPolicy = ...,
        timeout: float | None = ...,
        blocking: bool = ...,
    ) -> _Decorator3[I, T1, T2, T3]: ...
    @overload
    def step(
        self,
        d1: Step[I, T1],
        d2: Step[I, T2],
        d3: Step[I, T3],
        d4: Step[I, T4],
        /,
        *,
        name: str | None = ...,
        retry: RetryPolicy = ...,
        timeout: float | None = ...,
        blocking: bool = ...,
    ) -> _Decorator4[I, T1, T2, T3, T4]: ...
    def step(
        self,
        *dependencies: Step[I, Any],
        name: str | None = None,
        retry: RetryPolicy = NO_RETRY,
        timeout: float | None = None,
        blocking: bool = False,
    ) -> Any:
        """Declare the next step. Pass earlier steps whose outputs it takes (in its
        parameter order after the input); ``retry`` (default: one try), ``timeout`` (per
        attempt, seconds) and ``blocking`` (a sync function that blocks or burns CPU: run
        it in a worker thread, so the worker keeps renewing its lease meanwhile)."""
        self._check_open("a new step")
        problems = [
            f"step dependency {d!r} belongs to workflow {d.workflow.name!r}"
            for d in dependencies
            if d.workflow is not self
        ]
        if timeout is not None and not timeout > 0:
            problems.append(f"timeout must be a positive number of seconds, not {timeout!r}")
        if problems:
            raise WorkflowDefinitionError(self.name, problems)

        def decorate(function: Callable[..., Any]) -> Step[I, Any]:
            step_name = name or getattr(function, "__name__", None) or f"step{len(self.steps)}"
            return self._add(step_name, function, dependencies, retry, timeout, blocking)

        return decorate

    def returns(self, step: Step[I, O]) -> None:
        """Make ``step``'s output the run's output (default: the last step's)."""
        self._check_open("returns()")
        if step.workflow is not self:
            raise WorkflowDefinitionError(self.name, [f"returns({step!r}): another workflow"])
        self._returns = step

    def _check_open(self, what: str) -> None:
        if self._compiled is not None:
            raise WorkflowDefinitionError(
                self.name, [f"cannot add {what}: the workflow was already compiled (used)"]
            )

    def _add(
        self,
        name: str,
        function: Callable[..., Any],
        dependencies: tuple[Step[I, Any], ...],
        retry: RetryPolicy,
        timeout: float | None,
        blocking: bool,
    ) -> Step[I, Any]:
        problems = []
        if not name.isidentifier():
            problems.append(f"step name {name!r} is not an identifier")
        if any(s.name == name for s in self.steps):
            problems.append(f"two steps are named {name!r}")
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            try:
                signature.bind(*range(2 + len(dependencies)))
            except TypeError:
                problems.append(
                    f"step {name!r} must take (ctx, input"
                    + "".join(f", {d.name}" for d in dependencies)
                    + f") but its signature is {signature}"
                )
        try:
            hints = typing.get_type_hints(function)
        except Exception as exc:  # unresolvable annotations
            hints = {}
            problems.append(f"step {name!r}: cannot read its annotations ({exc})")
        if "return" not in hints:
            problems.append(
                f"step {name!r} has no return annotation; durable runs store each step's "
                "output, so its type must be declared (-> None for nothing)"
            )
        if blocking and inspect.iscoroutinefunction(function):
            problems.append(f"step {name!r}: blocking=True is for sync functions only")
        if problems:
            raise WorkflowDefinitionError(self.name, problems)
        output_type = hints["return"]
        self.codec.register(output_type)
        created: Step[I, Any] = Step(
            self,
            len(self.steps),
            name,
            function,
            dependencies,
            output_type,
            retry,
            timeout,
            blocking,
        )
        self.steps.append(created)
        return created

    # -- compiled -------------------------------------------------------------------------

    @property
    def result_step(self) -> Step[I, Any]:
        if self._returns is not None:
            return self._returns
        return self.steps[-1]

    def compile(self) -> Any:
        """Validate the whole workflow and build its FSM (once); later definitions are
        refused. Raises :class:`WorkflowDefinitionError` naming what is wrong."""
        if self._compiled is None:
            problems = []
            if not self.steps:
                problems.append("a workflow needs at least one step")
            elif self._returns is None and self.steps[-1].output_type is not self.output_type:
                problems.append(
                    f"the last step {self.steps[-1].name!r} returns "
                    f"{_type_name(self.steps[-1].output_type)}, not the workflow's output "
                    f"type {_type_name(self.output_type)}; fix it or name the output step "
                    "with returns()"
                )
            if problems:
                raise WorkflowDefinitionError(self.name, problems)
            from ._fsm import compile_workflow

            self._compiled = compile_workflow(self)
        return self._compiled

    def fsm_spec(self) -> FsmSpec[Any, RunEvent, Any, Any]:
        """The FSM every run of this workflow is driven by: a state per step and per undo,
        plus the run states (pending, sleeping, waiting, the final states)."""
        spec: FsmSpec[Any, RunEvent, Any, Any] = self.compile().spec
        return spec

    def flowchart(self) -> Flowchart:
        """The workflow's FSM as a picture (``fsmflow diagram pkg.mod:workflow``)."""
        from ._diagram import spec_flowchart

        return spec_flowchart(self.fsm_spec(), title=f"workflow {self.name}")

    @property
    def version_hash(self) -> str:
        """The hash a run records: the structure and ``version`` of this workflow."""
        shape = {
            "name": self.name,
            "version": self.version,
            "input": _type_name(self.input_type),
            "output": _type_name(self.output_type),
            "returns": self.result_step.name if self.steps else None,
            "signals": sorted(_type_name(t) for t in self.signal_types.values()),
            "steps": [
                {
                    "name": s.name,
                    "after": [d.name for d in s.dependencies],
                    "output": _type_name(s.output_type),
                    "undo": s.has_undo,
                }
                for s in self.steps
            ],
        }
        text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def known_versions(self) -> tuple[str, ...]:
        """The hashes whose runs this code runs: its own and ``compatible_with``."""
        return (self.version_hash, *self.compatible_with)

    def __repr__(self) -> str:
        return f"<Workflow {self.name} ({len(self.steps)} steps, {self.version_hash})>"
