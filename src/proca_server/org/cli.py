"""`proca-server orgs list`: every org with its counts; and the org lookup of the operator's
commands."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.command import in_transaction, run, settings
from proca_server.errors import UserInputError
from proca_server.kit.table import format_table
from proca_server.models import Org
from proca_server.org.repository import OrgCounts, get_org_by_name, org_counts

orgs_app = typer.Typer(help="Organisations.", no_args_is_help=True)

COLUMNS = ("org", "title", "campaigns", "pages", "staff", "actions", "supporters", "contacts")


async def require_org(session: AsyncSession, name: str) -> Org:
    """The org named so, or the one-line error of a command."""
    org = await get_org_by_name(session, name)
    if org is None:
        raise UserInputError(f"no org named {name}")
    return org


def _cells(row: OrgCounts) -> list[object]:
    return [
        row.name,
        row.title,
        row.campaigns,
        row.action_pages,
        row.staff,
        row.actions,
        row.supporters,
        row.contacts,
    ]


@orgs_app.command("list")
def list_orgs(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object a line instead.")
    ] = False,
) -> None:
    """List the orgs with their counts: campaigns they lead, their action pages and staff,
    the actions and supporters of their pages, and the contacts they received."""
    rows = run(in_transaction(settings(), org_counts))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(dataclasses.asdict(row), separators=(",", ":")))
        return
    if not rows:
        typer.echo("no orgs")
        return
    for line in format_table(COLUMNS, [_cells(row) for row in rows]):
        typer.echo(line)
