"""``Codec``: typed values to JSON bytes and back, through cattrs.

Only types the caller registers can be encoded, and decoding always targets the type
the caller names: the bytes never choose a class, so stored data cannot make the
program import or construct anything it did not ask for. No pickle anywhere.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import cattrs
from cattrs.errors import BaseValidationError
from cattrs.preconf.json import make_converter

from ._errors import DecodeError, EncodeError

T = TypeVar("T")


def _describe_validation(exc: BaseException) -> str:
    if isinstance(exc, BaseValidationError):
        return "; ".join(cattrs.transform_error(exc)) or str(exc)
    return f"{type(exc).__name__}: {exc}"


class Codec:
    """Encodes registered types as compact JSON and decodes bytes into a named type.

    Register every type you store with :meth:`register` (attrs classes, dataclasses,
    enums and containers of them are handled by cattrs; primitives and containers of
    primitives need no registration). A union type is registered as a whole and decoded
    by cattrs' union disambiguation, so each member must be distinguishable by its fields.
    """

    def __init__(self, converter: cattrs.Converter | None = None) -> None:
        self.converter: cattrs.Converter = converter or make_converter()
        self._registered: set[Any] = {str, int, float, bool, type(None)}

    def register(self, *types: Any) -> Codec:
        """Allow ``types`` to be encoded and decoded; returns the codec for chaining."""
        self._registered.update(types)
        return self

    def is_registered(self, tp: Any) -> bool:
        return tp in self._registered

    def encode(self, value: object, as_type: Any = None) -> bytes:
        """JSON bytes for ``value``; ``as_type`` (default ``type(value)``) must be registered.

        Raises :class:`EncodeError` for unregistered types.
        """
        tp = type(value) if as_type is None else as_type
        if tp not in self._registered and not self._is_plain(value):
            raise EncodeError(
                f"type {getattr(tp, '__name__', tp)!r} is not registered with this codec; "
                "call codec.register(...) first"
            )
        try:
            raw = self.converter.unstructure(value, tp)
            return json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"cannot encode {value!r}: {exc}") from exc

    def decode(self, data: bytes, as_type: type[T] | Any, key: str) -> T:
        """Decode ``data`` (read from ``key``) into ``as_type``.

        Raises :class:`DecodeError` naming ``key`` when the bytes are not UTF-8 JSON or do
        not have the shape of ``as_type``; raises :class:`EncodeError` when ``as_type``
        was never registered (a programming error, not bad data).
        """
        if as_type not in self._registered:
            raise EncodeError(
                f"type {getattr(as_type, '__name__', as_type)!r} is not registered with this "
                "codec; call codec.register(...) first"
            )
        name = getattr(as_type, "__name__", None) or str(as_type)
        try:
            raw = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DecodeError(
                key, name, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DecodeError(key, name, f"not JSON ({exc.msg} at position {exc.pos})") from exc
        try:
            value: T = self.converter.structure(raw, as_type)
        except Exception as exc:
            raise DecodeError(key, name, _describe_validation(exc)) from exc
        return value

    @staticmethod
    def _is_plain(value: object) -> bool:
        """JSON-native values (and lists / dicts of them) need no registration."""
        if value is None or isinstance(value, str | int | float | bool):
            return True
        if isinstance(value, list | tuple):
            return all(Codec._is_plain(v) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and Codec._is_plain(v) for k, v in value.items())
        return False
