"""FsmBuilder validation and the shape of the spec it builds.

Every invalid definition must fail in ``build()`` with one InvalidDefinitionError that
names the variants and handlers involved, so the tests assert on message fragments as
well as on the error type.
"""

from __future__ import annotations

import enum
import functools
import math
import typing
import warnings
from typing import Any, TypeAlias

import attrs
import pytest

from fsmflow.fsm import (
    FsmBuilder,
    FsmSpec,
    HandlerKind,
    HookKind,
    InvalidDefinitionError,
    StateMachine,
    Transition,
    UnreachableStateWarning,
    VariantSet,
    goto,
    stay,
)


class Door(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    LOCKED = "locked"


class Knock(enum.Enum):
    PUSH = "push"
    PULL = "pull"
    LOCK = "lock"
    UNLOCK = "unlock"


class Elsewhere(enum.Enum):
    """A variant from another type, to register by mistake."""

    NOWHERE = "nowhere"


class Empty(enum.Enum):
    pass


@attrs.frozen
class Idle:
    pass


@attrs.frozen
class Running:
    job: str


@attrs.frozen
class Failed:
    reason: str


@attrs.frozen
class Paused:
    """A class outside the declared union."""


@attrs.frozen
class Start:
    job: str


@attrs.frozen
class Crash:
    reason: str


Job: TypeAlias = Idle | Running | Failed
JobEvent: TypeAlias = Start | Crash

DoorBuilder: TypeAlias = FsmBuilder[Door, Knock, None, str]
DoorResult: TypeAlias = Transition[Door, str]


def untyped(value: object) -> Any:
    """Pass a deliberately wrong value past mypy to test runtime validation."""
    return value


def door_builder(*, initial: object = Door.OPEN, name: str | None = "door") -> DoorBuilder:
    return FsmBuilder[Door, Knock, None, str](states=Door, events=Knock, initial=initial, name=name)


def close(state: Door, event: Knock, ctx: None) -> DoorResult:
    return goto(Door.CLOSED, "closed it")


def close_again(state: Door, event: Knock, ctx: None) -> DoorResult:
    return goto(Door.CLOSED)


def open_(state: Door, event: Knock, ctx: None) -> DoorResult:
    return goto(Door.OPEN)


def lock(state: Door, event: Knock, ctx: None) -> DoorResult:
    return goto(Door.LOCKED)


def unlock(state: Door, event: Knock, ctx: None) -> DoorResult:
    return goto(Door.CLOSED)


def ignore(state: Door, event: Knock, ctx: None) -> DoorResult:
    return stay()


def expire(state: Door, ctx: None) -> DoorResult:
    return goto(Door.CLOSED)


def expire_again(state: Door, ctx: None) -> DoorResult:
    return stay()


def note_entry(state: Door, ctx: None) -> list[str]:
    return [f"enter {state.name}"]


async def note_exit(state: Door, ctx: None) -> list[str]:
    return [f"exit {state.name}"]


def full_door(builder: DoorBuilder) -> DoorBuilder:
    """A complete, valid door: every state reachable."""
    builder.when(Door.OPEN).on(Knock.PUSH, close, to=[Door.CLOSED])
    builder.when(Door.CLOSED).on(Knock.PULL, open_, to=[Door.OPEN]).on(
        Knock.LOCK, lock, to=[Door.LOCKED]
    )
    builder.when(Door.LOCKED).on(Knock.UNLOCK, unlock, to=[Door.CLOSED])
    return builder


def problems_of(builder: FsmBuilder[Any, Any, Any, Any]) -> tuple[str, ...]:
    with pytest.raises(InvalidDefinitionError) as info:
        builder.build()
    error = info.value
    for problem in error.problems:
        assert problem in str(error)
    return error.problems


def only_problem(builder: FsmBuilder[Any, Any, Any, Any]) -> str:
    problems = problems_of(builder)
    assert len(problems) == 1, problems
    return problems[0]


# -- a valid spec -------------------------------------------------------------------------


def test_valid_enum_spec_is_introspectable() -> None:
    builder = full_door(door_builder())
    builder.from_any().on(Knock.UNLOCK, ignore)
    builder.when(Door.OPEN).timeout(30, expire, to=[Door.CLOSED]).on_entry(note_entry)
    builder.on_exit(Door.OPEN, note_exit)
    builder.on_unhandled(ignore)
    spec = builder.build()

    assert spec.name == "door"
    assert spec.states == VariantSet("Door", tuple(Door), is_enum=True)
    assert spec.events == VariantSet("Knock", tuple(Knock), is_enum=True)
    assert spec.initial is Door.OPEN
    assert spec.strict is False
    assert spec.state_names() == ("OPEN", "CLOSED", "LOCKED")
    assert repr(spec) == "<FsmSpec 'door': 3 states, 4 events, 7 handlers>"

    kinds = [(h.kind, h.source, h.event, h.name, h.targets, h.seconds) for h in spec.handlers]
    assert kinds == [
        (HandlerKind.EVENT, Door.OPEN, Knock.PUSH, "close", (Door.CLOSED,), None),
        (HandlerKind.EVENT, Door.CLOSED, Knock.PULL, "open_", (Door.OPEN,), None),
        (HandlerKind.EVENT, Door.CLOSED, Knock.LOCK, "lock", (Door.LOCKED,), None),
        (HandlerKind.EVENT, Door.LOCKED, Knock.UNLOCK, "unlock", (Door.CLOSED,), None),
        (HandlerKind.WILDCARD, None, Knock.UNLOCK, "ignore", None, None),
        (HandlerKind.TIMEOUT, Door.OPEN, None, "expire", (Door.CLOSED,), 30),
        (HandlerKind.UNHANDLED, None, None, "ignore", None, None),
    ]
    assert spec.handlers[0].function is close
    assert not any(h.is_async for h in spec.handlers)

    [entry] = spec.entry_hooks
    assert (entry.kind, entry.state, entry.name, entry.is_async) == (
        HookKind.ENTRY,
        Door.OPEN,
        "note_entry",
        False,
    )
    [exit_] = spec.exit_hooks
    assert (exit_.kind, exit_.state, exit_.name, exit_.is_async) == (
        HookKind.EXIT,
        Door.OPEN,
        "note_exit",
        True,
    )

    assert spec.handler_for(Door.OPEN, Knock.PUSH) is spec.handlers[0]
    assert spec.handler_for(Door.OPEN, Knock.UNLOCK) is spec.handlers[4]
    assert spec.handler_for(Door.LOCKED, Knock.UNLOCK) is spec.handlers[3]
    assert spec.handler_for(Door.OPEN, Knock.LOCK) is spec.handlers[6]
    assert spec.timeout_for(Door.OPEN) is spec.handlers[5]
    assert spec.timeout_for(Door.CLOSED) is None


def test_handler_for_without_unhandled_handler_is_none() -> None:
    spec = full_door(door_builder()).build()
    assert spec.handler_for(Door.OPEN, Knock.LOCK) is None


def test_spec_is_frozen_and_hashable_by_identity() -> None:
    builder = full_door(door_builder())
    spec = builder.build()
    again = builder.build()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        untyped(spec).name = "renamed"
    assert spec == spec
    assert spec != again
    assert len({spec, again, spec}) == 2


def test_union_spec_uses_classes_as_variants_and_a_default_name() -> None:
    def start(state: Idle, event: Start, ctx: None) -> Transition[Job, str]:
        return goto(Running(event.job))

    def crash(state: Running, event: Crash, ctx: None) -> Transition[Job, str]:
        return goto(Failed(event.reason))

    builder = FsmBuilder[Job, JobEvent, None, str](states=Job, events=JobEvent, initial=Idle)
    builder.when(Idle).on(Start, start, to=[Running])
    builder.when(Running).on(Crash, crash, to=[Failed])
    spec = builder.build()
    assert spec.name == "Idle | Running | Failed machine"
    assert spec.states == VariantSet("Idle | Running | Failed", (Idle, Running, Failed), False)
    assert spec.events.label == "Start | Crash"
    assert spec.state_names() == ("Idle", "Running", "Failed")
    assert spec.handler_for(Idle, Start) is spec.handlers[0]
    assert spec.handlers[0].name.endswith("start")


@pytest.mark.parametrize(
    "declared",
    [typing.Union[Idle, Running, Failed], (Idle, Running, Failed)],  # noqa: UP007
    ids=["typing.Union", "tuple"],
)
def test_other_spellings_of_a_union_are_accepted(declared: object) -> None:
    builder = FsmBuilder[Job, JobEvent, None, str](states=declared, events=JobEvent, initial=Idle)
    builder.from_any().on(Start, lambda s, e, c: goto(Running(e.job)))
    builder.from_any().on(Crash, lambda s, e, c: goto(Failed(e.reason)))
    spec = builder.build()
    assert spec.states.variants == (Idle, Running, Failed)
    assert spec.states.label == "Idle | Running | Failed"


def test_a_single_class_is_a_one_variant_type() -> None:
    builder = FsmBuilder[Idle, Start, None, str](states=Idle, events=Start, initial=Idle)
    builder.when(Idle).on(Start, lambda s, e, c: stay("started"))
    spec = builder.build()
    assert spec.states == VariantSet("Idle", (Idle,), is_enum=False)
    assert spec.events == VariantSet("Start", (Start,), is_enum=False)


# -- declared types that cannot be parsed ---------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "fragment"),
    [
        (Idle | Door, "mixes the enum Door with classes"),
        ((Idle, Door), "mixes the enum Door with classes"),
        (42, "must be an Enum, a class, a union of classes or a tuple of classes, not 42"),
        ("Idle", "not 'Idle'"),
        (Door.OPEN, "not <Door.OPEN: 'open'>"),
        ((Idle, 3), "3 is not a class"),
        ((Idle, Running, Idle), "lists Idle twice"),
        ((), "declares no variants"),
        (Empty, "Empty is an enum with no members"),
    ],
)
def test_unparseable_state_types_raise_type_error(declared: object, fragment: str) -> None:
    with pytest.raises(TypeError, match=r"^state type") as info:
        FsmBuilder[Any, Knock, None, str](states=declared, events=Knock, initial=Idle)
    assert fragment in str(info.value)


