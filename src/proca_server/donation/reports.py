"""Stripe's reports on payments (webhook events), applied to the donations they are about.

A donation names its first payment: the PaymentIntent id found in the payload the widget
recorded (`payment_ids`). Reports then move its `payment_status`:

    payment_intent.succeeded                 that payment succeeded
    payment_intent.payment_failed            that payment failed
    invoice.paid, invoice.payment_succeeded  a payment of its subscription succeeded
    invoice.payment_failed                   a payment of its subscription failed
    customer.subscription.deleted            its subscription ended (final)

An invoice report names both the subscription and its payment: the first one ties the
donation (found by its payment) to its subscription, later ones find it by subscription.

Each change emits one `donation_updated` event to the org (docs/donations.md). A report
that changes nothing emits nothing: the same report again (Stripe retries), the second report
about one payment (`payment_intent.succeeded` and `invoice.paid` both tell of a subscription's
first payment), a failure reported after the success of the same payment (reports may come
out of order), anything after the subscription ended.

A report may come before the widget has recorded the donation (Stripe reports a payment as
soon as it succeeds). When no donation is found but the object carries the page metadata
this server sets (service.PAGE_ID_KEY), the report is answered "not yet" for up to
RETRY_WINDOW after it was made, so that Stripe sends it again."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.donation import repository
from proca_server.donation.repository import FollowedDonation
from proca_server.donation.service import PAGE_ID_KEY
from proca_server.kit import base64url
from proca_server.models import Donation
from proca_server.models.donation import PaymentStatus
from proca_server.processing.messages import (
    EVENT_V2,
    Publication,
    encode_message,
    iso8601,
    iso8601_now,
    org_exchange,
)

RETRY_WINDOW: Final = timedelta(days=1)
ID_MAX: Final = 255


@dataclass(frozen=True)
class Report:
    """What a Stripe event says about a payment."""

    event_id: str
    event_type: str
    status: PaymentStatus
    payment_id: str | None
    subscription_id: str | None
    ours: bool  # the object carries the metadata of a page of this server
    created_at: datetime | None
    livemode: bool


@dataclass
class Outcome:
    handled: int = 0
    # no donation yet for a payment of ours: Stripe should send the report again later
    retry: bool = False
    publications: list[Publication] = field(default_factory=list)


def _id(value: Any, prefix: str) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str) and value.startswith(prefix) and len(value) <= ID_MAX:
        return value
    return None


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def payment_ids(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(PaymentIntent id, subscription id) named in a donation's payload: the payload itself
    for the `stripe_payment_intent` schema, else its `paymentIntent` (what the widget's Stripe
    form records) and `subscription` / `subscriptionId`."""
    payment = _id(payload.get("paymentIntent"), "pi_") or _id(payload.get("payment_intent"), "pi_")
    if payment is None and payload.get("object") == "payment_intent":
        payment = _id(payload.get("id"), "pi_")
    subscription = _id(payload.get("subscription"), "sub_") or _id(
        payload.get("subscriptionId"), "sub_"
    )
    return payment, subscription


def _invoice_payment(invoice: Mapping[str, Any]) -> str | None:
    """`payment_intent` up to API version 2025-02-24, the first of `payments` after."""
    payment = _id(invoice.get("payment_intent"), "pi_")
    listed = _dig(invoice, "payments", "data")
    if payment is None and isinstance(listed, list) and listed:
        payment = _id(_dig(listed[0], "payment", "payment_intent"), "pi_")
    return payment


def _invoice_subscription(invoice: Mapping[str, Any]) -> tuple[str | None, Any]:
    """(subscription id, its metadata) of an invoice, in the old and the new shape."""
    old = _id(invoice.get("subscription"), "sub_")
    if old is not None:
        return old, _dig(invoice, "subscription_details", "metadata")
    details = _dig(invoice, "parent", "subscription_details")
    return _id(_dig(details, "subscription"), "sub_"), _dig(details, "metadata")


PAYMENT_EVENTS: Final = {
    "payment_intent.succeeded": PaymentStatus.SUCCEEDED,
    "payment_intent.payment_failed": PaymentStatus.FAILED,
}
INVOICE_EVENTS: Final = {
    "invoice.paid": PaymentStatus.SUCCEEDED,
    "invoice.payment_succeeded": PaymentStatus.SUCCEEDED,
    "invoice.payment_failed": PaymentStatus.FAILED,
}
SUBSCRIPTION_ENDED: Final = "customer.subscription.deleted"


