"""fsmflow.diagrams: what Mermaid and DOT output shows, and rendering through Graphviz."""

from __future__ import annotations

import enum
import os
import re
import shutil
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from fsmflow import FsmBuilder, FsmSpec, Transition, goto, stay
from fsmflow.diagrams import (
    ANY_STATE_LABEL,
    UNHANDLED_LABEL,
    DiagramToolMissing,
    render,
    to_dot,
    to_mermaid,
)
from fsmflow.diagrams._model import describe, node_ids

# CI installs Graphviz (.ci/run), so there a missing dot fails these tests.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed",
)


@attrs.frozen
class Note:
    text: str

    async def execute(self, ctx: None) -> None:
        pass


# -- an enum machine: declared targets, a timeout, hooks, a wildcard, an undeclared target --


class Door(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    LOCKED = "locked"
    BROKEN = "broken"


class Act(enum.Enum):
    OPEN = "open"
    CLOSE = "close"
    LOCK = "lock"
    KICK = "kick"


DoorTransition = Transition[Door, Note]


def go_open(state: Door, event: Act, ctx: None) -> DoorTransition:
    return goto(Door.OPEN)


def go_closed(state: Door, event: Act, ctx: None) -> DoorTransition:
    return goto(Door.CLOSED)


def go_locked(state: Door, event: Act, ctx: None) -> DoorTransition:
    return goto(Door.LOCKED)


def go_broken(state: Door, event: Act, ctx: None) -> DoorTransition:
    return goto(Door.BROKEN)


def shrug(state: Door, event: Act, ctx: None) -> DoorTransition:
    return stay()


def unlock(state: Door, ctx: None) -> DoorTransition:
    return goto(Door.CLOSED)


def creak(state: Door, ctx: None) -> list[Note]:
    return [Note("creak")]


def slam(state: Door, ctx: None) -> list[Note]:
    return [Note("slam")]


def door_spec() -> FsmSpec[Door, Act, None, Note]:
    builder = FsmBuilder[Door, Act, None, Note](
        states=Door, events=Act, initial=Door.CLOSED, name="door"
    )
    builder.when(Door.CLOSED).on(Act.OPEN, go_open, to=[Door.OPEN]).on(
        Act.LOCK, go_locked, to=[Door.LOCKED]
    )
    builder.when(Door.OPEN).on(Act.CLOSE, go_closed, to=[Door.CLOSED]).on_entry(creak).on_exit(slam)
    builder.when(Door.LOCKED).timeout(5, unlock, to=[Door.CLOSED])
    builder.from_any().on(Act.KICK, go_broken, to=[Door.BROKEN])
    builder.when(Door.BROKEN).on(Act.KICK, shrug)
    return builder.build()


DOOR_MERMAID = """\
---
title: "door"
---
stateDiagram-v2
  direction LR
  state "CLOSED" as CLOSED
  state "OPEN" as OPEN
  OPEN: entry / creak
  OPEN: exit / slam
  state "LOCKED" as LOCKED
  state "BROKEN" as BROKEN
  state "any state" as _any_state
  [*] --> CLOSED
  CLOSED --> OPEN: OPEN
  CLOSED --> LOCKED: LOCK
  CLOSED --> BROKEN: KICK
  OPEN --> CLOSED: CLOSE
  OPEN --> BROKEN: KICK
  LOCKED --> CLOSED: after 5s
  LOCKED --> BROKEN: KICK
  BROKEN --> _any_state: KICK
  classDef anyState fill:none,stroke:#888,stroke-dasharray:5 5,color:#888
  class _any_state anyState
"""


# -- an attrs-union machine: data-carrying states, the unhandled handler -------------------


@attrs.frozen
class Idle:
    pass


@attrs.frozen
class Running:
    attempt: int


@attrs.frozen
class Failed:
    reason: str


JobState = Idle | Running | Failed


@attrs.frozen
class Start:
    pass


@attrs.frozen
class Crash:
    message: str


JobEvent = Start | Crash
JobTransition = Transition[JobState, Note]


def start(state: Idle, event: Start, ctx: None) -> JobTransition:
    return goto(Running(1))


def crash(state: JobState, event: Crash, ctx: None) -> JobTransition:
    return goto(Failed(event.message))


def crash_running(state: Running, event: Crash, ctx: None) -> JobTransition:
    return goto(Failed(event.message))


def restart(state: Failed, event: Start, ctx: None) -> JobTransition:
    return goto(Running(2))


def give_up(state: Running, ctx: None) -> JobTransition:
    return goto(Failed("slow"))


def ignore(state: JobState, event: JobEvent, ctx: None) -> JobTransition:
    return goto(Idle())


def alert(state: Failed, ctx: None) -> None:
    return None


def job_spec() -> FsmSpec[JobState, JobEvent, None, Note]:
    builder = FsmBuilder[JobState, JobEvent, None, Note](
        states=JobState, events=JobEvent, initial=Idle, name="job"
    )
    builder.when(Idle).on(Start, start, to=[Running])
    builder.when(Running).on(Crash, crash_running, to=[Failed]).timeout(
        0.5, give_up, to=[Failed, Idle]
    )
    builder.when(Failed).on(Start, restart)
    builder.from_any().on(Crash, crash, to=[Failed])
    builder.on_entry(Failed, alert)
    builder.on_unhandled(ignore, to=[Idle])
    return builder.build()


def edges(mermaid: str) -> list[str]:
    return [line.strip() for line in mermaid.splitlines() if " --> " in line]


# -- a machine whose names Mermaid and DOT would choke on ----------------------------------

WEIRD_NAMES = ["state", "with space", 'say "hi"', "a:b;c#d%e", "node", "<b>", "ÄRGER", "x\\y"]


def weird_spec() -> FsmSpec[Any, Any, None, Note]:
    weird = cast(type[enum.Enum], enum.Enum("Weird", [(n, i) for i, n in enumerate(WEIRD_NAMES)]))
    odd = cast(type[enum.Enum], enum.Enum("Odd", [("go;now", 1), ("<x>", 2)]))
    members = list(weird)

    def advance(state: Any, event: Any, ctx: None) -> Transition[Any, Note]:
        return goto(members[(members.index(state) + 1) % len(members)])

    def hook(state: Any, ctx: None) -> None:
        return None

    hook.__qualname__ = 'hook "q" <locals>'
    builder = FsmBuilder[Any, Any, None, Note](
        states=weird, events=odd, initial=members[0], name='weird "title" <x>'
    )
    for index, member in enumerate(members):
        builder.when(member).on(odd["go;now"], advance, to=[members[(index + 1) % len(members)]])
    builder.from_any().on(odd["<x>"], advance)
    builder.on_entry(weird["<b>"], hook)
    return builder.build()


# Every line of our Mermaid output, after the front matter, is one of these statements
# (Mermaid replaces entity codes such as #59; before it parses).
_LABEL = r"(?:[^:;#%\n\\]|#\w+;)+"
_MERMAID_STATEMENT = re.compile(
    r"stateDiagram-v2"
    r"|  direction (?:LR|TB)"
    r"|  classDef (?:current|anyState) [\w:,.# -]+"
    r'|  state "[^"\n]*" as [A-Za-z_]\w*'
    rf"|  [A-Za-z_]\w*: (?:entry|exit) / {_LABEL}"
    r"|  class [A-Za-z_]\w* (?:current|anyState)"
    rf"|  [A-Za-z_]\w* --> [A-Za-z_]\w*: {_LABEL}"
    r"|  \[\*\] --> [A-Za-z_]\w*"
    r"|  [A-Za-z_]\w* --> \[\*\]"
)


def assert_mermaid_statements(mermaid: str) -> None:
    lines = mermaid.splitlines()
    assert lines[0] == "---" and lines[1].startswith("title: ") and lines[2] == "---"
    bad = [line for line in lines[3:] if not _MERMAID_STATEMENT.fullmatch(line)]
    assert not bad


# -- Mermaid --------------------------------------------------------------------------------


def test_mermaid_of_an_enum_spec() -> None:
    assert to_mermaid(door_spec()) == DOOR_MERMAID


def test_mermaid_is_deterministic() -> None:
    assert to_mermaid(door_spec()) == to_mermaid(door_spec())
    assert to_mermaid(job_spec()) == to_mermaid(job_spec())


def test_mermaid_statements_are_all_well_formed() -> None:
    for spec in (door_spec(), job_spec(), weird_spec()):
        mermaid = to_mermaid(spec)
        assert_mermaid_statements(mermaid)
        # Lines of a label are separate statements, never an escaped newline.
        assert "\\n" not in mermaid


def test_hooks_are_lines_under_the_state_name() -> None:
    lines = to_mermaid(door_spec()).splitlines()
    at = lines.index('  state "OPEN" as OPEN')
    assert lines[at + 1 : at + 3] == ["  OPEN: entry / creak", "  OPEN: exit / slam"]


def test_final_states_lead_to_the_end_marker() -> None:
    from examples.order_lifecycle import order_spec

    mermaid = to_mermaid(order_spec())
    # Delivered has no handler that leaves it; Cancelled only comes back to itself.
    assert re.findall(r"^  (\w+) --> \[\*\]$", mermaid, flags=re.MULTILINE) == [
        "Delivered",
        "Cancelled",
    ]
    assert describe(order_spec(), None).finals == ("Delivered", "Cancelled")
    # A state whose handler declares no targets may go anywhere: not final.
    assert describe(door_spec(), None).finals == ()
    assert "--> [*]" not in to_mermaid(door_spec())


def test_small_machines_go_left_to_right_larger_ones_top_down() -> None:
    from examples.order_lifecycle import order_spec

    assert "  direction LR" in to_mermaid(door_spec())
    assert "  direction TB" in to_mermaid(order_spec())


def test_wildcard_is_drawn_from_every_state_without_its_own_handler() -> None:
    kick_edges = [e for e in edges(to_mermaid(door_spec())) if e.endswith(": KICK")]
    assert kick_edges == [
        "CLOSED --> BROKEN: KICK",
        "OPEN --> BROKEN: KICK",
        "LOCKED --> BROKEN: KICK",
        "BROKEN --> _any_state: KICK",
    ]


def test_undeclared_targets_lead_to_the_any_state_node() -> None:
    mermaid = to_mermaid(door_spec())
    assert f'state "{ANY_STATE_LABEL}" as _any_state' in mermaid
    assert "class _any_state anyState" in mermaid


def test_no_any_state_node_when_every_target_is_declared() -> None:
    builder = FsmBuilder[Door, Act, None, Note](
        states=Door, events=Act, initial=Door.CLOSED, name="declared"
    )
    builder.from_any().on(Act.KICK, go_broken, to=[Door.BROKEN])
    builder.from_any().on(Act.OPEN, go_open, to=[Door.OPEN, Door.LOCKED, Door.CLOSED])
    mermaid = to_mermaid(builder.build())
    assert ANY_STATE_LABEL not in mermaid
    assert "_any_state" not in mermaid


def test_mermaid_of_an_attrs_union_spec() -> None:
    mermaid = to_mermaid(job_spec())
    assert [line.strip() for line in mermaid.splitlines() if line.strip().startswith("state ")] == [
        'state "Idle" as Idle',
        'state "Running" as Running',
        'state "Failed" as Failed',
        'state "any state" as _any_state',
    ]
    assert "  Failed: entry / alert" in mermaid.splitlines()
    assert edges(mermaid) == [
        "[*] --> Idle",
        "Idle --> Running: Start",
        "Idle --> Failed: Crash",
        "Running --> Failed: Crash, after 0.5s",
        "Running --> Idle: after 0.5s, unhandled",
        "Failed --> _any_state: Start",
        "Failed --> Failed: Crash",
    ]
    assert_mermaid_statements(mermaid)


def test_unhandled_is_drawn_only_where_some_event_reaches_it() -> None:
    unhandled = [e for e in edges(to_mermaid(job_spec())) if UNHANDLED_LABEL in e]
    # Idle and Failed handle Start and (by the wildcard) Crash; Running leaves Start to it.
    assert unhandled == ["Running --> Idle: after 0.5s, unhandled"]


def test_title_defaults_to_the_spec_name_and_can_be_overridden() -> None:
    assert to_mermaid(door_spec()).splitlines()[1] == 'title: "door"'
    mermaid = to_mermaid(door_spec(), title='The "front" door:\nmain')
    # The title is one line (YAML front matter, JSON-quoted).
    assert mermaid.splitlines()[1] == 'title: "The \\"front\\" door: main"'


def test_bare_spec_highlights_nothing() -> None:
    mermaid = to_mermaid(door_spec())
    assert not re.search(r"^  class \w+ current$", mermaid, flags=re.MULTILINE)
    assert "classDef current" not in mermaid


def test_machine_highlights_its_current_state_only() -> None:
    machine = door_spec().new_machine(Door.OPEN)
    mermaid = to_mermaid(machine)
    assert re.findall(r"^  class (\w+) current$", mermaid, flags=re.MULTILINE) == ["OPEN"]
    # The initial marker stays on the spec's initial variant.
    assert "[*] --> CLOSED" in mermaid


async def test_highlight_follows_the_machine() -> None:
    machine = job_spec().new_machine(Idle())
    await machine.handle(Start(), None)
    mermaid = to_mermaid(machine)
    assert re.findall(r"^  class (\w+) current$", mermaid, flags=re.MULTILINE) == ["Running"]


def test_awkward_names_are_escaped_for_mermaid() -> None:
    mermaid = to_mermaid(weird_spec())
    assert_mermaid_statements(mermaid)
    assert mermaid.splitlines()[1] == 'title: "weird \\"title\\" <x>"'
    assert 'state "state" as s_state' in mermaid
    assert 'state "with space" as s_with_space' in mermaid
    assert 'state "say #34;hi#34;" as s_say__hi_' in mermaid
    assert 'state "a#58;b#59;c#35;d#37;e" as s_a_b_c_d_e' in mermaid
    assert 'state "node" as s_node' in mermaid
    assert 'state "#60;b#62;" as s__b_' in mermaid
    assert "s__b_: entry / hook #34;q#34; #60;locals#62;" in mermaid
    assert 'state "ÄRGER" as s__RGER' in mermaid
    assert 'state "x#92;y" as s_x_y' in mermaid
    assert "s_state --> s_with_space: go#59;now" in mermaid
    assert "s_state --> _any_state: #60;x#62;" in mermaid


# -- DOT ------------------------------------------------------------------------------------


def test_dot_of_an_enum_spec() -> None:
    dot = to_dot(door_spec())
    assert dot.startswith(
        "digraph door {\n\tgraph [color=black directed=true fillcolor=white label=door"
    )
    assert '\tOPEN [label="OPEN\\lentry / creak\\lexit / slam\\l"]\n' in dot
    assert "\tCLOSED -> OPEN [label=OPEN]\n" in dot
    assert '\tLOCKED -> CLOSED [label="after 5s"]\n' in dot
    assert "\tBROKEN -> _any_state [label=KICK]\n" in dot
    assert '_any_state [label="any state\\l" color=dimgray' in dot
    assert '\t_initial [label="" fillcolor=black shape=point style=filled width=0.2]\n' in dot
    assert dot.endswith("\t_initial -> CLOSED\n}\n")
    assert dot == to_dot(door_spec())


def test_dot_highlights_only_a_machines_current_state() -> None:
    assert "darksalmon" not in to_dot(door_spec())
    dot = to_dot(door_spec().new_machine(Door.LOCKED))
    highlighted = [line for line in dot.splitlines() if "darksalmon" in line]
    assert highlighted == [
        '\tLOCKED [label="LOCKED\\l" color=red fillcolor=darksalmon peripheries=2]'
    ]


def test_dot_title() -> None:
    dot = to_dot(job_spec(), title="jobs & <more>")
    assert dot.startswith('digraph "jobs &amp; &lt;more&gt;" {')
    assert 'label="jobs &amp; &lt;more&gt;"' in dot


def test_awkward_names_are_escaped_for_dot() -> None:
    dot = to_dot(weird_spec())
    assert 's_say__hi_ [label="say \\"hi\\"\\l"]' in dot
    assert 's__b_ [label="&lt;b&gt;\\lentry / hook \\"q\\" &lt;locals&gt;\\l"]' in dot
    assert 's_x_y [label="x\\\\y\\l"]' in dot
    assert 's_state -> _any_state [label="&lt;x&gt;"]' in dot


def test_anything_else_is_rejected() -> None:
    with pytest.raises(TypeError, match="FsmSpec or a StateMachine, not int"):
        to_mermaid(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not str"):
        to_dot("door")  # type: ignore[arg-type]


# -- node ids ---------------------------------------------------------------------------------


def test_node_ids_are_plain_unique_and_keep_plain_names() -> None:
    assert node_ids(["Idle", "RUNNING_2", "x"]) == ["Idle", "RUNNING_2", "x"]
    assert node_ids(["DEFAULT", "Class", "end", "a-b", "_x", "9lives"]) == [
        "s_DEFAULT",
        "s_Class",
        "s_end",
        "s_a_b",
        "s__x",
        "s_9lives",
    ]
    assert node_ids(["a b", "a-b", "s_a_b", "s_a_b"]) == ["s_a_b", "s_a_b_2", "s_a_b_3", "s_a_b_4"]


def test_describe_records_the_machine_state_and_initial() -> None:
    diagram = describe(job_spec().new_machine(Failed("x")), None)
    assert (diagram.title, diagram.initial, diagram.active) == ("job", "Idle", "Failed")
    assert diagram.has_any_state


# -- render ----------------------------------------------------------------------------------


def test_render_source_formats_without_graphviz(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = door_spec()
    assert render(spec, "mermaid") == to_mermaid(spec).encode()
    assert render(spec, "dot", title="t") == to_dot(spec, title="t").encode()


def test_render_without_dot_names_the_missing_tool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DiagramToolMissing) as caught:
        render(door_spec(), "svg")
    error = caught.value
    assert (error.tool, error.format) == ("dot", "svg")
    message = str(error)
    assert "Graphviz's 'dot' executable" in message
    assert "install Graphviz" in message
    assert "'mermaid' or 'dot'" in message
    assert isinstance(error, RuntimeError)


def test_render_rejects_unknown_formats() -> None:
    with pytest.raises(ValueError, match="unknown diagram format 'jpeg2000'"):
        render(door_spec(), "jpeg2000")


@needs_dot
def test_render_svg_with_dot(capfd: pytest.CaptureFixture[str]) -> None:
    svg = render(door_spec().new_machine(Door.OPEN), "svg")
    assert svg.startswith(b"<?xml")
    assert b"</svg>" in svg
    assert b"after 5s" in svg


@needs_dot
def test_awkward_names_render_cleanly_with_dot(capfd: pytest.CaptureFixture[str]) -> None:
    svg = render(weird_spec(), "svg").decode()
    assert "say &quot;hi&quot;" in svg or 'say "hi"' in svg
    assert "&lt;b&gt;" in svg
    assert "x\\y" in svg
    assert capfd.readouterr().err == ""
