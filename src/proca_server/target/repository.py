"""MTT targets and their emails in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Message, Target, TargetEmail
from proca_server.models.enums import EmailStatus


async def get_target_by_external_id(session: AsyncSession, external_id: str) -> Target | None:
    target: Target | None = await session.scalar(
        select(Target).where(Target.external_id == external_id)
    )
    return target


async def list_targets_of_campaigns(
    session: AsyncSession, campaign_ids: Collection[int]
) -> Sequence[Target]:
    """The campaigns' targets, by name."""
    if not campaign_ids:
        return []
    result = await session.execute(
        select(Target).where(Target.campaign_id.in_(campaign_ids)).order_by(Target.name, Target.id)
    )
    return result.scalars().all()


async def list_other_targets(
    session: AsyncSession, campaign_id: int, kept: Collection[uuid.UUID]
) -> Sequence[Target]:
    """The campaign's targets but those kept."""
    result = await session.execute(
        select(Target).where(Target.campaign_id == campaign_id, Target.id.not_in(kept))
    )
    return result.scalars().all()


async def list_emails(
    session: AsyncSession, target_ids: Collection[uuid.UUID], *, usable_only: bool = False
) -> Sequence[TargetEmail]:
    """The targets' emails, by id; `usable_only`: those not known to be inactive."""
    if not target_ids:
        return []
    query = select(TargetEmail).where(TargetEmail.target_id.in_(target_ids))
    if usable_only:
        query = query.where(TargetEmail.email_status.in_([EmailStatus.NONE, EmailStatus.ACTIVE]))
    result = await session.execute(query.order_by(TargetEmail.id))
    return result.scalars().all()


async def has_messages(session: AsyncSession, target_id: uuid.UUID) -> bool:
    found = await session.scalar(select(Message.id).where(Message.target_id == target_id))
    return found is not None


async def delete_emails(session: AsyncSession, target_id: uuid.UUID) -> None:
    await session.execute(delete(TargetEmail).where(TargetEmail.target_id == target_id))


async def delete_campaign_targets(session: AsyncSession, campaign_id: int) -> None:
    await session.execute(delete(Target).where(Target.campaign_id == campaign_id))
