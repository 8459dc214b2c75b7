"""Decoding is strict and bounded: type-confused or hostile bytes give DecodeError, never a
wrong value and never another exception (issue 9)."""

from __future__ import annotations

import enum
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsmflow.store import (
    Codec,
    DecodeError,
    Durability,
    MemoryStore,
    SqliteStore,
    TypedKeyValue,
    TypedLog,
)

CORPUS = Path(__file__).parent / "corpus"


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


@attrs.frozen
class Quote:
    symbol: str
    price: float


@attrs.frozen
class Order:
    id: int
    quote: Quote
    side: Side
    filled: bool
    lots: list[int]
    by_venue: dict[str, int]


TARGETS: list[Any] = [bool, int, float, str, list[int], dict[str, int], Quote, Order, Side]


def codec() -> Codec:
    return Codec().register(*TARGETS)


def _accepted(value: object, target: Any) -> bool:
    """Is ``value`` really an instance of ``target``?"""
    if target is bool:
        return type(value) is bool
    if target is int:
        return type(value) is int
    if target is float:
        return type(value) is float
    if target is str:
        return type(value) is str
    if target == list[int]:
        return isinstance(value, list) and all(type(v) is int for v in value)
    if target == dict[str, int]:
        return isinstance(value, dict) and all(
            type(k) is str and type(v) is int for k, v in value.items()
        )
    return isinstance(value, target)


@pytest.mark.parametrize(
    ("data", "target", "path"),
    [
        (b'"false"', bool, "$"),
        (b'{"a": 1}', str, "$"),
        (b"2.9", int, "$"),
        (b"true", int, "$"),
        (b'"123"', list[int], "$"),
        (b'[1, "2"]', list[int], "$[1]"),
        (b'{"a": "1"}', dict[str, int], "$['a']"),
        (b'{"symbol": "X", "price": "12.5"}', Quote, "$.price"),
        (b'{"symbol": 7, "price": 1.0}', Quote, "$.symbol"),
        (
            b'{"id": 1, "quote": {"symbol": "X", "price": 1}, "side": "buy", "filled": "no",'
            b' "lots": [1], "by_venue": {}}',
            Order,
            "$.filled",
        ),
        (
            b'{"id": 1, "quote": {"symbol": "X", "price": 1}, "side": "BUY", "filled": true,'
            b' "lots": [1], "by_venue": {}}',
            Order,
            "$.side",
        ),
        (
            b'{"id": 1, "quote": {"symbol": "X", "price": 1}, "side": "buy", "filled": true,'
            b' "lots": [1, 2.5], "by_venue": {}}',
            Order,
            "$.lots[1]",
        ),
        (
            b'{"id": 1, "quote": {"symbol": "X", "price": false}, "side": "buy",'
            b' "filled": true, "lots": [], "by_venue": {}}',
            Order,
            "$.quote.price",
        ),
    ],
)
def test_type_confused_values_are_refused_naming_key_and_path(
    data: bytes, target: Any, path: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        codec().decode(data, target, "orders/42")
    assert caught.value.key == "orders/42"
    assert f"@ {path}" in caught.value.reason, caught.value.reason


def test_well_typed_values_round_trip() -> None:
    order = Order(7, Quote("ACME", 12), Side.SELL, True, [1, 2], {"x": 3})
    c = codec()
    assert c.decode(c.encode(order), Order, "k") == order
    assert c.decode(b"3", float, "k") == 3.0 and type(c.decode(b"3", float, "k")) is float
    numbered = Codec().register(dict[int, str])
    assert numbered.decode(numbered.encode({3: "x"}, dict[int, str]), dict[int, str], "k") == {
        3: "x"
    }
    with pytest.raises(DecodeError, match="integer key"):
        numbered.decode(b'{"03": "x"}', dict[int, str], "k")


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir()))
def test_corpus_near_the_limits_gives_decode_error_or_a_typed_value(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    c = codec()
    for target in TARGETS:
        try:
            value = c.decode(data, target, f"corpus/{name}")
        except DecodeError as exc:
            assert exc.key == f"corpus/{name}"
        else:
            assert _accepted(value, target), (name, target, value)


def test_limits_are_named() -> None:
    with pytest.raises(DecodeError, match="nested too deeply"):
        codec().decode(b"[" * 50_000 + b"]" * 50_000, list[int], "k")
    c = Codec(max_bytes=100).register(list[int])
    with pytest.raises(DecodeError, match="more than the limit of 100"):
        c.decode(b'"' + b"x" * 200 + b'"', str, "k")
    with pytest.raises(DecodeError, match="digits"):
        codec().decode(b"9" * 5000, int, "k")
    with pytest.raises(DecodeError, match="expected bytes"):
        c.decode("text", str, "k")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), target=st.sampled_from(TARGETS))
