"""What both databases can store, and how big PostgreSQL says a JSON value is.

PostgreSQL's text and jsonb cannot hold the NUL character, and no UTF-8 encoder takes a lone
surrogate (U+D800 to U+DFFF, which JSON's "\\ud800" escape can produce); NaN and the
infinities are not JSON numbers. Input that carries any of these is refused where it enters,
naming its field, instead of failing in the database.

The size checks on JSON columns (`max_fields_size`) measure what each database stores:
PostgreSQL `pg_column_size` of the jsonb value, its binary form; SQLite the length of the JSON
text. `stored_json_size` is the larger of the two, computed here, so that one validation
refuses exactly what either database would and both accept the same input."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

MAX_INTEGER_DIGITS: Final = 1000
"""Far beyond any real value, far below the interpreter's own conversion limit (4,300 digits),
so that the limit never depends on the interpreter's settings."""

NUL: Final = "must not contain the NUL character (U+0000)"
LONE_SURROGATE: Final = "must not contain a lone surrogate (U+D800 to U+DFFF)"
NOT_A_NUMBER: Final = "holds NaN or Infinity, which are not JSON numbers"
OUT_OF_RANGE: Final = "holds a number out of range"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored (a message for the client), or None."""
    if value.isascii():  # most input, and no surrogate can be there
        return NUL if "\x00" in value else None
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return NUL if found.group() == "\x00" else LONE_SURROGATE


def json_problem(value: Any) -> str | None:
    """Why a decoded JSON value cannot be stored: a string (key or value) that `text_problem`
    refuses, or a number that is not finite."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else NOT_A_NUMBER
    if isinstance(value, Mapping):
        for key, item in value.items():
            problem = (text_problem(key) if isinstance(key, str) else None) or json_problem(item)
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for item in value:
            problem = json_problem(item)
            if problem:
                return problem
    return None


def loads(text: str) -> Any:
    """`json.loads` that refuses NaN, Infinity, numbers beyond a double's range and integers
    beyond MAX_INTEGER_DIGITS with a ValueError whose message is for the client."""
    return _DECODER.decode(text)


def _refuse_constant(_: str) -> Any:
    raise ValueError(NOT_A_NUMBER)


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(OUT_OF_RANGE)
    return number


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(OUT_OF_RANGE)
    return int(text)


# one decoder for every call (json.loads with hooks builds a new one each time)
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_float, parse_int=_int)


def dumps_for_sqlite(value: Any) -> str:
    """JSON text as SQLite stores it: UTF-8 rather than \\u escapes (so that its size check
    counts a character as PostgreSQL does); escaped when a lone surrogate leaves no UTF-8."""
    text = json.dumps(value, ensure_ascii=False)
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return json.dumps(value)


def stored_json_size(value: Any) -> int:
    """The larger of the sizes the two databases' `max_fields_size` checks measure."""
    return max(jsonb_size(value), sqlite_json_size(value))


# jsonb takes at most this many bytes per byte of the JSON text SQLite stores, plus the
# constant: a one-digit number in an array, the worst case, is 2 bytes of text ("1, ") and 15
# of jsonb (its JEntry, alignment and the numeric datum); tests/test_odd_input.py checks it
JSONB_PER_TEXT_BYTE: Final = 8
JSONB_SLACK: Final = 16


def exceeds_stored_size(value: Any, limit: int) -> bool:
    """`stored_json_size(value) > limit`, without measuring the jsonb form of a value whose
    text is too short for it to pass the limit (the widget's custom fields, every time)."""
    text_size = sqlite_json_size(value)
    if text_size > limit:
        return True
    if JSONB_PER_TEXT_BYTE * text_size + JSONB_SLACK <= limit:
        return False
    return jsonb_size(value) > limit


def sqlite_json_size(value: Any) -> int:
    """`length(CAST(column AS BLOB))` of the value as SQLite stores it: its bytes."""
    return len(dumps_for_sqlite(value).encode())


# -- jsonb's binary form --------------------------------------------------------------------
# What PostgreSQL's jsonb_in builds (src/backend/utils/adt/jsonb_util.c, convertToJsonb): a
# 4-byte varlena header, then the root container. A container is int-aligned: a 4-byte
# header and a 4-byte JEntry per element (two per object pair: key and value), then the
# data, an object's keys first (sorted by length, then bytes) and then its values in the same
# order. Strings are their UTF-8 bytes; true, false and null take no data; a number is the
# numeric datum, int-aligned. A scalar at the root is an array of one element.

_VARHDRSZ: Final = 4
_NBASE_DIGITS: Final = 4  # decimal digits per numeric digit (NBASE 10000)


def jsonb_size(value: Any) -> int:
    """`pg_column_size` of the value as jsonb, before any compression (as a CHECK on an
    inserted row sees it). The value must be JSON: dicts with str keys, lists, str, int,
    finite float, bool, None."""
    root = value if isinstance(value, (Mapping, list, tuple)) else [value]
    return _size(root, _VARHDRSZ)


def _pad(offset: int) -> int:
    return (offset + 3) & ~3


def _size(value: Any, offset: int) -> int:
    """The buffer's end after `value` is written at `offset`."""
    if value is None or isinstance(value, bool):
        return offset
    if isinstance(value, str):
        return offset + len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (int, float)):
        return _pad(offset) + _numeric_size(json.dumps(value))
    if isinstance(value, Mapping):
        keys = sorted(
            ((k.encode("utf-8", "surrogatepass"), k) for k in value),
            key=lambda pair: (len(pair[0]), pair[0]),
        )
        offset = _pad(offset) + 4 + 8 * len(keys)
        offset += sum(len(encoded) for encoded, _ in keys)
        for _, key in keys:
            offset = _size(value[key], offset)
        return offset
    if isinstance(value, (list, tuple)):
        offset = _pad(offset) + 4 + 4 * len(value)
        for item in value:
            offset = _size(item, offset)
        return offset
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _numeric_size(text: str) -> int:
    """The size of PostgreSQL's numeric datum for a JSON number as json.dumps writes it
    (numeric_in, make_result): a 4-byte varlena header, a 2-byte header (4 when the scale or
    weight is too large for the short form), and 2 bytes per base-10000 digit between the
    first and the last non-zero one."""
    _, digits, exponent = Decimal(text).as_tuple()
    assert isinstance(exponent, int)  # finite: loads refused the rest
    scale = max(0, -exponent)
    significant = "".join(map(str, digits)).lstrip("0")
    if not significant:
        count, weight = 0, 0
    else:
        stripped = significant.rstrip("0")
        lowest = exponent + len(significant) - len(stripped)  # power of ten of the last digit
        highest = exponent + len(significant) - 1  # and of the first
        weight = highest // _NBASE_DIGITS
        count = weight - lowest // _NBASE_DIGITS + 1
    short = scale <= 63 and -64 <= weight <= 63
    return _VARHDRSZ + (2 if short else 4) + 2 * count
