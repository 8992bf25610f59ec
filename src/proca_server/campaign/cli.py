"""`proca-server campaigns auto-close | backfill-dates | close-ended` (the rules are
in campaign/housekeeping.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.campaign.housekeeping import (
    AUTO_CLOSE_MONTHS,
    AutoCloseReport,
    BackfillReport,
    Change,
    auto_close,
    backfill_dates,
    close_ended,
    count_ended,
    count_live,
    count_undated,
)
from proca_server.command import in_transaction, run, settings
from proca_server.errors import UserInputError
from proca_server.kit.progress import Progress
from proca_server.kit.time import utcnow
from proca_server.retention.policy import MONTHS_RULE, parse_months

campaigns_app = typer.Typer(
    help="Campaign housekeeping: closing ended or quiet campaigns, filling in their dates.",
    no_args_is_help=True,
)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Say what would change, change nothing.")]


def _dates(change: Change) -> str:
    parts = []
    if change.start_date:
        parts.append(f"start {change.start_date.isoformat()}")
    if change.end_date:
        parts.append(f"end {change.end_date.isoformat()}")
    return ", ".join(parts)


@campaigns_app.command("auto-close")
def auto_close_command(
    months: Annotated[
        str,
        typer.Option(metavar="N", help="Close live campaigns without a new action for N months."),
    ] = str(AUTO_CLOSE_MONTHS),
    dry_run: DryRun = False,
) -> None:
    """Close the live campaigns whose newest non-test action is more than N months old
    (filling their missing start and end dates from their first and last actions), and those
    created more than N months ago that have none."""
    try:
        chosen = parse_months(months)
    except ValueError:
        raise UserInputError(f"--months {MONTHS_RULE}") from None

    async def work(session: AsyncSession) -> AutoCloseReport:
        with Progress("live campaigns", await count_live(session)) as progress:
            return await auto_close(
                session, utcnow(), months=chosen, dry_run=dry_run, on_progress=progress.advance
            )

    report = run(in_transaction(settings(), work))
    for change in report.with_actions:
        assert change.last_action_at is not None
        dates = _dates(change)
        typer.echo(
            f"{change.name}: last action {change.last_action_at.date().isoformat()}"
            + (f"; {dates}" if dates else "")
        )
    for change in report.without_actions:
        typer.echo(f"{change.name}: no action")
    verb = "would close" if dry_run else "closed"
    typer.echo(
        f"{verb} {report.closed} campaigns ({len(report.with_actions)} with actions, "
        f"{len(report.without_actions)} without)"
    )


@campaigns_app.command("backfill-dates")
def backfill_dates_command(dry_run: DryRun = False) -> None:
    """Fill in missing start dates with the day of the campaign's first non-test action, and
    missing end dates of campaigns that are not live with the day of their last one, when it
    is more than a month old. Statuses do not change."""

    async def work(session: AsyncSession) -> BackfillReport:
        with Progress("undated campaigns", await count_undated(session)) as progress:
            return await backfill_dates(
                session, utcnow(), dry_run=dry_run, on_progress=progress.advance
            )

    report = run(in_transaction(settings(), work))
    for change in report.changes:
        typer.echo(f"{change.name}: {_dates(change)}")
    verb = "would fill" if dry_run else "filled"
    typer.echo(f"{verb} {report.starts} start dates and {report.ends} end dates")


@campaigns_app.command("close-ended")
def close_ended_command(dry_run: DryRun = False) -> None:
    """Close the live campaigns whose end date has passed (the server also does it daily)."""

    async def work(session: AsyncSession) -> list[str]:
        today = utcnow().date()
        with Progress("ended campaigns", await count_ended(session, today)) as progress:
            return await close_ended(session, today, dry_run=dry_run, on_progress=progress.advance)

    names = run(in_transaction(settings(), work))
    for name in names:
        typer.echo(name)
    typer.echo(f"{'would close' if dry_run else 'closed'} {len(names)} campaigns")
