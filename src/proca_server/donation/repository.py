"""SQL of donations: the page a donation is made on, the org's Stripe service, and the
donations a Stripe report is about (always within the service's org)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.donation.stripe import SERVICES
from proca_server.models import Action, ActionPage, Campaign, Donation, Service, Supporter
from proca_server.org.repository import latest_service


@dataclass(frozen=True)
class DonationPage:
    id: int
    name: str
    org_id: int
    campaign_name: str


async def get_page(session: AsyncSession, page_id: int) -> DonationPage | None:
    row = (
        await session.execute(
            select(ActionPage.id, ActionPage.name, ActionPage.org_id, Campaign.name)
            .join(Campaign, Campaign.id == ActionPage.campaign_id)
            .where(ActionPage.id == page_id)
        )
    ).first()
    return None if row is None else DonationPage(row[0], row[1], row[2], row[3])


async def get_stripe_service(session: AsyncSession, org_id: int, testing: bool) -> Service | None:
    """The org's latest `test_stripe` service when testing, else its latest `stripe` one."""
    return await latest_service(session, org_id, "test_stripe" if testing else "stripe")


async def get_stripe_service_by_id(session: AsyncSession, service_id: int) -> Service | None:
    service = await session.get(Service, service_id)
    return service if service is not None and service.name in SERVICES else None


@dataclass(frozen=True)
class FollowedDonation:
    """A donation with what its report event names."""

    donation: Donation
    action_id: int
    testing: bool
    page_id: int
    page_name: str
    campaign_id: int
    campaign_name: str
    fingerprint: bytes | None


async def list_reported(
    session: AsyncSession, org_id: int, payment_id: str | None, subscription_id: str | None
) -> Sequence[FollowedDonation]:
    """The donations made on the org's pages that name `payment_id` (as their first payment)
    or `subscription_id`."""
    matches = []
    if payment_id is not None:
        matches.append(Donation.payment_id == payment_id)
    if subscription_id is not None:
        matches.append(Donation.subscription_id == subscription_id)
    if not matches:
        return []
    rows = await session.execute(
        select(
            Donation,
            Action.id,
            Action.testing,
            ActionPage.id,
            ActionPage.name,
            Campaign.id,
            Campaign.name,
            Supporter.fingerprint,
        )
        .join(Action, Action.id == Donation.action_id)
        .join(ActionPage, ActionPage.id == Action.action_page_id)
        .join(Campaign, Campaign.id == Action.campaign_id)
        .outerjoin(Supporter, Supporter.id == Action.supporter_id)
        .where(ActionPage.org_id == org_id, or_(*matches))
        .order_by(Donation.id)
    )
    return [FollowedDonation(*row) for row in rows]


async def set_payment(
    session: AsyncSession,
    donation: Donation,
    *,
    status: str | None,
    last_payment_id: str | None,
    subscription_id: str | None,
) -> bool:
    """Write the reported state unless another report changed the donation since it was
    read; whether this one did."""
    result = await session.execute(
        update(Donation)
        .where(
            Donation.id == donation.id,
            Donation.payment_status.is_not_distinct_from(donation.payment_status),
            Donation.last_payment_id.is_not_distinct_from(donation.last_payment_id),
        )
        .values(
            payment_status=status,
            last_payment_id=last_payment_id,
            subscription_id=subscription_id,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
