"""Built-in workers run by the pipeline (embedded broker): the org's settings, changed over
GraphQL, start the webhook worker, which then delivers signatures to the org's endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proca_server.broker.embedded import EmbeddedBroker
from proca_server.processing.runtime import RuntimeOptions
from tests.factories import make_world
from tests.graphql_helpers import data, gql
from tests.local_http import serve
from tests.pipeline.conftest import eventually, running
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post

UPSERT_SERVICE = """mutation($org: String!, $url: String!) {
  upsertService(orgName: $org, input: {name: WEBHOOK, host: $url}) { id }
}"""
USE_WEBHOOK = """mutation($org: String!) {
  updateOrgProcessing(name: $org, pushBackend: WEBHOOK) { name }
}"""
WITH_WORKERS = RuntimeOptions(sweep_interval=0.1, sweep_age=0.0, run_workers=True)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    async def endpoint(request: Request) -> Response:
        received.append(await request.body())
        return Response("ok")

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    async with serve(app) as url:
        yield url, received


async def test_a_webhook_set_over_graphql_receives_the_signature(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    embedded_broker: EmbeddedBroker,
    receiver: tuple[str, list[bytes]],
) -> None:
    url, received = receiver
    world = await make_world(session)
    org_name, org_id, page_id = world.org.name, world.org.id, world.page.id
    token = world.tokens["owner"]
    async with running(app, embedded_broker, WITH_WORKERS) as runtime:
        assert runtime.consumed_queues == []
        data(
            await gql(client, UPSERT_SERVICE, {"org": org_name, "url": f"{url}/hook"}, token=token)
        )
        data(await gql(client, USE_WEBHOOK, {"org": org_name}, token=token))
        # the mutation's after-commit hook applied the topology and started the worker
        assert runtime.consumed_queues == [f"wrk.{org_id}.webhook"]

        body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id))
        assert "errors" not in body, body

        async def posted() -> bool:
            return len(received) == 1

        await eventually(posted)
    message = json.loads(received[0])
    assert message["schema"] == "proca:action:2"
    assert message["stage"] == "deliver"
    assert message["orgId"] == org_id
