"""The detail worker against a CRM on a loopback port: processing sends a lookup request
instead of the stage messages, the worker asks the org's detail backend and emits them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proca_server.broker import OrgConfig, org_topology, store
from proca_server.broker.base import Delivery, PermanentError, RetryableError
from proca_server.broker.embedded import EmbeddedBroker
from proca_server.broker.topology import load_org_topology
from proca_server.models import Action, Contact, Org, Service, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.processing.detail import InvalidDetails, parse_details
from proca_server.workers import WorkerDeps
from proca_server.workers.detail import lookup_batch
from proca_server.workers.registry import batch_handler_for
from tests.local_http import serve
from tests.processing.helpers import action_ids, make_site, process, sign
from tests.workers.conftest import Received

PASSWORD = "crm-Secret-7"
SIGNING = "crm-Sign-8"
GIVEN_AT = "2024-03-01T09:30:00+00:00"
CHANGED_AT = "2024-03-02T10:00:00+00:00"
FOUND = {
    "privacy": {
        "optIn": True,
        "givenAt": GIVEN_AT,
        "emailStatus": "double_opt_in",
        "emailStatusChanged": CHANGED_AT,
    },
    "action": {"customFields": {"member": True, "segment": "donor"}},
}


@dataclass
class Crm:
    """A detail backend: `/found` knows the supporter, `/unknown` answers 404, `/status/N`
    that status, `/text` a 200 that is not JSON, `/invalid` an answer missing `givenAt`,
    `/slow` answers after 2 s, `/flaky` fails with 503 once, then knows the supporter."""

    url: str
    received: list[Received] = field(default_factory=list)


@pytest.fixture
async def crm() -> AsyncIterator[Crm]:
    received: list[Received] = []

    async def endpoint(request: Request) -> Response:
        received.append(Received(request.url.path, dict(request.headers), await request.body()))
        path = request.url.path
        if path == "/slow":
            await asyncio.sleep(2)
        if path == "/flaky" and sum(r.path == "/flaky" for r in received) == 1:
            return Response("", status_code=503)
        if path.startswith("/status/"):
            return Response("", status_code=int(path.rsplit("/", 1)[1]))
        if path == "/unknown":
            return JSONResponse({"error": "not found"}, status_code=404)
        if path == "/text":
            return Response("ann@example.org is a member")
        if path == "/invalid":
            return JSONResponse({"privacy": {"optIn": True, "email": "ann@example.org"}})
        return JSONResponse(FOUND)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    async with serve(app) as url:
        yield Crm(url, received)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass(frozen=True)
class Signed:
    org_id: int
    action_id: int
    ref: str

    @property
    def queue(self) -> str:
        return f"wrk.{self.org_id}.detail"


async def signed_with_backend(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    url: str,
    *,
    service: str = "webhook",
    user: str = "proca",
    password: str = f"{PASSWORD} hmac:{SIGNING}",
) -> Signed:
    """An org whose detail backend is a service at `url` and whose deliveries go to its
    `cus.N.deliver` queue; one signature on its page, processed (not yet emitted)."""
    site = await make_site(session, encrypted=False, org_fields={"custom_action_deliver": True})
    backend = Service(org_id=site.org_id, name=service, host=url, user=user, password=password)
    session.add(backend)
    await session.flush()
    org = await session.get(Org, site.org_id)
    assert org is not None
    org.detail_backend_id = backend.id
    await session.commit()
    await broker.apply_topology(await load_org_topology(session, site.org_id))
    await session.commit()
    ref = await sign(client, site.page_id)
    action_id = max(await action_ids(session))
    await process(session, [action_id])
    return Signed(site.org_id, action_id, ref)


def lookup(signed: Signed, stage: str = "deliver", retries: int = 0) -> Delivery:
    body = json.dumps({"actionId": signed.action_id, "stage": stage}).encode()
    return Delivery(signed.queue, body, "", signed.queue, retries)


async def delivered(session: AsyncSession, org_id: int) -> list[dict[str, Any]]:
    await session.rollback()
    return [json.loads(m.body) for m in await store.peek_messages(session, f"cus.{org_id}.deliver")]


async def supporter_of(session: AsyncSession, action_id: int) -> Supporter:
    await session.rollback()
    session.expunge_all()
    return (
        await session.execute(
            select(Supporter)
            .join(Action, Action.supporter_id == Supporter.id)
            .where(Action.id == action_id)
        )
    ).scalar_one()


async def test_processing_sends_a_lookup_request_and_keeps_the_email_for_it(
    session: AsyncSession, client: httpx.AsyncClient, crm: Crm
) -> None:
    site = await make_site(session, encrypted=False, org_fields={"custom_action_deliver": True})
    backend = Service(org_id=site.org_id, name="webhook", host=crm.url)
    session.add(backend)
    await session.flush()
    org = await session.get(Org, site.org_id)
    assert org is not None
    org.detail_backend_id = backend.id
    await session.commit()
    await sign(client, site.page_id)
    [action_id] = await action_ids(session)

    [plan] = await process(session, [action_id])

    assert plan.detail_lookup and plan.action_status is A.DELIVERED
    [publication] = plan.publications
    assert (publication.exchange, publication.routing_key) == ("", f"wrk.{site.org_id}.detail")
    assert json.loads(publication.body) == {"actionId": action_id, "stage": "deliver"}
    supporter = await supporter_of(session, action_id)
    assert supporter.processing_status is S.ACCEPTED
    assert supporter.email == "ann@example.org"  # cleared once the lookup is done


async def test_a_found_supporter_updates_consent_status_and_fields_then_is_delivered(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    deps: WorkerDeps,
    crm: Crm,
) -> None:
    signed = await signed_with_backend(session, client, broker, f"{crm.url}/found?key=k")
    before = counter("proca_detail_lookups_total", outcome="ok")

    assert await lookup_batch(deps, signed.org_id, [lookup(signed)]) == [None]

    [asked] = crm.received
    assert asked.path == "/found"
    assert json.loads(asked.body) == {"email": "ann@example.org", "contactRef": signed.ref}
    basic = base64.b64encode(f"proca:{PASSWORD}".encode()).decode()
    assert asked.headers["authorization"] == f"Basic {basic}"
    signature = hmac.new(SIGNING.encode(), asked.body, hashlib.sha256).hexdigest()
    assert asked.headers["x-proca-signature"] == f"sha256={signature}"

    supporter = await supporter_of(session, signed.action_id)
    assert supporter.email_status is EmailStatus.DOUBLE_OPT_IN
    assert supporter.email_status_changed == datetime.fromisoformat(CHANGED_AT)
    assert supporter.email is None  # delivery cleared it, after the lookup
    contact = (
        await session.execute(select(Contact).where(Contact.supporter_id == supporter.id))
    ).scalar_one()
    assert contact.communication_consent is True
    assert contact.inserted_at == datetime.fromisoformat(GIVEN_AT)
    action = await session.get(Action, signed.action_id)
    assert action is not None and action.fields["member"] is True
    assert action.fields["segment"] == "donor"

    [message] = await delivered(session, signed.org_id)
    assert message["actionId"] == signed.action_id and message["stage"] == "deliver"
    assert message["privacy"]["optIn"] is True
    assert message["privacy"]["givenAt"].startswith("2024-03-01T09:30:00")
    assert message["privacy"]["emailStatus"] == "double_opt_in"
    assert message["action"]["customFields"]["segment"] == "donor"
    assert message["contact"]["email"] == "ann@example.org"
    assert counter("proca_detail_lookups_total", outcome="ok") == before + 1


async def test_a_supporter_the_backend_does_not_know_is_delivered_as_is(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    deps: WorkerDeps,
    crm: Crm,
) -> None:
    signed = await signed_with_backend(session, client, broker, f"{crm.url}/unknown")
    before = counter("proca_detail_lookups_total", outcome="not_found")

    assert await lookup_batch(deps, signed.org_id, [lookup(signed)]) == [None]

    [message] = await delivered(session, signed.org_id)
    assert message["privacy"]["emailStatus"] is None
    assert (await supporter_of(session, signed.action_id)).email_status is EmailStatus.NONE
    assert counter("proca_detail_lookups_total", outcome="not_found") == before + 1


@pytest.mark.parametrize(
    ("path", "error", "outcome"),
    [
        ("/status/500", RetryableError, "unavailable"),
        ("/status/503", RetryableError, "unavailable"),
        ("/status/429", RetryableError, "unavailable"),
        ("/status/401", PermanentError, "refused"),
        ("/status/400", PermanentError, "refused"),
        ("/text", PermanentError, "invalid"),
        ("/invalid", PermanentError, "invalid"),
    ],
)
async def test_failed_lookups_are_retried_or_parked_and_nothing_goes_out(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    deps: WorkerDeps,
    crm: Crm,
    caplog: pytest.LogCaptureFixture,
    path: str,
    error: type[Exception],
    outcome: str,
) -> None:
    signed = await signed_with_backend(session, client, broker, f"{crm.url}{path}")
    before = counter("proca_detail_lookups_total", outcome=outcome)

    with caplog.at_level(logging.DEBUG):
        [result] = await lookup_batch(deps, signed.org_id, [lookup(signed)])

    assert isinstance(result, error)
    assert await delivered(session, signed.org_id) == []
    supporter = await supporter_of(session, signed.action_id)
    assert supporter.email == "ann@example.org"  # kept for the next try
    assert counter("proca_detail_lookups_total", outcome=outcome) == before + 1
    # the log says which action, org and host; no personal data, no secret
    text = caplog.text + str(result)
    assert f"action {signed.action_id}" in caplog.text and "127.0.0.1" in text
    for secret in ("ann@example.org", signed.ref, PASSWORD, SIGNING, "member"):
        assert secret not in text


@pytest.mark.slow  # waits out real timeouts
async def test_a_backend_slower_than_the_timeout_is_retried(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    deps: WorkerDeps,
    crm: Crm,
) -> None:
    signed = await signed_with_backend(session, client, broker, f"{crm.url}/slow")
    before = counter("proca_detail_lookups_total", outcome="timeout")
    impatient = WorkerDeps(
        deps.settings.model_copy(update={"detail_lookup_timeout_ms": 200}),
        deps.sessionmaker,
        deps.broker,
    )

    [result] = await lookup_batch(impatient, signed.org_id, [lookup(signed)])

    assert isinstance(result, RetryableError) and "timed out" in str(result)
    assert counter("proca_detail_lookups_total", outcome="timeout") == before + 1
    assert await delivered(session, signed.org_id) == []


async def test_an_org_without_a_webhook_detail_backend_is_delivered_without_lookup(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    deps: WorkerDeps,
    crm: Crm,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signed = await signed_with_backend(session, client, broker, crm.url, service="testdetail")
    before = counter("proca_detail_lookups_total", outcome="no_backend")

    with caplog.at_level(logging.WARNING):
        assert await lookup_batch(deps, signed.org_id, [lookup(signed)]) == [None]

    assert crm.received == []
    assert len(await delivered(session, signed.org_id)) == 1
    assert "not a webhook service" in caplog.text
    assert counter("proca_detail_lookups_total", outcome="no_backend") == before + 1


async def test_a_request_whose_action_moved_on_is_dropped(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    deps: WorkerDeps,
    crm: Crm,
) -> None:
    signed = await signed_with_backend(session, client, broker, crm.url)
    supporter = await supporter_of(session, signed.action_id)
    supporter.processing_status = S.REJECTED
    await session.commit()

    assert await lookup_batch(deps, signed.org_id, [lookup(signed)]) == [None]
    wrong = Delivery(signed.queue, b'{"actionId": "x"}', "", signed.queue)
    [result] = await lookup_batch(deps, signed.org_id, [wrong])

    assert isinstance(result, PermanentError)
    assert crm.received == []
    assert await delivered(session, signed.org_id) == []


@pytest.mark.slow  # waits out real timeouts
async def test_embedded_queue_retries_a_flaky_backend_and_parks_a_hanging_one(
    session: AsyncSession,
    client: httpx.AsyncClient,
    broker: EmbeddedBroker,
    deps: WorkerDeps,
    crm: Crm,
) -> None:
    flaky = await signed_with_backend(session, client, broker, f"{crm.url}/flaky")
    hanging = await signed_with_backend(session, client, broker, f"{crm.url}/slow")
    impatient = WorkerDeps(
        deps.settings.model_copy(update={"detail_lookup_timeout_ms": 200}),
        deps.sessionmaker,
        deps.broker,
    )
    consumers = []
    for signed in (flaky, hanging):
        handler = batch_handler_for(signed.queue, impatient)
        assert handler is not None
        consumers.append(await broker.consume_batches(signed.queue, handler, batch_timeout=0.05))
        await broker.send_to_queue(signed.queue, lookup(signed).body)
    try:

        async def parked() -> list[store.StoredMessage]:
            await session.rollback()
            return await store.peek_messages(session, f"org.{hanging.org_id}.fail", 10)

        for _ in range(200):
            if await parked() and await delivered(session, flaky.org_id):
                break
            await asyncio.sleep(0.05)
        # the flaky backend failed once, then answered: delivered with its details
        [message] = await delivered(session, flaky.org_id)
        assert message["privacy"]["emailStatus"] == "double_opt_in"
        assert [r.path for r in crm.received].count("/flaky") == 2
        # the hanging one: the first try and `retry_limit` (2) retries, then parked
        [stored] = await parked()
        assert stored.routing_key == hanging.queue
        assert json.loads(stored.body) == {"actionId": hanging.action_id, "stage": "deliver"}
        assert [r.path for r in crm.received].count("/slow") == 3
        assert await delivered(session, hanging.org_id) == []
    finally:
        for consumer in consumers:
            await consumer.stop()


def test_the_detail_queue_exists_with_a_detail_backend_and_retries_through_the_org() -> None:
    plain = org_topology(OrgConfig(7))
    assert plain.queue("wrk.7.detail") is None
    topology = org_topology(OrgConfig(7, detail_backend=True))
    queue = topology.queue("wrk.7.detail")
    assert queue is not None
    assert queue.arguments == {
        "x-dead-letter-exchange": "org.7.fail",
        "x-dead-letter-routing-key": "wrk.7.detail",
    }
    assert any(
        (b.exchange, b.queue, b.routing_key) == ("org.7.retry", "wrk.7.detail", "wrk.7.detail")
        for b in topology.enabled_bindings
    )


def test_answers_are_checked_before_anything_changes() -> None:
    details = parse_details(
        {"privacy": {"opt_in": True, "given_at": GIVEN_AT}, "action": {"customFields": {}}}
    )
    assert details.opt_in is True and details.given_at == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    camel = parse_details(
        {"privacy": {"emailStatus": "doubleOptIn", "emailStatusChanged": "2024-03-02T10:00:00Z"}}
    )
    assert camel.email_status is EmailStatus.DOUBLE_OPT_IN
    assert parse_details({}) == parse_details({"privacy": None})
    wrongs: list[Any] = [
        [],
        {"privacy": {"optIn": True}},
        {"privacy": {"optIn": "yes", "givenAt": GIVEN_AT}},
        {"privacy": {"emailStatus": "bounce"}},
        {"privacy": {"emailStatus": "gone", "emailStatusChanged": CHANGED_AT}},
        {"privacy": {"givenAt": "yesterday"}},
        {"action": {"customFields": {"nested": {"a": 1}}}},
    ]
    for wrong in wrongs:
        with pytest.raises(InvalidDetails):
            parse_details(wrong)