def test_unparseable_event_types_name_the_event_role() -> None:
    with pytest.raises(TypeError, match=r"^event type .* lists Start twice"):
        FsmBuilder[Door, Any, None, str](states=Door, events=(Start, Start), initial=Door.OPEN)


# -- validation problems --------------------------------------------------------------------


def test_duplicate_handlers_name_both_functions() -> None:
    builder = full_door(door_builder())
    builder.when(Door.OPEN).on(Knock.PUSH, close_again, to=[Door.CLOSED])
    assert only_problem(builder) == "duplicate handler for (OPEN, PUSH): close and close_again"


def test_duplicate_from_any_handlers_name_both_functions() -> None:
    builder = full_door(door_builder())
    builder.from_any().on(Knock.PULL, ignore).on(Knock.PULL, open_)
    assert only_problem(builder) == "duplicate from_any() handler for PULL: ignore and open_"


def test_duplicate_unhandled_handlers_name_both_functions() -> None:
    builder = full_door(door_builder()).on_unhandled(ignore).on_unhandled(close)
    assert only_problem(builder) == "on_unhandled() registered twice: ignore and close"


def test_a_specific_handler_and_a_wildcard_for_the_same_event_are_not_duplicates() -> None:
    builder = full_door(door_builder())
    builder.from_any().on(Knock.PUSH, ignore)
    spec = builder.build()
    assert spec.handler_for(Door.OPEN, Knock.PUSH) is spec.handlers[0]
    assert spec.handler_for(Door.CLOSED, Knock.PUSH) is spec.handlers[-1]


