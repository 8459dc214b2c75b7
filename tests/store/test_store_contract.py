"""The store contract, run against every backend: one suite, so the backends cannot drift."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest

from fsmflow.store import (
    Append,
    Codec,
    DecodeError,
    Delete,
    EncodeError,
    Put,
    Remove,
    SchemaError,
    SqliteStore,
    Store,
    StoreError,
    TypedKeyValue,
    TypedLog,
    VersionConflict,
)


async def test_put_get_versions_and_delete(store: Store) -> None:
    assert await store.get("ns", "k") is None
    assert await store.put("ns", "k", b"one") == 1
    assert await store.put("ns", "k", b"two") == 2
    stored = await store.get("ns", "k")
    assert stored is not None and stored.value == b"two" and stored.version == 2
    await store.put("ns", "a", b"x")
    await store.put("other", "z", b"y")
    assert await store.keys("ns") == ["a", "k"]
    assert await store.delete("ns", "k") is True
    assert await store.delete("ns", "k") is False
    assert await store.get("ns", "k") is None


async def test_compare_and_set(store: Store) -> None:
    assert await store.put("ns", "k", b"v", expected_version=0) == 1
    with pytest.raises(VersionConflict) as caught:
        await store.put("ns", "k", b"w", expected_version=0)
    assert caught.value.expected == 0 and caught.value.actual == 1
    assert "ns/k" in str(caught.value)
    assert await store.put("ns", "k", b"w", expected_version=1) == 2


async def test_log_append_read_remove(store: Store) -> None:
    seqs = [await store.append("q", f"item{i}".encode()) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert await store.length("q") == 5
    assert await store.remove("q", 2) is True
    assert await store.remove("q", 2) is False
    entries = await store.read("q")
    assert [e.seq for e in entries] == [1, 3, 4, 5]
    assert [e.value for e in await store.read("q", after=3, limit=1)] == [b"item3"]
    for seq in (1, 3, 4, 5):
        await store.remove("q", seq)
    assert await store.length("q") == 0
    assert await store.append("q", b"again") == 6, "seqs are never reused"
    assert await store.read("other") == []


async def test_batch_is_atomic(store: Store) -> None:
    await store.put("ns", "k", b"v")
    seq = await store.append("q", b"first")
    results = await store.write_batch(
        [Put("ns", "k", b"v2", expected_version=1), Remove("q", seq), Append("q", b"second")]
    )
    assert results == [2, True, 2]
    with pytest.raises(VersionConflict):
        await store.write_batch(
            [
                Append("q", b"lost"),
                Delete("ns", "k"),
                Put("ns", "new", b"x"),
                Put("ns", "k", b"v3", expected_version=1),
            ]
        )
    stored = await store.get("ns", "k")
    assert stored is not None and stored.value == b"v2" and stored.version == 2
    assert await store.get("ns", "new") is None
    assert [e.value for e in await store.read("q")] == [b"second"]
    assert await store.append("q", b"third") == 3, "a rolled-back append frees its seq"


async def test_checkpoints(store: Store) -> None:
    assert await store.latest_checkpoint("run") is None
    await store.save_checkpoint("run", 1, b"s1")
    await store.save_checkpoint("run", 3, b"s3")
    await store.save_checkpoint("run", 2, b"s2")
    await store.save_checkpoint("other", 1, b"o1")
    latest = await store.latest_checkpoint("run")
    assert latest is not None and latest.step == 3 and latest.value == b"s3"
    assert [c.step for c in await store.checkpoints("run")] == [1, 2, 3]
    assert await store.runs() == ["other", "run"]
    assert await store.delete_run("run") == 3
    assert await store.runs() == ["other"]


@attrs.frozen
class Quote:
    symbol: str
    price: float


@attrs.frozen
class Halt:
    symbol: str
    reason: str


async def test_typed_views_round_trip_and_reject_bad_bytes(store: Store) -> None:
    codec = Codec().register(Quote, Halt)
    quotes = TypedKeyValue[Quote](store, "quotes", Quote, codec)
    await quotes.put("ACME", Quote("ACME", 12.5))
    assert await quotes.get("ACME") == Quote("ACME", 12.5)
    assert await quotes.get("NONE") is None
    await store.put("quotes", "BAD", b'{"symbol": "X", "price": "cheap"}')
    with pytest.raises(DecodeError) as caught:
        await quotes.get("BAD")
    assert caught.value.key == "quotes/BAD"
    assert "price" in caught.value.reason
    await store.put("quotes", "JUNK", b"\x80\x04\x95pickle?")
    with pytest.raises(DecodeError, match="not UTF-8"):
        await quotes.get("JUNK")
    await store.put("quotes", "TEXT", b"{not json")
    with pytest.raises(DecodeError, match="not JSON"):
        await quotes.get("TEXT")

    events = TypedLog[Quote | Halt](store, "events", Quote | Halt, codec)
    await events.append(Quote("A", 1.0))
    await events.append(Halt("A", "circuit breaker"))
    assert [v for _, v in await events.read()] == [Quote("A", 1.0), Halt("A", "circuit breaker")]
    seq, _ = (await events.read())[0]
    assert await events.remove(seq) is True


def test_codec_refuses_unregistered_types() -> None:
    codec = Codec()
    with pytest.raises(EncodeError, match="not registered"):
        codec.encode(Quote("A", 1.0))
    with pytest.raises(EncodeError, match="not registered"):
        codec.decode(b"{}", Quote, "k")
    assert codec.encode({"a": [1, 2.5, None, "x"]}) == b'{"a":[1,2.5,null,"x"]}'


async def test_sqlite_persists_across_reopen_and_rejects_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    async with await SqliteStore.open(path) as first:
        await first.put("ns", "k", b"kept")
        await first.append("q", b"queued")
    async with await SqliteStore.open(path) as second:
        stored = await second.get("ns", "k")
        assert stored is not None and stored.value == b"kept"
        assert [e.value for e in await second.read("q")] == [b"queued"]
    with pytest.raises(StoreError, match="closed"):
        await second.get("ns", "k")
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(SchemaError, match="newer"):
        await SqliteStore.open(path)


async def test_sqlite_corrupted_bytes_give_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    codec = Codec().register(Quote)
    async with await SqliteStore.open(path) as store:
        await TypedKeyValue[Quote](store, "quotes", Quote, codec).put("A", Quote("A", 1.0))
    raw = sqlite3.connect(path)
    raw.execute("UPDATE kv SET value=? WHERE key='A'", (b'{"symbol": 1}',))
    raw.commit()
    raw.close()
    async with await SqliteStore.open(path) as store:
        with pytest.raises(DecodeError) as caught:
            await TypedKeyValue[Quote](store, "quotes", Quote, codec).get("A")
    assert caught.value.key == "quotes/A" and caught.value.expected == "Quote"
