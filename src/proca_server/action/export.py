"""Export of an org's actions with its contact copies (docs/export.md) and GDPR erasure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, Campaign, Contact, Org, Supporter
from proca_server.models.enums import (
    ActionProcessingStatus,
    EmailStatus,
    SupporterProcessingStatus,
)

DEFAULT_LIMIT = 100
PROCESSED = (
    ActionProcessingStatus.ACCEPTED,
    ActionProcessingStatus.DELIVERED,
    ActionProcessingStatus.REPEAT,
)


@dataclass(frozen=True)
class ExportFilter:
    campaign_id: int | None = None
    campaign_name: str | None = None
    start: int | None = None
    after: datetime | None = None
    limit: int | None = None
    only_opt_in: bool = True
    only_double_opt_in: bool = False
    include_testing: bool = False
    with_consent_only: bool = False
    fingerprint: bytes | None = None


async def export_actions(
    session: AsyncSession, org: Org, criteria: ExportFilter
) -> Sequence[tuple[Action, Supporter, Contact]]:
    query = (
        select(Action, Supporter, Contact)
        .join(Supporter, Supporter.id == Action.supporter_id)
        .join(Contact, (Contact.supporter_id == Supporter.id) & (Contact.org_id == org.id))
    )
    if criteria.fingerprint is not None:
        # GDPR lookup: whatever the consent and processing state
        query = query.where(Supporter.fingerprint == criteria.fingerprint)
    else:
        query = query.where(
            Supporter.processing_status == SupporterProcessingStatus.ACCEPTED,
            Action.processing_status.in_(PROCESSED),
        )
        if criteria.only_opt_in:
            query = query.where(Contact.communication_consent.is_(True))
        if criteria.only_double_opt_in:
            query = query.where(Supporter.email_status == EmailStatus.DOUBLE_OPT_IN)
    if criteria.campaign_id is not None:
        query = query.where(Action.campaign_id == criteria.campaign_id)
    if criteria.campaign_name is not None:
        query = query.join(Campaign, Campaign.id == Action.campaign_id).where(
            Campaign.name == criteria.campaign_name
        )
    if not criteria.include_testing:
        query = query.where(Action.testing.is_(False))
    if criteria.with_consent_only:
        query = query.where(Action.with_consent.is_(True))
    if criteria.start is not None:
        query = query.where(Action.id >= criteria.start)
    if criteria.after is not None:
        query = query.where(Action.inserted_at >= criteria.after)
    limit = criteria.limit if criteria.limit is not None else DEFAULT_LIMIT
    result = await session.execute(query.order_by(Action.id).limit(max(0, limit)))
    return [(a, s, c) for a, s, c in result.all()]


async def delete_contact(session: AsyncSession, org: Org, fingerprint: bytes) -> int:
    """Erase the org's copies of a person: clear the cleartext of accepted supporters on the
    org's campaigns, and delete the org's contact rows. Actions stay, anonymous. The number of
    contact rows deleted."""
    led = select(Campaign.id).where(Campaign.org_id == org.id)
    await session.execute(
        update(Supporter)
        .where(
            Supporter.fingerprint == fingerprint,
            Supporter.campaign_id.in_(led),
            Supporter.processing_status == SupporterProcessingStatus.ACCEPTED,
        )
        .values(first_name=None, last_name=None, email=None, address=None)
    )
    same_person = select(Supporter.id).where(Supporter.fingerprint == fingerprint)
    deleted = await session.execute(
        delete(Contact).where(Contact.org_id == org.id, Contact.supporter_id.in_(same_person))
    )
    await session.flush()
    return int(getattr(deleted, "rowcount", 0) or 0)
