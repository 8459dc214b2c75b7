"""fsmflow against a reference implementation: the ``transitions`` library.

Hypothesis draws random machines (enum states and events made with the functional Enum
API, a random transition table with declared targets, wildcards, an optional unhandled
handler, entry/exit hooks) and random event sequences. Each machine is built twice, with
fsmflow and with ``transitions.Machine`` configured identically, and after every event the
two must agree on the state, on the order in which the engine called the user's code and
on the order of the effects.

How the two map onto each other:

- an fsmflow handler is a ``transitions`` transition; the handler runs where the
  transition's ``before`` callback runs, and the transition's own actions come where its
  ``after`` callback runs. ``transitions`` runs its callbacks at once while fsmflow returns
  actions for the caller to run, so what is compared is order, not timing: fsmflow's
  actions (exit hooks', entry hooks', then the transition's own) against the sequence of
  ``on_exit``, ``on_enter`` and ``after`` callbacks;
- ``goto`` to another state is an external transition; ``goto`` to the same variant is a
  reflexive transition (``dest`` = ``source``), which in both libraries leaves and
  re-enters the state, running exit and entry hooks;
- ``stay()`` is an internal transition (``dest=None``): no hooks, but ``before``/``after``;
- ``from_any()`` is a ``"*"`` source added after the specific transitions, and
  ``on_unhandled`` is one more ``"*"`` transition per event added last, because
  ``transitions`` takes the first transition registered for a (source, trigger) pair;
- a handler returning a target outside its ``to=`` (an UndeclaredTargetError) is a
  ``before`` callback that raises: in both, the state does not change and no hook runs;
- an unhandled event is ignored (``ignore_invalid_triggers=True``), or in strict mode
  raises where ``transitions`` raises ``MachineError``.

Where the libraries have no counterpart (fsmflow's static reachability check, its
declared targets) the test compares with a direct computation over the drawn table.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs
import hypothesis
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from transitions import Machine, MachineError
from transitions.core import EventData

from fsmflow.fsm import (
    FsmBuilder,
    FsmSpec,
    InvalidDefinitionError,
    Transition,
    UndeclaredTargetError,
    UnhandledEventError,
    UnreachableStateWarning,
    goto,
    stay,
)

#: One recorded step: ("decide", state, event), ("exit", state), ("enter", state) or
#: ("own", state, event).
Record: TypeAlias = tuple[str, ...]
Kind: TypeAlias = Literal["goto", "stay", "bad"]
Builder: TypeAlias = FsmBuilder[enum.Enum, enum.Enum, "Ctx", Record]

SETTINGS = settings(max_examples=200, deadline=None)


@attrs.frozen
class Edge:
    """What a handler does: go to ``target``, stay, or go to a target outside ``to=``."""

    kind: Kind
    target: int
    #: The declared targets (``to=``), or None when undeclared.
    declared: frozenset[int] | None
    is_async: bool


@attrs.frozen
class Model:
    """A drawn machine, in plain indices."""

    n_states: int
    n_events: int
    initial: int
    table: Mapping[tuple[int, int], Edge]
    wildcards: Mapping[int, Edge]
    fallback: Edge | None
    entry_hooks: frozenset[int]
    exit_hooks: frozenset[int]
    async_hooks: frozenset[int]

    def edge_for(self, state: int, event: int) -> Edge | None:
        """The edge that applies: the specific one, else the wildcard, else the fallback."""
        return self.table.get((state, event)) or self.wildcards.get(event) or self.fallback

    def unreachable(self) -> list[int]:
        """The states no chain of declared targets reaches from ``initial``; an edge
        without ``to=`` may go anywhere."""

        def targets(edge: Edge) -> frozenset[int]:
            return frozenset(range(self.n_states)) if edge.declared is None else edge.declared

        anywhere = [*self.wildcards.values(), *([self.fallback] if self.fallback else [])]
        from_everywhere = frozenset().union(*(targets(e) for e in anywhere))
        reached = {self.initial}
        while True:
            step = set(from_everywhere)
            for (source, _), edge in self.table.items():
                if source in reached:
                    step |= targets(edge)
            if step <= reached:
                return [s for s in range(self.n_states) if s not in reached]
            reached |= step


@st.composite
def edges(draw: st.DrawFn, n_states: int) -> Edge:
    kind: Kind = draw(st.sampled_from(["goto", "goto", "goto", "stay", "bad"]))
    target = draw(st.integers(0, n_states - 1))
    others = [s for s in range(n_states) if s != target]
    if kind == "bad" and others:
        declared: frozenset[int] | None = draw(st.frozensets(st.sampled_from(others), min_size=1))
    else:
        if kind == "bad":
            kind = "goto"
        extra = st.frozensets(st.integers(0, n_states - 1)).map(lambda s: s | {target})
        declared = draw(st.none() | extra)
    return Edge(kind, target, declared, draw(st.booleans()))


@st.composite
def models(draw: st.DrawFn, *, fallback: bool = True) -> Model:
    n_states = draw(st.integers(1, 6))
    n_events = draw(st.integers(1, 4))
    state_indices = st.integers(0, n_states - 1)
    pairs = [(s, e) for s in range(n_states) for e in range(n_events)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    table = {pair: draw(edges(n_states)) for pair in chosen}
    wildcard_events = draw(st.frozensets(st.integers(0, n_events - 1), max_size=2))
    wildcards = {event: draw(edges(n_states)) for event in sorted(wildcard_events)}
    return Model(
        n_states=n_states,
        n_events=n_events,
        initial=draw(state_indices),
        table=table,
        wildcards=wildcards,
        fallback=draw(st.none() | edges(n_states)) if fallback else None,
        entry_hooks=draw(st.frozensets(state_indices)),
        exit_hooks=draw(st.frozensets(state_indices)),
        async_hooks=draw(st.frozensets(state_indices)),
    )


def event_sequences(model: Model) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, model.n_events - 1), max_size=25)


def make_enum(name: str, prefix: str, size: int) -> type[enum.Enum]:
    # The functional Enum API; mypy reads ``enum.Enum(...)`` as a member lookup.
    functional_api: Any = enum.Enum
    created: type[enum.Enum] = functional_api(name, [f"{prefix}{i}" for i in range(size)])
    return created


@attrs.define
class Ctx:
    #: The user code fsmflow called: handlers ("decide") and hooks, in order.
    calls: list[Record] = attrs.Factory(list)


# -- the fsmflow side -----------------------------------------------------------------------


class Machines:
    """One drawn model, built with fsmflow and with transitions."""

    def __init__(self, model: Model, *, strict: bool = False) -> None:
        self.model = model
        self.strict = strict
        self.states = list(make_enum("States", "S", model.n_states))
        self.events = list(make_enum("Events", "E", model.n_events))

    # fsmflow

    def handler(self, edge: Edge) -> Callable[[enum.Enum, enum.Enum, Ctx], Any]:
        states = self.states

        def decide(state: enum.Enum, event: enum.Enum, ctx: Ctx) -> Transition[enum.Enum, Record]:
            ctx.calls.append(("decide", state.name, event.name))
            own = ("own", state.name, event.name)
            return stay(own) if edge.kind == "stay" else goto(states[edge.target], own)

        async def decide_async(
            state: enum.Enum, event: enum.Enum, ctx: Ctx
        ) -> Transition[enum.Enum, Record]:
            await trio.lowlevel.checkpoint()
            return decide(state, event, ctx)

        return decide_async if edge.is_async else decide

    def hook(self, kind: str, state: int) -> Callable[[enum.Enum, Ctx], Any]:
        def run(value: enum.Enum, ctx: Ctx) -> list[Record]:
            ctx.calls.append((kind, value.name))
            return [(kind, value.name)]

        async def run_async(value: enum.Enum, ctx: Ctx) -> list[Record]:
            await trio.lowlevel.checkpoint()
            return run(value, ctx)

        return run_async if state in self.model.async_hooks else run

    def builder(self) -> Builder:
        model = self.model
        states, events = self.states, self.events
        state_type, event_type = type(states[0]), type(events[0])
        builder = FsmBuilder[enum.Enum, enum.Enum, Ctx, Record](
            states=state_type, events=event_type, initial=states[model.initial], name="random"
        )

        def to(edge: Edge) -> list[enum.Enum] | None:
            return None if edge.declared is None else [states[t] for t in sorted(edge.declared)]

        for (source, event), edge in model.table.items():
            builder.when(states[source]).on(events[event], self.handler(edge), to=to(edge))
        for event, edge in model.wildcards.items():
            builder.from_any().on(events[event], self.handler(edge), to=to(edge))
        if model.fallback is not None:
            builder.on_unhandled(self.handler(model.fallback), to=to(model.fallback))
        for state in sorted(model.exit_hooks):
            builder.on_exit(states[state], self.hook("exit", state))
        for state in sorted(model.entry_hooks):
            builder.on_entry(states[state], self.hook("enter", state))
        if self.strict:
            builder.strict()
        return builder

    # transitions

    def reference(self, log: list[Record]) -> Machine:
        model = self.model
        states, events = self.states, self.events
        machine = Machine(
            states=type(states[0]),
            initial=states[model.initial],
            auto_transitions=False,
            ignore_invalid_triggers=not self.strict,
            send_event=True,
        )

        def add(event: str, source: enum.Enum | str, edge: Edge) -> None:
            def before(data: EventData) -> None:
                assert data.transition is not None and data.event is not None
                log.append(("decide", data.transition.source, data.event.name))
                if edge.kind == "bad":
                    raise Refused(edge.target)

            def after(data: EventData) -> None:
                assert data.transition is not None and data.event is not None
                log.append(("own", data.transition.source, data.event.name))

            dest = None if edge.kind == "stay" else states[edge.target]
            machine.add_transition(event, source, dest, before=before, after=after)

        for (source, event), edge in model.table.items():
            add(events[event].name, states[source], edge)
        for event, edge in model.wildcards.items():
            add(events[event].name, "*", edge)
        if model.fallback is not None:
            for event_value in events:
                add(event_value.name, "*", model.fallback)

        def record(kind: str, name: str) -> Callable[[EventData], None]:
            return lambda data: log.append((kind, name))

        for state in model.exit_hooks:
            machine.get_state(states[state]).on_exit.append(record("exit", states[state].name))
        for state in model.entry_hooks:
            machine.get_state(states[state]).on_enter.append(record("enter", states[state].name))
        return machine


class Refused(Exception):
    """The reference's counterpart of an UndeclaredTargetError."""


