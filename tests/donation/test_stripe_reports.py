"""Stripe's signed reports on payments (`POST /webhook/stripe/{service id}`): the donation
they are about is updated and its org gets a `donation_updated` event; anything unsigned is
refused and changes nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit import base64url
from proca_server.models import Donation, Service
from tests.donation.conftest import WEBHOOK_SECRET, Donors, make_donors
from tests.donation.standin import sign
from tests.processing.conftest import RecordingPipeline
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post

_seq = iter(range(1, 10**6))


def event(event_type: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{next(_seq)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "data": {"object": obj},
    }


def intent(ident: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "object": "payment_intent", "amount": 1500, "currency": "eur", **fields}


def invoice(subscription: str, payment: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"in_{next(_seq)}",
        "object": "invoice",
        "subscription": subscription,
        "payment_intent": payment,
        **fields,
    }


async def report(
    client: httpx.AsyncClient,
    donors: Donors,
    body: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    payload = json.dumps(body).encode()
    return await client.post(
        donors.webhook,
        content=payload,
        headers={"Stripe-Signature": sign(payload, secret, timestamp)},
    )


async def donate(
    client: httpx.AsyncClient,
    donors: Donors,
    payment: str,
    *,
    frequency: str = "ONE_OFF",
    email: str = "ann@example.org",
) -> str:
    """A donation recorded as the widget's Stripe form does; its contactRef."""
    variables = signature(donors.page_id, email)
    variables["action"] = {
        "actionType": "donate",
        "donation": {
            "amount": 1500,
            "currency": "EUR",
            "frequencyUnit": frequency,
            "payload": json.dumps(
                {
                    "paymentIntent": {"id": payment, "status": "succeeded", "amount": 1500},
                    "values": {"firstname": "Ann"},
                    "provider": "stripe",
                }
            ),
        },
    }
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert "errors" not in body, body
    ref: str = body["data"]["addActionContact"]["contactRef"]
    return ref


async def donation_state(session: AsyncSession) -> list[tuple[Any, ...]]:
    await session.rollback()
    rows = await session.execute(
        select(
            Donation.payment_id,
            Donation.subscription_id,
            Donation.payment_status,
            Donation.last_payment_id,
        ).order_by(Donation.id)
    )
    return [tuple(r) for r in rows]


def published(pipeline: RecordingPipeline) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (p.exchange, p.routing_key, json.loads(p.body))
        for publications, _ in pipeline.calls
        for p in publications
    ]


