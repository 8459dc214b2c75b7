"""Durable storage behind small protocols.

Engines persist versioned key/value records, append-only logs and checkpoints through
:class:`Store`, and own what they run through leases with fencing tokens (:class:`Lease`,
:class:`Fence`, :class:`LeaseLost`); :class:`MemoryStore` serves tests,
:class:`SqliteStore` is the embedded default. Values become bytes through :class:`Codec`
(cattrs to JSON, registered types only): never pickle, never a class chosen by stored data.
"""

from typing import TYPE_CHECKING, Any

from ._codec import Codec
from ._errors import (
    BackendError,
    DecodeError,
    EncodeError,
    LeaseHeld,
    LeaseLost,
    SchemaError,
    StoreError,
    VersionConflict,
)
from ._holder import HeldLease, hold_lease, keep_lease, lease_channel
from ._memory import MemoryStore
from ._open import is_postgres_dsn, open_store
from ._protocols import (
    Append,
    BatchOp,
    Checkpoint,
    CheckpointStore,
    Delete,
    DropLease,
    Fence,
    KeyValueStore,
    Lease,
    LeaseStore,
    Listener,
    LogEntry,
    LogStore,
    NotificationStore,
    Notify,
    OfferLease,
    Put,
    ReleaseLease,
    Remove,
    Store,
    Versioned,
)
from ._sqlite import SCHEMA_VERSION, Durability, SqliteStore
from ._typed import TypedKeyValue, TypedLog

if TYPE_CHECKING:
    from ._postgres import PostgresStore


def __getattr__(name: str) -> Any:
    # PostgresStore needs psycopg (the ``postgres`` extra); import it only when asked.
    if name == "PostgresStore":
        try:
            from ._postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(
                "PostgresStore needs psycopg 3: pip install 'fsmflow[postgres]'"
            ) from exc
        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SCHEMA_VERSION",
    "Append",
    "BackendError",
    "BatchOp",
    "Checkpoint",
    "CheckpointStore",
    "Codec",
    "DecodeError",
    "Delete",
    "DropLease",
    "Durability",
    "EncodeError",
    "HeldLease",
    "Fence",
    "KeyValueStore",
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "LeaseStore",
    "Listener",
    "LogEntry",
    "LogStore",
    "MemoryStore",
    "NotificationStore",
    "Notify",
    "OfferLease",
    "PostgresStore",
    "Put",
    "ReleaseLease",
    "Remove",
    "SchemaError",
    "SqliteStore",
    "Store",
    "StoreError",
    "TypedKeyValue",
    "TypedLog",
    "Versioned",
    "VersionConflict",
    "hold_lease",
    "is_postgres_dsn",
    "keep_lease",
    "lease_channel",
    "open_store",
]
