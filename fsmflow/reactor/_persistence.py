"""What a reactor keeps in a :class:`~fsmflow.store.Store`, and how.

Layout, for a reactor named ``NAME``:

* namespace ``reactor:NAME:cache``, one key per source: the boundary the last completed
  firing saw (``LATEST``) or the state after the last committed boundary (``SEQUENTIAL``);
* namespace ``reactor:NAME``, key ``dirty``: the ``LATEST`` dirty flags (a JSON list);
* log ``reactor:NAME:queue``: accepted ``SEQUENTIAL`` boundaries not yet fired;
* log ``reactor:NAME:dead``: dead letters.

Every write is O(1) in the queue's length: accepting a boundary appends one entry (the
boundaries a reactor takes from its channel in one go are appended in one batch), and
completing its firing removes that entry and puts its source's cache key in one atomic
batch. Reads are paged: a restart reads the queue's length and its first page, never
the whole queue. A log entry is a JSON header line (the source, and for a dead letter
the error and attempts) followed by the boundary encoded as its source's type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..store import Append, BatchOp, DecodeError, Delete, Put, Remove, Store
from ._cache import BoundaryCodec
from ._types import DeadLetter


@attrs.frozen
class Queued:
    """A ``SEQUENTIAL`` boundary waiting for its firing; ``seq`` is its queue position
    (its log seq when persisted)."""

    seq: int
    source: str
    value: object
    #: The boundary encoded as its source's type (``None`` without a store).
    data: bytes | None = attrs.field(default=None, repr=False)


@attrs.frozen
class Restored:
    """Everything a reactor found in its store when it started."""

    cache: Mapping[str, object] = attrs.Factory(dict)
    dirty: frozenset[str] = frozenset()
    #: The first page of the queue.
    queue: tuple[Queued, ...] = ()
    #: How many entries the whole queue holds.
    queue_length: int = 0
    dead: tuple[DeadLetter, ...] = ()


#: Marks a cache key to delete in :meth:`ReactorStore.commit`.
DELETED: Any = object()


class ReactorStore:
    """One reactor's view of a store (see the module docstring for the layout)."""

    def __init__(self, store: Store, reactor: str, boundaries: BoundaryCodec) -> None:
        self.store = store
        self.boundaries = boundaries
        self.cache_namespace = f"reactor:{reactor}:cache"
        self.state_namespace = f"reactor:{reactor}"
        self.queue_log = f"reactor:{reactor}:queue"
        self.dead_log = f"reactor:{reactor}:dead"

    # -- restore ------------------------------------------------------------------------

    async def restore(self, page_size: int) -> Restored:
        """Read back cache, dirty flags, the queue's length and first ``page_size``
        entries, and the dead letters.

        Raises :class:`DecodeError` naming the key or log entry whose bytes are bad.
        Cache keys of sources the reactor no longer has are left alone.
        """
        store = self.store
        cache: dict[str, object] = {}
        for name in await store.keys(self.cache_namespace):
            if name not in self.boundaries.sources:
                continue
            stored = await store.get(self.cache_namespace, name)
            if stored is not None:
                key = f"{self.cache_namespace}/{name}"
                cache[name] = self.boundaries.decode(name, stored.value, key)
        length = await store.length(self.queue_log)
        queue = await self.read_queue(0, page_size) if length else []
        dead = []
        for entry in await store.read(self.dead_log):
            key = f"{self.dead_log}#{entry.seq}"
            header, data = _unframe(entry.value, key)
            error, attempts = header.get("error"), header.get("attempts")
            if not isinstance(error, str) or not isinstance(attempts, int):
                raise DecodeError(key, "a dead letter", "its header lacks error or attempts")
            value = self.boundaries.decode(header["source"], data, key)
            dead.append(DeadLetter(entry.seq, header["source"], value, error, attempts))
        dirty = await self._restore_dirty()
        return Restored(cache, dirty, tuple(queue), max(length, len(queue)), tuple(dead))

    async def read_queue(self, after: int, limit: int) -> list[Queued]:
        """The queue's entries after seq ``after``, at most ``limit``, decoded (raises
        :class:`DecodeError` naming a bad entry)."""
        queue = []
        for entry in await self.store.read(self.queue_log, after=after, limit=limit):
            key = f"{self.queue_log}#{entry.seq}"
            header, data = _unframe(entry.value, key)
            value = self.boundaries.decode(header["source"], data, key)
            queue.append(Queued(entry.seq, header["source"], value, data))
        return queue

    async def _restore_dirty(self) -> frozenset[str]:
        stored = await self.store.get(self.state_namespace, "dirty")
        if stored is None:
            return frozenset()
        key = f"{self.state_namespace}/dirty"
        try:
            flags = json.loads(stored.value.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(key, "dirty flags", f"not JSON text ({exc})") from exc
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            raise DecodeError(key, "dirty flags", f"expected a list of source names: {flags!r}")
        return frozenset(flags) & frozenset(self.boundaries.sources)

    # -- writes -------------------------------------------------------------------------

    async def accept(self, boundaries: Sequence[tuple[str, object]]) -> list[Queued]:
        """Persist accepted ``SEQUENTIAL`` boundaries, in order: one append each, all in
        one atomic batch."""
        encoded = [(source, value, self.encode(source, value)) for source, value in boundaries]
        seqs = await self.store.write_batch(
            [Append(self.queue_log, _frame({"source": s}, data)) for s, _, data in encoded]
        )
        queued = []
        for (source, value, data), seq in zip(encoded, seqs, strict=True):
            assert isinstance(seq, int)
            queued.append(Queued(seq, source, value, data))
        return queued

    def encode(self, source: str, value: object) -> bytes:
        return self.boundaries.encode(source, value)

    async def commit(
        self,
        *,
        done: Queued | None = None,
        cache: Mapping[str, bytes] | None = None,
        dirty: frozenset[str] | None = None,
    ) -> None:
        """In one atomic batch: remove ``done`` from the queue, put (or, for
        :data:`DELETED`, delete) the ``cache`` keys, and save the ``dirty`` flags."""
        ops: list[BatchOp] = []
        if done is not None:
            ops.append(Remove(self.queue_log, done.seq))
        for name, data in (cache or {}).items():
            if data is DELETED:
                ops.append(Delete(self.cache_namespace, name))
            else:
                ops.append(Put(self.cache_namespace, name, data))
        if dirty is not None:
            encoded = json.dumps(sorted(dirty), separators=(",", ":")).encode()
            ops.append(Put(self.state_namespace, "dirty", encoded))
        if ops:
            await self.store.write_batch(ops)

    async def dead_letter(self, item: Queued, error: str, attempts: int) -> DeadLetter:
        """Move ``item`` from the queue to the dead letters, atomically."""
        header = {"source": item.source, "error": error, "attempts": attempts}
        data = item.data if item.data is not None else self.encode(item.source, item.value)
        _, seq = await self.store.write_batch(
            [Remove(self.queue_log, item.seq), Append(self.dead_log, _frame(header, data))]
        )
        assert isinstance(seq, int)
        return DeadLetter(seq, item.source, item.value, error, attempts)

    async def replay(self, letters: Sequence[DeadLetter]) -> list[Queued]:
        """Move ``letters`` back to the end of the queue, atomically, in order."""
        ops: list[BatchOp] = []
        encoded = []
        for letter in letters:
            data = self.encode(letter.source, letter.boundary)
            encoded.append(data)
            ops.append(Remove(self.dead_log, letter.id))
            ops.append(Append(self.queue_log, _frame({"source": letter.source}, data)))
        results = await self.store.write_batch(ops)
        queued = []
        for index, (letter, data) in enumerate(zip(letters, encoded, strict=True)):
            seq = results[2 * index + 1]
            assert isinstance(seq, int)
            queued.append(Queued(seq, letter.source, letter.boundary, data))
        return queued


def _frame(header: Mapping[str, object], data: bytes) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + data


def _unframe(raw: bytes, key: str) -> tuple[dict[str, Any], bytes]:
    """Split a log entry into its header and the boundary's bytes."""
    head, newline, data = raw.partition(b"\n")
    if not newline:
        raise DecodeError(key, "a queued boundary", "no header line")
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(key, "a queued boundary", f"bad header ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("source"), str):
        raise DecodeError(key, "a queued boundary", f"header without a source: {header!r}")
    return header, data
