"""The SQS worker against a local moto server (read back through the SQS API), and a
minimal SQS-speaking endpoint for the per-message failures moto never produces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proca_server.broker.base import Delivery, PermanentError, RetryableError
from proca_server.workers import WorkerDeps
from proca_server.workers.sqs import deliver_batch
from tests.local_http import free_port, serve
from tests.workers.conftest import org_with_backends

REGION = "eu-west-1"
ACCESS_KEY = "AKIAPROCATEST"
SECRET_KEY = "sqs-Secret-key-0123456789"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def sqs_client(moto_url: str) -> Any:
    return get_session().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture
async def queue_url(moto_url: str) -> AsyncIterator[str]:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{moto_url}/moto-api/reset")).raise_for_status()
    async with sqs_client(moto_url) as client:
        answer = await client.create_queue(QueueName="proca-actions")
    yield str(answer["QueueUrl"])


async def read_queue(moto_url: str, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    async with sqs_client(moto_url) as client:
        while True:
            answer = await client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            )
            if not answer.get("Messages"):
                return messages
            messages.extend(answer["Messages"])


def sqs(queue_url: str, secret: str = SECRET_KEY) -> dict[str, str]:
    return {
        "name": "sqs",
        "host": REGION,
        "user": ACCESS_KEY,
        "password": secret,
        "path": queue_url,
    }


def action(action_id: int, stage: str = "deliver") -> bytes:
    return json.dumps(
        {
            "schema": "proca:action:2",
            "stage": stage,
            "actionId": action_id,
            "campaign": {"name": "save_bees"},
            "action": {"actionType": "petition"},
        }
    ).encode()


def event() -> bytes:
    return json.dumps({"schema": "proca:event:2", "eventType": "email_status"}).encode()


def delivery(org_id: int, body: bytes) -> Delivery:
    return Delivery(f"wrk.{org_id}.sqs", body, f"org.{org_id}.deliver", "petition.save_bees")


def attributes(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


async def test_sends_batches_of_ten_with_attributes(
    session: AsyncSession, deps: WorkerDeps, moto_url: str, queue_url: str
) -> None:
    org_id = await org_with_backends(session, push=sqs(queue_url))
    bodies = [action(i) for i in range(1, 13)]

    results = await deliver_batch(deps, org_id, [delivery(org_id, b) for b in bodies])

    assert results == [None] * 12
    got = await read_queue(moto_url, queue_url)
    assert sorted(m["Body"].encode() for m in got) == sorted(bodies)
    assert {json.dumps(attributes(m), sort_keys=True) for m in got} == {
        json.dumps(
            {
                "ActionType": "petition",
                "CampaignName": "save_bees",
                "Schema": "proca:action:2",
                "Stage": "deliver",
            },
            sort_keys=True,
        )
    }


async def test_events_go_to_the_event_queue(
    session: AsyncSession, deps: WorkerDeps, moto_url: str, queue_url: str
) -> None:
    async with sqs_client(moto_url) as client:
        events_url = str((await client.create_queue(QueueName="proca-events"))["QueueUrl"])
    org_id = await org_with_backends(session, push=sqs(queue_url), event=sqs(events_url))

    results = await deliver_batch(
        deps, org_id, [delivery(org_id, action(1)), delivery(org_id, event())]
    )

    assert results == [None, None]
    [pushed] = await read_queue(moto_url, queue_url)
    [evented] = await read_queue(moto_url, events_url)
    assert pushed["Body"].encode() == action(1)
    assert evented["Body"].encode() == event()
    assert attributes(evented) == {"Schema": "proca:event:2"}


async def test_missing_queue_parks_and_unreachable_endpoint_retries(
    session: AsyncSession, deps: WorkerDeps, moto_url: str, queue_url: str
) -> None:
    missing = await org_with_backends(session, push=sqs(queue_url.replace("proca-actions", "nope")))
    [result] = await deliver_batch(deps, missing, [delivery(missing, action(1))])
    assert isinstance(result, PermanentError)

    closed = f"http://127.0.0.1:{free_port()}/123456789012/proca-actions"
    unreachable = await org_with_backends(session, push=sqs(closed))
    [result] = await deliver_batch(deps, unreachable, [delivery(unreachable, action(1))])
    assert isinstance(result, RetryableError)
    assert SECRET_KEY not in str(result)


async def test_refused_entries_fail_alone(session: AsyncSession, deps: WorkerDeps) -> None:
    """An SQS endpoint refusing action 2 (sender fault) and action 3 (its own fault)."""
    seen: list[dict[str, Any]] = []

    async def endpoint(request: Request) -> Response:
        assert request.headers["x-amz-target"] == "AmazonSQS.SendMessageBatch"
        payload = json.loads(await request.body())
        seen.append(payload)
        ids = [e["Id"] for e in payload["Entries"]]
        answer = {
            "Successful": [
                {"Id": i, "MessageId": f"m-{i}", "MD5OfMessageBody": "x"}
                for i in ids
                if i not in ("2", "3")
            ],
            "Failed": [
                {"Id": "2", "SenderFault": True, "Code": "InvalidMessageContents"},
                {"Id": "3", "SenderFault": False, "Code": "InternalError"},
            ],
        }
        return Response(json.dumps(answer), media_type="application/x-amz-json-1.0")

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    async with serve(app) as url:
        org_id = await org_with_backends(session, push=sqs(f"{url}/123456789012/q"))
        results = await deliver_batch(
            deps, org_id, [delivery(org_id, action(i)) for i in (1, 2, 3, 4)]
        )
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], PermanentError)
    assert isinstance(results[2], RetryableError)
    [payload] = seen
    assert payload["QueueUrl"] == f"{url}/123456789012/q"
    assert [e["Id"] for e in payload["Entries"]] == ["1", "2", "3", "4"]
