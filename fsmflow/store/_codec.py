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
from cattrs.v import format_exception

from ._errors import DecodeError, EncodeError
from ._strict import make_strict

T = TypeVar("T")

#: The largest value :meth:`Codec.decode` accepts unless told otherwise (64 MiB).
DEFAULT_MAX_BYTES = 64 << 20


def _format(exc: BaseException, type_: Any) -> str:
    """One failure inside a structure, in words (the path is appended by cattrs)."""
    if isinstance(exc, TypeError | ValueError) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def _describe_validation(exc: BaseException) -> str:
    """Every failure cattrs found, each with the path to its field (``@ $.inner.n``)."""
    if isinstance(exc, BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, format_exception=_format)) or str(exc)
    return f"{_format(exc, None)} @ $"


class Codec:
    """Encodes registered types as compact JSON and decodes bytes into a named type.

    Register every type you store with :meth:`register` (attrs classes, dataclasses,
    enums and containers of them are handled by cattrs; primitives and containers of
    primitives need no registration). A union type is registered as a whole and decoded
    by cattrs' union disambiguation, so each member must be distinguishable by its fields.

    Decoding is strict and bounded: a value must already have its declared type
    (``"false"`` is not a bool, ``2.9`` not an int, ``"123"`` not a ``list[int]``), input
    larger than ``max_bytes``, nested too deeply or with integers of more than 4,300
    digits is refused, and every refusal is a :class:`DecodeError` naming the key and the
    path to the bad field. The default converter is made strict; a ``converter`` you pass
    is made strict too (its own hooks for your types still apply).
    """

    def __init__(
        self, converter: cattrs.Converter | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.converter: cattrs.Converter = make_strict(converter or make_converter())
        self.max_bytes = max_bytes
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
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(key, name, f"expected bytes, found {type(data).__name__}")
        if len(data) > self.max_bytes:
            raise DecodeError(
                key, name, f"{len(data)} bytes is more than the limit of {self.max_bytes}"
            )
        try:
            raw = json.loads(bytes(data).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DecodeError(
                key, name, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DecodeError(key, name, f"not JSON ({exc.msg} at position {exc.pos})") from exc
        except RecursionError as exc:
            raise DecodeError(key, name, "JSON nested too deeply") from exc
        except ValueError as exc:  # e.g. an integer past Python's digit limit
            raise DecodeError(key, name, f"not acceptable JSON ({exc})") from exc
        try:
            value: T = self.converter.structure(raw, as_type)
        except RecursionError as exc:
            raise DecodeError(key, name, "value nested too deeply") from exc
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
