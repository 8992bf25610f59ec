"""Campaign counters computed by SQL. Correct, but they scan; the supporter API replaces them
with counters that never scan on read."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, ActionPage, Supporter
from proca_server.models.enums import SupporterProcessingStatus

_COUNTED = Supporter.processing_status != SupporterProcessingStatus.REJECTED


async def supporter_count(session: AsyncSession, campaign_id: int) -> int:
    distinct_supporters = await session.scalar(
        select(func.count(distinct(Supporter.fingerprint))).where(
            Supporter.campaign_id == campaign_id, _COUNTED
        )
    )
    extra = await session.scalar(
        select(func.coalesce(func.sum(ActionPage.extra_supporters), 0)).where(
            ActionPage.campaign_id == campaign_id
        )
    )
    return int(distinct_supporters or 0) + int(extra or 0)


async def supporter_count_by_org(session: AsyncSession, campaign_id: int) -> dict[int, int]:
    rows = await session.execute(
        select(ActionPage.org_id, func.count(distinct(Supporter.fingerprint)))
        .join(ActionPage, ActionPage.id == Supporter.action_page_id)
        .where(Supporter.campaign_id == campaign_id, _COUNTED)
        .group_by(ActionPage.org_id)
    )
    counts = {org_id: int(n) for org_id, n in rows.all()}
    extras = await session.execute(
        select(ActionPage.org_id, func.sum(ActionPage.extra_supporters))
        .where(ActionPage.campaign_id == campaign_id)
        .group_by(ActionPage.org_id)
    )
    for org_id, extra in extras.all():
        if extra:
            counts[org_id] = counts.get(org_id, 0) + int(extra)
    return counts


async def supporter_count_by_area(
    session: AsyncSession, campaign_id: int
) -> Sequence[tuple[str, int]]:
    rows = await session.execute(
        select(Supporter.area, func.count(distinct(Supporter.fingerprint)))
        .where(Supporter.campaign_id == campaign_id, Supporter.area.is_not(None), _COUNTED)
        .group_by(Supporter.area)
        .order_by(Supporter.area)
    )
    return [(str(area), int(n)) for area, n in rows.all()]


async def action_count(session: AsyncSession, campaign_id: int) -> Sequence[tuple[str, int]]:
    rows = await session.execute(
        select(Action.action_type, func.count())
        .where(Action.campaign_id == campaign_id, Action.testing.is_(False))
        .group_by(Action.action_type)
        .order_by(Action.action_type)
    )
    return [(t, int(n)) for t, n in rows.all()]
