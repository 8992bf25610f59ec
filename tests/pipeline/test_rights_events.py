"""A supporter's request from their page reaches every org that received their data: the
`supporter.email_status` event lands in each org's own queue (`cus.N.deliver`, bound to its
event exchange), on the embedded queue and on RabbitMQ alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.app_state import state_of
from proca_server.broker import open_broker
from proca_server.broker.store import peek_messages
from proca_server.config import Settings
from proca_server.models import Action
from proca_server.models.enums import ActionProcessingStatus as A
from tests.factories import make_campaign, make_org, make_page
from tests.pipeline.conftest import (
    FAST,
    delete_org_entities,
    eventually,
    fresh_org_id,
    running,
)
from tests.pipeline.helpers import drain
from tests.supporter.world import BOTH_OPT_INS, path_of
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post


@pytest.fixture
async def orgs(broker_settings: Settings) -> AsyncIterator[list[int]]:
    """Org ids whose RabbitMQ entities to remove before and after (ids repeat across runs)."""
    ids = [fresh_org_id(), fresh_org_id()]
    if broker_settings.amqp_url:
        for org_id in ids:
            await delete_org_entities(org_id)
    yield ids
    if broker_settings.amqp_url:
        for org_id in ids:
            await delete_org_entities(org_id)


async def events_in(
    session: AsyncSession, settings: Settings, queue: str, seen: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The messages of `queue` so far (RabbitMQ's are taken off the queue, so kept in `seen`)."""
    if settings.amqp_url:
        seen.setdefault(queue, []).extend(await drain(queue))
        return seen[queue]
    await session.rollback()
    return [json.loads(m.body) for m in await peek_messages(session, queue, 100)]


async def test_withdrawing_consent_reaches_the_queue_of_each_receiving_org(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    orgs: list[int],
) -> None:
    lead = await make_org(session, id=orgs[0], title="Lead Org", custom_event_deliver=True)
    partner = await make_org(session, id=orgs[1], title="Partner Org", custom_event_deliver=True)
    campaign = await make_campaign(session, lead)
    page = await make_page(session, campaign, partner)
    page_id = page.id
    await session.commit()

    broker = await open_broker(broker_settings, sessionmaker)
    seen: dict[str, list[dict[str, Any]]] = {}
    try:
        async with running(app, broker, FAST):
            body = await widget_post(
                client,
                "addActionContact",
                ADD_ACTION_CONTACT,
                signature(page_id, privacy=BOTH_OPT_INS),
            )
            assert "errors" not in body, body
            ref = body["data"]["addActionContact"]["contactRef"]

            async def delivered() -> bool:
                await session.rollback()
                found = (await session.execute(select(Action.processing_status))).scalars()
                return list(found) == [A.DELIVERED]

            await eventually(delivered)
            await session.rollback()
            action_id = (await session.execute(select(Action.id))).scalar_one()

            path = path_of(state_of(app).settings, action_id, ref)
            done = await client.post(path, data={"request": "withdraw", "org": "all"})
            assert done.status_code == 200, done.text

            async def arrived() -> bool:
                for org_id in orgs:
                    queue = f"cus.{org_id}.deliver"
                    if not await events_in(session, broker_settings, queue, seen):
                        return False
                return True

            await eventually(arrived)
            # a second request changes nothing and sends nothing
            again = await client.post(path, data={"request": "withdraw", "org": "all"})
            assert "already done" in again.text
    finally:
        await broker.close()
    for org_id in orgs:
        [event] = await events_in(session, broker_settings, f"cus.{org_id}.deliver", seen)
        assert event["schema"] == "proca:event:2"
        assert event["eventType"] == "email_status"
        assert event["rightsRequest"] == "withdraw"
        assert event["actionId"] == action_id
        assert event["supporter"]["contact"]["contactRef"] == ref
        assert event["supporter"]["privacy"]["optIn"] is False
        assert event["supporter"]["privacy"]["emailStatus"] == "unsub"
