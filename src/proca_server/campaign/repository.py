"""Campaigns in SQL: lookups, the public campaign list, their MTT settings and public
actions."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, Campaign, Mtt, Supporter


async def get_campaign_by_name(session: AsyncSession, name: str) -> Campaign | None:
    result = await session.execute(select(Campaign).where(Campaign.name == name))
    return result.scalar_one_or_none()


async def find_org_campaign(
    session: AsyncSession,
    org_id: int,
    *,
    name: str | None = None,
    external_id: int | None = None,
) -> Campaign | None:
    """The org's campaign of that external id, else of that name."""
    query = select(Campaign).where(Campaign.org_id == org_id)
    if external_id is not None:
        query = query.where(Campaign.external_id == external_id)
    else:
        query = query.where(Campaign.name == name)
    campaign: Campaign | None = await session.scalar(query)
    return campaign


async def list_campaigns(
    session: AsyncSession,
    *,
    id: int | None = None,
    name: str | None = None,
    title_like: str | None = None,
) -> Sequence[Campaign]:
    """Every campaign, or the one of that id, else of that name, else those whose title is
    like the pattern."""
    query = select(Campaign)
    if id is not None:
        query = query.where(Campaign.id == id)
    elif name is not None:
        query = query.where(Campaign.name == name)
    elif title_like is not None:
        query = query.where(Campaign.title.like(title_like))
    result = await session.execute(query.order_by(Campaign.id))
    return result.scalars().all()


async def list_campaigns_by_id(session: AsyncSession, ids: Collection[int]) -> Sequence[Campaign]:
    if not ids:
        return []
    return (await session.scalars(select(Campaign).where(Campaign.id.in_(ids)))).all()


async def get_mtt(session: AsyncSession, campaign_id: int) -> Mtt | None:
    mtt: Mtt | None = await session.scalar(select(Mtt).where(Mtt.campaign_id == campaign_id))
    return mtt


async def list_mtts(session: AsyncSession, campaign_ids: Collection[int]) -> Sequence[Mtt]:
    if not campaign_ids:
        return []
    return (await session.scalars(select(Mtt).where(Mtt.campaign_id.in_(campaign_ids)))).all()


async def list_public_actions(
    session: AsyncSession, campaign_id: int, action_type: str, limit: int
) -> Sequence[tuple[Action, str | None]]:
    """The campaign's newest real actions of a type, with their supporters' areas."""
    rows = await session.execute(
        select(Action, Supporter.area)
        .outerjoin(Supporter, Supporter.id == Action.supporter_id)
        .where(
            Action.campaign_id == campaign_id,
            Action.action_type == action_type,
            Action.testing.is_(False),
        )
        .order_by(Action.id.desc())
        .limit(limit)
    )
    return [(action, area) for action, area in rows.all()]
