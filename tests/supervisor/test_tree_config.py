"""A tree's configuration is checked when it is made: a wrong strategy or restart type,
an intensity that could never give up, a significant child where it means nothing —
each is an error naming the culprit, never a crash at the first exit (issue 9)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from fsmflow.supervisor import (
    AutoShutdown,
    ChildSpec,
    ChildTemplate,
    RestartBackoff,
    RestartIntensity,
    RestartStrategy,
    RestartType,
    SupervisionTree,
    SupervisorPool,
)

from ._tree_workers import Recorder, Worker


def make() -> Worker:
    return Recorder().factory("x")()


@pytest.mark.parametrize("restart", ["permanent", "PERMANENT", "permanant", 1, None])
def test_a_restart_type_that_is_not_the_enum_is_refused_naming_the_child(restart: Any) -> None:
    with pytest.raises(
        TypeError, match=r"child 'db': restart must be one of RestartType\.PERMANENT"
    ):
        ChildSpec("db", make, restart=restart)


@pytest.mark.parametrize("strategy", ["one_for_all", "ONE_FOR_ALL", 0, RestartType.PERMANENT])
def test_a_strategy_that_is_not_the_enum_is_refused_naming_the_tree(strategy: Any) -> None:
    with pytest.raises(TypeError, match=r"tree 'app': strategy must be one of RestartStrategy"):
        SupervisionTree("app", [], strategy=strategy)


def test_auto_shutdown_must_be_the_enum() -> None:
    with pytest.raises(TypeError, match="auto_shutdown must be one of AutoShutdown"):
        SupervisionTree("app", [], auto_shutdown="any_significant")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_restarts", math.inf),
        ("max_restarts", math.nan),
        ("max_restarts", -1),
        ("max_restarts", 2.5),
        ("max_restarts", True),
        ("period", math.inf),
        ("period", math.nan),
        ("period", 0),
        ("period", -1.0),
    ],
)
def test_an_intensity_that_could_never_give_up_is_refused(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        RestartIntensity(**{field: value})


@pytest.mark.parametrize(
    "bad",
    [
        {"initial": -1},
        {"initial": math.nan},
        {"initial": 2, "maximum": 1},
        {"maximum": math.inf},
        {"factor": 0.5},
        {"factor": math.inf},
        {"jitter": 1.0},
        {"jitter": math.nan},
    ],
)
def test_a_backoff_must_be_finite_and_sensible(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartBackoff(**bad)


def test_backoff_delays() -> None:
    plain = RestartBackoff(initial=1, factor=3, maximum=10, jitter=0)
    assert [plain.delay(n, random.Random(0)) for n in range(4)] == [1, 3, 9, 10]
    assert plain.delay(10_000, random.Random(0)) == 10  # capped before it can overflow
    jittery = RestartBackoff(initial=4, maximum=4, jitter=0.25)
    rng = random.Random(1)
    assert all(3 <= jittery.delay(n, rng) <= 5 for n in range(50))
    assert RestartBackoff(initial=0).delay(5, rng) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shutdown_timeout": -1}, ValueError, "child 'x': shutdown_timeout"),
        ({"shutdown_timeout": math.nan}, ValueError, "child 'x': shutdown_timeout"),
        ({"significant": 1}, TypeError, "child 'x': significant must be a bool"),
        ({"context_factory": 3}, TypeError, "child 'x': context_factory"),
        ({"significant": True}, ValueError, "child 'x': a significant child must be TRANSIENT"),
    ],
)
def test_child_spec_fields_are_checked(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ChildSpec("x", make, **kwargs)


def test_child_spec_id_and_factory_are_checked() -> None:
    with pytest.raises(TypeError, match="child id"):
        ChildSpec("", make)
    with pytest.raises(TypeError, match="child 'x': factory must be callable"):
        ChildSpec("x", "not callable")  # type: ignore[arg-type]
    assert ChildSpec("x", make, shutdown_timeout=math.inf).shutdown_timeout == math.inf


def test_a_template_is_checked_like_a_child_spec() -> None:
    with pytest.raises(TypeError, match="template 'w': restart must be one of"):
        ChildTemplate("w", lambda args: make(), restart="temporary")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="template 'w': a significant child"):
        ChildTemplate("w", lambda args: make(), significant=True)
    with pytest.raises(TypeError, match="template name"):
        ChildTemplate("", lambda args: make())


def test_tree_arguments_are_checked() -> None:
    spec = ChildSpec("x", make)
    with pytest.raises(ValueError, match="tree 'app': duplicate child ids x"):
        SupervisionTree("app", [spec, spec])
    with pytest.raises(ValueError, match="history_limit"):
        SupervisionTree("app", [], history_limit=0)
    with pytest.raises(TypeError, match="children must be ChildSpec"):
        SupervisionTree("app", ["x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="intensity must be a RestartIntensity"):
        SupervisionTree("app", [], intensity=(3, 5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backoff must be a RestartBackoff"):
        SupervisionTree("app", [], backoff=0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="template must be a ChildTemplate"):
        SupervisorPool("pool", spec)  # type: ignore[arg-type]


def test_a_significant_child_needs_an_auto_shutdown() -> None:
    significant = ChildSpec("s", make, RestartType.TRANSIENT, significant=True)
    with pytest.raises(ValueError, match=r"tree 'app': child 's' is significant.*NEVER"):
        SupervisionTree("app", [significant])
    SupervisionTree("app", [significant], auto_shutdown=AutoShutdown.ALL_SIGNIFICANT)
    template = ChildTemplate[None](
        "w", lambda args: make(), RestartType.TEMPORARY, significant=True
    )
    with pytest.raises(ValueError, match="child 'w-\\*' is significant"):
        SupervisorPool("pool", template)


def test_the_strategies_and_types_are_the_otp_names() -> None:
    assert [s.value for s in RestartStrategy] == ["one_for_one", "one_for_all", "rest_for_one"]
    assert [t.value for t in RestartType] == ["permanent", "transient", "temporary"]
    assert [a.value for a in AutoShutdown] == ["never", "any_significant", "all_significant"]
