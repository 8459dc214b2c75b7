"""Journal and control-log entries: a JSON header line, then (for values) the value's
JSON encoded with the workflow's codec as its declared type.

Journal entries (``k``): ``out`` (step ``s`` returned the value), ``undo`` (the undo of
step ``s`` ran: ``ok``, or failed with ``e``), ``timer`` (a durable timer of step ``s``,
attempt ``a``, operation ``o``, due ``at`` on the store clock). Control entries: ``signal``
(of the declared signal type named ``t``) and ``cancel``.
"""

from __future__ import annotations

import json
from typing import Any

from ..store import DecodeError


def frame(header: dict[str, Any], value: bytes = b"") -> bytes:
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + value


def unframe(raw: bytes, key: str) -> tuple[dict[str, Any], bytes]:
    head, newline, value = raw.partition(b"\n")
    if not newline:
        raise DecodeError(key, "a durable run entry", "no header line")
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(key, "a durable run entry", f"bad header ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("k"), str):
        raise DecodeError(key, "a durable run entry", f"header without a kind: {header!r}")
    return header, value


def field(header: dict[str, Any], name: str, kind: type | tuple[type, ...], key: str) -> Any:
    """``header[name]``, which must be a ``kind`` (bools are not ints here)."""
    value = header.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DecodeError(key, "a durable run entry", f"{name!r} is not a number")
    return value
