"""`proca-server retention ORG [--months N] [--campaign NAME] [--mode MODE] [--dry-run]` and
`proca-server retention --status` (the orgs' policies and their daily runs); see
docs/data-lifecycle.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.audit import service as audit
from proca_server.command import run, settings, with_database
from proca_server.errors import UserInputError
from proca_server.kit.progress import Progress
from proca_server.kit.table import format_table
from proca_server.kit.time import utcnow
from proca_server.models import ScheduledRun
from proca_server.retention.policy import MODES, Mode
from proca_server.retention.repository import Counts
from proca_server.retention.service import (
    DEFAULT_BATCH,
    MAX_BATCH,
    PolicyStatus,
    RetentionReport,
    RetentionRun,
    count,
    erase,
    list_candidates,
    plan_run,
    policy_status,
)


def retention(
    org: Annotated[
        str | None, typer.Argument(metavar="ORG", help="The org whose contacts are cleaned up.")
    ] = None,
    months: Annotated[
        str | None,
        typer.Option(
            metavar="N",
            help="Age, in months, of the campaign ends and actions to clean up [the org's "
            "policy, else 24].",
        ),
    ] = None,
    campaign: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only the contacts from this campaign.")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            metavar="MODE",
            help="delete_contacts: delete the org's contacts of those supporters; remove_pii: "
            "also clear their cleartext personal data where no other org holds a contact "
            "[the org's policy, else delete_contacts].",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the contacts and supporters, change nothing.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(metavar="N", help="Supporters per transaction.")
    ] = DEFAULT_BATCH,
    status: Annotated[
        bool,
        typer.Option(
            "--status", help="List the orgs with a retention policy and their daily runs."
        ),
    ] = False,
) -> None:
    """Delete an org's contacts of supporters whose every action is in a campaign closed and
    ended more than N months ago, and was made more than N months ago.

    A person who acted in any other way (in the campaign, with --campaign) keeps every
    contact with the org. Actions, fingerprints and areas stay: the counters do not move.
    Runs in batches: stopped midway, it keeps what is done, and running it again finishes."""
    if status:
        if org is not None or months or campaign or mode or dry_run:
            raise UserInputError("--status takes no ORG or other option")
        for line in run(with_database(settings(), _status_lines)):
            typer.echo(line)
        return
    if org is None:
        raise UserInputError("give an ORG (or --status)")
    if not 1 <= batch_size <= MAX_BATCH:
        raise UserInputError(f"--batch-size must be from 1 to {MAX_BATCH}")

    async def work(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        async with sessionmaker() as session:
            planned = await plan_run(
                session, org, months=months, mode=mode, campaign=campaign, now=utcnow()
            )
            typer.echo(_describe(planned))
            if dry_run:
                typer.echo(_counts_line(planned, await count(session, planned)))
                return
        candidates = await list_candidates(sessionmaker, planned)
        with Progress("supporters", len(candidates)) as progress:
            report = await erase(
                sessionmaker,
                planned,
                candidates,
                actor=audit.CLI,
                batch_size=batch_size,
                advance=progress.advance,
            )
        for line in _report_lines(planned, report):
            typer.echo(line)

    try:
        run(with_database(settings(), work))
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: the batches done are kept (see the audit entry); run the command "
            "again to finish",
            err=True,
        )
        raise typer.Exit(130) from None


def _describe(planned: RetentionRun) -> str:
    where = f"campaign {planned.campaign}" if planned.campaign else "every campaign"
    return (
        f"{planned.org_name}: {planned.mode.value}, {planned.months} months (campaigns ended "
        f"and actions made before {planned.scope.cutoff_date.isoformat()}), {where}"
    )


def _counts_line(planned: RetentionRun, counts: Counts) -> str:
    line = f"would delete {counts.contacts:,} contacts of {counts.supporters:,} supporters"
    if planned.mode is Mode.REMOVE_PII:
        line += f", and clear the personal data of {counts.unshared:,} of them"
    return line


def _report_lines(planned: RetentionRun, report: RetentionReport) -> list[str]:
    line = f"deleted {report.contacts:,} contacts of {report.supporters:,} supporters"
    if planned.mode is Mode.REMOVE_PII:
        line += f", and cleared the personal data of {report.anonymised:,} of them"
    lines = [line]
    if report.skipped:
        lines.append(f"{report.skipped:,} supporters had acted again and were left alone")
    return lines


STATUS_COLUMNS = ("org", "mode", "months", "last run (UTC)", "next run (UTC)", "last outcome")


def _when(value: datetime | None, default: str = "-") -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else default


def _outcome(run: ScheduledRun | None) -> str:
    if run is None or not run.last_outcome:
        return "-"
    done = run.last_outcome
    if "error" in done:
        return f"failed: {done['error']}"
    text = f"{done.get('contacts', 0)} contacts of {done.get('supporters', 0)} supporters"
    if done.get("mode") == "remove_pii":
        text += f", {done.get('anonymised', 0)} cleared"
    return text


def _status_row(item: PolicyStatus) -> list[Any]:
    run = item.run
    if item.policy is None:
        return [item.org_name, f"(not a policy: mode {MODES}; months)", "", "", "", ""]
    return [
        item.org_name,
        item.policy.mode.value,
        item.policy.months,
        _when(run.last_started_at if run else None, "never"),
        _when(run.next_run_at if run else None, "next look"),
        _outcome(run),
    ]


async def _status_lines(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        found, closing = await policy_status(session)
    lines = (
        format_table(STATUS_COLUMNS, [_status_row(item) for item in found])
        if found
        else ["no org has a retention policy"]
    )
    closed = (closing.last_outcome or {}) if closing else {}
    lines.append("")
    lines.append(
        "closing of ended campaigns: last run "
        f"{_when(closing.last_started_at if closing else None, 'never')}, next run "
        f"{_when(closing.next_run_at if closing else None, 'next look')}, "
        + (
            f"failed: {closed['error']}"
            if "error" in closed
            else f"{closed.get('closed', 0)} closed"
        )
    )
    return lines
