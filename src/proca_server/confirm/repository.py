"""Confirms in SQL."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Confirm
from proca_server.models.enums import ConfirmOperation


async def list_launch_requests(
    session: AsyncSession, campaign_ids: Collection[int]
) -> Sequence[Confirm]:
    """The open requests to launch a page in the campaigns, oldest first."""
    if not campaign_ids:
        return []
    result = await session.execute(
        select(Confirm)
        .where(
            Confirm.operation == ConfirmOperation.LAUNCH_PAGE,
            Confirm.subject_id.in_(campaign_ids),
            Confirm.charges > 0,
        )
        .order_by(Confirm.id)
    )
    return result.scalars().all()
