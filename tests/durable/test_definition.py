"""Workflow definitions: build-time errors that name the step, the compiled FSM, the
version hash, and the diagram."""

from __future__ import annotations

import pytest

from fsmflow.diagrams import load_target, to_mermaid
from fsmflow.durable import RunStatus, StepContext, Workflow, WorkflowDefinitionError
from fsmflow.fsm import variant_name

from .workflows import order


def test_the_fsm_has_a_state_per_step_and_per_undo() -> None:
    spec = order.fsm_spec()
    names = [variant_name(v) for v in spec.states.variants]
    assert names == [
        "PENDING",
        "RUN_reserve",
        "RUN_charge",
        "RUN_ship",
        "UNDO_reserve",
        "UNDO_charge",
        "SLEEPING",
        "WAITING",
        "COMPLETED",
        "FAILED",
        "COMPENSATED",
        "COMPENSATION_FAILED",
        "CANCELLED",
        "DEAD_LETTERED",
    ]
    compiled = order.compile()
    assert compiled.status_of(compiled.state("RUN_ship")) is RunStatus.RUNNING
    assert compiled.status_of(compiled.state("UNDO_charge")) is RunStatus.COMPENSATING
    # A failure in ship undoes charge first: the diagram's edge is exact.
    chart = order.flowchart()
    edges = {(e.source, e.target, e.label) for e in chart.edges}
    assert ("RUN_ship", "UNDO_charge", "StepFailed") in edges
    assert ("UNDO_charge", "UNDO_reserve", "UndoDone") in edges
    assert ("RUN_reserve", "FAILED", "StepFailed") in edges
    assert ("RUN_ship", "COMPLETED", "StepDone") in edges


def test_fsmflow_diagram_draws_a_workflow() -> None:
    subject = load_target("tests.durable.workflows:order")
    text = to_mermaid(subject)
    assert "RUN_charge" in text and "UNDO_reserve" in text and "flowchart TD" in text


def test_definition_errors_name_the_step() -> None:
    flow = Workflow("bad", input=int, output=int)

    async def no_annotation(ctx, n):  # type: ignore[no-untyped-def]
        return n

    with pytest.raises(WorkflowDefinitionError, match="'no_annotation' has no return annotation"):
        flow.step()(no_annotation)

    async def one(ctx: StepContext, n: int) -> int:
        return n

    first = flow.step()(one)

    async def wrong_arity(ctx: StepContext, n: int) -> int:
        return n

    with pytest.raises(
        WorkflowDefinitionError, match=r"'wrong_arity' must take \(ctx, input, one\)"
    ):
        flow.step(first)(wrong_arity)  # type: ignore[arg-type]
    with pytest.raises(WorkflowDefinitionError, match="two steps are named 'one'"):
        flow.step()(one)
    other = Workflow("other", input=int, output=int)
    with pytest.raises(WorkflowDefinitionError, match="belongs to workflow 'bad'"):
        other.step(first)
    with pytest.raises(WorkflowDefinitionError, match="two undos"):

        @first.undo
        async def undo_a(ctx: StepContext, n: int, out: int) -> None: ...

        @first.undo
        async def undo_b(ctx: StepContext, n: int, out: int) -> None: ...


def test_the_output_type_must_match_and_a_compiled_workflow_is_frozen() -> None:
    flow = Workflow("mismatch", input=int, output=str)

    @flow.step()
    async def count(ctx: StepContext, n: int) -> int:
        return n

    with pytest.raises(WorkflowDefinitionError, match=r"returns int, not the workflow's"):
        flow.compile()

    @flow.step(count)
    async def show(ctx: StepContext, n: int, c: int) -> str:
        return str(c)

    flow.compile()
    with pytest.raises(WorkflowDefinitionError, match="already compiled"):
        flow.step()(show.function)
    with pytest.raises(WorkflowDefinitionError, match="at least one step"):
        Workflow("empty", input=int, output=int).compile()


def test_the_version_hash_follows_structure_and_version() -> None:
    def build(version: str, with_undo: bool) -> Workflow[int, int]:
        flow = Workflow("v", input=int, output=int, version=version)

        @flow.step()
        async def a(ctx: StepContext, n: int) -> int:
            return n

        if with_undo:

            @a.undo
            async def undo_a(ctx: StepContext, n: int, out: int) -> None: ...

        return flow

    base = build("1", False).version_hash
    assert build("1", False).version_hash == base
    assert build("2", False).version_hash != base
    assert build("1", True).version_hash != base
