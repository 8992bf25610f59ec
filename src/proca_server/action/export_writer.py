"""The file export's formats (docs/export.md, "From the command line"):

- CSV: one line per action, flat columns a spreadsheet opens (UTF-8, comma-separated,
  RFC 4180 quoting). The contact's columns follow the contact schemas of the campaigns in the
  export (a nested key is `outer.inner`), custom fields are `field:NAME` columns. A cell that
  a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
  return) is written with a `'` in front.
- JSON lines: one object per action, nested as the API nests it."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TextIO

from proca_server.action.export_file import ExportPlan, ExportRow, Tracking

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")

# the first characters that make a spreadsheet read a cell as a formula
FORMULA_START = "=+-@\t\r"


class Writer(Protocol):
    def write(self, rows: Sequence[ExportRow]) -> None: ...


def writer_for(format: Format, out: TextIO, plan: ExportPlan) -> Writer:
    return CsvWriter(out, plan) if format == "csv" else JsonlWriter(out)


def csv_columns(plan: ExportPlan) -> list[str]:
    return [
        "actionId",
        "createdAt",
        "actionType",
        "campaign",
        "actionPage",
        "contactRef",
        *plan.contact_columns,
        "contactOther",
        "optIn",
        "withConsent",
        "emailStatus",
        "emailStatusChanged",
        "tracking.source",
        "tracking.medium",
        "tracking.campaign",
        "tracking.content",
        "tracking.location",
        *(f"field:{name}" for name in plan.field_names),
        "contactStatus",
        "payload",
        "nonce",
        "publicKeyId",
        "signKeyId",
    ]


def safe(text: str) -> str:
    """A text cell a spreadsheet shows as text, never runs."""
    return "'" + text if text and text[0] in FORMULA_START else text


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value and value[0] in FORMULA_START else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    return safe(_json(value))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _csv_time(value: datetime | None) -> str:
    # UTC, as a spreadsheet reads a date and time (the database keeps whole seconds)
    return "" if value is None else str(value)[:19]


_NO_TRACKING = ("", "", "", "", "")
_NOT_SEALED = ("", "", "", "")
_BOOL = {True: "true", False: "false", None: ""}


class CsvWriter:
    def __init__(self, out: TextIO, plan: ExportPlan) -> None:
        self._csv = csv.writer(out, lineterminator="\r\n")
        # each contact column as (key, inner key of a nested object or None)
        self._paths = [
            (outer, inner or None)
            for outer, _, inner in (c.partition(".") for c in plan.contact_columns)
        ]
        self._tops = {outer for outer, _ in self._paths}
        self._nested: dict[str, set[str]] = {}
        for outer, inner in self._paths:
            if inner is not None:
                self._nested.setdefault(outer, set()).add(inner)
        self._no_contact = [""] * len(self._paths)
        self._fields = plan.field_names
        self._no_fields = [""] * len(self._fields)
        self._csv.writerow(csv_columns(plan))

    def write(self, rows: Sequence[ExportRow]) -> None:
        self._csv.writerows([self._line(row) for row in rows])

    def _line(self, row: ExportRow) -> list[Any]:
        if row.contact is None:
            contact, other = self._no_contact, ""
        else:
            contact, other = self._contact(row.contact)
        tracking = row.tracking
        fields = row.fields
        sealed = row.sealed
        return [
            row.action_id,
            str(row.created_at)[:19],
            safe(row.action_type),
            safe(row.campaign or ""),
            safe(row.action_page or ""),
            safe(row.contact_ref),
            *contact,
            other,
            _BOOL[row.opt_in],
            _BOOL[row.with_consent],
            row.email_status,
            _csv_time(row.email_status_changed),
            *(
                (
                    safe(tracking.source),
                    safe(tracking.medium),
                    safe(tracking.campaign),
                    safe(tracking.content),
                    safe(tracking.location),
                )
                if tracking is not None
                else _NO_TRACKING
            ),
            *([_cell(fields.get(name)) for name in self._fields] if fields else self._no_fields),
            row.status,
            *(
                (safe(sealed[0]), safe(sealed[1]), _cell(sealed[2]), _cell(sealed[3]))
                if sealed is not None
                else _NOT_SEALED
            ),
        ]

    def _contact(self, contact: dict[str, Any]) -> tuple[list[Any], str]:
        get = contact.get
        cells = []
        for outer, inner in self._paths:
            value = get(outer)
            if inner is not None and value is not None:
                value = value.get(inner) if isinstance(value, dict) else None
            if value.__class__ is str:
                if value and value[0] in FORMULA_START:
                    value = "'" + value
            elif value is not None:
                value = _cell(value)
            cells.append(value)
        return cells, self._other(contact)

    def _other(self, contact: dict[str, Any]) -> str:
        """The contact's keys that no column holds, as JSON ("" when there are none)."""
        other = {key: contact[key] for key in contact.keys() - self._tops}
        for outer, inners in self._nested.items():
            value = contact.get(outer)
            if value is None:
                continue
            if not isinstance(value, dict):
                other[outer] = value
            elif not inners.issuperset(value):
                other[outer] = {k: v for k, v in value.items() if k not in inners}
        return safe(_json(other)) if other else ""


class JsonlWriter:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, rows: Sequence[ExportRow]) -> None:
        self._out.write("".join(_json(record(row)) + "\n" for row in rows))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()[:19]


def _tracking(tracking: Tracking | None) -> dict[str, str] | None:
    if tracking is None:
        return None
    return {
        "source": tracking.source,
        "medium": tracking.medium,
        "campaign": tracking.campaign,
        "content": tracking.content,
        "location": tracking.location,
    }


def record(row: ExportRow) -> dict[str, Any]:
    """An action as one JSON object (times ISO 8601, UTC)."""
    sealed = row.sealed
    return {
        "actionId": row.action_id,
        "createdAt": _iso(row.created_at),
        "actionType": row.action_type,
        "campaign": {"id": row.campaign_id, "name": row.campaign},
        "actionPage": {"id": row.action_page_id, "name": row.action_page},
        "contactRef": row.contact_ref,
        "contact": row.contact,
        "contactStatus": row.status,
        "sealed": None
        if sealed is None
        else {
            "payload": sealed[0],
            "nonce": sealed[1],
            "publicKeyId": sealed[2],
            "signKeyId": sealed[3],
        },
        "privacy": {
            "optIn": row.opt_in,
            "withConsent": row.with_consent,
            "emailStatus": row.email_status,
            "emailStatusChanged": _iso(row.email_status_changed),
        },
        "tracking": _tracking(row.tracking),
        "customFields": row.fields,
    }
