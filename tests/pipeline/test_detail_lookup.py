"""Detail lookups in the running pipeline (embedded queue and RabbitMQ): an org sets its
detail backend over GraphQL, its signatures are looked up in its CRM before delivery, and a
CRM that does not answer holds back that org's deliveries only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proca_server.broker import open_broker
from proca_server.broker.store import peek_messages
from proca_server.config import Settings
from proca_server.models import Action, Org, Service
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.processing.runtime import RuntimeOptions
from proca_server.user.service import reset_api_token
from tests.factories import make_user
from tests.graphql_helpers import data, gql
from tests.local_http import serve
from tests.pipeline.conftest import delete_org_entities, eventually, fresh_org_id, running
from tests.pipeline.helpers import drain
from tests.processing.helpers import Site, action_ids, make_site, sign

WITH_WORKERS = RuntimeOptions(sweep_interval=0.1, sweep_age=0.0, run_workers=True)
UPSERT_SERVICE = """mutation($org: String!, $url: String!) {
  upsertService(orgName: $org, input: {name: WEBHOOK, host: $url}) { id }
}"""
USE_DETAIL = """mutation($org: String!) {
  updateOrgProcessing(name: $org, detailBackend: WEBHOOK) { processing { detailBackend } }
}"""
ANSWER = {
    "privacy": {"emailStatus": "double_opt_in", "emailStatusChanged": "2024-03-02T10:00:00Z"},
    "action": {"customFields": {"segment": "donor"}},
}


@dataclass
class Crms:
    """`/stuck` holds every request until `release` is set; `/quick` answers at once."""

    url: str
    release: asyncio.Event
    asked: list[str] = field(default_factory=list)


@pytest.fixture
async def crms() -> AsyncIterator[Crms]:
    release = asyncio.Event()
    asked: list[str] = []

    async def endpoint(request: Request) -> Response:
        asked.append(request.url.path)
        if request.url.path == "/stuck":
            await release.wait()
        return JSONResponse(ANSWER)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    async with serve(app) as url:
        yield Crms(url, release, asked)
        release.set()


@pytest.fixture
async def clean_rabbitmq(broker_settings: Settings) -> AsyncIterator[list[int]]:
    orgs: list[int] = []
    yield orgs
    if broker_settings.amqp_url:
        for org_id in orgs:
            await delete_org_entities(org_id)


async def site_with_crm(
    session: AsyncSession, client: httpx.AsyncClient, url: str, orgs: list[int], *, rabbit: bool
) -> Site:
    """An org (of an id unused on RabbitMQ) whose owner sets its detail backend over GraphQL."""
    site = await make_site(
        session,
        encrypted=False,
        org_fields={"id": fresh_org_id(), "custom_action_deliver": True},
    )
    orgs.append(site.org_id)
    if rabbit:
        await delete_org_entities(site.org_id)  # a previous run's org of the same id
    org = await session.get(Org, site.org_id)
    assert org is not None
    owner = await make_user(session, org=org, role="owner")
    token = await reset_api_token(session, owner)
    await session.commit()
    data(await gql(client, UPSERT_SERVICE, {"org": site.org_name, "url": url}, token=token))
    answer = data(await gql(client, USE_DETAIL, {"org": site.org_name}, token=token))
    assert answer["updateOrgProcessing"]["processing"]["detailBackend"] == "WEBHOOK"
    return site


async def test_a_stuck_crm_holds_back_its_org_only_and_answers_enrich_the_delivery(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    clean_rabbitmq: list[int],
    crms: Crms,
) -> None:
    rabbit = bool(broker_settings.amqp_url)
    broker = await open_broker(broker_settings, sessionmaker)
    received: dict[int, list[dict[str, Any]]] = {}

    async def deliveries(org_id: int) -> list[dict[str, Any]]:
        queue = f"cus.{org_id}.deliver"
        if rabbit:
            received.setdefault(org_id, []).extend(await drain(queue))
            return received[org_id]
        await session.rollback()
        return [json.loads(m.body) for m in await peek_messages(session, queue)]

    try:
        async with running(app, broker, WITH_WORKERS) as runtime:
            stuck, quick = [
                await site_with_crm(
                    session, client, f"{crms.url}{path}", clean_rabbitmq, rabbit=rabbit
                )
                for path in ("/stuck", "/quick")
            ]
            assert {f"wrk.{stuck.org_id}.detail", f"wrk.{quick.org_id}.detail"} <= set(
                runtime.consumed_queues
            )
            await sign(client, stuck.page_id, "ann@example.org")

            async def asked_stuck() -> bool:
                return "/stuck" in crms.asked

            await eventually(asked_stuck)
            await sign(client, quick.page_id, "bob@example.org")

            async def quick_delivered() -> bool:
                return len(await deliveries(quick.org_id)) == 1

            await eventually(quick_delivered)
            # the stuck CRM has not answered: its org's signature waits, nothing else did
            assert await deliveries(stuck.org_id) == []
            [message] = await deliveries(quick.org_id)
            assert message["contact"]["email"] == "bob@example.org"
            assert message["privacy"]["emailStatus"] == "double_opt_in"
            assert message["action"]["customFields"]["segment"] == "donor"

            crms.release.set()

            async def stuck_delivered() -> bool:
                return len(await deliveries(stuck.org_id)) == 1

            await eventually(stuck_delivered)
            [message] = await deliveries(stuck.org_id)
            assert message["contact"]["email"] == "ann@example.org"
            assert message["privacy"]["emailStatus"] == "double_opt_in"
    finally:
        await broker.close()


async def test_a_lookup_request_no_queue_takes_leaves_the_action_for_the_sweeper(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    clean_rabbitmq: list[int],
) -> None:
    rabbit = bool(broker_settings.amqp_url)
    site = await make_site(session, encrypted=False, org_fields={"id": fresh_org_id()})
    clean_rabbitmq.append(site.org_id)
    if rabbit:
        await delete_org_entities(site.org_id)
    await sign(client, site.page_id)
    [action_id] = await action_ids(session)
    broker = await open_broker(broker_settings, sessionmaker)
    quiet = RuntimeOptions(sweep_interval=3600, sweep_age=3600, run_workers=False)
    try:
        async with running(app, broker, quiet) as runtime:
            # the backend is set behind the API's back: the org's lookup queue is not declared
            backend = Service(org_id=site.org_id, name="webhook", host="http://127.0.0.1:9/")
            session.add(backend)
            await session.flush()
            org = await session.get(Org, site.org_id)
            assert org is not None
            org.detail_backend_id = backend.id
            await session.commit()

            assert await runtime.process([action_id]) == 0
            await session.rollback()
            action = await session.get(Action, action_id)
            assert action is not None and action.processing_status is A.NEW
            # the org's topology was applied again: the next try goes through
            assert await runtime.process([action_id]) == 1
    finally:
        await broker.close()
    queue = f"wrk.{site.org_id}.detail"
    if rabbit:
        [request] = await drain(queue)
    else:
        await session.rollback()
        [stored] = await peek_messages(session, queue)
        request = json.loads(stored.body)
    assert request == {"actionId": action_id, "stage": "deliver"}
