"""Strict structuring for the codec's cattrs converter: a value must already have its type.

cattrs' default hooks convert: ``bool("false")`` is ``True``, ``int(2.9)`` is ``2``, ``str``
of a dict is its repr, and ``list("123")`` is ``["1", "2", "3"]``. Stored bytes that
decode to such type-confused values are damage or tampering, not data, so these hooks
accept exactly what the encoder writes: a JSON string for ``str``, a JSON integer (not a
bool, not a float) for ``int``, a number for ``float``, ``true``/``false`` for ``bool``, an
array for sequences and sets, an object for mappings, and an enum member's own value.
Errors are raised inside cattrs so its validation reports the path to the bad field.
"""

from __future__ import annotations

import collections.abc
import enum
import re
import typing
from collections.abc import Callable
from typing import Any

import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory

_LISTS = {
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.MutableSet,
}
_MAPPINGS = {dict, collections.abc.Mapping, collections.abc.MutableMapping}
_INTEGER_KEY = re.compile(r"-?(0|[1-9][0-9]{0,99})")


def _json_kind(value: object) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds |= {list: "an array", dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _exact(expected: type, name: str) -> Any:
    def hook(value: object, _: object) -> Any:
        if type(value) is not expected:
            raise TypeError(f"expected {name}, found {_json_kind(value)}")
        return value

    return hook


def _number(value: object, _: object) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise TypeError(f"expected a number, found {_json_kind(value)}")


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp) or tp


def _is_list_like(tp: Any) -> bool:
    return _origin(tp) in _LISTS


def _is_mapping(tp: Any) -> bool:
    return _origin(tp) in _MAPPINGS


def _list_factory(tp: Any, converter: cattrs.Converter) -> Any:
    origin = _origin(tp)
    args = typing.get_args(tp)
    inner: Callable[[Any, Any], Any]
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        inner = converter.gen_structure_hetero_tuple(tp)
    elif origin in (list, collections.abc.MutableSequence):
        inner = list_structure_factory(tp, converter)
    elif origin in (tuple, collections.abc.Sequence):
        inner = homogenous_tuple_structure_factory(tp, converter)
    elif origin in (frozenset, collections.abc.Set):
        inner = converter._structure_frozenset
    else:
        inner = converter._structure_set

    def hook(value: object, _: object) -> Any:
        if type(value) is not list:
            raise TypeError(f"expected an array, found {_json_kind(value)}")
        return inner(value, tp)

    return hook


def _mapping_factory(tp: Any, converter: cattrs.Converter) -> Any:
    args = typing.get_args(tp)
    key_type, value_type = args if len(args) == 2 else (Any, Any)
    if key_type in (str, Any):
        inner = converter.gen_structure_mapping(dict[key_type, value_type])  # type: ignore[valid-type]
        convert_key = None
    else:
        # JSON object keys are strings: keys of other types were written as strings.
        inner = converter.gen_structure_mapping(dict[str, value_type])  # type: ignore[valid-type]
        convert_key = _key_converter(key_type, converter)

    def hook(value: object, _: object) -> Any:
        if type(value) is not dict:
            raise TypeError(f"expected an object, found {_json_kind(value)}")
        structured = inner(value, tp)
        if convert_key is None:
            return structured
        return {convert_key(key): item for key, item in structured.items()}

    return hook


def _key_converter(key_type: Any, converter: cattrs.Converter) -> Any:
    if key_type is int:

        def integer_key(key: str) -> int:
            if not _INTEGER_KEY.fullmatch(key):
                raise ValueError(f"expected an integer key, found {key!r}")
            return int(key)

        return integer_key
    hook = converter.get_structure_hook(key_type)
    return lambda key: hook(key, key_type)


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _enum_factory(tp: Any, converter: cattrs.Converter) -> Any:
    members = {(type(member.value), member.value): member for member in tp}

    def hook(value: object, _: object) -> Any:
        try:
            return members[(type(value), value)]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a value of {tp.__name__}") from None

    return hook


def make_strict(converter: cattrs.Converter) -> cattrs.Converter:
    """Register the strict hooks on ``converter`` (registered last, so they win)."""
    converter.register_structure_hook(str, _exact(str, "a string"))
    converter.register_structure_hook(bool, _exact(bool, "a boolean"))
    converter.register_structure_hook(int, _exact(int, "an integer"))
    converter.register_structure_hook(float, _number)
    converter.register_structure_hook_factory(_is_enum, lambda tp: _enum_factory(tp, converter))
    converter.register_structure_hook_factory(
        _is_list_like, lambda tp: _list_factory(tp, converter)
    )
    converter.register_structure_hook_factory(
        _is_mapping, lambda tp: _mapping_factory(tp, converter)
    )
    return converter
