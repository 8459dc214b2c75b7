"""Dirty flags (the seed's tests), the input cache's typed access, the boundary codec."""

from __future__ import annotations

import pytest

from fsmflow.reactor import DirtyFlags, InputCache, Source
from fsmflow.reactor._cache import BoundaryCodec
from fsmflow.store import Codec, DecodeError

from ._support import LIMITS, NUMBERS, PRICES, Limit, Price

# -- the seed's dirty-flag tests --------------------------------------------------------


def test_dirty_flags_when_any() -> None:
    flags = DirtyFlags()
    assert not flags.any_set()
    flags.set("alpha")
    assert flags.any_set()
    flags.clear(["beta"])
    assert flags.any_set(), "alpha is still dirty"


def test_dirty_flags_when_all() -> None:
    flags = DirtyFlags(["alpha", "beta"])
    flags.set("alpha")
    assert not flags.all_set()
    flags.set("beta")
    assert flags.all_set()


def test_dirty_flags_clear_all() -> None:
    flags = DirtyFlags()
    flags.set("alpha")
    flags.set("beta")
    assert flags.all_set() and flags.dirty == {"alpha", "beta"}
    flags.clear_all()
    assert not flags.any_set() and flags.dirty == frozenset()


def test_dirty_flags_empty_all_set() -> None:
    assert not DirtyFlags().all_set(), "no source registered: never all set"


def test_seeded_flags_wait_for_every_expected_source() -> None:
    flags = DirtyFlags(["alpha", "beta"])
    flags.set("alpha")
    flags.set("alpha")
    assert not flags.all_set(), "seeding makes beta count before it ever delivered"
    flags.clear(["alpha"])
    flags.clear(["alpha"])
    assert not flags.any_set()


# -- the input cache --------------------------------------------------------------------


def test_cache_returns_each_source_as_its_type() -> None:
    cache = InputCache.of({PRICES: Price("A", 1.0), NUMBERS: 3})
    price: Price = cache[PRICES]
    assert price == Price("A", 1.0) and cache.get(NUMBERS) == 3
    assert PRICES in cache and len(cache) == 2
    assert cache.updated(PRICES)
    assert cache == InputCache.of({NUMBERS: 3, PRICES: Price("A", 1.0)})
    assert cache != {"prices": Price("A", 1.0)}
    assert "updated: numbers, prices" in repr(cache)


def test_cache_refuses_other_sources_and_other_types() -> None:
    cache = InputCache({"prices": Price("A", 1.0)}, {"prices": PRICES, "limits": LIMITS})
    assert cache.get(LIMITS) is None and not cache.updated(PRICES)
    with pytest.raises(KeyError, match="no boundary yet"):
        cache[LIMITS]
    with pytest.raises(KeyError, match="not a source of this reactor"):
        cache.get(NUMBERS)
    with pytest.raises(TypeError, match="registered with type"):
        cache.get(Source("prices", Limit))
    with pytest.raises(TypeError, match="must be a Price"):
        InputCache.of({PRICES: Limit(1.0)})


def test_boundary_codec_decodes_as_the_registered_type_only() -> None:
    codec = BoundaryCodec(Codec(), {"prices": PRICES, "batch": Source("batch", tuple[int, ...])})
    data = codec.encode("prices", Price("A", 1.5))
    assert codec.decode("prices", data, "k") == Price("A", 1.5)
    assert codec.decode("batch", codec.encode("batch", (1, 2)), "k") == (1, 2)
    with pytest.raises(DecodeError, match="unknown source 'volumes'"):
        codec.decode("volumes", data, "key")
    with pytest.raises(DecodeError) as caught:
        codec.decode("prices", b"[1]", "reactor:x:cache/prices")
    assert caught.value.key == "reactor:x:cache/prices"


def test_source_names_are_checked() -> None:
    for bad in ("", "a/b", "a\nb"):
        with pytest.raises(ValueError, match="source name"):
            Source(bad, int)