def test_handler_for_an_undeclared_state_variant() -> None:
    builder = full_door(door_builder())
    builder.when(untyped(Elsewhere.NOWHERE)).on(Knock.PUSH, close)
    assert only_problem(builder) == (
        "when(): NOWHERE is not a variant of the declared state type Door "
        "(variants: OPEN, CLOSED, LOCKED)"
    )


def test_handler_for_a_class_outside_the_declared_union() -> None:
    builder = FsmBuilder[Job, JobEvent, None, str](states=Job, events=JobEvent, initial=Idle)
    builder.from_any().on(Start, lambda s, e, c: goto(Running(e.job)))
    builder.from_any().on(Crash, lambda s, e, c: goto(Failed(e.reason)))
    builder.when(untyped(Paused)).on(Start, lambda s, e, c: stay())
    assert only_problem(builder) == (
        "when(): Paused is not a variant of the declared state type Idle | Running | Failed "
        "(variants: Idle, Running, Failed)"
    )


def test_an_unhashable_undeclared_variant_is_reported_not_crashed_on() -> None:
    builder = full_door(door_builder())
    builder.when(untyped([Door.OPEN])).on(Knock.PUSH, close)
    builder.when(Door.OPEN).on(untyped([Knock.PULL]), close)
    problems = problems_of(builder)
    assert problems == (
        "when(): [<Door.OPEN: 'open'>] is not a variant of the declared state type Door "
        "(variants: OPEN, CLOSED, LOCKED)",
        "when(OPEN).on(): [<Knock.PULL: 'pull'>] is not a variant of the declared event type "
        "Knock (variants: PUSH, PULL, LOCK, UNLOCK)",
    )


