"""Custom scalars with the original's wire formats."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any, NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition


def _parse_json(value: Any) -> dict[str, Any]:
    # Clients send Json as a string holding a JSON object, never as a raw object.
    if not isinstance(value, str):
        raise ValueError("Json must be a string holding a JSON object")
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError("Json is not valid JSON") from exc
    if not isinstance(decoded, dict):
        raise ValueError("Json must hold a JSON object")
    return decoded


def _serialize_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _serialize_naive(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def _parse_naive(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.replace(tzinfo=UTC)


def _serialize_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("DateTime needs a time zone offset")
    return parsed.astimezone(UTC)


Json = NewType("Json", object)
NaiveDateTime = NewType("NaiveDateTime", datetime)
DateTime = NewType("DateTime", datetime)
Date = NewType("Date", date)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    Json: strawberry.scalar(
        name="Json",
        description="A JSON object, sent and received as a string holding it.",
        serialize=_serialize_json,
        parse_value=_parse_json,
    ),
    NaiveDateTime: strawberry.scalar(
        name="NaiveDateTime",
        description="A date and time without time zone (UTC), ISO 8601.",
        serialize=_serialize_naive,
        parse_value=_parse_naive,
    ),
    DateTime: strawberry.scalar(
        name="DateTime",
        description="A date and time in UTC, ISO 8601 with `Z`.",
        serialize=_serialize_datetime,
        parse_value=_parse_datetime,
    ),
    Date: strawberry.scalar(
        name="Date",
        serialize=lambda v: v.isoformat(),
        parse_value=lambda v: date.fromisoformat(str(v)),
    ),
}
