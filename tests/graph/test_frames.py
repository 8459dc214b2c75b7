"""Frames and decisions in their stored form: round trips, and strict decoding of bad
bytes into typed errors naming the checkpoint."""

from __future__ import annotations

from typing import Any

import pytest

from fsmflow.graph import Approve, GraphBuilder, Reject, Route, Send, Skip
from fsmflow.graph._checkpoint import shared_codec
from fsmflow.graph._frame import (
    ChildRun,
    Frame,
    decode_decision,
    decode_frame,
    encode_decision,
    encode_frame,
)
from fsmflow.graph._interrupts import (
    BarrierId,
    Interrupt,
    InterruptId,
    InterruptKind,
    Stored,
)
from fsmflow.store import DecodeError

from ._graphs import Counter, Item, kill_graph, loop_graph

CONVERTER = shared_codec().converter


@pytest.mark.parametrize(
    "decision", [Approve(), Skip(), Reject("no"), Route("tick", {"n": 3, "trail": ["x"]})]
)
def test_decisions_round_trip(decision: Any) -> None:
    graph = loop_graph(1)
    raw = encode_decision(decision, CONVERTER, graph)
    assert decode_decision(raw, CONVERTER, graph, "here") == decision


@pytest.mark.parametrize(
    "raw",
    [{"decision": "maybe"}, {"decision": "reject"}, {"decision": "reject", "reason": 3}, [], {}],
)
def test_bad_decisions_are_decode_errors(raw: Any) -> None:
    with pytest.raises(DecodeError, match="cannot decode here as Decision"):
        decode_decision(raw, CONVERTER, loop_graph(1), "here")


def _frame() -> Frame:
    interrupt = Interrupt(
        InterruptId("square", 3, "1", 0, ("sub",)), InterruptKind.CALL, {"q": 1}, None, None
    )
    barrier = Interrupt(
        InterruptId("gate", 2), InterruptKind.BARRIER, None, BarrierId("gate", 1), 5.0
    )
    return Frame(
        "square",
        (Send("square", Item(0)), Send("square", Item(1))),
        True,
        {"0": {"total": 0, "trail": ["s0"]}},
        {"1": ["yes", Approve(), Stored({"x": 1})]},
        [interrupt, barrier],
        {},
        Interrupt(InterruptId("tick", 4), InterruptKind.AFTER),
    )


def test_frames_round_trip_with_and_without_their_graph() -> None:
    graph = kill_graph(3)
    frame = _frame()
    raw = encode_frame(frame, CONVERTER, graph)
    typed = decode_frame(raw, CONVERTER, graph, "cp")
    assert typed.sends == frame.sends and typed.writes == frame.writes
    assert typed.interrupts == frame.interrupts and typed.after == frame.after
    assert typed.released
    assert typed.resumes["1"] == [Stored("yes"), Stored({"decision": "approve"}), Stored({"x": 1})]
    untyped = decode_frame(raw, CONVERTER, None, "cp")
    assert isinstance(untyped.writes["0"], Stored)
    rewritten = encode_frame(untyped, CONVERTER, None)  # as the shell writes it back
    assert decode_frame(rewritten, CONVERTER, None, "cp") == untyped
    assert decode_frame(rewritten, CONVERTER, graph, "cp").sends == frame.sends


def test_a_child_run_round_trips() -> None:
    inner = loop_graph(1)
    b = GraphBuilder(Counter).subgraph("sub", inner, enter=lambda s: s, leave=lambda s, c: {})
    graph = b.start("sub").end("sub").build()
    child = ChildRun(Counter(n=2, trail=["a"]), 4, {"gate": 1}, Frame("tock"))
    frame = Frame("sub", children={"": child})
    raw = encode_frame(frame, CONVERTER, graph)
    back = decode_frame(raw, CONVERTER, graph, "cp")
    assert back.children[""].state == child.state and back.children[""].frame.next_node == "tock"
    plain = GraphBuilder(Counter).node("sub", lambda s: None).start("sub").end("sub").build()
    with pytest.raises(DecodeError, match="'sub' is not a subgraph node"):
        decode_frame(raw, CONVERTER, plain, "cp")


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw.update(next_node="ghost"),
        lambda raw: raw.update(next_node=7),
        lambda raw: raw["sends"][0].update(arg={"index": "not a number"}),
        lambda raw: raw["writes"].update({"0": {"nope": 1}}),
        lambda raw: raw["writes"].update({"0": ["not", "a", "mapping"]}),
        lambda raw: raw["interrupts"][0].update(kind="teleport"),
        lambda raw: raw["resumes"].update({"1": [{"what": 1}]}),
        lambda raw: raw.pop("released"),
    ],
)
def test_damaged_frames_are_decode_errors_naming_the_checkpoint(damage: Any) -> None:
    graph = kill_graph(3)
    raw = encode_frame(_frame(), CONVERTER, graph)
    damage(raw)
    with pytest.raises(DecodeError, match="cannot decode checkpoint t@9"):
        decode_frame(raw, CONVERTER, graph, "checkpoint t@9")