def test_hooks_for_undeclared_state_variants() -> None:
    builder = full_door(door_builder())
    builder.on_entry(untyped(Elsewhere.NOWHERE), note_entry)
    builder.on_exit(untyped(Paused), note_entry)
    assert problems_of(builder) == (
        "on_entry(): NOWHERE is not a variant of the declared state type Door "
        "(variants: OPEN, CLOSED, LOCKED)",
        "on_exit(): Paused is not a variant of the declared state type Door "
        "(variants: OPEN, CLOSED, LOCKED)",
    )


def test_event_not_in_the_declared_event_type() -> None:
    builder = full_door(door_builder())
    builder.when(Door.OPEN).on(untyped(Elsewhere.NOWHERE), close)
    builder.from_any().on(untyped(Start), close)
    assert problems_of(builder) == (
        "when(OPEN).on(): NOWHERE is not a variant of the declared event type Knock "
        "(variants: PUSH, PULL, LOCK, UNLOCK)",
        "from_any().on(): Start is not a variant of the declared event type Knock "
        "(variants: PUSH, PULL, LOCK, UNLOCK)",
    )


@pytest.mark.parametrize("initial", [Elsewhere.NOWHERE, Paused, "OPEN"])
def test_initial_variant_not_declared(initial: object) -> None:
    builder = full_door(door_builder(initial=initial))
    problem = only_problem(builder)
    assert problem.startswith("initial variant ")
    assert problem.endswith(" is not a variant of the declared state type Door")


def test_to_naming_unknown_variants_names_handler_and_variant() -> None:
    builder = door_builder()
    builder.when(Door.OPEN).on(Knock.PUSH, close, to=[Door.CLOSED, untyped(Elsewhere.NOWHERE)])
    builder.when(Door.OPEN).timeout(5, expire, to=[untyped(Paused)])
    builder.from_any().on(Knock.PULL, open_, to=[untyped("OPEN")])
    builder.on_unhandled(ignore, to=[untyped(Failed("x"))])
    assert problems_of(builder) == (
        "handler close of OPEN: to= names NOWHERE, which is not a variant of the declared "
        "state type Door",
        "handler expire of OPEN: to= names Paused, which is not a variant of the declared "
        "state type Door",
        "handler open_: to= names 'OPEN', which is not a variant of the declared state type Door",
        "handler ignore: to= names Failed(reason='x'), which is not a variant of the declared "
        "state type Door",
    )


def test_empty_to_declares_a_handler_that_only_stays() -> None:
    builder = full_door(door_builder())
    builder.when(Door.OPEN).on(Knock.PULL, ignore, to=[])
    builder.from_any().on(Knock.LOCK, ignore, to=())
    spec = builder.build()
    handler = spec.handler_for(Door.OPEN, Knock.PULL)
    assert handler is not None and handler.targets == ()


@pytest.mark.parametrize("seconds", [0, -1.5, math.nan, -math.inf, "5", None, True])
def test_timeout_must_be_a_positive_number(seconds: object) -> None:
    builder = full_door(door_builder())
    builder.when(Door.CLOSED).timeout(untyped(seconds), expire)
    assert only_problem(builder) == (
        f"timeout of CLOSED must be a positive number of seconds, not {seconds!r} (handler expire)"
    )


@pytest.mark.parametrize("seconds", [0.001, 1, 2.5, math.inf])
def test_positive_timeouts_are_accepted(seconds: float) -> None:
    builder = full_door(door_builder())
    builder.when(Door.CLOSED).timeout(seconds, expire)
    timeout = builder.build().timeout_for(Door.CLOSED)
    assert timeout is not None
    assert timeout.seconds == seconds


def test_duplicate_timeouts_name_both_handlers() -> None:
    builder = full_door(door_builder())
    builder.when(Door.CLOSED).timeout(5, expire).timeout(10, expire_again)
    assert only_problem(builder) == "duplicate timeout for CLOSED: expire and expire_again"