def test_fuzz_codec_decode_with_arbitrary_bytes(data: bytes, target: Any) -> None:
    try:
        value = codec().decode(data, target, "fuzz")
    except DecodeError:
        return
    assert _accepted(value, target)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON, target=st.sampled_from(TARGETS))
def test_fuzz_codec_decode_with_arbitrary_json(value: object, target: Any) -> None:
    data = Codec().encode(value)
    try:
        decoded = codec().decode(data, target, "fuzz")
    except DecodeError:
        return
    assert _accepted(decoded, target)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=100))
async def test_fuzz_typed_views_with_arbitrary_bytes(data: bytes) -> None:
    store = MemoryStore()
    await store.put("quotes", "A", data)
    await store.append("events", data)
    c = codec()
    try:
        value = await TypedKeyValue[Quote](store, "quotes", Quote, c).get("A")
    except DecodeError as exc:
        assert exc.key == "quotes/A"
    else:
        assert isinstance(value, Quote)
    try:
        entries = await TypedLog[Order](store, "events", Order, c).read()
    except DecodeError as exc:
        assert exc.key == "events#1"
    else:
        assert all(isinstance(v, Order) for _, v in entries)


SQLITE_CELLS = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=SQLITE_CELLS, version=SQLITE_CELLS, seq=SQLITE_CELLS)
async def test_fuzz_sqlite_cells_of_any_storage_class(
    tmp_path_factory: pytest.TempPathFactory, value: object, version: object, seq: object
) -> None:
    path = tmp_path_factory.mktemp("cells") / "cells.sqlite3"
    async with await SqliteStore.open(path, durability=Durability.OFF):
        pass
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO kv VALUES ('ns', 'k', ?, ?)", (value, version))
    raw.execute("INSERT INTO log VALUES ('q', ?, ?)", (seq, value))
    raw.execute("INSERT INTO checkpoints VALUES ('run', 1, ?, ?)", (value, version))
    raw.commit()
    raw.close()
    async with await SqliteStore.open(path, durability=Durability.OFF) as store:
        for read in (
            lambda: store.get("ns", "k"),
            lambda: store.read("q"),
            lambda: store.checkpoints("run"),
            lambda: store.latest_checkpoint("run"),
        ):
            try:
                result = await read()
            except DecodeError:
                continue
            assert result is not None


async def test_sqlite_text_and_integer_cells_where_blobs_belong(tmp_path: Path) -> None:
    path = tmp_path / "cells.sqlite3"
    async with await SqliteStore.open(path, durability=Durability.OFF) as store:
        await store.put("ns", "text", b"x")
        await store.put("ns", "huge", b"x")
        await store.append("q", b"x")
        await store.save_checkpoint("run", 1, b"x")
        await store.acquire_lease("job", "a", 30)
    raw = sqlite3.connect(path)
    raw.execute("UPDATE kv SET value='{\"symbol\": \"X\"}' WHERE key='text'")
    raw.execute("UPDATE kv SET value=1000000000000 WHERE key='huge'")  # bytes(n) would be 1 TB
    raw.execute("UPDATE log SET value=5")
    raw.execute("UPDATE checkpoints SET value='text'")
    raw.execute("UPDATE leases SET token='one'")
    raw.commit()
    raw.close()
    async with await SqliteStore.open(path, durability=Durability.OFF) as store:
        with pytest.raises(DecodeError, match="TEXT, not a BLOB") as caught:
            await store.get("ns", "text")
        assert caught.value.key == "ns/text"
        with pytest.raises(DecodeError, match="INTEGER, not a BLOB"):
            await store.get("ns", "huge")
        with pytest.raises(DecodeError, match=r"q#1"):
            await store.read("q")
        with pytest.raises(DecodeError, match="checkpoint run@1"):
            await store.latest_checkpoint("run")
        with pytest.raises(DecodeError, match="lease job"):
            await store.get_lease("job")
