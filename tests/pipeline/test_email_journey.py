"""A supporter's emails end to end, through the running pipeline, on the embedded queue and on
RabbitMQ (PostgreSQL and SQLite alike): the org borrows the instance org's SMTP backend
through SYSTEM; a signature gets the confirmation email; its link confirms the supporter; the
action is then delivered and the thank-you email sent; a Mailjet bounce rejects the supporter."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.app_state import state_of
from proca_server.broker import open_broker
from proca_server.config import Settings
from proca_server.models import Action, Org, Service, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.processing.runtime import RuntimeOptions
from proca_server.user.service import reset_api_token
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, starttls_server, tls_files
from tests.email.providers import mailjet_bounce
from tests.email.worker_world import add_template, trusted_ca
from tests.factories import make_user
from tests.graphql_helpers import data, gql
from tests.pipeline.conftest import (
    amqp_channel,
    delete_org_entities,
    eventually,
    running,
)
from tests.processing.helpers import make_site, sign

__all__ = ["starttls_server", "tls_files", "trusted_ca"]

pytestmark = [
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("trusted_ca"),
]

WITH_WORKERS = RuntimeOptions(sweep_interval=0.1, sweep_age=0.0, run_workers=True)
LINK = re.compile(r"https?://[^\s\"'<>]+/link/s/\d+/accept/[^\s\"'<>]+")


@pytest.fixture
async def clean_rabbitmq(broker_settings: Settings) -> AsyncIterator[list[int]]:
    """Org ids whose RabbitMQ entities to remove before and after (ids repeat across runs)."""
    orgs: list[int] = []
    yield orgs
    if broker_settings.amqp_url:
        for org_id in orgs:
            await delete_org_entities(org_id)


async def test_confirm_link_thank_you_and_bounce_through_the_system_backend(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    starttls_server: SmtpServer,
    broker_settings: Settings,
    clean_rabbitmq: list[int],
) -> None:
    site = await make_site(
        session,
        encrypted=True,
        org_fields={
            "supporter_confirm": True,
            "supporter_confirm_template": "confirm",
            "email_from": "hello@trees.example",
            "title": "Save Trees",
        },
        campaign_fields={"title": "Save Trees"},
        page_fields={"thank_you_template": "thanks"},
    )
    clean_rabbitmq.append(site.org_id)
    if broker_settings.amqp_url:
        await delete_org_entities(site.org_id)  # a previous run's org of the same id
    # the instance org sends through the local SMTP server; the campaign org borrows it
    instance = (
        await session.execute(select(Org).where(Org.name == state_of(app).settings.org_name))
    ).scalar_one()
    smtp = Service(
        name="smtp",
        org_id=instance.id,
        host=starttls_server.url,
        user=SMTP_USER,
        password=SMTP_PASSWORD,
    )
    session.add(smtp)
    await session.flush()
    instance.email_backend_id = smtp.id
    instance.email_from = "info@instance.example"
    org = await session.get(Org, site.org_id)
    assert org is not None
    owner = await make_user(session, org=org, role="owner")
    token = await reset_api_token(session, owner)
    await session.commit()
    await add_template(
        session,
        site.org_id,
        "confirm",
        subject="Confirm, {{firstName}}",
        html="<p>Please confirm for {{campaign.title}}: <a href='{{confirmLink}}'>yes</a></p>",
    )
    await add_template(
        session,
        site.org_id,
        "thanks",
        subject="Thanks {{firstName}}",
        html="<p>Thank you for signing {{campaign.title}}, {{firstName}}!</p>",
    )
    borrowed = data(
        await gql(
            client,
            "mutation($n: String!) { updateOrgProcessing(name: $n, emailBackend: SYSTEM)"
            " { processing { emailBackend } } }",
            {"n": site.org_name},
            token=token,
        )
    )
    assert borrowed["updateOrgProcessing"]["processing"]["emailBackend"] == "SMTP"

    broker = await open_broker(broker_settings, sessionmaker)
    received = starttls_server.handler.received
    try:
        async with running(app, broker, WITH_WORKERS):
            if broker_settings.amqp_url:
                async with amqp_channel() as channel:
                    queue = await channel.get_queue(f"wrk.{site.org_id}.email.supporter")
                    await queue.purge()
            ref = await sign(client, site.page_id)

            async def emails(n: int) -> bool:
                return len(received) >= n

            await eventually(lambda: emails(1))
            confirm = received[0].message
            assert confirm["Subject"] == "Confirm, Ann"
            assert confirm["To"] == "Ann <ann@example.org>"
            body = confirm.get_body(("html",))
            assert body is not None
            html = body.get_content()
            assert "Save Trees" in html
            [link] = LINK.findall(html)
            action_id = int(urlsplit(link).path.split("/")[3])
            assert urlsplit(link).path == f"/link/s/{action_id}/accept/{ref}"

            clicked = await client.get(urlsplit(link).path)
            assert clicked.status_code in (200, 302), clicked.text

            async def delivered() -> bool:
                await session.rollback()
                action = await session.get(Action, action_id, populate_existing=True)
                return action is not None and action.processing_status is A.DELIVERED

            await eventually(delivered)
            await eventually(lambda: emails(2))
            thanks = received[1].message
            assert thanks["Subject"] == "Thanks Ann"
            assert thanks["To"] == "Ann <ann@example.org>"
            thanks_html = thanks.get_body(("html",))
            assert thanks_html is not None
            assert "Thank you for signing Save Trees, Ann!" in thanks_html.get_content()

            bounced = await client.post("/webhook/mailjet", json=[mailjet_bounce(action_id)])
            assert bounced.status_code == 200
            await session.rollback()
            supporter = (
                await session.execute(
                    select(Supporter)
                    .join(Action, Action.supporter_id == Supporter.id)
                    .where(Action.id == action_id)
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            assert supporter.processing_status is S.REJECTED
            assert supporter.email_status is EmailStatus.BOUNCE
    finally:
        await broker.close()
    assert len(received) == 2  # each email once