Outcome: TypeAlias = Literal["done", "ignored", "refused", "unhandled"]


async def run_fsmflow(
    spec: FsmSpec[enum.Enum, enum.Enum, Ctx, Record], initial: enum.Enum, events: list[enum.Enum]
) -> list[tuple[Outcome, enum.Enum, list[Record], list[Record]]]:
    """Per event: the outcome, the state after it, what was called, the actions."""
    machine = spec.new_machine(initial)
    steps: list[tuple[Outcome, enum.Enum, list[Record], list[Record]]] = []
    for event in events:
        ctx = Ctx()
        outcome: Outcome
        actions: list[Record] = []
        try:
            actions = await machine.handle(event, ctx)
        except UndeclaredTargetError as error:
            assert error.event == event.name
            outcome = "refused"
        except UnhandledEventError as error:
            assert (error.state, error.event) == (machine.state.name, event.name)
            outcome = "unhandled"
        else:
            outcome = "done" if ctx.calls else "ignored"
        steps.append((outcome, machine.state, ctx.calls, actions))
    return steps


def run_reference(
    machines: Machines, events: list[enum.Enum]
) -> list[tuple[Outcome, enum.Enum, list[Record]]]:
    """Per event: the outcome, the state after it, the callbacks' log."""
    log: list[Record] = []
    machine = machines.reference(log)
    steps: list[tuple[Outcome, enum.Enum, list[Record]]] = []
    for event in events:
        log.clear()
        outcome: Outcome
        try:
            # A trigger with no transition at all is not even registered as an event.
            known = event.name in machine.events
            if not known and machines.strict:
                raise MachineError(f"no transition for {event.name}")
            done = known and machine.events[event.name].trigger(machine)
        except Refused:
            outcome = "refused"
        except MachineError:
            outcome = "unhandled"
        else:
            outcome = "done" if done else "ignored"
        steps.append((outcome, machine.state, list(log)))
    return steps


