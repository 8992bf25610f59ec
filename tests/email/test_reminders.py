"""Confirm reminders: due actions, dry run, the email and its spacing."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.cli import report_lines
from proca_server.email.reminders import ReminderSettings, reminder_settings, run_reminders
from proca_server.models import PreviewEmail
from tests.email.worker_world import REMINDER, confirming_action


def test_reminder_settings_need_the_opt_in_and_accept_strings() -> None:
    assert reminder_settings({}) is None
    assert reminder_settings({"reminder": {"enabled": "true"}}) is None
    assert reminder_settings({"reminder": {"enabled": True}}) == ReminderSettings(2, 3)
    assert reminder_settings(
        {"reminder": {"enabled": True, "delay_days": "5", "max_count": "x"}}
    ) == ReminderSettings(5, 3)


async def mailbox(session: AsyncSession) -> list[PreviewEmail]:
    await session.rollback()
    return list((await session.execute(select(PreviewEmail))).scalars())


async def test_dry_run_finds_the_due_action_and_sends_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    action_id, _ = await confirming_action(client, session, config=REMINDER, age_days=3)
    report = await run_reminders(settings, sessionmaker, dry_run=True)
    assert [o.due for o in report.orgs] == [[action_id]]
    assert report.sent == 0
    assert report_lines(report)[-1] == "1 supporters would be reminded"
    assert await mailbox(session) == []


async def test_reminder_is_sent_once_per_delay(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    action_id, ref = await confirming_action(client, session, config=REMINDER, age_days=3)
    report = await run_reminders(settings, sessionmaker)
    assert [o.sent for o in report.orgs] == [[action_id]]
    [email] = await mailbox(session)
    assert email.subject == "Reminder: confirm"
    link = f"http://localhost:{settings.port}/link/s/{action_id}/accept/{ref}?reminder=1"
    assert email.html == link
    assert email.headers["X-Proca-Custom-Id"] == f"action:{action_id}"
    # touched: the next reminder waits for another delay
    again = await run_reminders(settings, sessionmaker)
    assert again.due == 0
    assert len(await mailbox(session)) == 1


async def test_no_reminder_without_opt_in_or_when_too_old(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await confirming_action(client, session, config={}, age_days=3)
    await confirming_action(client, session, config=REMINDER, age_days=7)
    await confirming_action(client, session, config=REMINDER, age_days=1)
    report = await run_reminders(settings, sessionmaker)
    assert report.due == 0
    assert await mailbox(session) == []
