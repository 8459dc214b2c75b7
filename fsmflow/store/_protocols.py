"""What the engines persist, as small protocols.

Three shapes cover every engine: versioned key/value records (a reactor's cache, a
run's lease), append-only logs with O(1) removal of an entry (a durable queue), and
checkpoints keyed by run and step. ``write_batch`` applies several operations in one
atomic commit, so an engine can, say, drop a queue entry and save its new state together.
The protocols speak bytes; :class:`~fsmflow.store.Codec` turns typed values into bytes.
A backend for many workers (PostgreSQL) implements the same protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias

import attrs


@attrs.frozen(slots=True)
class Versioned:
    """A stored value and its version (1 for the first write, +1 per write)."""

    value: bytes
    version: int


@attrs.frozen(slots=True)
class LogEntry:
    """One entry of an append-only log; ``seq`` increases strictly within a log and is
    never reused, even after entries are removed."""

    seq: int
    value: bytes


@attrs.frozen(slots=True)
class Checkpoint:
    """A checkpoint of one run at one step."""

    run_id: str
    step: int
    value: bytes
    #: Wall-clock time (seconds since the epoch) when it was saved.
    created_at: float


@attrs.frozen(slots=True)
class Put:
    """Batch operation: set ``namespace``/``key`` to ``value``; with ``expected_version``
    (``0`` meaning "must not exist") the whole batch fails with ``VersionConflict`` if the
    stored version differs."""

    namespace: str
    key: str
    value: bytes
    expected_version: int | None = None


@attrs.frozen(slots=True)
class Delete:
    """Batch operation: remove ``namespace``/``key`` if present."""

    namespace: str
    key: str


@attrs.frozen(slots=True)
class Append:
    """Batch operation: append ``value`` to ``log``."""

    log: str
    value: bytes


@attrs.frozen(slots=True)
class Remove:
    """Batch operation: remove entry ``seq`` of ``log`` if present."""

    log: str
    seq: int


BatchOp: TypeAlias = Put | Delete | Append | Remove


class KeyValueStore(Protocol):
    async def get(self, namespace: str, key: str) -> Versioned | None:
        """The value and version at ``namespace``/``key``, or ``None``."""

    async def put(
        self, namespace: str, key: str, value: bytes, *, expected_version: int | None = None
    ) -> int:
        """Store ``value`` and return its new version. With ``expected_version`` it is a
        compare-and-set (``0``: the key must not exist) raising ``VersionConflict``."""

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key; ``True`` if it existed."""

    async def keys(self, namespace: str) -> list[str]:
        """Every key of ``namespace``, sorted."""


class LogStore(Protocol):
    async def append(self, log: str, value: bytes) -> int:
        """Append ``value`` and return its ``seq``."""

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        """Entries with ``seq > after`` in ``seq`` order, at most ``limit`` of them."""

    async def remove(self, log: str, seq: int) -> bool:
        """Remove one entry in O(1); ``True`` if it existed."""

    async def length(self, log: str) -> int:
        """How many entries ``log`` holds."""


class CheckpointStore(Protocol):
    async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
        """Save (or replace) the checkpoint of ``run_id`` at ``step``."""

    async def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        """The checkpoint with the highest step, or ``None``."""

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        """Every checkpoint of the run, by step."""

    async def runs(self) -> list[str]:
        """Every run id that has checkpoints, sorted."""

    async def delete_run(self, run_id: str) -> int:
        """Remove every checkpoint of the run; returns how many there were."""


class Store(KeyValueStore, LogStore, CheckpointStore, Protocol):
    """A complete backend: key/value, logs, checkpoints and atomic batches."""

    async def write_batch(self, ops: Sequence[BatchOp]) -> list[int | bool | None]:
        """Apply ``ops`` atomically, in order; returns per operation the new version
        (``Put``), the new seq (``Append``) or whether something was removed
        (``Delete`` / ``Remove``). On any error nothing is applied."""

    async def aclose(self) -> None:
        """Release the backend's resources; the store is unusable afterwards."""