def compare(machines: Machines, spec: FsmSpec[Any, Any, Ctx, Record], sequence: list[int]) -> None:
    model = machines.model
    events = [machines.events[i] for i in sequence]
    ours = trio.run(run_fsmflow, spec, machines.states[model.initial], events)
    theirs = run_reference(machines, events)
    state = model.initial
    for index, (event, mine, reference) in enumerate(zip(sequence, ours, theirs, strict=True)):
        outcome, our_state, calls, actions = mine
        ref_outcome, ref_state, log = reference
        where = f"event #{index} E{event} in S{state}: fsmflow {mine}, transitions {reference}"
        assert outcome == ref_outcome, where
        assert our_state is ref_state, where
        # The engine calls the handler, then exit hooks, then entry hooks ...
        assert calls == [r for r in log if r[0] != "own"], where
        # ... and hands back exit hooks', entry hooks', then the transition's own actions.
        assert actions == [r for r in log if r[0] != "decide"], where
        # Both agree with the drawn table itself.
        edge = model.edge_for(state, event)
        expected: Outcome = "done"
        if edge is None:
            expected = "unhandled" if machines.strict else "ignored"
        elif edge.kind == "bad":
            expected = "refused"
        assert outcome == expected, where
        if edge is not None and outcome == "done":
            label = "stay" if edge.kind == "stay" else "goto"
            label += " (self-transition)" if edge.target == state and label == "goto" else ""
            hypothesis.event(f"step: {label}")
        else:
            hypothesis.event(f"step: {outcome}")
        state = machines.states.index(our_state)