def test_all_problems_are_reported_together() -> None:
    builder = door_builder(initial=Elsewhere.NOWHERE, name="broken door")
    builder.when(Door.OPEN).on(Knock.PUSH, close).on(Knock.PUSH, close_again)
    builder.when(Door.CLOSED).timeout(-1, expire)
    builder.when(untyped(Elsewhere.NOWHERE)).on(Knock.LOCK, lock)
    builder.on_unhandled(ignore).on_unhandled(ignore)
    with pytest.raises(InvalidDefinitionError) as info:
        builder.build()
    error = info.value
    assert error.spec_name == "broken door"
    assert len(error.problems) == 5
    assert str(error).splitlines() == [
        "invalid FSM definition 'broken door':",
        "  - when(): NOWHERE is not a variant of the declared state type Door "
        "(variants: OPEN, CLOSED, LOCKED)",
        "  - on_unhandled() registered twice: ignore and ignore",
        "  - initial variant NOWHERE is not a variant of the declared state type Door",
        "  - duplicate handler for (OPEN, PUSH): close and close_again",
        "  - timeout of CLOSED must be a positive number of seconds, not -1 (handler expire)",
    ]


# -- reachability ---------------------------------------------------------------------------


def test_unreachable_states_warn_naming_them() -> None:
    builder = door_builder()
    builder.when(Door.OPEN).on(Knock.PUSH, close, to=[Door.CLOSED])
    builder.when(Door.CLOSED).on(Knock.PULL, open_, to=[Door.OPEN])
    with pytest.warns(UnreachableStateWarning) as record:
        spec = builder.build()
    [warning] = record
    assert str(warning.message) == (
        "door: state(s) LOCKED cannot be reached from the initial variant OPEN"
    )
    # The warning points at the code that called build(), not at fsmflow.
    assert warning.filename == __file__
    assert spec.state_names() == ("OPEN", "CLOSED", "LOCKED")


def test_unreachable_states_are_an_error_in_strict_mode() -> None:
    builder = door_builder().strict()
    builder.when(Door.OPEN).on(Knock.PUSH, ignore, to=[Door.OPEN])
    assert only_problem(builder) == (
        "state(s) CLOSED, LOCKED cannot be reached from the initial variant OPEN (strict mode)"
    )


def test_a_handler_without_to_may_reach_every_state() -> None:
    builder = door_builder().strict()
    builder.when(Door.OPEN).on(Knock.PUSH, close)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = builder.build()
    assert spec.strict is True


@pytest.mark.parametrize(
    "register",
    [
        lambda b: b.from_any().on(Knock.LOCK, lock, to=[Door.LOCKED]),
        lambda b: b.when(Door.CLOSED).timeout(1, lambda s, c: goto(Door.LOCKED)),
        lambda b: b.on_unhandled(lock, to=[Door.LOCKED]),
    ],
    ids=["wildcard", "timeout", "unhandled"],
)
def test_reachability_follows_every_kind_of_handler(register: Any) -> None:
    builder = door_builder().strict()
    builder.when(Door.OPEN).on(Knock.PUSH, close, to=[Door.CLOSED])
    register(builder)
    assert builder.build().initial is Door.OPEN


def test_reachability_is_not_checked_when_there_are_other_problems() -> None:
    builder = door_builder().strict()
    builder.when(Door.OPEN).on(Knock.PUSH, close, to=[Door.CLOSED])
    builder.when(Door.OPEN).timeout(0, expire)
    assert only_problem(builder).startswith("timeout of OPEN must be a positive number")


# -- machines and constructors --------------------------------------------------------------


@pytest.mark.parametrize("state", [Elsewhere.NOWHERE, "OPEN", None])
def test_new_machine_rejects_an_undeclared_initial_state(state: object) -> None:
    spec = full_door(door_builder()).build()
    with pytest.raises(InvalidDefinitionError) as info:
        spec.new_machine(untyped(state))
    assert info.value.spec_name == "door"
    assert info.value.problems == (
        f"initial state {state!r} is not a variant of the declared state type Door",
    )


