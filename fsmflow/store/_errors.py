"""Typed errors of the storage layer."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by :mod:`fsmflow.store`."""


class BackendError(StoreError):
    """The backend failed an operation (disk full, database locked, file corrupt,
    connection lost). ``cause`` is the backend's own message, e.g. ``"database or disk is
    full"``; the original exception is chained. Nothing of the failed write was applied.
    """

    def __init__(self, operation: str, cause: str) -> None:
        self.operation = operation
        self.cause = cause
        super().__init__(f"{operation} failed: {cause}")


class DecodeError(StoreError):
    """Stored bytes could not be decoded into the type the caller expected.

    ``key`` names where the bytes came from and ``reason`` what was wrong with them
    (not JSON, wrong shape, a field of the wrong type...). The bytes are never executed
    or used to pick a class: decoding only ever produces the caller's registered type.
    """

    def __init__(self, key: str, expected: str, reason: str) -> None:
        self.key = key
        self.expected = expected
        self.reason = reason
        super().__init__(f"cannot decode {key} as {expected}: {reason}")


class EncodeError(StoreError):
    """A value could not be encoded (its type is not registered with the codec)."""


class VersionConflict(StoreError):
    """A compare-and-set write found another version than the one it expected: someone
    else wrote the key first. Re-read and retry, or give up."""

    def __init__(self, key: str, expected: int | None, actual: int | None) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"version conflict on {key}: expected {expected}, found {actual}; re-read and retry"
        )


class SchemaError(StoreError):
    """The database was written by a newer fsmflow (unknown schema version)."""
