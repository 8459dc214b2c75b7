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


class LeaseHeld(StoreError):
    """Someone else holds an unexpired lease on the resource.

    ``holder`` is its owner id and ``expires_in`` the seconds until its lease expires
    (store clock): retry after that, or wait as a standby.
    """

    def __init__(self, resource: str, holder: str, expires_in: float) -> None:
        self.resource = resource
        self.holder = holder
        self.expires_in = expires_in
        super().__init__(
            f"{resource} is held by {holder!r}; its lease expires in {expires_in:.1f}s "
            "unless renewed"
        )


class LeaseLost(StoreError):
    """A write or renewal was made with a token that is no longer the resource's: the
    lease expired and another owner took the resource over (``current_owner``, with
    ``current_token``), or it was released. Nothing was applied; stop working on the
    resource — the new owner's state must not be overwritten."""

    def __init__(
        self, resource: str, token: int, current_owner: str | None, current_token: int | None
    ) -> None:
        self.resource = resource
        self.token = token
        self.current_owner = current_owner
        self.current_token = current_token
        now = (
            "it has no lease any more"
            if current_token is None
            else f"it is now held by {current_owner!r} with token {current_token}"
            if current_owner
            else f"it was released (token {current_token})"
        )
        super().__init__(f"lease on {resource} with token {token} was lost: {now}")
