"""Durable storage behind small protocols.

Engines persist versioned key/value records, append-only logs and checkpoints through
:class:`Store`, and own what they run through leases with fencing tokens (:class:`Lease`,
:class:`Fence`, :class:`LeaseLost`); :class:`MemoryStore` serves tests,
:class:`SqliteStore` is the embedded default. Values become bytes through :class:`Codec`
(cattrs to JSON, registered types only): never pickle, never a class chosen by stored data.
"""

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
from ._memory import MemoryStore
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
]
