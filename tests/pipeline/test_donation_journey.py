"""A donation through Stripe end to end, as the widget makes it, against the Stripe stand-in
(through the official library) and the running pipeline, on the embedded queue and on
RabbitMQ: the widget creates a customer and a payment intent with addStripeObject, confirms
the payment with Stripe, then records the donation with addActionContact; Stripe's report of
the payment (sent before the donation was recorded, so asked again) reaches the org's own
queue as a `donation_updated` event. Then a monthly donation: its subscription's first
payment, then its end."""

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
from proca_server.donation.stripe import stripe_client
from proca_server.models import Action, Donation, Service
from proca_server.models.enums import ActionProcessingStatus as A
from tests.donation.standin import StripeStandIn, running_standin
from tests.factories import make_campaign, make_org, make_page
from tests.pipeline.conftest import FAST, delete_org_entities, eventually, fresh_org_id, running
from tests.pipeline.helpers import drain
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post

API_KEY = "sk_test_journey"
WEBHOOK_SECRET = "whsec_journey"
ADD_OBJECT = """mutation addStripeObject($actionPageId: Int!, $customer: Json, $price: Json,
  $subscription: Json, $paymentIntent: Json) {
  addStripeObject(actionPageId: $actionPageId, customer: $customer, price: $price,
    subscription: $subscription, paymentIntent: $paymentIntent)
}"""


