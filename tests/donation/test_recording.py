"""The donation the widget records after paying (addActionContact with `donation`): amounts,
currencies and frequencies are checked, and the Stripe payment it names is kept so that
Stripe's reports find it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Donation
from tests.donation.conftest import make_donors
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post


async def record(
    client: httpx.AsyncClient, page_id: int, donation: dict[str, Any]
) -> dict[str, Any]:
    variables = signature(page_id)
    variables["action"] = {"actionType": "donate", "donation": donation}
    return await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)


async def stored(session: AsyncSession) -> list[Donation]:
    await session.rollback()
    return list((await session.execute(select(Donation).order_by(Donation.id))).scalars())


async def test_the_payment_intent_of_the_widgets_payload_is_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    donors = await make_donors(session)
    payload = {
        "paymentIntent": {"id": "pi_3Qabc", "status": "succeeded", "amount": 2500},
        "values": {"firstname": "Ann"},
        "provider": "stripe",
    }
    body = await record(
        client,
        donors.page_id,
        {
            "amount": 2500,
            "currency": "EUR",
            "frequencyUnit": "MONTHLY",
            "payload": json.dumps(payload),
        },
    )
    assert "errors" not in body, body
    [donation] = await stored(session)
    assert (donation.payment_id, donation.subscription_id) == ("pi_3Qabc", None)
    # Stripe has not reported yet: the widget's word on the payment is not taken
    assert donation.payment_status is None
    assert donation.payload == payload


async def test_a_stripe_payment_intent_payload_gives_amount_currency_and_payment(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    donors = await make_donors(session)
    intent = {"id": "pi_9", "object": "payment_intent", "amount": 1234, "currency": "chf"}
    body = await record(
        client,
        donors.page_id,
        {
            "schema": "STRIPE_PAYMENT_INTENT",
            "payload": json.dumps({**intent, "subscriptionId": "sub_4"}),
        },
    )
    assert "errors" not in body, body
    [donation] = await stored(session)
    assert (donation.amount, donation.currency) == (1234, "CHF")
    assert (donation.payment_id, donation.subscription_id) == ("pi_9", "sub_4")


async def test_ids_that_are_not_stripes_are_not_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    donors = await make_donors(session)
    payload = {
        "paymentIntent": {"id": "PAYID-123"},
        "subscription": "x" * 300,
        "provider": "paypal",
    }
    body = await record(
        client, donors.page_id, {"amount": 100, "currency": "usd", "payload": json.dumps(payload)}
    )
    assert "errors" not in body, body
    [donation] = await stored(session)
    assert (donation.payment_id, donation.subscription_id) == (None, None)


@pytest.mark.parametrize(
    ("donation", "field", "message"),
    [
        ({"amount": 100, "currency": "XYZ"}, "currency", "does not exist"),
        ({"amount": 100, "currency": "EURO"}, "currency", "is not a currency code"),
        ({"amount": 0, "currency": "EUR"}, "amount", "must be greater than 0"),
        ({"currency": "EUR"}, "amount", "can't be blank"),
    ],
)
async def test_what_is_no_donation_is_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    donation: dict[str, Any],
    field: str,
    message: str,
) -> None:
    donors = await make_donors(session)
    body = await record(client, donors.page_id, {**donation, "payload": "{}"})
    first = body["errors"][0]
    assert (first["message"], first["path"][-1]) == (message, field)
    assert first["extensions"]["code"] == "bad_arg"
    assert await stored(session) == []


async def test_a_frequency_that_is_no_enum_value_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    donors = await make_donors(session)
    body = await record(
        client,
        donors.page_id,
        {"amount": 100, "currency": "EUR", "frequencyUnit": "YEARLY", "payload": "{}"},
    )
    assert body.get("errors") and body.get("data") is None
    assert await stored(session) == []
