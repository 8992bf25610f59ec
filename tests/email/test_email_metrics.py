"""The email metrics move once per email, where it is handed to its backend: the supporter
email lags, the reminders, and `proca_emails_sent` for every kind of email (supporter emails,
reminders, the instance org's own emails, mail-to-target letters)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.instance import deliver_instance_emails
from proca_server.email.message import EmailMessage
from proca_server.email.reminders import run_reminders
from proca_server.kit.time import utcnow
from proca_server.metrics import observe_email_lag
from proca_server.models import Action
from proca_server.org.service import ensure_instance_org
from proca_server.workers import WorkerDeps
from tests.email.conftest import SmtpServer
from tests.email.worker_world import (
    REMINDER,
    add_template,
    confirming_action,
    deps,
    run_worker,
    signed,
    smtp_site,
    trusted_ca,
)
from tests.mtt.conftest import make_mtt_world, write_letters
from tests.mtt.sending import mtt_settings, run_until_idle

__all__ = ["deps", "trusted_ca"]

pytestmark = [
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("trusted_ca"),
]

AGE = 120.0  # seconds between an action's insertion and its email in these tests


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def lags(org_id: int) -> dict[str, tuple[float, float]]:
    """(count, sum) of both lag histograms of the org."""
    org = str(org_id)
    return {
        kind: (
            value(f"proca_email_{kind}_lag_seconds_count", org_id=org),
            value(f"proca_email_{kind}_lag_seconds_sum", org_id=org),
        )
        for kind in ("supporter_confirm", "thank_you")
    }


def sent(backend: str) -> float:
    return value("proca_emails_sent_total", backend=backend)


async def age(session: AsyncSession, action_id: int) -> None:
    await session.execute(
        update(Action)
        .where(Action.id == action_id)
        .values(inserted_at=utcnow() - timedelta(seconds=AGE))
    )
    await session.commit()


async def test_a_thank_you_email_records_its_lag_once(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "thanks"})
    await add_template(session, site.org_id, "thanks", subject="Thanks", html="<p>thanks</p>")
    action_id, _, deliveries = await signed(client, session, site)
    await age(session, action_id)
    before, smtp = lags(site.org_id), sent("smtp")

    assert await run_worker(deps, site, deliveries) == [None]
    after = lags(site.org_id)
    assert after["supporter_confirm"] == before["supporter_confirm"]
    count, total = after["thank_you"]
    assert count == before["thank_you"][0] + 1
    assert AGE <= total - before["thank_you"][1] < AGE + 60
    assert sent("smtp") == smtp + 1

    # delivered again (a retry, a requeue): nothing sent, nothing counted
    assert await run_worker(deps, site, deliveries) == [None]
    assert len(starttls_server.handler.received) == 1
    assert lags(site.org_id) == after
    assert sent("smtp") == smtp + 1


async def test_a_confirm_email_records_its_lag(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(
        session,
        starttls_server,
        org_fields={"supporter_confirm": True},
        page_fields={"supporter_confirm_template": "confirm"},
    )
    await add_template(session, site.org_id, "confirm", subject="Confirm", html="{{confirmLink}}")
    action_id, _, deliveries = await signed(client, session, site)
    await age(session, action_id)
    before = lags(site.org_id)

    assert await run_worker(deps, site, deliveries) == [None]
    after = lags(site.org_id)
    assert after["thank_you"] == before["thank_you"]
    count, total = after["supporter_confirm"]
    assert count == before["supporter_confirm"][0] + 1
    assert AGE <= total - before["supporter_confirm"][1] < AGE + 60


async def test_an_email_the_server_refused_is_not_counted(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "thanks"})
    await add_template(session, site.org_id, "thanks", subject="Thanks", html="<p>thanks</p>")
    _, _, deliveries = await signed(client, session, site, email="ann@refused.example")
    before, smtp = lags(site.org_id), sent("smtp")
    [outcome] = await run_worker(deps, site, deliveries)
    assert outcome is not None
    assert lags(site.org_id) == before
    assert sent("smtp") == smtp


def test_an_email_of_an_action_without_insertion_time_counts_as_unknown() -> None:
    # the worker reads the action's inserted_at from the database, where it is never empty:
    # this path stands for an action whose time could not be read
    before = value("proca_email_lag_unknown_total", kind="thank_you")
    histogram = value("proca_email_thank_you_lag_seconds_count", org_id="999999")
    observe_email_lag("thank_you", 999999, None)
    assert value("proca_email_lag_unknown_total", kind="thank_you") == before + 1
    assert value("proca_email_thank_you_lag_seconds_count", org_id="999999") == histogram


async def test_a_reminder_counts_once_per_email_sent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await confirming_action(client, session, config=REMINDER, age_days=3)
    await confirming_action(client, session, config=REMINDER, age_days=4)
    reminders, preview = value("proca_email_reminder_confirm_total"), sent("preview")
    report = await run_reminders(settings, sessionmaker)
    assert report.sent == 2
    assert value("proca_email_reminder_confirm_total") == reminders + 2
    assert sent("preview") == preview + 2
    # a reminder is no confirm email of the worker
    again = await run_reminders(settings, sessionmaker)
    assert again.due == 0
    assert value("proca_email_reminder_confirm_total") == reminders + 2


async def test_the_instance_emails_count_per_message(
    session: AsyncSession, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await ensure_instance_org(session, settings.org_name)
    await session.commit()
    messages = [
        EmailMessage(to=f"staff{n}@example.org", sender="admin@proca.example", subject="Join")
        for n in range(3)
    ]
    preview = sent("preview")
    await deliver_instance_emails(sessionmaker, settings, messages)
    assert sent("preview") == preview + 3


async def test_letters_count_once_each_through_smtp_and_the_mailbox(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtps_server: SmtpServer,
) -> None:
    smtp, preview = sent("smtp"), sent("preview")
    world = await make_mtt_world(
        session, targets=2, smtp=smtps_server, end=utcnow() + timedelta(seconds=30)
    )
    await write_letters(session, world, first_name="Ann")
    await run_until_idle(mtt_settings(settings), sessionmaker)
    assert len(smtps_server.handler.received) == 2
    assert sent("smtp") == smtp + 2

    world = await make_mtt_world(session, targets=3, end=utcnow() + timedelta(seconds=30))
    await write_letters(session, world, first_name="Bob")
    await run_until_idle(mtt_settings(settings), sessionmaker)
    assert sent("preview") == preview + 3
    assert sent("smtp") == smtp + 2
