"""requeueActions and `proca-server requeue` with the embedded queue."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.embedded import EmbeddedBroker
from proca_server.kit.time import utcnow
from proca_server.models.enums import ActionProcessingStatus
from proca_server.processing.requeue_cli import RequeueSelection, find_action_ids
from proca_server.user.service import reset_api_token
from tests.factories import make_user
from tests.graphql_helpers import data, error, gql
from tests.processing.helpers import (
    Site,
    action_ids,
    delivered_site,
    make_site,
    queued,
    sign,
)

REQUEUE = """
mutation Requeue($org: String!, $ids: [Int!], $queue: Queue!) {
  requeueActions(orgName: $org, ids: $ids, queue: $queue) { count failed }
}"""


async def token_for(session: AsyncSession, site: Site, role: str) -> str:
    from proca_server.models import Org

    org = await session.get(Org, site.org_id)
    user = await make_user(session, org=org, role=role)
    token = await reset_api_token(session, user)
    await session.commit()
    return token


async def test_requeue_sends_the_actions_to_the_destination_queue(
    client: httpx.AsyncClient, session: AsyncSession, broker: EmbeddedBroker
) -> None:
    site, ids = await delivered_site(client, session, broker)
    token = await token_for(session, site, "owner")

    body = await gql(
        client,
        REQUEUE,
        {"org": site.org_name, "ids": ids, "queue": "CUSTOM_ACTION_DELIVER"},
        token=token,
    )

    assert data(body)["requeueActions"] == {"count": 2, "failed": 0}
    messages = await queued(session, f"cus.{site.org_id}.deliver")
    assert [m["actionId"] for m in messages] == ids
    assert {m["stage"] for m in messages} == {"deliver"}

    body = await gql(
        client, REQUEUE, {"org": site.org_name, "ids": ids[:1], "queue": "WEBHOOK"}, token=token
    )
    assert data(body)["requeueActions"] == {"count": 1, "failed": 0}
    [message] = await queued(session, f"wrk.{site.org_id}.webhook")
    assert message["actionId"] == ids[0]


async def test_requeue_counts_stages_the_queue_does_not_take_and_missing_queues(
    client: httpx.AsyncClient, session: AsyncSession, broker: EmbeddedBroker
) -> None:
    site, ids = await delivered_site(client, session, broker)
    token = await token_for(session, site, "owner")

    # delivered actions have no action_confirm stage
    body = await gql(
        client,
        REQUEUE,
        {"org": site.org_name, "ids": ids, "queue": "CUSTOM_ACTION_CONFIRM"},
        token=token,
    )
    assert data(body)["requeueActions"] == {"count": 2, "failed": 2}
    # the org has no SQS backend, so no wrk.N.sqs queue
    body = await gql(
        client, REQUEUE, {"org": site.org_name, "ids": ids, "queue": "SQS"}, token=token
    )
    assert data(body)["requeueActions"] == {"count": 2, "failed": 2}
    # no ids, nothing selected
    body = await gql(client, REQUEUE, {"org": site.org_name, "queue": "SQS"}, token=token)
    assert data(body)["requeueActions"] == {"count": 0, "failed": 0}


async def test_requeue_needs_export_contacts_in_the_org(
    client: httpx.AsyncClient, session: AsyncSession, broker: EmbeddedBroker
) -> None:
    site, ids = await delivered_site(client, session, broker)
    other = await make_site(session)
    variables = {"org": site.org_name, "ids": ids, "queue": "CUSTOM_ACTION_DELIVER"}

    anonymous = error(await gql(client, REQUEUE, variables))
    assert anonymous["extensions"]["code"] == "permission_denied"
    for token in (
        await token_for(session, site, "campaigner"),
        await token_for(session, other, "owner"),
    ):
        body = await gql(client, REQUEUE, variables, token=token)
        assert error(body)["extensions"]["code"] == "permission_denied"
    assert await queued(session, f"cus.{site.org_id}.deliver") == []


async def test_find_action_ids_by_campaign_status_and_time(
    client: httpx.AsyncClient, session: AsyncSession, broker: EmbeddedBroker
) -> None:
    site, ids = await delivered_site(client, session, broker)
    other = await make_site(session)
    await sign(client, other.page_id, "bob@example.org")
    await sign(client, site.page_id, "new@example.org")  # left new
    everything = await action_ids(session)
    fresh = everything[-1]

    found = await find_action_ids(
        session, site.org_id, RequeueSelection(campaign=site.campaign_name)
    )
    assert found == [*ids, fresh]
    delivered = RequeueSelection(status=ActionProcessingStatus.DELIVERED)
    assert await find_action_ids(session, site.org_id, delivered) == ids[:1]
    repeat = RequeueSelection(status=ActionProcessingStatus.REPEAT)
    assert await find_action_ids(session, site.org_id, repeat) == ids[1:]
    later = RequeueSelection(since=utcnow() + timedelta(hours=1))
    assert await find_action_ids(session, site.org_id, later) == []
    assert await find_action_ids(session, site.org_id, RequeueSelection(ids=(fresh,), limit=1)) == [
        fresh
    ]
    assert await find_action_ids(session, other.org_id, RequeueSelection(ids=tuple(ids))) == []


@pytest.mark.slow  # the proca-server command in a subprocess
async def test_requeue_cli_by_query(
    client: httpx.AsyncClient,
    session: AsyncSession,
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
) -> None:
    site, ids = await delivered_site(client, session, broker)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PROCA_DATA_DIR": str(tmp_path),
        "ORG_NAME": "instance",
    }
    program = "from proca_server.processing.requeue_cli import requeue_app; requeue_app()"
    args = [site.org_name, "custom_action_deliver", "--campaign", site.campaign_name]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        program,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "requeued 2 of 2 selected (0 failed)"
    messages = await queued(session, f"cus.{site.org_id}.deliver")
    assert [m["actionId"] for m in messages] == ids

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        program,
        site.org_name,
        "nowhere",
        "1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 1 and "unknown queue nowhere" in err.decode()
