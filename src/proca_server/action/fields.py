"""Custom fields of an action: a flat JSON map (strings, numbers, booleans, lists
of strings or of numbers), at most `MAX_FIELDS_BYTES` (5 KB) once stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proca_server.errors import BadArgument
from proca_server.kit.storable import exceeds_stored_size
from proca_server.models.action import MAX_FIELDS_BYTES


def _flat_value(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value) or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
    return False


def merge_fields(
    custom_fields: Mapping[str, Any] | None, legacy: Sequence[tuple[str, str]] | None
) -> dict[str, Any]:
    """customFields plus the deprecated key/value list; a repeated key becomes a list."""
    out: dict[str, Any] = dict(custom_fields or {})
    for key, value in legacy or ():
        if key in out:
            current = out[key]
            out[key] = [*current, value] if isinstance(current, list) else [current, value]
        else:
            out[key] = value
    return out


def check_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in fields.items():
        if not isinstance(key, str) or not key:
            raise BadArgument("keys must be non-empty strings", field="customFields")
        if not _flat_value(value):
            raise BadArgument(
                f"{key}: values must be strings, numbers, booleans or lists of strings or numbers",
                field="customFields",
            )
    # measured as the databases' max_fields_size checks measure it (kit/storable.py)
    if exceeds_stored_size(fields, MAX_FIELDS_BYTES):
        raise BadArgument(f"must be at most {MAX_FIELDS_BYTES} bytes", field="customFields")
    return dict(fields)