def read_report(event: Any) -> Report | None:
    """The report in a Stripe event; None for events of no concern here."""
    if not isinstance(event, dict):
        return None
    kind = event.get("type")
    obj = _dig(event, "data", "object")
    if not isinstance(kind, str) or not isinstance(obj, dict):
        return None
    created = event.get("created")
    created_at = (
        datetime.fromtimestamp(created, UTC)
        if isinstance(created, int) and not isinstance(created, bool)
        else None
    )

    def report(
        status: PaymentStatus, payment: str | None, subscription: str | None, metadata: Any
    ) -> Report:
        return Report(
            event_id=str(event.get("id") or ""),
            event_type=kind,
            status=status,
            payment_id=payment,
            subscription_id=subscription,
            ours=isinstance(metadata, dict) and PAGE_ID_KEY in metadata,
            created_at=created_at,
            livemode=event.get("livemode") is True,
        )

    if kind in PAYMENT_EVENTS:
        payment = _id(obj, "pi_")
        if payment is None:
            return None
        return report(PAYMENT_EVENTS[kind], payment, None, obj.get("metadata"))
    if kind in INVOICE_EVENTS:
        subscription, metadata = _invoice_subscription(obj)
        payment = _invoice_payment(obj)
        if subscription is None and payment is None:
            return None
        return report(INVOICE_EVENTS[kind], payment, subscription, metadata)
    if kind == SUBSCRIPTION_ENDED:
        subscription = _id(obj, "sub_")
        if subscription is None:
            return None
        return report(PaymentStatus.CANCELLED, None, subscription, obj.get("metadata"))
    return None


def next_state(donation: Donation, report: Report) -> tuple[str, str | None] | None:
    """(payment_status, last_payment_id) after `report`; None when it changes nothing."""
    status = donation.payment_status
    if status == PaymentStatus.CANCELLED:
        return None
    if (
        report.status is PaymentStatus.FAILED
        and status == PaymentStatus.SUCCEEDED
        and donation.last_payment_id == report.payment_id
    ):
        return None
    if (status, donation.last_payment_id) == (report.status.value, report.payment_id):
        return None
    return report.status.value, report.payment_id


async def apply_report(
    session: AsyncSession, org_id: int, report: Report, now: datetime
) -> Outcome:
    """Update the org's donations the report is about; the events to publish after commit."""
    found = await repository.list_reported(
        session, org_id, report.payment_id, report.subscription_id
    )
    if not found:
        fresh = report.created_at is not None and now - report.created_at < RETRY_WINDOW
        return Outcome(retry=report.ours and fresh)
    outcome = Outcome()
    for followed in found:
        donation = followed.donation
        subscription = donation.subscription_id or report.subscription_id
        state = next_state(donation, report)
        if state is None:
            if subscription != donation.subscription_id:
                await repository.set_payment(
                    session,
                    donation,
                    status=donation.payment_status,
                    last_payment_id=donation.last_payment_id,
                    subscription_id=subscription,
                )
            continue
        changed = await repository.set_payment(
            session,
            donation,
            status=state[0],
            last_payment_id=state[1],
            subscription_id=subscription,
        )
        if changed:
            outcome.handled += 1
            outcome.publications.append(
                donation_updated_publication(org_id, followed, report, subscription)
            )
    return outcome


def donation_updated_event(
    org_id: int, followed: FollowedDonation, report: Report, subscription_id: str | None
) -> dict[str, Any]:
    donation = followed.donation
    return {
        "schema": EVENT_V2,
        "eventType": "donation_updated",
        "timestamp": iso8601(report.created_at) if report.created_at else iso8601_now(),
        "orgId": org_id,
        "campaign": {"name": followed.campaign_name},
        "campaignId": followed.campaign_id,
        "actionPage": {"name": followed.page_name},
        "actionPageId": followed.page_id,
        "actionId": followed.action_id,
        "contactRef": base64url.encode(followed.fingerprint) if followed.fingerprint else None,
        "testing": followed.testing,
        "donation": {
            "amount": donation.amount,
            "currency": donation.currency,
            "frequencyUnit": donation.frequency_unit.name.lower(),
            "status": report.status.value,
            "paymentId": donation.payment_id,
            "lastPaymentId": report.payment_id,
            "subscriptionId": subscription_id,
            "provider": "stripe",
            "providerEvent": {
                "id": report.event_id,
                "type": report.event_type,
                "livemode": report.livemode,
            },
        },
    }


def donation_updated_publication(
    org_id: int, followed: FollowedDonation, report: Report, subscription_id: str | None
) -> Publication:
    return Publication(
        org_exchange(org_id, "event"),
        f"donation.{report.status.value}",
        encode_message(donation_updated_event(org_id, followed, report, subscription_id)),
    )


def parse_event(payload: bytes) -> Any:
    """The event JSON of a verified report; None when it is not JSON."""
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


__all__: Sequence[str] = ["Outcome", "Report", "apply_report", "payment_ids", "read_report"]
