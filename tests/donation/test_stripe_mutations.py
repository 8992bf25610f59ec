"""addStripePaymentIntent, addStripeSubscription and addStripeObject, sent as the widget sends
them, against the Stripe stand-in through the official library."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import stripe as library
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.donation.stripe import API_VERSION, create, refused, stripe_client
from proca_server.kit import extras
from proca_server.models import Service
from proca_server.user.service import reset_api_token
from tests.donation.conftest import API_KEY, TEST_API_KEY, make_donors
from tests.donation.standin import StripeStandIn
from tests.factories import make_user
from tests.graphql_helpers import data, error, gql
from tests.local_http import free_port
from tests.widget_helpers import widget_post

PAYMENT_INTENT = """mutation addStripePaymentIntent($actionPageId: Int!,
  $input: StripePaymentIntentInput!, $contactRef: ID, $testing: Boolean) {
  addStripePaymentIntent(actionPageId: $actionPageId, input: $input, contactRef: $contactRef,
    testing: $testing)
}"""

SUBSCRIPTION = """mutation addStripeSubscription($actionPageId: Int!,
  $input: StripeSubscriptionInput!, $contactRef: ID) {
  addStripeSubscription(actionPageId: $actionPageId, input: $input, contactRef: $contactRef)
}"""

# the widget's three documents (src/lib/server.js), the first with its trailing commas
CREATE_CUSTOMER = """mutation addStripeObject (
    $actionPageId: Int!,
    $customer: Json,
  ) {
    addStripeObject (
      actionPageId: $actionPageId,
      customer: $customer,
    )
  }
  """
ADD_OBJECT = """mutation addStripeObject (
    $actionPageId: Int!,
    $customer: Json,
    $price: Json,
    $subscription: Json,
    $paymentIntent: Json
  ) {
    addStripeObject (
      actionPageId: $actionPageId,
      customer: $customer,
      price: $price,
      subscription: $subscription,
      paymentIntent: $paymentIntent
    )
  }
  """
REFERER = "https://campaign.example.org/donate?utm_source=x"


async def call(
    client: httpx.AsyncClient, op: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    return await widget_post(client, op, query, variables, referer=REFERER)


def answer(body: dict[str, Any], field: str) -> dict[str, Any]:
    """The Json answer, a string holding Stripe's object."""
    value = data(body)[field]
    assert isinstance(value, str)
    parsed: dict[str, Any] = json.loads(value)
    return parsed


async def test_a_payment_intent_is_created_with_the_page_metadata(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    body = await call(
        client,
        "addStripePaymentIntent",
        PAYMENT_INTENT,
        {
            "actionPageId": donors.page_id,
            "input": {
                "amount": 1500,
                "currency": "EUR",
                "paymentMethodTypes": ["card", "sepa_debit"],
            },
            "contactRef": "c29tZS1yZWY",
        },
    )
    intent = answer(body, "addStripePaymentIntent")
    assert intent["object"] == "payment_intent"
    assert intent["id"].startswith("pi_")
    assert intent["client_secret"].startswith(intent["id"] + "_secret_")
    assert (intent["amount"], intent["currency"]) == (1500, "eur")
    [sent] = stripe.calls
    assert (sent.method, sent.path) == ("POST", "/v1/payment_intents")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["stripe-version"] == API_VERSION
    assert sent.params == {
        "amount": 1500,
        "currency": "eur",
        "payment_method_types": ["card", "sepa_debit"],
        "metadata": {
            "actionPageName": donors.page_name,
            "actionPageId": str(donors.page_id),
            "campaignName": donors.campaign_name,
            "referer": REFERER,
            "contactRef": "c29tZS1yZWY",
        },
    }


async def test_testing_uses_the_test_stripe_service(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session, test_password=TEST_API_KEY)
    variables = {
        "actionPageId": donors.page_id,
        "input": {"amount": 500, "currency": "usd"},
        "testing": True,
    }
    body = await call(client, "addStripePaymentIntent", PAYMENT_INTENT, variables)
    assert answer(body, "addStripePaymentIntent")["currency"] == "usd"
    assert stripe.calls[0].headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert "payment_method_types" not in stripe.calls[0].params


async def test_a_page_whose_org_has_no_stripe_service_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)  # a `stripe` service, no `test_stripe` one
    variables = {
        "actionPageId": donors.page_id,
        "input": {"amount": 500, "currency": "EUR"},
        "testing": True,
    }
    first = error(await call(client, "addStripePaymentIntent", PAYMENT_INTENT, variables))
    assert first["message"] == "Action Page does not support Stripe"
    assert first["path"] == ["addStripePaymentIntent"]
    assert first["extensions"]["code"] == "not_found"
    unknown = error(
        await call(
            client,
            "addStripePaymentIntent",
            PAYMENT_INTENT,
            {**variables, "actionPageId": donors.page_id + 1000},
        )
    )
    assert unknown["message"] == "Entity not found"
    assert stripe.calls == []


