from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from proca_server.graphql import scalars


def test_json_input_must_be_a_string_holding_an_object() -> None:
    assert scalars._parse_json('{"a": [1, "x"]}') == {"a": [1, "x"]}
    for bad in ({"a": 1}, "[1,2]", '"text"', "{nope", 3, None):
        with pytest.raises(ValueError):
            scalars._parse_json(bad)


def test_json_output_is_a_string() -> None:
    assert scalars._serialize_json({"a": "é", "b": [1]}) == '{"a":"é","b":[1]}'


def test_datetime_formats() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert scalars._serialize_naive(moment) == "2026-01-02T03:04:05"
    assert scalars._serialize_datetime(moment) == "2026-01-02T03:04:05Z"
    cet = moment.astimezone(timezone(timedelta(hours=1)))
    assert scalars._serialize_datetime(cet) == "2026-01-02T03:04:05Z"
    assert scalars._parse_datetime("2026-01-02T04:04:05+01:00") == moment
    assert scalars._parse_naive("2026-01-02T03:04:05") == moment
    with pytest.raises(ValueError):
        scalars._parse_datetime("2026-01-02T03:04:05")
