"""Values that look like states or events but are not: raw strings and ints equal to the
members of a ``str`` or ``int`` enum, unhashable values, a single target where ``to=``
wants a sequence, and payloads too large to quote whole in an error message.

Every one must give an ``FsmError`` naming the handler, state or event involved (never a
bare ``TypeError``, never a silently accepted look-alike), and leave the machine's state
as it was.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
import pytest

from fsmflow.fsm import (
    FsmBuilder,
    FsmError,
    InvalidDefinitionError,
    StateMachine,
    Transition,
    UndeclaredTargetError,
    goto,
)


class Gear(enum.StrEnum):
    LOW = "low"
    HIGH = "high"


class Shift(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class Level(enum.IntEnum):
    ONE = 1
    TWO = 2


def untyped(value: object) -> Any:
    """Pass a deliberately wrong value past mypy to test runtime checks."""
    return value


def up(state: Gear, event: Shift, ctx: None) -> Transition[Gear, None]:
    return goto(Gear.HIGH)


def down(state: Gear, event: Shift, ctx: None) -> Transition[Gear, None]:
    return goto(Gear.LOW)


def gearbox(handler: Any = up) -> StateMachine[Gear, Shift, None, None]:
    builder = FsmBuilder[Gear, Shift, None, None](
        states=Gear, events=Shift, initial=Gear.LOW, name="gearbox"
    )
    builder.when(Gear.LOW).on(Shift.UP, handler)
    builder.when(Gear.HIGH).on(Shift.DOWN, down, to=[Gear.LOW])
    return builder.build().new_machine(Gear.LOW)


# -- raw values equal to enum members ------------------------------------------------------


async def test_a_raw_string_equal_to_a_str_enum_event_is_not_that_event() -> None:
    machine = gearbox()
    assert untyped(Shift.UP) == "up", "the look-alike really is equal to the member"
    with pytest.raises(FsmError, match="'up' is not a value of the declared event type Shift"):
        await machine.handle(untyped("up"), None)
    assert machine.state is Gear.LOW


async def test_a_raw_string_equal_to_a_str_enum_state_is_not_a_target() -> None:
    machine = gearbox(lambda state, event, ctx: goto(untyped("high")))
    with pytest.raises(UndeclaredTargetError) as info:
        await machine.handle(Shift.UP, None)
    assert not info.value.declared
    assert "returned 'high', which is not a value of the declared state type Gear" in str(
        info.value
    )
    assert machine.state is Gear.LOW, "the raw string never became the state"


async def test_a_raw_int_equal_to_an_int_enum_state_is_not_a_target() -> None:
    builder = FsmBuilder[Level, Shift, None, None](
        states=Level, events=Shift, initial=Level.ONE, name="levels"
    )
    builder.when(Level.ONE).on(Shift.UP, lambda s, e, c: goto(untyped(2)))
    builder.when(Level.TWO).on(Shift.DOWN, lambda s, e, c: goto(Level.ONE))
    machine = builder.build().new_machine(Level.ONE)
    with pytest.raises(UndeclaredTargetError, match="returned 2, which is not a value"):
        await machine.handle(Shift.UP, None)
    assert machine.state is Level.ONE


def test_raw_values_are_not_members_when_building() -> None:
    builder = FsmBuilder[Gear, Shift, None, None](
        states=Gear, events=Shift, initial=untyped("low"), name="gearbox"
    )
    builder.when(untyped("low")).on(untyped("up"), up, to=[untyped("high")])
    with pytest.raises(InvalidDefinitionError) as info:
        builder.build()
    assert info.value.problems == (
        "when(): 'low' is not a variant of the declared state type Gear (variants: LOW, HIGH)",
        "when('low').on(): 'up' is not a variant of the declared event type Shift "
        "(variants: UP, DOWN)",
        "initial variant 'low' is not a variant of the declared state type Gear",
        "handler up of 'low': to= names 'high', which is not a variant of the declared "
        "state type Gear",
    )


def test_a_raw_value_is_not_an_initial_state() -> None:
    spec = gearbox().spec
    with pytest.raises(InvalidDefinitionError, match="initial state 'low' is not a variant"):
        spec.new_machine(untyped("low"))


# -- unhashable values ---------------------------------------------------------------------


async def test_an_unhashable_event_is_an_fsm_error() -> None:
    machine = gearbox()
    with pytest.raises(FsmError) as info:
        await machine.handle(untyped(["up"]), None)
    assert type(info.value) is FsmError
    assert "['up'] is not a value of the declared event type Shift" in str(info.value)


@pytest.mark.parametrize("declared", [False, True])
async def test_an_unhashable_target_is_an_fsm_error(declared: bool) -> None:
    builder = FsmBuilder[Gear, Shift, None, None](
        states=Gear, events=Shift, initial=Gear.LOW, name="gearbox"
    )
    builder.when(Gear.LOW).on(
        Shift.UP,
        lambda s, e, c: goto(untyped({"to": "high"})),
        to=[Gear.HIGH] if declared else None,
    )
    builder.when(Gear.HIGH).on(Shift.DOWN, down)
    machine = builder.build().new_machine(Gear.LOW)
    with pytest.raises(UndeclaredTargetError, match=r"returned \{'to': 'high'\}, which is not"):
        await machine.handle(Shift.UP, None)
    assert machine.state is Gear.LOW


@attrs.define
class Loose:
    """A mutable (so unhashable) class variant."""

    value: int = 0


@attrs.define
class Tight:
    value: int = 0


async def test_unhashable_class_variants_work() -> None:
    builder = FsmBuilder[Loose | Tight, Loose, None, None](
        states=Loose | Tight, events=Loose, initial=Loose, name="loose"
    )
    builder.when(Loose).on(Loose, lambda s, e, c: goto(Tight(e.value)), to=[Tight])
    machine = builder.build().new_machine(Loose())
    await machine.handle(Loose(3), None)
    assert machine.state == Tight(3)


def test_unhashable_values_when_building_are_problems_not_type_errors() -> None:
    builder = FsmBuilder[Gear, Shift, None, None](
        states=Gear, events=Shift, initial=untyped([Gear.LOW]), name="gearbox"
    )
    builder.when(untyped([Gear.LOW])).on(Shift.UP, up)
    builder.when(Gear.LOW).on(untyped({"up"}), up)
    builder.when(Gear.HIGH).on(Shift.DOWN, down, to=[untyped([Gear.LOW])])
    builder.on_entry(untyped([Gear.HIGH]), lambda state, ctx: None)
    with pytest.raises(InvalidDefinitionError) as info:
        builder.build()
    assert len(info.value.problems) == 5
    assert all("is not a variant of the declared" in p for p in info.value.problems)


# -- to= given one value -------------------------------------------------------------------


@attrs.frozen
class Parked:
    pass


@attrs.frozen
class Moving:
    speed: int = 0


@attrs.frozen
class Go:
    pass


@pytest.mark.parametrize(
    "to, shown",
    [(Moving, "Moving"), (Moving(3), "Moving(speed=3)"), ("Moving", "'Moving'"), (3, "3")],
)
def test_to_given_one_class_or_value_names_the_handler(to: object, shown: str) -> None:
    def drive(state: Parked, event: Go, ctx: None) -> Transition[Parked | Moving, None]:
        return goto(Moving())

    builder = FsmBuilder[Parked | Moving, Go, None, None](
        states=Parked | Moving, events=Go, initial=Parked, name="car"
    )
    builder.when(Parked).on(Go, drive, to=untyped(to))
    with pytest.raises(InvalidDefinitionError) as info:
        builder.build()
    assert info.value.problems == (
        f"handler test_to_given_one_class_or_value_names_the_handler.<locals>.drive of Parked "
        f"on Go: to= must be a sequence of target states, such as to=[{shown}], not the single "
        f"value {shown}",
    )


@pytest.mark.parametrize("scope", ["when", "from_any", "timeout", "unhandled"])
def test_to_given_one_str_enum_member_names_the_handler(scope: str) -> None:
    # A str enum member is iterable (its characters): it must not become the targets
    # "h", "i", "g", "h".
    builder = FsmBuilder[Gear, Shift, None, None](
        states=Gear, events=Shift, initial=Gear.LOW, name="gearbox"
    )
    single = untyped(Gear.HIGH)
    if scope == "when":
        builder.when(Gear.LOW).on(Shift.UP, up, to=single)
        where = "handler up of LOW on UP"
    elif scope == "from_any":
        builder.from_any().on(Shift.UP, up, to=single)
        where = "handler up on UP"
    elif scope == "timeout":
        builder.when(Gear.LOW).timeout(1.0, lambda s, c: goto(Gear.HIGH), to=single)
        where = "handler test_to_given_one_str_enum_member_names_the_handler.<locals>.<lambda> "
        where += "of LOW (timeout)"
    else:
        builder.on_unhandled(up, to=single)
        where = "handler up"
    with pytest.raises(InvalidDefinitionError) as info:
        builder.build()
    assert info.value.problems[0] == (
        f"{where}: to= must be a sequence of target states, such as to=[HIGH], not the "
        "single value HIGH"
    )


# -- bounded quotes --------------------------------------------------------------------------


async def test_errors_quote_a_bounded_repr_of_huge_values() -> None:
    machine = gearbox(lambda state, event, ctx: goto(untyped("x" * 100_000)))
    with pytest.raises(UndeclaredTargetError) as info:
        await machine.handle(Shift.UP, None)
    assert len(str(info.value)) < 500
    assert "more characters)" in str(info.value)
    with pytest.raises(FsmError) as unknown:
        await machine.handle(untyped(["y" * 100_000]), None)
    assert len(str(unknown.value)) < 500
