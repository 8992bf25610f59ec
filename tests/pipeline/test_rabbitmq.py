"""The pipeline on a real RabbitMQ: an action reaches the org's `cus.N.deliver` queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.rabbitmq import RabbitBroker
from proca_server.config import Settings
from proca_server.models import Action
from proca_server.models.enums import ActionProcessingStatus as A
from tests.factories import make_campaign, make_key, make_org, make_page
from tests.pipeline.conftest import (
    AMQP_URL,
    FAST,
    delete_org_entities,
    eventually,
    fresh_org_id,
    running,
)
from tests.pipeline.helpers import drain
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post


@dataclass(frozen=True)
class RabbitWorld:
    org_id: int
    page_id: int


@pytest.fixture
async def rabbit_world(
    rabbit_settings: Settings, session: AsyncSession
) -> AsyncIterator[RabbitWorld]:
    org = await make_org(session, id=fresh_org_id(), custom_action_deliver=True)
    await make_key(session, org)
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    world = RabbitWorld(org.id, page.id)
    await session.commit()
    try:
        yield world
    finally:
        await delete_org_entities(world.org_id)


async def test_signature_reaches_the_rabbitmq_queue(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    rabbit_world: RabbitWorld,
) -> None:
    broker = await RabbitBroker.connect(AMQP_URL, retry_delay=0.1)
    try:
        async with running(app, broker, FAST):
            for n in range(3):
                variables = signature(rabbit_world.page_id, email=f"r{n}@example.org")
                body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
                assert "errors" not in body, body

            async def delivered() -> bool:
                await session.rollback()
                found = (await session.execute(select(Action.processing_status))).scalars()
                return list(found) == [A.DELIVERED] * 3

            await eventually(delivered)
    finally:
        await broker.close()
    messages = await drain(f"cus.{rabbit_world.org_id}.deliver")
    assert sorted(str(m["contact"]["email"]) for m in messages) == [  # type: ignore[index]
        "r0@example.org",
        "r1@example.org",
        "r2@example.org",
    ]
    assert {m["schema"] for m in messages} == {"proca:action:2"}
    assert {m["orgId"] for m in messages} == {rabbit_world.org_id}
