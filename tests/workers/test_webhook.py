"""The webhook worker against a real HTTP server on a loopback port."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker import OrgConfig, org_topology, store
from proca_server.broker.base import Delivery, PermanentError, RetryableError
from proca_server.broker.embedded import EmbeddedBroker
from proca_server.workers import WorkerDeps
from proca_server.workers.registry import batch_handler_for
from proca_server.workers.webhook import deliver_batch, split_password
from tests.local_http import free_port
from tests.workers.conftest import Peer, org_with_backends

PASSWORD = "pw-Secret-42"
SIGNING = "sig-Secret-99"


def action(action_id: int = 1, **extra: Any) -> bytes:
    message = {
        "schema": "proca:action:2",
        "stage": "deliver",
        "actionId": action_id,
        "campaign": {"name": "save_bees"},
        "action": {"actionType": "petition"},
        "contact": {"email": "ann@example.org"},
        **extra,
    }
    return json.dumps(message, separators=(",", ":")).encode()


def event() -> bytes:
    return json.dumps({"schema": "proca:event:2", "eventType": "email_status"}).encode()


def delivery(org_id: int, body: bytes, retries: int = 0) -> Delivery:
    return Delivery(
        f"wrk.{org_id}.webhook", body, f"org.{org_id}.deliver", "petition.save_bees", retries
    )


def webhook(url: str, user: str = "", password: str = "") -> dict[str, str]:
    return {"name": "webhook", "host": url, "user": user, "password": password}


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_password_holds_the_credential_and_the_signing_secret() -> None:
    assert split_password("") == ("", None)
    assert split_password("Bearer t0ken") == ("Bearer t0ken", None)
    assert split_password("Bearer t0ken hmac:s3cret") == ("Bearer t0ken", "s3cret")
    assert split_password("hmac:s3cret") == ("", "s3cret")
    assert split_password("pass hmac:") == ("pass hmac:", None)


async def test_posts_the_exact_body_with_basic_auth_and_signature(
    session: AsyncSession, deps: WorkerDeps, peer: Peer
) -> None:
    org_id = await org_with_backends(
        session, push=webhook(f"{peer.url}/hook?x=1", "proca", f"{PASSWORD} hmac:{SIGNING}")
    )
    body = action()
    before = counter("proca_messages_delivered_total", worker="webhook")

    assert await deliver_batch(deps, org_id, [delivery(org_id, body)]) == [None]

    [got] = peer.received
    assert got.path == "/hook" and got.body == body
    assert got.headers["content-type"] == "application/json"
    basic = base64.b64encode(f"proca:{PASSWORD}".encode()).decode()
    assert got.headers["authorization"] == f"Basic {basic}"
    expected = hmac.new(SIGNING.encode(), body, hashlib.sha256).hexdigest()
    assert got.headers["x-proca-signature"] == f"sha256={expected}"
    assert counter("proca_messages_delivered_total", worker="webhook") == before + 1


async def test_password_alone_is_the_raw_authorization_and_nothing_is_signed(
    session: AsyncSession, deps: WorkerDeps, peer: Peer
) -> None:
    org_id = await org_with_backends(session, push=webhook(peer.url, "", "Bearer t0ken"))
    assert await deliver_batch(deps, org_id, [delivery(org_id, action())]) == [None]
    [got] = peer.received
    assert got.headers["authorization"] == "Bearer t0ken"
    assert "x-proca-signature" not in got.headers


async def test_no_credentials_send_no_authorization(
    session: AsyncSession, deps: WorkerDeps, peer: Peer
) -> None:
    org_id = await org_with_backends(session, push=webhook(peer.url, "someone", ""))
    assert await deliver_batch(deps, org_id, [delivery(org_id, action())]) == [None]
    assert "authorization" not in peer.received[0].headers


async def test_events_go_to_the_event_backend_and_actions_to_the_push_backend(
    session: AsyncSession, deps: WorkerDeps, peer: Peer
) -> None:
    org_id = await org_with_backends(
        session, push=webhook(f"{peer.url}/push"), event=webhook(f"{peer.url}/event")
    )
    bodies = [action(1), event(), action(2)]
    results = await deliver_batch(deps, org_id, [delivery(org_id, b) for b in bodies])
    assert results == [None, None, None]
    assert sorted((r.path, r.body) for r in peer.received) == sorted(
        [("/push", bodies[0]), ("/event", bodies[1]), ("/push", bodies[2])]
    )


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (201, None),
        (204, None),
        (400, PermanentError),
        (404, PermanentError),
        (302, PermanentError),
        (408, RetryableError),
        (429, RetryableError),
        (500, RetryableError),
        (503, RetryableError),
    ],
)
async def test_any_2xx_delivers_and_other_answers_retry_or_park(
    session: AsyncSession,
    deps: WorkerDeps,
    peer: Peer,
    status: int,
    outcome: type[Exception] | None,
) -> None:
    org_id = await org_with_backends(session, push=webhook(f"{peer.url}/status/{status}"))
    [result] = await deliver_batch(deps, org_id, [delivery(org_id, action())])
    if outcome is None:
        assert result is None
    else:
        assert isinstance(result, outcome)
        assert str(status) in str(result)


@pytest.mark.slow  # waits out real timeouts
async def test_unreachable_and_slow_receivers_are_retried(
    session: AsyncSession, deps: WorkerDeps, peer: Peer
) -> None:
    closed = await org_with_backends(session, push=webhook(f"http://127.0.0.1:{free_port()}/hook"))
    [result] = await deliver_batch(deps, closed, [delivery(closed, action())])
    assert isinstance(result, RetryableError)

    slow = await org_with_backends(session, push=webhook(f"{peer.url}/slow"))
    async with httpx.AsyncClient(timeout=0.3) as client:
        [result] = await deliver_batch(deps, slow, [delivery(slow, action())], client=client)
    assert isinstance(result, RetryableError) and "timed out" in str(result)


async def test_messages_without_a_webhook_backend_or_not_json_are_parked(
    session: AsyncSession, deps: WorkerDeps, peer: Peer
) -> None:
    org_id = await org_with_backends(session, push=webhook(peer.url))
    results = await deliver_batch(
        deps, org_id, [delivery(org_id, event()), delivery(org_id, b"not json")]
    )
    assert all(isinstance(r, PermanentError) for r in results)
    assert peer.received == []


async def test_failures_never_log_the_password_or_the_secret(
    session: AsyncSession,
    deps: WorkerDeps,
    peer: Peer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"{peer.url}/status/401"
    org_id = await org_with_backends(
        session, push=webhook(url, "proca", f"{PASSWORD} hmac:{SIGNING}")
    )
    before = counter("proca_worker_failures_total", worker="webhook", outcome="parked")
    with caplog.at_level(logging.DEBUG):
        [result] = await deliver_batch(deps, org_id, [delivery(org_id, action())])
    assert isinstance(result, PermanentError)
    text = caplog.text + str(result)
    assert "401" in text
    assert PASSWORD not in text and SIGNING not in text
    assert counter("proca_worker_failures_total", worker="webhook", outcome="parked") == (
        before + 1
    )


async def test_embedded_queue_delivers_to_the_webhook_and_parks_refused_messages(
    session: AsyncSession, deps: WorkerDeps, broker: EmbeddedBroker, peer: Peer
) -> None:
    good = await org_with_backends(session, push=webhook(f"{peer.url}/good"))
    bad = await org_with_backends(session, push=webhook(f"{peer.url}/status/404"))
    consumers = []
    for org_id in (good, bad):
        await broker.apply_topology(org_topology(OrgConfig(org_id, push_backend="webhook")))
        queue = f"wrk.{org_id}.webhook"
        handler = batch_handler_for(queue, deps)
        assert handler is not None
        consumers.append(await broker.consume_batches(queue, handler, batch_timeout=0.05))
    try:
        for org_id in (good, bad):
            assert await broker.publish(f"org.{org_id}.deliver", "petition.save_bees", action())

        async def parked() -> list[store.StoredMessage]:
            await session.rollback()
            return await store.peek_messages(session, f"org.{bad}.fail", 10)

        for _ in range(200):
            if len(peer.received) >= 2 and await parked():
                break
            await asyncio.sleep(0.05)
        assert sorted(r.path for r in peer.received) == ["/good", "/status/404"]
        [message] = await parked()
        assert message.routing_key == f"wrk.{bad}.webhook" and message.body == action()
    finally:
        for consumer in consumers:
            await consumer.stop()


def test_other_queues_have_no_built_in_worker(deps: WorkerDeps) -> None:
    assert batch_handler_for("cus.1.deliver", deps) is None
    assert batch_handler_for("wrk.x.webhook", deps) is None
    assert batch_handler_for("wrk.1.unknown", deps) is None
    assert batch_handler_for("wrk.1.webhook", deps) is not None
    assert batch_handler_for("wrk.1.sqs", deps) is not None
