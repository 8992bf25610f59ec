"""Signatures whose supporter email cannot go out are not silent: the running pipeline warns
once per org (not per signature), on the embedded queue and on RabbitMQ. Such settings are
refused when turned on through the API; these orgs got them another way (a backend removed
later, settings written before the check existed)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker import open_broker
from proca_server.config import Settings
from proca_server.models import Action, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import SupporterProcessingStatus as S
from tests.pipeline.conftest import delete_org_entities, eventually, running
from tests.processing.helpers import Site, make_site, sign

CONFIRM_WARNING = "supporter confirmation is on but its confirm messages go nowhere"
THANKS_WARNING = "has a thank-you template but the org has no email backend"


@pytest.fixture
async def clean_rabbitmq(broker_settings: Settings) -> AsyncIterator[list[int]]:
    """Org ids whose RabbitMQ entities to remove afterwards (ids repeat across runs)."""
    orgs: list[int] = []
    yield orgs
    if broker_settings.amqp_url:
        for org_id in orgs:
            await delete_org_entities(org_id)


async def fresh(site: Site, settings: Settings, clean: list[int]) -> None:
    clean.append(site.org_id)
    if settings.amqp_url:
        await delete_org_entities(site.org_id)  # a previous run's org of the same id


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def test_confirm_messages_nobody_takes_are_warned_once_per_org(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    clean_rabbitmq: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # no email backend, no customSupporterConfirm: org.N.confirm.supporter has no queue
    site = await make_site(session, org_fields={"supporter_confirm": True})
    await fresh(site, broker_settings, clean_rabbitmq)
    caplog.set_level(logging.WARNING)
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker):
            await sign(client, site.page_id, "ann@example.org")
            await sign(client, site.page_id, "bob@example.org")

            async def confirming() -> bool:
                await session.rollback()
                found = await session.scalars(select(Supporter.processing_status))
                return sorted(found.all()) == [S.CONFIRMING, S.CONFIRMING]

            await eventually(confirming)
    finally:
        await broker.close()
    [warning] = logged(caplog, CONFIRM_WARNING)
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        f"org {site.org_name}: {CONFIRM_WARNING} (no email backend, no customSupporterConfirm "
        "queue): its supporters stay unconfirmed"
    )
    assert all("example.org" not in r.getMessage() for r in caplog.records)


async def test_thank_you_pages_of_an_org_without_backend_are_warned_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    clean_rabbitmq: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = await make_site(session, page_fields={"thank_you_template": "thanks"})
    await fresh(site, broker_settings, clean_rabbitmq)
    caplog.set_level(logging.WARNING)
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker):
            await sign(client, site.page_id, "ann@example.org")
            await sign(client, site.page_id, "bob@example.org")

            async def delivered() -> bool:
                await session.rollback()
                found = await session.scalars(select(Action.processing_status))
                return found.all() == [A.DELIVERED, A.DELIVERED]

            await eventually(delivered)
    finally:
        await broker.close()
    [warning] = logged(caplog, THANKS_WARNING)
    assert warning.getMessage() == (
        f"org {site.org_name}: page {site.page_name} {THANKS_WARNING}: no thank-you email is sent"
    )