@SETTINGS
@given(st.data())
def test_fsmflow_agrees_with_transitions(data: st.DataObject) -> None:
    model = data.draw(models(), label="model")
    sequence = data.draw(event_sequences(model), label="events")
    machines = Machines(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = machines.builder().build()
    # Unreachable states warn, naming exactly the states no declared target reaches.
    unreachable = [machines.states[s].name for s in model.unreachable()]
    messages = [str(w.message) for w in caught if issubclass(w.category, UnreachableStateWarning)]
    if unreachable:
        assert messages == [
            f"random: state(s) {', '.join(unreachable)} cannot be reached from the initial "
            f"variant S{model.initial}"
        ]
    else:
        assert messages == []
    assert len(caught) == len(messages)
    compare(machines, spec, sequence)


@SETTINGS
@given(st.data())
def test_strict_mode_raises_exactly_where_the_table_has_no_entry(data: st.DataObject) -> None:
    model = data.draw(models(fallback=False), label="model")
    sequence = data.draw(event_sequences(model), label="events")
    machines = Machines(model, strict=True)
    builder = machines.builder()
    # Strict mode also rejects unreachable states (tested below); a timeout without to=
    # counts as reaching every state, and is never checked here, so it does not fire.
    builder.when(machines.states[model.initial]).timeout(3600, lambda s, c: stay())
    compare(machines, builder.build(), sequence)


@SETTINGS
@given(models())
def test_strict_mode_rejects_exactly_the_unreachable_states(model: Model) -> None:
    machines = Machines(model, strict=True)
    builder = machines.builder()
    unreachable = [machines.states[s].name for s in model.unreachable()]
    try:
        spec = builder.build()
    except InvalidDefinitionError as error:
        assert error.problems == (
            f"state(s) {', '.join(unreachable)} cannot be reached from the initial variant "
            f"S{model.initial} (strict mode)",
        )
    else:
        assert unreachable == []
        assert spec.strict
