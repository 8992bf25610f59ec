"""The email supporter worker against a real local SMTP server (and the preview mailbox)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.base import RetryableError
from proca_server.email.backends.base import CUSTOM_ID_HEADER
from proca_server.models import Action, Supporter
from proca_server.models.email_sent import EmailSent
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.workers import WorkerDeps
from tests.email.conftest import SmtpServer
from tests.email.worker_world import (
    add_template,
    deps,
    processed,
    run_worker,
    signed,
    smtp_site,
    trusted_ca,
)

__all__ = ["deps", "trusted_ca"]

pytestmark = [
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("trusted_ca"),
]

THANK_YOU_HTML = (
    "<p>Dear {{firstName}} {{lastName}}, thanks for signing {{campaign.title}} of {{org.title}}"
    " ({{actionType}}{{#isActionType.petition}} petition{{/isActionType.petition}}),"
    " comment {{comment}}, from {{tracking.source}}, {{campaign.stats.supporterCount}}"
    ' supporters.</p><a href="{{doiLink}}">subscribe</a>'
)


def body_of(server: SmtpServer, index: int = 0, subtype: str = "plain") -> str:
    part = server.handler.received[index].message.get_body((subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


async def test_thank_you_email_has_merge_tags_and_links(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "thanks"})
    await add_template(
        session,
        site.org_id,
        "thanks",
        subject="Thanks {{firstName}}\nfor {{campaign.title}}",
        html=THANK_YOU_HTML,
        text="Hi {{firstName}}, confirm your subscription: {{doiLink}}",
    )
    action_id, ref, deliveries = await signed(client, session, site)
    assert len(deliveries) == 1
    assert await run_worker(deps, site, deliveries) == [None]

    [received] = starttls_server.handler.received
    message = received.message
    assert received.rcpt_tos == ["ann@example.org"]
    assert message["To"] == "Ann <ann@example.org>"
    assert message["From"] == "Save Trees <hello@trees.example>"
    title = site.campaign_name.title()
    assert message["Subject"] == f"Thanks Ann for {title}"
    assert message[CUSTOM_ID_HEADER] == f"action:{action_id}"
    link = f"http://localhost:{deps.settings.port}/link/d/{action_id}/{ref}"
    assert body_of(starttls_server) == f"Hi Ann, confirm your subscription: {link}\n"
    html = body_of(starttls_server, subtype="html")
    assert f"Dear Ann Lee, thanks for signing {title} of Save Trees (petition petition)" in html
    assert "comment hi, from newsletter, 1 supporters." in html
    assert f'<a href="{link}">' in html


async def test_supporter_confirm_email_and_its_link_confirm_the_supporter(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(
        session,
        starttls_server,
        org_fields={"supporter_confirm": True, "supporter_confirm_template": "org-confirm"},
        campaign_fields={"supporter_confirm_template": "confirm"},
    )
    await add_template(
        session,
        site.org_id,
        "confirm",
        subject="Please confirm",
        html="<a href='{{confirmLink}}'>yes</a> <a href='{{rejectLink}}'>not me</a>",
        text="yes: {{confirmLink}} no: {{rejectLink}}",
    )
    action_id, ref, deliveries = await signed(client, session, site)
    assert [d.exchange for d in deliveries] == [f"org.{site.org_id}.confirm.supporter"]
    assert await run_worker(deps, site, deliveries) == [None]

    base = f"http://localhost:{deps.settings.port}/link/s/{action_id}"
    text = body_of(starttls_server)
    assert text == f"yes: {base}/accept/{ref} no: {base}/reject/{ref}\n"

    response = await client.get(f"/link/s/{action_id}/accept/{ref}")
    assert response.status_code == 200, response.text
    await session.rollback()
    supporter = (await session.execute(select(Supporter))).scalar_one()
    assert supporter.processing_status is S.ACCEPTED


async def test_repeat_signature_gets_the_duplicate_template(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(
        session,
        starttls_server,
        page_fields={"thank_you_template": "thanks", "duplicate_template": "again"},
    )
    await add_template(session, site.org_id, "thanks", subject="Thanks", html="<p>thanks</p>")
    await add_template(
        session, site.org_id, "again", subject="Already signed", html="<p>{{isDupe}}</p>"
    )
    _, _, first = await signed(client, session, site)
    assert await run_worker(deps, site, first) == [None]
    action_id, _, second = await signed(client, session, site)
    action = await session.get(Action, action_id)
    assert action is not None and action.processing_status is A.REPEAT
    assert await run_worker(deps, site, second) == [None]
    subjects = [r.message["Subject"] for r in starttls_server.handler.received]
    assert subjects == ["Thanks", "Already signed"]


@pytest.mark.parametrize(("opt_in", "sent"), [(False, 0), (True, 1)])
async def test_doi_thank_you_needs_communication_consent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    starttls_server: SmtpServer,
    deps: WorkerDeps,
    opt_in: bool,
    sent: int,
) -> None:
    site = await smtp_site(
        session,
        starttls_server,
        org_fields={"doi_thank_you": True},
        page_fields={"thank_you_template": "thanks"},
    )
    await add_template(session, site.org_id, "thanks", subject="Thanks", html="<p>thanks</p>")
    _, _, deliveries = await signed(client, session, site, privacy={"optIn": opt_in})
    assert await run_worker(deps, site, deliveries) == [None]
    assert len(starttls_server.handler.received) == sent


async def test_missing_template_fails_the_message_as_retryable(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "nope"})
    # a template of another locale does not stand for the page's
    await add_template(session, site.org_id, "nope", "de", subject="Danke", html="<p>danke</p>")
    _, _, deliveries = await signed(client, session, site)
    [outcome] = await run_worker(deps, site, deliveries)
    assert isinstance(outcome, RetryableError)
    assert starttls_server.handler.received == []


async def test_a_retried_message_is_not_sent_twice(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "thanks"})
    await add_template(session, site.org_id, "thanks", subject="Thanks", html="<p>thanks</p>")
    action_id, _, deliveries = await signed(client, session, site)
    assert await run_worker(deps, site, deliveries) == [None]
    assert await run_worker(deps, site, deliveries) == [None]
    assert len(starttls_server.handler.received) == 1
    await session.rollback()
    count = await session.scalar(
        select(func.count()).select_from(EmailSent).where(EmailSent.action_id == action_id)
    )
    assert count == 1


async def test_a_refused_recipient_is_retried_and_not_recorded(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "thanks"})
    await add_template(session, site.org_id, "thanks", subject="Thanks", html="<p>thanks</p>")
    _, _, deliveries = await signed(client, session, site, email="ann@refused.example")
    [outcome] = await run_worker(deps, site, deliveries)
    assert outcome is not None
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(EmailSent)) == 0


async def test_embedded_default_lands_in_the_mailbox(
    client: httpx.AsyncClient, session: AsyncSession, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, None, page_fields={"thank_you_template": "thanks"})
    await add_template(session, site.org_id, "thanks", subject="Thanks {{firstName}}", html="x")
    _, _, deliveries = await signed(client, session, site)
    assert await run_worker(deps, site, deliveries) == [None]
    response = await client.get("/mailbox")
    assert response.status_code == 200
    assert "Thanks Ann" in response.text
    assert "ann@example.org" in response.text


async def test_processed_again_after_requeue_keeps_one_email(
    client: httpx.AsyncClient, session: AsyncSession, starttls_server: SmtpServer, deps: WorkerDeps
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "thanks"})
    await add_template(session, site.org_id, "thanks", subject="Thanks", html="<p>thanks</p>")
    action_id, _, deliveries = await signed(client, session, site)
    assert await run_worker(deps, site, deliveries + deliveries) == [None, None]
    assert len(starttls_server.handler.received) == 1
    assert await processed(session, site, action_id) == []
