"""Regenerates ``tests/store/corpus/``: hostile inputs near the decoder's limits.

Run ``python -m tests.store._make_corpus`` after changing a limit; the files are kept in
the repository so that the tests read exactly the bytes that were reviewed.
"""

from __future__ import annotations

import sys
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def inputs() -> dict[str, bytes]:
    limit = sys.get_int_max_str_digits() or 4300
    return {
        "deep-array-50000.json": b"[" * 50_000 + b"]" * 50_000,
        "deep-object-50000.json": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "deep-array-990.json": b"[" * 990 + b"]" * 990,
        "int-5000-digits.json": b"9" * 5000,
        "int-at-limit.json": b"7" * limit,
        "int-past-limit.json": b"7" * (limit + 1),
        "float-huge-exponent.json": b"1e999999",
        "long-string.json": b'"' + b"x" * 200_000 + b'"',
        "unterminated-string.json": b'"' + b"x" * 10_000,
        "invalid-utf8.json": b'"\xff\xfe"',
        "lone-surrogate.json": b'"\\ud800"',
        "nul-bytes.json": b"\x00" * 100,
        "bool-as-string.json": b'"false"',
        "dict-for-string.json": b'{"a": 1}',
        "float-for-int.json": b"2.9",
        "string-for-int-list.json": b'"123"',
        "quote-price-text.json": b'{"symbol": "X", "price": "12.5"}',
        "quote-price-bool.json": b'{"symbol": "X", "price": true}',
        "quote-symbol-number.json": b'{"symbol": 7, "price": 1.0}',
        "quote-missing-field.json": b'{"symbol": "X"}',
        "quote-array.json": b'["X", 1.0]',
        "pickle-header.bin": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00",
    }


if __name__ == "__main__":
    CORPUS.mkdir(exist_ok=True)
    for name, data in inputs().items():
        (CORPUS / name).write_bytes(data)
    print(f"wrote {len(inputs())} files to {CORPUS}")
