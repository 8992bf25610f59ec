"""The widget's Stripe mutations: addStripePaymentIntent, addStripeSubscription and
addStripeObject, with the keys of the page owner org's `stripe` service (`test_stripe` when
`testing`). The donation itself is recorded afterwards, by addActionContact with a
`donation` (action/service.py), and followed through Stripe's reports (reports.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.donation import currencies, repository
from proca_server.donation.repository import DonationPage
from proca_server.donation.stripe import ObjectKind, create, keys_of, stripe_client
from proca_server.errors import BadArgument, NotFound
from proca_server.models.enums import DonationFrequencyUnit

log = logging.getLogger(__name__)

NO_STRIPE: Final = "Action Page does not support Stripe"
NO_OBJECTS: Final = "Provide Stripe objects to create"
# Stripe's limit on a metadata value
METADATA_VALUE_MAX: Final = 500
# metadata keys this server puts on the payments it creates (reports.py looks for the first)
PAGE_ID_KEY: Final = "actionPageId"

# the objects addStripeObject puts the page's metadata on
PAGE_OBJECTS: Final[tuple[ObjectKind, ...]] = ("payment_intent", "subscription")
# which object addStripeObject creates when only one is left
SINGLE_ORDER: Final[tuple[ObjectKind, ...]] = (
    "payment_intent",
    "price",
    "customer",
    "subscription",
)

INTERVALS: Final = {
    DonationFrequencyUnit.DAILY: "day",
    DonationFrequencyUnit.WEEKLY: "week",
    DonationFrequencyUnit.MONTHLY: "month",
}


@dataclass(frozen=True)
class Caller:
    """Where a Stripe mutation was called from."""

    page_id: int
    testing: bool
    referer: str | None = None
    contact_ref: str | None = None


@dataclass(frozen=True)
class Donor:
    page: DonationPage
    api_key: str


async def _donor(session: AsyncSession, caller: Caller) -> Donor:
    page = await repository.get_page(session, caller.page_id)
    if page is None:
        raise NotFound("Entity not found")
    service = await repository.get_stripe_service(session, page.org_id, caller.testing)
    api_key = keys_of(service.password).api_key if service is not None else ""
    if not api_key:
        raise NotFound(NO_STRIPE)
    return Donor(page, api_key)


def metadata(page: DonationPage, caller: Caller) -> dict[str, str]:
    """What the original put on payment intents and subscriptions, in its key order."""
    meta = {
        "actionPageName": page.name,
        PAGE_ID_KEY: str(page.id),
        "campaignName": page.campaign_name,
    }
    if caller.referer:
        meta["referer"] = caller.referer[:METADATA_VALUE_MAX]
    if caller.contact_ref is not None:
        meta["contactRef"] = caller.contact_ref
    return meta


def check_amount(amount: int, currency: str) -> str:
    """The currency in lower case, as Stripe takes it; BadArgument for what no donation is."""
    if amount <= 0:
        raise BadArgument("must be greater than 0", field="amount")
    if not currencies.exists(currency):
        raise BadArgument("does not exist", field="currency")
    return currency.lower()


async def add_payment_intent(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    *,
    amount: int,
    currency: str,
    payment_method_types: list[str] | None,
) -> Any:
    donor = await _donor(session, caller)
    params: dict[str, Any] = {"amount": amount, "currency": check_amount(amount, currency)}
    if payment_method_types is not None:
        params["payment_method_types"] = payment_method_types
    params["metadata"] = metadata(donor.page, caller)
    async with stripe_client(donor.api_key, settings.stripe_api_base) as client:
        return await create(client, "payment_intent", params)


async def add_subscription(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    *,
    amount: int,
    currency: str,
    frequency_unit: DonationFrequencyUnit,
) -> Any:
    """A customer (named by the contactRef), a price and a subscription waiting for its
    first payment, whose payment intent the widget confirms."""
    donor = await _donor(session, caller)
    lower = check_amount(amount, currency)
    interval = INTERVALS.get(frequency_unit)
    if interval is None:
        raise BadArgument("must be a recurring frequency", field="frequencyUnit")
    meta = metadata(donor.page, caller)
    customer_params: dict[str, Any] = {}
    if caller.contact_ref is not None:
        customer_params["metadata"] = {"contactRef": caller.contact_ref}
    async with stripe_client(donor.api_key, settings.stripe_api_base) as client:
        customer = await create(client, "customer", customer_params)
        price = await create(
            client,
            "price",
            {
                "currency": lower,
                "unit_amount": amount,
                "recurring": {"interval": interval},
                "product_data": {"name": "Donation"},
            },
        )
        return await create(
            client,
            "subscription",
            {
                "customer": customer["id"],
                "items": [{"price": price["id"]}],
                "payment_behavior": "default_incomplete",
                "expand": ["latest_invoice.payment_intent", "customer"],
                "metadata": meta,
            },
        )


def _with_page(params: Mapping[str, Any], page_meta: Mapping[str, str]) -> dict[str, Any]:
    """`params` with the page's metadata added under the keys the caller did not set."""
    out = dict(params)
    given = out.get("metadata")
    if isinstance(given, dict):
        out["metadata"] = {**page_meta, **given}
    elif given is None:
        out["metadata"] = dict(page_meta)
    return out


async def add_objects(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    objects: Mapping[ObjectKind, Mapping[str, Any] | None],
) -> Any:
    """Stripe objects from the caller's own params. A customer given with a payment intent
    or a subscription is created first and named in it; a price given with a subscription is
    created first and made its one item; otherwise the one object given is created (in the
    order payment intent, price, customer, subscription). Payment intents and subscriptions
    get the page's metadata (actionPageName, actionPageId, campaignName) under the keys the
    caller left free, so that Stripe's reports can be told apart."""
    donor = await _donor(session, caller)
    given = {kind: dict(params) for kind, params in objects.items() if params is not None}
    if not given:
        raise BadArgument(NO_OBJECTS)
    page_meta = metadata(donor.page, Caller(caller.page_id, caller.testing))
    for kind in PAGE_OBJECTS:
        if kind in given:
            given[kind] = _with_page(given[kind], page_meta)
    async with stripe_client(donor.api_key, settings.stripe_api_base) as client:
        while True:
            if "customer" in given and ("payment_intent" in given or "subscription" in given):
                customer = await create(client, "customer", given.pop("customer"))
                target: ObjectKind = (
                    "payment_intent" if "payment_intent" in given else "subscription"
                )
                given[target]["customer"] = customer["id"]
            elif "price" in given and "subscription" in given:
                price = await create(client, "price", given.pop("price"))
                given["subscription"]["items"] = [{"price": price["id"]}]
            else:
                kind = next(k for k in SINGLE_ORDER if k in given)
                return await create(client, kind, given[kind])
