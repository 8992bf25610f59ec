"""GraphQL: the public Stripe mutations the widget calls before it records a donation."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from proca_server.action.types import DonationFrequencyUnitEnum
from proca_server.donation import service
from proca_server.donation.service import Caller
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import Json
from proca_server.models.enums import DonationFrequencyUnit

Ctx = Info[Context, None]


@strawberry.input(name="StripePaymentIntentInput")
class StripePaymentIntentInput:
    amount: int
    currency: str
    payment_method_types: list[str] | None = None


@strawberry.input(name="StripeSubscriptionInput")
class StripeSubscriptionInput:
    amount: int
    currency: str
    frequency_unit: DonationFrequencyUnitEnum


def _caller(
    ctx: Context, page_id: int, testing: bool | None, contact_ref: str | None = None
) -> Caller:
    return Caller(page_id, bool(testing), ctx.referer, contact_ref)


@strawberry.type
class DonationMutation:
    # a PaymentIntent with the page org's Stripe keys (its test keys when testing)
    @strawberry.mutation
    async def add_stripe_payment_intent(
        self,
        info: Ctx,
        action_page_id: int,
        input: StripePaymentIntentInput,
        contact_ref: strawberry.ID | None = None,
        testing: bool | None = None,
    ) -> Json:
        ctx = info.context
        created: Any = await service.add_payment_intent(
            ctx.session,
            ctx.settings,
            _caller(ctx, action_page_id, testing, contact_ref),
            amount=input.amount,
            currency=input.currency,
            payment_method_types=input.payment_method_types,
        )
        return Json(created)

    # a customer, a price and a subscription waiting for its first payment; the
    # subscription is answered with its customer and latest invoice's payment intent
    @strawberry.mutation
    async def add_stripe_subscription(
        self,
        info: Ctx,
        action_page_id: int,
        input: StripeSubscriptionInput,
        contact_ref: strawberry.ID | None = None,
        testing: bool | None = None,
    ) -> Json:
        ctx = info.context
        created: Any = await service.add_subscription(
            ctx.session,
            ctx.settings,
            _caller(ctx, action_page_id, testing, contact_ref),
            amount=input.amount,
            currency=input.currency,
            frequency_unit=DonationFrequencyUnit[input.frequency_unit.name],
        )
        return Json(created)

    # Stripe objects from Stripe's own parameters (service.add_objects)
    @strawberry.mutation
    async def add_stripe_object(
        self,
        info: Ctx,
        action_page_id: int,
        payment_intent: Json | None = None,
        subscription: Json | None = None,
        customer: Json | None = None,
        price: Json | None = None,
        testing: bool | None = None,
    ) -> Json:
        ctx = info.context
        created: Any = await service.add_objects(
            ctx.session,
            ctx.settings,
            _caller(ctx, action_page_id, testing),
            {
                "payment_intent": payment_intent,  # type: ignore[dict-item]
                "subscription": subscription,  # type: ignore[dict-item]
                "customer": customer,  # type: ignore[dict-item]
                "price": price,  # type: ignore[dict-item]
            },
        )
        return Json(created)
