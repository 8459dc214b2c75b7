"""Building graphs: validation messages, the structure hash, reducers and deltas."""

from __future__ import annotations

import pytest

from fsmflow.graph import (
    GraphBuilder,
    GraphDefinitionError,
    MergeConflict,
    ParallelStrategy,
    StateUpdateError,
    add,
    append,
    merge,
    reducer,
    replace,
)
from fsmflow.graph._state import StateSchema

from ._graphs import Counter, Doc, counter_builder, loop_graph


def _noop(state: Counter) -> None:
    return None


def _problems(builder: GraphBuilder[Counter]) -> str:
    with pytest.raises(GraphDefinitionError) as info:
        builder.build()
    return str(info.value)


def test_missing_start_and_end_are_reported_together() -> None:
    text = _problems(counter_builder().node("a", _noop))
    assert "no start node" in text
    assert "no end node" in text


def test_unknown_nodes_unreachable_nodes_and_dead_ends_are_named() -> None:
    b = counter_builder().node("a", _noop).node("b", _noop).node("lost", _noop).node("z", _noop)
    b.edge("a", "b").edge("a", "ghost", when=lambda s: True).edge("lost", "z")
    b.start("a").end("z")
    text = _problems(b)
    assert "edge a->ghost: unknown target node 'ghost'" in text
    assert "node 'lost' is unreachable" in text
    assert "node 'z' is unreachable" in text
    assert "node 'b' has no way out and is not the end node" in text


def test_duplicates_and_bad_start_end_are_reported() -> None:
    b = counter_builder().node("a", _noop).node("a", _noop)
    b.parallel("p", [("x", _noop), ("x", _noop)]).parallel("q", {})
    b.barrier("gate", timeout=-1, on_reject="nowhere")
    b.edge("a", "p").edge("a", "q").edge("p", "q").edge("q", "gate").edge("gate", "a")
    b.fallback("a", "p").fallback("a", "q")
    b.start("s").end("e")
    text = _problems(b)
    assert "duplicate node name 'a'" in text
    assert "parallel node 'p': duplicate branch name 'x'" in text
    assert "parallel node 'q' has no branches" in text
    assert "barrier 'gate': timeout must be >= 0" in text
    assert "on_reject node 'nowhere' is not a node" in text
    assert "node 'a' has 2 normal edges" in text
    assert "node 'a' has 2 fallback edges" in text
    assert "start node 's' is not a node" in text
    assert "end node 'e' is not a node" in text


def test_on_reject_counts_as_a_way_out() -> None:
    b = counter_builder().node("a", _noop).node("fix", _noop).node("end", _noop)
    b.barrier("gate", on_reject="fix")
    b.edge("a", "gate").edge("gate", "end").edge("fix", "end").start("a").end("end")
    graph = b.build()
    assert graph.targets["gate"] == {"end", "fix"}
    assert graph.barriers == ("gate",)


def test_structure_hash_is_stable_and_tracks_the_structure() -> None:
    assert loop_graph(5).hash == loop_graph(5).hash  # functions differ, structure does not
    changed = counter_builder("loop").node("tick", _noop).node("tock", _noop)
    changed.node("done", _noop).edge("tick", "tock").edge("tock", "done")
    changed.start("tick").end("done")
    assert changed.build().hash != loop_graph(5).hash
    assert len(loop_graph(5).hash) == 64
    assert "loop" in repr(loop_graph(5))


def test_reducers_replace_append_add_merge_and_custom() -> None:
    def longest(current: str, update: str) -> str:
        return update if len(update) > len(current) else current

    schema = StateSchema(Doc, {"words": append, "count": add, "text": reducer(longest)})
    doc: Doc = {"text": "ab", "words": ["x"], "count": 1}
    after = schema.apply(doc, {"text": "a", "words": ["y", "z"], "count": 2}, "n")
    assert after == {"text": "ab", "words": ["x", "y", "z"], "count": 3}
    assert doc == {"text": "ab", "words": ["x"], "count": 1}  # never mutated
    assert schema.apply(doc, {}, "n") is doc
    assert schema.reducer_for("text").name == "longest"
    assert replace.name == "replace" and merge.name == "merge"

    counter = StateSchema(Counter, {"notes": merge})
    state = counter.apply(Counter(notes={"a": "1"}), {"notes": {"b": "2"}, "n": 4}, "n")
    assert state == Counter(n=4, notes={"a": "1", "b": "2"})


def test_bad_deltas_and_bad_schemas_raise_clear_errors() -> None:
    schema = StateSchema(Counter, {"total": add})
    with pytest.raises(StateUpdateError, match="'nope' is not a key of Counter"):
        schema.apply(Counter(), {"nope": 1}, "node")
    with pytest.raises(StateUpdateError, match="reducer 'add' of 'total' failed"):
        schema.apply(Counter(), {"total": "x"}, "node")
    with pytest.raises(TypeError, match="attrs class or a TypedDict"):
        StateSchema(dict, {})
    assert "unknown key(s) 'missing'" in StateSchema(Counter, {"missing": add}).problems()[0]
    b = GraphBuilder(Counter, reducers={"missing": add}).node("a", _noop).start("a").end("a")
    with pytest.raises(GraphDefinitionError, match="reducers for unknown key"):
        b.build()


def test_parallel_conflicts_only_on_non_combining_keys() -> None:
    schema = StateSchema(Counter, {"trail": append})
    schema.check_parallel("p", [("a", {"trail": ["a"], "n": 1}), ("b", {"trail": ["b"], "n": 1})])
    with pytest.raises(MergeConflict, match="branches 'a', 'b' set 'n'") as info:
        schema.check_parallel("p", [("a", {"n": 1}), ("b", {"n": 2})])
    assert info.value.key == "n"


def test_parallel_strategy_is_part_of_the_hash() -> None:
    def build(strategy: ParallelStrategy) -> str:
        b = counter_builder().parallel("p", {"x": _noop}, strategy=strategy).node("e", _noop)
        return b.edge("p", "e").start("p").end("e").build().hash

    assert build(ParallelStrategy.FAIL_FAST) != build(ParallelStrategy.COLLECT_ALL)