async def events_in(
    session: AsyncSession, settings: Settings, queue: str, seen: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The messages of `queue` so far (RabbitMQ's are taken off the queue, so kept in `seen`)."""
    if settings.amqp_url:
        seen.setdefault(queue, []).extend(await drain(queue))
        return seen[queue]
    await session.rollback()
    return [json.loads(m.body) for m in await peek_messages(session, queue, 100)]


@pytest.fixture
async def org_id(broker_settings: Settings) -> AsyncIterator[int]:
    """An org id whose RabbitMQ entities are removed before and after (ids repeat)."""
    ident = fresh_org_id()
    if broker_settings.amqp_url:
        await delete_org_entities(ident)
    yield ident
    if broker_settings.amqp_url:
        await delete_org_entities(ident)


@pytest.fixture
async def stripe(app: FastAPI) -> AsyncIterator[StripeStandIn]:
    async with running_standin(StripeStandIn(api_keys={API_KEY})) as (standin, url):
        settings: Settings = state_of(app).settings
        previous = settings.stripe_api_base
        settings.stripe_api_base = url
        try:
            yield standin
        finally:
            settings.stripe_api_base = previous


async def stripe_object(client: httpx.AsyncClient, page_id: int, **objects: Any) -> Any:
    variables = {"actionPageId": page_id, **{k: json.dumps(v) for k, v in objects.items()}}
    body = await widget_post(client, "addStripeObject", ADD_OBJECT, variables)
    assert "errors" not in body, body
    return json.loads(body["data"]["addStripeObject"])


async def confirm(standin: StripeStandIn, intent_id: str) -> Any:
    """What Stripe.js does in the supporter's browser once the card is entered."""
    async with stripe_client(API_KEY, standin.url) as stripe:
        confirmed = await stripe.v1.payment_intents.confirm_async(
            intent_id, {"payment_method": "pm_card_visa"}
        )
    return confirmed.last_response.data if confirmed.last_response else None


async def record(
    client: httpx.AsyncClient, page_id: int, intent: Any, email: str, frequency: str
) -> None:
    """The widget's addDonateContact after a confirmed payment."""
    variables = signature(page_id, email)
    variables["action"] = {
        "actionType": "donate",
        "customFields": "{}",
        "donation": {
            "amount": 1500,
            "currency": "EUR",
            "frequencyUnit": frequency,
            "payload": json.dumps(
                {"paymentIntent": intent, "values": {"email": email}, "provider": "stripe"}
            ),
        },
    }
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert "errors" not in body, body


async def test_a_widget_donation_is_paid_recorded_and_reported_to_the_org(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_id: int,
    stripe: StripeStandIn,
) -> None:
    org = await make_org(session, id=org_id, custom_event_deliver=True)
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    service = Service(name="stripe", password=f"{API_KEY} {WEBHOOK_SECRET}", org_id=org.id)
    session.add(service)
    await session.commit()
    page_id, webhook, queue = page.id, f"/webhook/stripe/{service.id}", f"cus.{org_id}.deliver"

    broker = await open_broker(broker_settings, sessionmaker)
    seen: dict[str, list[dict[str, Any]]] = {}
    try:
        async with running(app, broker, FAST):
            # one-off: the customer, then its payment intent (the widget's two calls)
            contact = {"name": "Ann Lee", "email": "ann@example.org"}
            customer = await stripe_object(client, page_id, customer=contact)
            intent = await stripe_object(
                client,
                page_id,
                paymentIntent={
                    "amount": 1500,
                    "currency": "EUR",
                    "setup_future_usage": "off_session",
                    "customer": customer["id"],
                },
            )
            paid = await confirm(stripe, intent["id"])
            assert paid["status"] == "succeeded"
            # Stripe reports at once, before the widget has recorded the donation
            [early] = await stripe.deliver(client, webhook, WEBHOOK_SECRET)
            assert early.status_code == 409
            await record(client, page_id, paid, "ann@example.org", "ONE_OFF")
            [later] = await stripe.deliver(client, webhook, WEBHOOK_SECRET)
            assert (later.status_code, later.json()) == (200, {"handled": 1})

            # monthly: a subscription whose first invoice's payment the widget confirms
            customer = await stripe_object(client, page_id, customer={"email": "bo@example.org"})
            subscription = await stripe_object(
                client,
                page_id,
                subscription={
                    "payment_behavior": "default_incomplete",
                    "customer": customer["id"],
                    "items": [
                        {
                            "price_data": {
                                "unit_amount": 1500,
                                "currency": "EUR",
                                "product": "prod_donation",
                                "recurring": {"interval": "month", "interval_count": 1},
                            }
                        }
                    ],
                    "expand": ["latest_invoice.payment_intent"],
                },
            )
            first = await confirm(stripe, subscription["latest_invoice"]["payment_intent"]["id"])
            await record(client, page_id, first, "bo@example.org", "MONTHLY")
            answers = await stripe.deliver(client, webhook, WEBHOOK_SECRET)
            assert [a.status_code for a in answers] == [200, 200, 200, 200]
            async with stripe_client(API_KEY, stripe.url) as api:
                await api.v1.subscriptions.cancel_async(subscription["id"])
            [ended] = await stripe.deliver(client, webhook, WEBHOOK_SECRET)
            assert ended.json() == {"handled": 1}

            async def arrived() -> bool:
                found = await events_in(session, broker_settings, queue, seen)
                return len(found) >= 3

            await eventually(arrived)

            async def processed() -> bool:
                await session.rollback()
                statuses = (await session.execute(select(Action.processing_status))).scalars()
                return set(statuses) == {A.DELIVERED}

            await eventually(processed)
    finally:
        await broker.close()
    events = await events_in(session, broker_settings, queue, seen)
    assert [e["eventType"] for e in events] == ["donation_updated"] * 3
    assert [e["donation"]["status"] for e in events] == ["succeeded", "succeeded", "cancelled"]
    assert [e["donation"]["frequencyUnit"] for e in events] == ["one_off", "monthly", "monthly"]
    assert events[0]["donation"]["paymentId"] == intent["id"]
    assert events[2]["donation"]["subscriptionId"] == subscription["id"]
    await session.rollback()
    donations = (await session.execute(select(Donation).order_by(Donation.id))).scalars().all()
    assert [(d.payment_status, d.subscription_id) for d in donations] == [
        ("succeeded", None),
        ("cancelled", subscription["id"]),
    ]
    assert {e["actionId"] for e in events} == {d.action_id for d in donations}
