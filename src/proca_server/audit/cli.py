"""`proca-server audit`: the audit trail, newest first.

On a terminal the entries are a table; otherwise one line each, tab-separated (time, actor,
action, org, resource, count, details as JSON), for grep and cut; `--json` prints one JSON
object a line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.audit import repository
from proca_server.command import in_transaction, run, settings
from proca_server.errors import UserInputError
from proca_server.kit.table import format_table
from proca_server.models import AuditLog
from proca_server.org.repository import get_org_by_name


def parse_since(value: str) -> datetime:
    """A date (that day's start, UTC) or an ISO 8601 date and time (UTC unless it says)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserInputError(
            "--since must be a date (YYYY-MM-DD) or an ISO 8601 date and time"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Line:
    entry: AuditLog
    org: str | None

    def as_dict(self) -> dict[str, Any]:
        details = dict(self.entry.changeset or {})
        count = details.pop("count", None)
        return {
            "at": _when(self.entry.inserted_at),
            "actor": self.entry.actor_id,
            "action": self.entry.resource,
            "org": self.org,
            "org_id": self.entry.org_id,
            "resource_id": self.entry.resource_id,
            "count": count,
            "details": details,
        }

    def cells(self) -> list[str]:
        item = self.as_dict()
        org = self.org or ("" if self.entry.org_id is None else f"#{self.entry.org_id}")
        count = "" if item["count"] is None else str(item["count"])
        details = json.dumps(item["details"], separators=(",", ":")) if item["details"] else ""
        return [item["at"], item["actor"], item["action"], org, item["resource_id"], count, details]


COLUMNS = ("when (UTC)", "actor", "action", "org", "resource", "count", "details")


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def list_lines(
    session: AsyncSession, org_name: str | None, since: datetime | None, limit: int
) -> list[Line]:
    org_id = None
    if org_name is not None:
        org = await get_org_by_name(session, org_name)
        if org is None:
            raise UserInputError(f"no org named {org_name}")
        org_id = org.id
    entries = await repository.list_entries(session, org_id=org_id, since=since, limit=limit)
    names = await repository.org_names(session, (e.org_id for e in entries if e.org_id))
    return [Line(e, names.get(e.org_id) if e.org_id else None) for e in entries]


def audit(
    org: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only the entries of this org.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Only entries from then on (YYYY-MM-DD, or ISO 8601)."),
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many entries.")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object a line instead.")
    ] = False,
) -> None:
    """List the audit trail, newest first: staff reads of personal data, key changes,
    erasures."""
    if limit < 1:
        raise UserInputError("--limit must be at least 1")
    start = parse_since(since) if since is not None else None

    async def work(session: AsyncSession) -> list[Line]:
        return await list_lines(session, org, start, limit)

    lines = run(in_transaction(settings(), work))
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line.as_dict(), separators=(",", ":")))
    elif sys.stdout.isatty():
        _print_table(lines)
    else:
        for line in lines:
            typer.echo("\t".join(line.cells()))


def _print_table(lines: Sequence[Line]) -> None:
    if not lines:
        typer.echo("no audit entries")
        return
    rows: list[list[Any]] = []
    for line in lines:
        cells: list[Any] = line.cells()
        if cells[5]:
            cells[5] = int(cells[5])  # right-aligned
        rows.append(cells)
    for text in format_table(COLUMNS, rows):
        typer.echo(text)
