"""`proca-server reminders [--dry-run]`: send the confirm reminders due now
(`REMINDER_INTERVAL` in docs/configuration.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from proca_server.command import run, settings
from proca_server.email.reminders import ReminderReport, run_reminders
from proca_server.kit.progress import Progress


def report_lines(report: ReminderReport) -> list[str]:
    lines = []
    for org in report.orgs:
        if report.dry_run:
            lines.append(f"{org.org}: {len(org.due)} due")
        else:
            lines.append(
                f"{org.org}: {len(org.due)} due, {len(org.sent)} sent, {len(org.failed)} failed"
            )
    verb = "would be reminded" if report.dry_run else "reminded"
    total = report.due if report.dry_run else report.sent
    lines.append(f"{total} supporters {verb}")
    return lines


def reminders(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what is due, send nothing.")
    ] = False,
) -> None:
    """Send the confirm emails again to supporters who have not confirmed yet."""
    from proca_server import db
    from proca_server.errors import UserInputError
    from proca_server.migrations.migrate import is_up_to_date

    s = settings()

    async def work() -> ReminderReport:
        engine = db.create_engine(s)
        try:
            if not await is_up_to_date(engine):
                raise UserInputError("the database is not migrated: run `proca-server setup`")
            # the total is only known org by org: the bar counts the due actions done with
            with Progress("reminders") as progress:
                return await run_reminders(
                    s,
                    db.create_sessionmaker(engine),
                    dry_run=dry_run,
                    on_progress=progress.advance,
                )
        finally:
            await engine.dispose()

    report = run(work())
    for line in report_lines(report):
        typer.echo(line)
