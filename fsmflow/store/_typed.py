"""Typed views over a store: values in, values out, bytes only at the edge."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ._codec import Codec
from ._protocols import KeyValueStore, LogStore

T = TypeVar("T")


class TypedKeyValue(Generic[T]):
    """One namespace of a :class:`KeyValueStore` holding values of type ``T``."""

    def __init__(self, store: KeyValueStore, namespace: str, value_type: Any, codec: Codec) -> None:
        self.store = store
        self.namespace = namespace
        self.value_type = value_type
        self.codec = codec.register(value_type) if not codec.is_registered(value_type) else codec

    async def get(self, key: str) -> T | None:
        """The decoded value, or ``None``; bad bytes raise ``DecodeError`` naming the key."""
        stored = await self.store.get(self.namespace, key)
        if stored is None:
            return None
        decoded: T = self.codec.decode(stored.value, self.value_type, f"{self.namespace}/{key}")
        return decoded

    async def put(self, key: str, value: T, *, expected_version: int | None = None) -> int:
        data = self.codec.encode(value, self.value_type)
        return await self.store.put(self.namespace, key, data, expected_version=expected_version)


class TypedLog(Generic[T]):
    """One log of a :class:`LogStore` holding values of type ``T``."""

    def __init__(self, store: LogStore, log: str, value_type: Any, codec: Codec) -> None:
        self.store = store
        self.log = log
        self.value_type = value_type
        self.codec = codec.register(value_type) if not codec.is_registered(value_type) else codec

    async def append(self, value: T) -> int:
        return await self.store.append(self.log, self.codec.encode(value, self.value_type))

    async def read(self, *, after: int = 0, limit: int | None = None) -> list[tuple[int, T]]:
        """``(seq, value)`` pairs in order; bad bytes raise ``DecodeError`` naming the entry."""
        entries = await self.store.read(self.log, after=after, limit=limit)
        return [
            (e.seq, self.codec.decode(e.value, self.value_type, f"{self.log}#{e.seq}"))
            for e in entries
        ]

    async def remove(self, seq: int) -> bool:
        return await self.store.remove(self.log, seq)
