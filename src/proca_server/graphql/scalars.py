"""Custom scalars with the original's wire formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NewType, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

from proca_server.errors import BadArgument
from proca_server.kit import storable

_T = TypeVar("_T")


class Refused(GraphQLError, ValueError):
    """An input value a scalar refuses. graphql-core reports a GraphQLError as it is, in a
    message naming the argument and the path within it (and never the value, which a plain
    exception's message would repeat); the BadArgument behind it gives the code, bad_arg."""

    def __init__(self, message: str) -> None:
        super().__init__(message, original_error=BadArgument(message))


def _parse_json(value: Any) -> dict[str, Any]:
    # Clients send Json as a string holding a JSON object, never as a raw object.
    if not isinstance(value, str):
        raise Refused("Json must be a string holding a JSON object")
    try:
        decoded = storable.loads(value)
        # What no database column takes: refused here, for every Json input (customFields,
        # donation payloads, configs), rather than failing in the INSERT.
        problem = storable.json_problem(decoded)
    except json.JSONDecodeError as exc:
        raise Refused("Json is not valid JSON") from exc
    except ValueError as exc:  # a number storable.loads refuses; its message says which
        raise Refused(f"Json {exc}") from exc
    except RecursionError as exc:
        raise Refused("Json is nested too deeply") from exc
    if not isinstance(decoded, dict):
        raise Refused("Json must hold a JSON object")
    if problem is not None:
        raise Refused(f"Json {problem}")
    return decoded


def _serialize_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _serialize_naive(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def _parsed(parse: Callable[[Any], _T], message: str) -> Callable[[Any], _T]:
    """`parse`, refusing what it cannot parse with `message` (not Python's, which repeats the
    value)."""

    def parsed(value: Any) -> _T:
        try:
            return parse(str(value))
        except (ValueError, TypeError) as exc:
            raise Refused(message) from exc

    return parsed


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
        parse_value=_parsed(_parse_naive, "NaiveDateTime must be an ISO 8601 date and time"),
    ),
    DateTime: strawberry.scalar(
        name="DateTime",
        description="A date and time in UTC, ISO 8601 with `Z`.",
        serialize=_serialize_datetime,
        parse_value=_parsed(
            _parse_datetime, "DateTime must be an ISO 8601 date and time with a time zone"
        ),
    ),
    Date: strawberry.scalar(
        name="Date",
        serialize=lambda v: v.isoformat(),
        parse_value=_parsed(date.fromisoformat, "Date must be an ISO 8601 date (YYYY-MM-DD)"),
    ),
}