@pytest.mark.parametrize("state", [Paused(), Idle, Door.OPEN])
def test_new_machine_on_a_union_wants_an_instance_of_a_declared_class(state: object) -> None:
    builder = FsmBuilder[Job, JobEvent, None, str](states=Job, events=JobEvent, initial=Idle)
    builder.from_any().on(Start, lambda s, e, c: goto(Running(e.job)))
    builder.from_any().on(Crash, lambda s, e, c: goto(Failed(e.reason)))
    spec = builder.build()
    with pytest.raises(InvalidDefinitionError, match="is not a variant of the declared state"):
        spec.new_machine(untyped(state))
    machine = spec.new_machine(Failed("restored"))
    assert machine.state == Failed("restored")
    assert machine.state_variant is Failed


def test_a_machine_may_start_in_any_declared_state() -> None:
    spec = full_door(door_builder()).build()
    machine = spec.new_machine(Door.LOCKED)
    assert machine.state is Door.LOCKED
    assert machine.spec is spec
    assert repr(machine) == "<StateMachine 'door' in <Door.LOCKED: 'locked'>>"


def test_state_machine_cannot_be_constructed_directly() -> None:
    spec = full_door(door_builder()).build()
    with pytest.raises(TypeError, match=r"create it with FsmSpec\.new_machine\(initial_state\)"):
        untyped(StateMachine)(spec, Door.OPEN)


def test_fsm_spec_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError, match=r"FsmSpec has no public constructor.*FsmBuilder\("):
        untyped(FsmSpec)(name="x")


# -- handler names and kinds ------------------------------------------------------------------


class SyncCaller:
    def __call__(self, state: Door, event: Knock, ctx: None) -> DoorResult:
        return stay()


class AsyncCaller:
    async def __call__(self, state: Door, event: Knock, ctx: None) -> DoorResult:
        return stay()


@attrs.frozen
class NamedCaller:
    label: str

    def __call__(self, state: Door, event: Knock, ctx: None) -> DoorResult:
        return stay()


async def async_handler(state: Door, event: Knock, ctx: None) -> DoorResult:
    return stay()


def test_handler_names_and_async_detection() -> None:
    def local(state: Door, event: Knock, ctx: None) -> DoorResult:
        return stay()

    builder = full_door(door_builder())
    builder.when(Door.OPEN).on(Knock.PULL, SyncCaller())
    builder.when(Door.OPEN).on(Knock.LOCK, AsyncCaller())
    builder.when(Door.OPEN).on(Knock.UNLOCK, NamedCaller("knock"))
    builder.when(Door.CLOSED).on(Knock.PUSH, lambda s, e, c: stay())
    builder.when(Door.CLOSED).on(Knock.UNLOCK, functools.partial(async_handler))
    builder.when(Door.LOCKED).on(Knock.PUSH, local)
    builder.when(Door.LOCKED).on(Knock.PULL, async_handler)
    named = {h.name: h.is_async for h in builder.build().handlers[4:]}
    assert named == {
        "SyncCaller instance": False,
        "AsyncCaller instance": True,
        "NamedCaller(label='knock')": False,
        "test_handler_names_and_async_detection.<locals>.<lambda>": False,
        f"functools.partial({async_handler!r})": True,
        "test_handler_names_and_async_detection.<locals>.local": False,
        "async_handler": True,
    }


def test_non_callables_are_rejected_at_registration() -> None:
    builder = door_builder()
    with pytest.raises(TypeError, match="handler 'close' is not callable"):
        builder.when(Door.OPEN).on(Knock.PUSH, untyped("close"))
    with pytest.raises(TypeError, match="entry hook 3 is not callable"):
        builder.on_entry(Door.OPEN, untyped(3))
    with pytest.raises(TypeError, match="exit hook None is not callable"):
        builder.when(Door.OPEN).on_exit(untyped(None))


def test_registration_chains() -> None:
    builder = door_builder()
    scope = builder.when(Door.OPEN)
    assert scope.on(Knock.PUSH, close) is scope
    assert scope.timeout(1, expire) is scope
    assert scope.on_entry(note_entry) is scope
    assert scope.on_exit(note_exit) is scope
    wildcard = builder.from_any()
    assert wildcard.on(Knock.PULL, open_) is wildcard
    assert builder.on_entry(Door.CLOSED, note_entry) is builder
    assert builder.on_exit(Door.CLOSED, note_exit) is builder
    assert builder.on_unhandled(ignore) is builder
    assert builder.strict() is builder
    spec = builder.build()
    assert [h.state for h in spec.entry_hooks] == [Door.OPEN, Door.CLOSED]
    assert [h.state for h in spec.exit_hooks] == [Door.OPEN, Door.CLOSED]
