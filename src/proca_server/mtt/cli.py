"""`proca-server mtt export` and `proca-server mtt status` (docs/mail-to-target.md).

The export writes RFC 4180 CSV (Python's csv defaults: minimal quoting, `\\r\\n` line ends)
to stdout as the rows come from the database; the progress bar, when there is one, goes to
stderr, so that stdout stays the CSV alone."""

from __future__ import annotations

import csv
import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.audit import service as audit
from proca_server.command import in_transaction, run, settings
from proca_server.errors import UserInputError
from proca_server.kit.progress import Progress
from proca_server.kit.table import format_table
from proca_server.kit.time import utcnow
from proca_server.mtt.reports import (
    EXPORT_HEADER,
    CampaignMttStatus,
    ExportFilter,
    TargetMttStatus,
    campaign_status,
    count_export,
    count_export_by_org,
    export_pages,
    get_campaign_id,
    target_status,
)

mtt_app = typer.Typer(help="Mail to target: exports and sending status.", no_args_is_help=True)


def _parse_uuids(values: Sequence[str]) -> list[uuid.UUID]:
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value.strip()))
        except ValueError:
            raise UserInputError(f"not a target UUID: {value}") from None
    return ids


async def _campaign_id(session: AsyncSession, name: str) -> int:
    campaign_id = await get_campaign_id(session, name)
    if campaign_id is None:
        raise UserInputError(f"no campaign named {name}")
    return campaign_id


@mtt_app.command("export")
def export(
    target: Annotated[
        list[str] | None,
        typer.Option("--target", metavar="EMAIL", help="A target's email; repeatable."),
    ] = None,
    target_uuid: Annotated[
        list[str] | None,
        typer.Option("--target-uuid", metavar="UUID", help="A target's id; repeatable."),
    ] = None,
    campaign: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only the messages of this campaign.")
    ] = None,
    include_duplicates: Annotated[
        bool,
        typer.Option(
            "--include-duplicates",
            help="Include the messages of repeated actions, and those not ranked yet.",
        ),
    ] = False,
) -> None:
    """Print the messages sent to the targets as CSV, oldest action first.

    Columns: first_name, last_name, email, area, campaign_name,
    target_name, msg_subject, msg_body, created_at (the action's time, UTC)."""
    emails = [e for e in target or [] if e.strip()]
    ids = _parse_uuids(target_uuid or [])
    if not emails and not ids:
        raise UserInputError("give at least one --target EMAIL or --target-uuid UUID")

    async def work(session: AsyncSession) -> int:
        campaign_id = await _campaign_id(session, campaign) if campaign is not None else None
        where = ExportFilter(emails, ids, campaign_id, include_duplicates)
        return await _write_csv(session, where)

    try:
        written = run(in_transaction(settings(), work))
    except BrokenPipeError:
        # the reader went away (`| head`): not a failure of the database, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    if written == 0:
        given = ", ".join([*emails, *map(str, ids)])
        typer.echo(f"No messages found for {given}", err=True)


async def _write_csv(session: AsyncSession, where: ExportFilter) -> int:
    out = sys.stdout
    writer = csv.writer(out)
    total = None
    if sys.stderr.isatty():
        total = await count_export(session, where)
        if total == 0:
            return 0
    with Progress("exporting", total) as progress:
        async for rows in export_pages(session, where):
            if progress.done == 0:
                writer.writerow(EXPORT_HEADER)
            writer.writerows(rows)
            progress.advance(len(rows))
        out.flush()
    if progress.done:
        # supporters' names and emails were read: one audit entry per org concerned
        for org_id, count in (await count_export_by_org(session, where)).items():
            audit.record(
                session,
                actor=audit.CLI,
                action="mtt_export",
                org_id=org_id,
                count=count,
                details={
                    "campaign_id": where.campaign_id,
                    "targets": len(where.emails) + len(where.target_ids),
                },
            )
    return progress.done


@mtt_app.command("status")
def status(
    campaign: Annotated[
        str | None,
        typer.Argument(metavar="CAMPAIGN", help="One campaign; every MTT campaign when omitted."),
    ] = None,
    targets: Annotated[
        bool, typer.Option("--targets", help="Also list the campaign's targets.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show where the sending of each mail-to-target campaign stands."""
    if targets and campaign is None:
        raise UserInputError("--targets needs a CAMPAIGN")

    async def work(
        session: AsyncSession,
    ) -> tuple[list[CampaignMttStatus], list[TargetMttStatus] | None]:
        if campaign is not None:
            await _campaign_id(session, campaign)
        found = await campaign_status(session, campaign, utcnow())
        if campaign is not None and not found:
            raise UserInputError(f"campaign {campaign} has no mail-to-target settings")
        per_target = await target_status(session, found[0].campaign_id) if targets else None
        return found, per_target

    found, per_target = run(in_transaction(settings(), work))
    if as_json:
        items = [s.as_dict() for s in found]
        if per_target is not None:
            items[0]["targets"] = [t.as_dict() for t in per_target]
        typer.echo(json.dumps(items, indent=2))
        return
    if not found:
        typer.echo("no campaign has mail-to-target settings")
        return
    for line in format_table(CAMPAIGN_COLUMNS, [_campaign_row(s) for s in found]):
        typer.echo(line)
    if per_target is not None:
        typer.echo("")
        for line in format_table(TARGET_COLUMNS, [_target_row(t) for t in per_target]):
            typer.echo(line)


CAMPAIGN_COLUMNS = (
    "campaign",
    "mode",
    "start (UTC)",
    "end (UTC)",
    "timezone",
    "sent",
    "pending",
    "failed",
    "cancelled",
    "undeliverable",
    "in doubt",
    "duplicates",
    "unranked",
    "targets",
    "no email",
    "state",
)
TARGET_COLUMNS = (
    "target",
    "external id",
    "sent",
    "pending",
    "failed",
    "undeliverable",
    "usable email",
)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _campaign_row(s: CampaignMttStatus) -> list[Any]:
    return [
        s.campaign,
        s.mode,
        _when(s.start_at),
        _when(s.end_at),
        s.timezone,
        s.sent,
        s.pending,
        s.failed,
        s.cancelled,
        s.undeliverable,
        s.in_doubt,
        s.duplicates,
        s.unranked,
        s.targets,
        s.targets_without_email,
        s.state_text,
    ]


def _target_row(t: TargetMttStatus) -> list[Any]:
    return [
        t.name,
        t.external_id,
        t.sent,
        t.pending,
        t.failed,
        t.undeliverable,
        "yes" if t.has_usable_email else "no",
    ]