@pytest.mark.parametrize(
    ("amount", "currency", "field", "message"),
    [
        (0, "EUR", "amount", "must be greater than 0"),
        (-5, "EUR", "amount", "must be greater than 0"),
        (500, "XYZ", "currency", "does not exist"),
        (500, "euro", "currency", "does not exist"),
    ],
)
async def test_amount_and_currency_are_checked_before_stripe_is_asked(
    client: httpx.AsyncClient,
    session: AsyncSession,
    stripe: StripeStandIn,
    amount: int,
    currency: str,
    field: str,
    message: str,
) -> None:
    donors = await make_donors(session)
    body = await call(
        client,
        "addStripePaymentIntent",
        PAYMENT_INTENT,
        {"actionPageId": donors.page_id, "input": {"amount": amount, "currency": currency}},
    )
    first = error(body)
    assert (first["message"], first["path"]) == (message, ["addStripePaymentIntent", field])
    assert first["extensions"]["code"] == "bad_arg"
    assert stripe.calls == []


async def test_a_stripe_refusal_comes_back_with_stripes_type_and_codes(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    body = await call(
        client,
        "addStripePaymentIntent",
        PAYMENT_INTENT,
        {"actionPageId": donors.page_id, "input": {"amount": 10, "currency": "EUR"}},
    )
    assert body["data"] is None
    first = error(body)
    assert first["message"] == "Amount must be at least 0.50 eur"
    assert first["path"] == ["addStripePaymentIntent"]
    assert first["extensions"] == {
        "code": "invalid_request_error",
        "http_status": 400,
        "card_code": "amount_too_small",
        "param": "amount",
    }


async def test_a_refused_api_key_is_not_quoted_to_the_widget(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session, password="sk_test_revoked0000key9999")
    body = await call(
        client,
        "addStripePaymentIntent",
        PAYMENT_INTENT,
        {"actionPageId": donors.page_id, "input": {"amount": 500, "currency": "EUR"}},
    )
    first = error(body)
    assert "9999" not in json.dumps(body) and "sk_test" not in json.dumps(body)
    assert first["message"] == "Stripe refused the API key of this page's Stripe service"
    assert first["extensions"]["code"] == "invalid_request_error"
    assert first["extensions"]["http_status"] == 401


async def test_stripe_out_of_reach_is_a_network_error(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    donors = await make_donors(session)
    previous = settings.stripe_api_base
    settings.stripe_api_base = f"http://127.0.0.1:{free_port()}"
    try:
        body = await call(
            client,
            "addStripePaymentIntent",
            PAYMENT_INTENT,
            {"actionPageId": donors.page_id, "input": {"amount": 500, "currency": "EUR"}},
        )
    finally:
        settings.stripe_api_base = previous
    first = error(body)
    assert first["message"] == "Stripe could not be reached"
    assert first["extensions"]["code"] == "network_error"


async def test_a_subscription_has_a_customer_a_price_and_a_first_payment_to_confirm(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    body = await call(
        client,
        "addStripeSubscription",
        SUBSCRIPTION,
        {
            "actionPageId": donors.page_id,
            "input": {"amount": 1000, "currency": "EUR", "frequencyUnit": "MONTHLY"},
            "contactRef": "cmVm",
        },
    )
    subscription = answer(body, "addStripeSubscription")
    assert subscription["object"] == "subscription"
    assert subscription["status"] == "incomplete"
    assert subscription["customer"]["metadata"] == {"contactRef": "cmVm"}
    intent = subscription["latest_invoice"]["payment_intent"]
    assert intent["client_secret"].startswith(intent["id"])
    customer, price, created = stripe.calls
    assert customer.params == {"metadata": {"contactRef": "cmVm"}}
    assert price.params == {
        "currency": "eur",
        "unit_amount": 1000,
        "recurring": {"interval": "month"},
        "product_data": {"name": "Donation"},
    }
    assert created.params["customer"] == subscription["customer"]["id"]
    assert created.params["items"] == [{"price": subscription["items"]["data"][0]["price"]["id"]}]
    assert created.params["payment_behavior"] == "default_incomplete"
    assert created.params["expand"] == ["latest_invoice.payment_intent", "customer"]
    assert created.params["metadata"]["actionPageId"] == str(donors.page_id)
    assert created.params["metadata"]["contactRef"] == "cmVm"


@pytest.mark.parametrize(("unit", "interval"), [("WEEKLY", "week"), ("DAILY", "day")])
async def test_each_recurring_frequency_is_a_stripe_interval(
    client: httpx.AsyncClient,
    session: AsyncSession,
    stripe: StripeStandIn,
    unit: str,
    interval: str,
) -> None:
    donors = await make_donors(session)
    variables = {
        "actionPageId": donors.page_id,
        "input": {"amount": 700, "currency": "CHF", "frequencyUnit": unit},
    }
    data(await call(client, "addStripeSubscription", SUBSCRIPTION, variables))
    assert stripe.calls[1].params["recurring"] == {"interval": interval}
    # no contactRef: a customer without metadata
    assert stripe.calls[0].params == {}


async def test_a_one_off_subscription_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    variables = {
        "actionPageId": donors.page_id,
        "input": {"amount": 700, "currency": "EUR", "frequencyUnit": "ONE_OFF"},
    }
    first = error(await call(client, "addStripeSubscription", SUBSCRIPTION, variables))
    assert first["path"] == ["addStripeSubscription", "frequencyUnit"]
    assert first["extensions"]["code"] == "bad_arg"
    assert stripe.calls == []


async def test_the_widgets_one_off_payment_a_customer_then_its_payment_intent(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    contact = {
        "name": "Ann Lee",
        "email": "ann@example.org",
        "address": {"country": "FR", "postal_code": "75001"},
    }
    body = await call(
        client,
        "addStripeObject",
        CREATE_CUSTOMER,
        {"actionPageId": donors.page_id, "customer": json.dumps(contact)},
    )
    customer = answer(body, "addStripeObject")
    assert customer["object"] == "customer" and customer["email"] == "ann@example.org"
    assert stripe.calls[0].params == contact  # as given: no metadata added to a customer
    intent_params = {
        "amount": 1500,
        "currency": "EUR",
        "setup_future_usage": "off_session",
        "customer": customer["id"],
    }
    body = await call(
        client,
        "addStripeObject",
        ADD_OBJECT,
        {"actionPageId": donors.page_id, "paymentIntent": json.dumps(intent_params)},
    )
    intent = answer(body, "addStripeObject")
    assert intent["customer"] == customer["id"] and intent["client_secret"]
    sent = stripe.calls[1].params
    assert sent["setup_future_usage"] == "off_session"
    # the page's metadata, so that Stripe's reports on this payment can be told apart
    assert sent["metadata"] == {
        "actionPageName": donors.page_name,
        "actionPageId": str(donors.page_id),
        "campaignName": donors.campaign_name,
    }


async def test_the_widgets_subscription_with_inline_price_data(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    customer = stripe.create_customer({})
    subscription_params = {
        "payment_behavior": "default_incomplete",
        "metadata": {"campaign": "mine", "actionPageId": "kept"},
        "customer": customer["id"],
        "items": [
            {
                "price_data": {
                    "unit_amount": 1000,
                    "currency": "EUR",
                    "product": "prod_given",
                    "recurring": {"interval": "month", "interval_count": 1},
                }
            }
        ],
        "expand": ["latest_invoice.payment_intent"],
    }
    body = await call(
        client,
        "addStripeObject",
        ADD_OBJECT,
        {"actionPageId": donors.page_id, "subscription": json.dumps(subscription_params)},
    )
    subscription = answer(body, "addStripeObject")
    assert subscription["latest_invoice"]["payment_intent"]["client_secret"]
    # the caller's metadata wins; the page's fills the keys left free
    assert subscription["metadata"] == {
        "actionPageName": donors.page_name,
        "actionPageId": "kept",
        "campaignName": donors.campaign_name,
        "campaign": "mine",
    }


async def test_a_customer_and_a_price_are_created_first_and_named_in_the_subscription(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    variables = {
        "actionPageId": donors.page_id,
        "customer": json.dumps({"email": "ann@example.org"}),
        "price": json.dumps(
            {
                "unit_amount": 500,
                "currency": "eur",
                "product_data": {"name": "donation"},
                "recurring": {"interval": "month", "interval_count": 1},
            }
        ),
        "subscription": json.dumps(
            {"payment_behavior": "default_incomplete", "expand": ["latest_invoice.payment_intent"]}
        ),
        # the older widget also sends a variable its document does not declare
        "paymentIntent": "{}",
    }
    query = ADD_OBJECT.replace("$paymentIntent: Json\n", "").replace(
        "paymentIntent: $paymentIntent\n", ""
    )
    query = query.replace("$subscription: Json,", "$subscription: Json").replace(
        "subscription: $subscription,", "subscription: $subscription"
    )
    subscription = answer(
        await call(client, "addStripeObject", query, variables), "addStripeObject"
    )
    customer, price, created = stripe.calls
    assert [c.path for c in stripe.calls] == ["/v1/customers", "/v1/prices", "/v1/subscriptions"]
    assert created.params["customer"] == subscription["customer"]
    assert customer.params == {"email": "ann@example.org"}
    assert created.params["items"] == [{"price": subscription["items"]["data"][0]["price"]["id"]}]
    assert price.params["recurring"] == {"interval": "month", "interval_count": 1}


async def test_add_stripe_object_needs_an_object(
    client: httpx.AsyncClient, session: AsyncSession, stripe: StripeStandIn
) -> None:
    donors = await make_donors(session)
    first = error(
        await call(client, "addStripeObject", ADD_OBJECT, {"actionPageId": donors.page_id})
    )
    assert first["message"] == "Provide Stripe objects to create"
    assert first["extensions"]["code"] == "bad_arg"
    # a Stripe refusal of a pass-through object
    body = await call(
        client,
        "addStripeObject",
        ADD_OBJECT,
        {"actionPageId": donors.page_id, "paymentIntent": json.dumps({"currency": "eur"})},
    )
    refused = error(body)
    assert refused["message"] == "Missing required param: amount."
    assert refused["extensions"]["card_code"] == "parameter_missing"


async def test_a_declined_card_comes_back_as_a_card_error(stripe: StripeStandIn) -> None:
    """What a declined card looks like through the library, and what this server passes on
    for it: the card_error type as code, Stripe's code and decline code."""
    async with stripe_client(API_KEY, stripe.url) as client:
        intent = await create(client, "payment_intent", {"amount": 900, "currency": "eur"})
        with pytest.raises(library.CardError) as declined:
            await client.v1.payment_intents.confirm_async(
                intent["id"], {"payment_method": "pm_card_chargeDeclined"}
            )
    translated = refused(declined.value, "payment_intent")
    assert translated.code == "card_error"
    assert translated.message == "Your card was declined."
    assert translated.extensions == {
        "http_status": 402,
        "card_code": "card_declined",
        "decline_code": "generic_decline",
    }


async def test_a_stripe_service_needs_the_stripe_extra(
    client: httpx.AsyncClient,
    session: AsyncSession,
    stripe: StripeStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    donors = await make_donors(session)
    monkeypatch.setitem(extras.EXTRAS, "stripe", ("proca_test_no_such_module",))
    body = await call(
        client,
        "addStripePaymentIntent",
        PAYMENT_INTENT,
        {"actionPageId": donors.page_id, "input": {"amount": 500, "currency": "EUR"}},
    )
    assert "pip install 'proca-server[stripe]'" in error(body)["message"]
    assert stripe.calls == []
    owner = await make_donors(session, password=None)
    user = await make_user(session, org=owner.world.org, role="owner")
    token = await reset_api_token(session, user)
    await session.commit()
    upsert = """mutation($org: String!) {
      upsertService(orgName: $org, input: {name: STRIPE, password: "sk_live_x"}) { id } }"""
    refused = error(await gql(client, upsert, {"org": owner.world.org.name}, token=token))
    assert refused["extensions"]["code"] == "bad_arg"
    assert "proca-server[stripe]" in refused["message"]
    await session.rollback()
    assert (
        await session.execute(select(Service).where(Service.org_id == owner.org_id))
    ).first() is None
