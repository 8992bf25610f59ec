"""Mail to target end to end through the API and the running pipeline (embedded queue and
RabbitMQ, SQLite and PostgreSQL): the campaign's org sends through a real SMTP server; MTT and
targets are set with the staff API as the proca CLI does; supporters write through the widget
API; their actions are processed and delivered; the schedule sends each letter once to its
target, with the target's name, and a test letter only to its writer; a Mailjet bounce of a
target's address stops its letters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.app_state import state_of
from proca_server.broker import open_broker
from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models import Message, Org, Service
from proca_server.models.message import SendStatus
from proca_server.mtt.loop import tick
from proca_server.mtt.sender import Sender
from proca_server.processing.runtime import RuntimeOptions
from proca_server.user.service import reset_api_token
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, smtps_server, tls_files
from tests.email.worker_world import trusted_ca
from tests.factories import make_user
from tests.graphql_helpers import data, gql
from tests.pipeline.conftest import (
    delete_org_entities,
    eventually,
    running,
)
from tests.processing.helpers import make_site
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post

__all__ = ["smtps_server", "tls_files", "trusted_ca"]

pytestmark = pytest.mark.usefixtures("trusted_ca")

PIPELINE = RuntimeOptions(sweep_interval=0.1, sweep_age=0.0, run_workers=True)
TARGETS = ("Alma Ortiz", "Bram Visser", "Cleo Marchetti")


@pytest.fixture
async def org_ids(broker_settings: Settings) -> AsyncIterator[list[int]]:
    ids: list[int] = []
    yield ids
    if broker_settings.amqp_url:
        for org_id in ids:
            await delete_org_entities(org_id)


def letter(
    page_id: int, email: str, first: str, targets: list[str], **action: Any
) -> dict[str, Any]:
    variables = signature(page_id, email)
    variables["contact"]["firstName"] = first
    variables["action"] = {
        "actionType": "mail2target",
        "mtt": {
            "subject": "Dear {{target.name}}",
            "body": "{{target.name}}, please vote for the nature law.\n\n{{firstName}}",
            "targets": targets,
        },
        **action,
    }
    return variables


async def test_letters_reach_each_target_once_and_a_bounce_stops_them(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtps_server: SmtpServer,
    broker_settings: Settings,
    org_ids: list[int],
) -> None:
    site = await make_site(session, encrypted=True, org_fields={"email_from": "mail@org.example"})
    org_ids.append(site.org_id)
    if broker_settings.amqp_url:
        await delete_org_entities(site.org_id)
    org = await session.get(Org, site.org_id)
    assert org is not None
    smtp = Service(
        name="smtp",
        org_id=org.id,
        host=smtps_server.url,
        user=SMTP_USER,
        password=SMTP_PASSWORD,
    )
    session.add(smtp)
    await session.flush()
    org.email_backend_id = smtp.id
    owner = await make_user(session, org=org, role="owner")
    token = await reset_api_token(session, owner)
    await session.commit()

    # a window ending in a minute: its drip cycles have nearly all passed, so the letters are
    # due at once
    start, end = utcnow() - timedelta(minutes=20), utcnow() + timedelta(minutes=1)
    data(
        await gql(
            client,
            "mutation($n: String!, $i: CampaignInput!) { updateCampaign(name: $n, input: $i)"
            " { id } }",
            {
                "n": site.campaign_name,
                "i": {
                    "mtt": {
                        "startAt": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "endAt": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "testEmail": "tester@org.example",
                    }
                },
            },
            token=token,
        )
    )
    targets = data(
        await gql(
            client,
            "mutation($c: Int!, $t: [TargetInput!]!) { upsertTargets(campaignId: $c, "
            "targets: $t) { id name emails { email } } }",
            {
                "c": site.campaign_id,
                "t": [
                    {
                        "externalId": f"mep-{n}-{site.campaign_id}",
                        "name": name,
                        "emails": [{"email": f"mep{n}.{site.campaign_id}@parliament.example"}],
                    }
                    for n, name in enumerate(TARGETS)
                ],
            },
            token=token,
        )
    )["upsertTargets"]
    ids = [t["id"] for t in targets]
    address = {t["id"]: t["emails"][0]["email"] for t in targets}

    settings = state_of(app).settings.model_copy(update={"mtt_cycle_seconds": 1})
    sender = Sender(settings, sessionmaker)
    received = smtps_server.handler.received
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, PIPELINE):
            for n, first in enumerate(("Ann", "Bob", "Cyd", "Dee")):
                body = await widget_post(
                    client,
                    "addActionContact",
                    ADD_ACTION_CONTACT,
                    letter(site.page_id, f"w{n}@people.example", first, ids),
                )
                assert "errors" not in body, body
            body = await widget_post(
                client,
                "addActionContact",
                ADD_ACTION_CONTACT,
                letter(site.page_id, "me@people.example", "Tess", ids, testing=True),
            )
            assert "errors" not in body, body

            async def all_sent(n: int) -> bool:
                await tick(settings, sessionmaker, sender)
                return len(received) >= n

            await eventually(lambda: all_sent(13), seconds=30)
            for target_id, name in zip(ids, TARGETS, strict=True):
                mine = [r for r in received if address[target_id] in r.rcpt_tos]
                assert len(mine) == 4
                assert {str(r.message["Subject"]) for r in mine} == {f"Dear {name}"}
                for r in mine:
                    text = r.message.get_body(("plain",))
                    assert text is not None and text.get_content().startswith(f"{name}, please")
            (test,) = [r for r in received if str(r.message["Subject"]).startswith("[TEST] ")]
            assert set(test.rcpt_tos) == {"me@people.example", "tester@org.example"}

            # the first target's address bounces
            await session.rollback()
            bounced_letter = (
                await session.scalars(
                    select(Message.id).where(
                        Message.target_id == uuid.UUID(ids[0]),
                        Message.send_status == SendStatus.SENT,
                    )
                )
            ).first()
            bounce = {
                "event": "bounce",
                "hard_bounce": True,
                "CustomID": f"mtt:{bounced_letter}",
                "email": address[ids[0]],
                "error": "user unknown",
            }
            assert (await client.post("/webhook/mailjet", json=[bounce])).status_code == 200
            body = await widget_post(
                client,
                "addActionContact",
                ADD_ACTION_CONTACT,
                letter(site.page_id, "late@people.example", "Lou", ids),
            )
            assert "errors" not in body, body
            await eventually(lambda: all_sent(15), seconds=30)

            async def settled() -> bool:
                await tick(settings, sessionmaker, sender)
                await session.rollback()
                statuses = (
                    await session.scalars(
                        select(Message.send_status).where(Message.target_id == uuid.UUID(ids[0]))
                    )
                ).all()
                return SendStatus.UNDELIVERABLE in statuses

            await eventually(settled, seconds=30)
    finally:
        await broker.close()
    assert len(received) == 15  # 12 + 1 test + 2 late letters; none twice
    assert sum(address[ids[0]] in r.rcpt_tos for r in received) == 4