async def test_a_signed_success_report_updates_the_donation_and_tells_its_org(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    donors = await make_donors(session)
    ref = await donate(client, donors, "pi_one")
    assert await donation_state(session) == [("pi_one", None, None, None)]
    succeeded = event("payment_intent.succeeded", intent("pi_one"))
    answer = await report(client, donors, succeeded)
    assert (answer.status_code, answer.json()) == (200, {"handled": 1})
    assert await donation_state(session) == [("pi_one", None, "succeeded", "pi_one")]
    [(exchange, key, message)] = published(pipeline)
    assert (exchange, key) == (f"org.{donors.org_id}.event", "donation.succeeded")
    action_id = await session.scalar(select(Donation.action_id))
    assert message == {
        "schema": "proca:event:2",
        "eventType": "donation_updated",
        "timestamp": message["timestamp"],
        "orgId": donors.org_id,
        "campaign": {"name": donors.campaign_name},
        "campaignId": donors.campaign_id,
        "actionPage": {"name": donors.page_name},
        "actionPageId": donors.page_id,
        "actionId": action_id,
        "contactRef": ref,
        "testing": False,
        "donation": {
            "amount": 1500,
            "currency": "EUR",
            "frequencyUnit": "one_off",
            "status": "succeeded",
            "paymentId": "pi_one",
            "lastPaymentId": "pi_one",
            "subscriptionId": None,
            "provider": "stripe",
            "providerEvent": {
                "id": succeeded["id"],
                "type": "payment_intent.succeeded",
                "livemode": False,
            },
        },
    }
    assert message["timestamp"].endswith("Z")
    assert base64url.decode(ref)
    # Stripe sends it again: nothing changes, nothing more is told
    again = await report(client, donors, succeeded)
    assert (again.status_code, again.json()) == (200, {"handled": 0})
    assert len(published(pipeline)) == 1


@pytest.mark.parametrize(
    "tamper",
    ["no header", "other secret", "other body", "too old", "garbled header"],
)
async def test_an_unverified_report_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    pipeline: RecordingPipeline,
    tamper: str,
) -> None:
    donors = await make_donors(session)
    await donate(client, donors, "pi_two")
    payload = json.dumps(event("payment_intent.succeeded", intent("pi_two"))).encode()
    header: str | None = sign(payload, WEBHOOK_SECRET)
    body = payload
    if tamper == "no header":
        header = None
    elif tamper == "other secret":
        header = sign(payload, "whsec_someone_else")
    elif tamper == "other body":
        body = payload.replace(b"pi_two", b"pi_zwo")
    elif tamper == "too old":
        header = sign(payload, WEBHOOK_SECRET, int(time.time()) - 3600)
    else:
        header = "t=x,v1"
    headers = {"Stripe-Signature": header} if header is not None else {}
    answer = await client.post(donors.webhook, content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json() == {"error": "bad Stripe-Signature"}
    assert await donation_state(session) == [("pi_two", None, None, None)]
    assert published(pipeline) == []


async def test_reports_need_a_stripe_service_with_a_webhook_secret(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    without = await make_donors(session, password="sk_test_standin")
    body = event("payment_intent.succeeded", intent("pi_three"))
    assert (await report(client, without, body)).status_code == 401
    webhook = Service(name="webhook", host="https://example.org", org_id=without.org_id)
    session.add(webhook)
    await session.commit()
    other = Donors(without.world, without.page_id, without.org_id, webhook.id, None)
    assert (await report(client, other, body)).status_code == 404
    missing = Donors(without.world, without.page_id, without.org_id, webhook.id + 1000, None)
    assert (await report(client, missing, body)).status_code == 404
    assert published(pipeline) == []


async def test_a_failure_reported_after_the_success_of_the_same_payment_is_ignored(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    donors = await make_donors(session)
    await donate(client, donors, "pi_four")
    await report(client, donors, event("payment_intent.succeeded", intent("pi_four")))
    late = await report(client, donors, event("payment_intent.payment_failed", intent("pi_four")))
    assert late.json() == {"handled": 0}
    assert await donation_state(session) == [("pi_four", None, "succeeded", "pi_four")]
    assert [key for _, key, _ in published(pipeline)] == ["donation.succeeded"]


async def test_a_failed_payment_then_its_success(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    """An asynchronous payment (a debit) may fail once and succeed on a second attempt."""
    donors = await make_donors(session)
    await donate(client, donors, "pi_five")
    await report(client, donors, event("payment_intent.payment_failed", intent("pi_five")))
    assert await donation_state(session) == [("pi_five", None, "failed", "pi_five")]
    await report(client, donors, event("payment_intent.succeeded", intent("pi_five")))
    assert await donation_state(session) == [("pi_five", None, "succeeded", "pi_five")]
    assert [key for _, key, _ in published(pipeline)] == ["donation.failed", "donation.succeeded"]


async def test_a_report_touches_only_the_donations_of_the_services_org(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    ours = await make_donors(session)
    theirs = await make_donors(session)
    # a donation on the other org's page naming the same payment
    await donate(client, theirs, "pi_six", email="bob@example.org")
    answer = await report(client, ours, event("payment_intent.succeeded", intent("pi_six")))
    assert answer.json() == {"handled": 0}
    assert await donation_state(session) == [("pi_six", None, None, None)]
    assert published(pipeline) == []


async def test_a_report_before_the_donation_is_recorded_is_asked_again_when_ours(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    donors = await make_donors(session)
    ours = event(
        "payment_intent.succeeded",
        intent("pi_seven", metadata={"actionPageId": str(donors.page_id)}),
    )
    early = await report(client, donors, ours)
    assert early.status_code == 409
    # not a payment of this server's pages, or too old to wait for: dropped
    foreign = event("payment_intent.succeeded", intent("pi_eight"))
    assert (await report(client, donors, foreign)).json() == {"handled": 0}
    stale = event(
        "payment_intent.succeeded",
        intent("pi_seven", metadata={"actionPageId": str(donors.page_id)}),
        created=int(time.time()) - 2 * 86400,
    )
    assert (await report(client, donors, stale)).status_code == 200
    assert published(pipeline) == []
    await donate(client, donors, "pi_seven")
    later = await report(client, donors, ours)
    assert (later.status_code, later.json()) == (200, {"handled": 1})
    assert await donation_state(session) == [("pi_seven", None, "succeeded", "pi_seven")]


async def test_a_recurring_donation_is_followed_through_its_subscription(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    donors = await make_donors(session)
    await donate(client, donors, "pi_first", frequency="MONTHLY")
    await report(client, donors, event("payment_intent.succeeded", intent("pi_first")))
    # the first invoice ties the donation to its subscription, and tells nothing new
    first = await report(client, donors, event("invoice.paid", invoice("sub_1", "pi_first")))
    assert first.json() == {"handled": 0}
    assert await donation_state(session) == [("pi_first", "sub_1", "succeeded", "pi_first")]
    # the next month's payment fails, the one after succeeds
    failed = event("invoice.payment_failed", invoice("sub_1", "pi_second"))
    assert (await report(client, donors, failed)).json() == {"handled": 1}
    paid = event("invoice.payment_succeeded", invoice("sub_1", "pi_third"))
    assert (await report(client, donors, paid)).json() == {"handled": 1}
    assert await donation_state(session) == [("pi_first", "sub_1", "succeeded", "pi_third")]
    ended = event("customer.subscription.deleted", {"id": "sub_1", "object": "subscription"})
    assert (await report(client, donors, ended)).json() == {"handled": 1}
    assert await donation_state(session) == [("pi_first", "sub_1", "cancelled", None)]
    # after the end nothing moves it
    after = event("invoice.paid", invoice("sub_1", "pi_fourth"))
    assert (await report(client, donors, after)).json() == {"handled": 0}
    assert (await report(client, donors, ended)).json() == {"handled": 0}
    messages = published(pipeline)
    assert [key for _, key, _ in messages] == [
        "donation.succeeded",
        "donation.failed",
        "donation.succeeded",
        "donation.cancelled",
    ]
    assert [m["donation"]["lastPaymentId"] for _, _, m in messages] == [
        "pi_first",
        "pi_second",
        "pi_third",
        None,
    ]
    assert {m["donation"]["subscriptionId"] for _, _, m in messages[1:]} == {"sub_1"}
    assert messages[0][2]["donation"]["frequencyUnit"] == "monthly"


async def test_invoices_in_stripes_newer_shape_are_read(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    donors = await make_donors(session)
    await donate(client, donors, "pi_new", frequency="MONTHLY")
    newer = {
        "id": "in_new",
        "object": "invoice",
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": "sub_new", "metadata": {}},
        },
        "payments": {
            "object": "list",
            "data": [{"payment": {"type": "payment_intent", "payment_intent": "pi_new"}}],
        },
    }
    assert (await report(client, donors, event("invoice.paid", newer))).json() == {"handled": 1}
    assert await donation_state(session) == [("pi_new", "sub_new", "succeeded", "pi_new")]


async def test_events_of_no_concern_are_acknowledged(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    donors = await make_donors(session)
    refund = event("charge.refunded", {"id": "ch_1", "object": "charge"})
    assert (await report(client, donors, refund)).json() == {"handled": 0}
    payload = b"not json"
    answer = await client.post(
        donors.webhook, content=payload, headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET)}
    )
    assert (answer.status_code, answer.json()) == (200, {"handled": 0})
    assert published(pipeline) == []
