"""The campaign counters in the shapes the API and merge tags use; every function reads the
cached counts of `counts.campaign_stats` (nothing here scans)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.stats.counts import campaign_stats


async def supporter_count(session: AsyncSession, campaign_id: int) -> int:
    return (await campaign_stats(session, campaign_id)).supporters


async def supporter_count_by_org(session: AsyncSession, campaign_id: int) -> dict[int, int]:
    return dict((await campaign_stats(session, campaign_id)).by_org)


async def supporter_count_by_area(
    session: AsyncSession, campaign_id: int
) -> Sequence[tuple[str, int]]:
    return list((await campaign_stats(session, campaign_id)).by_area.items())


async def action_count(session: AsyncSession, campaign_id: int) -> Sequence[tuple[str, int]]:
    return list((await campaign_stats(session, campaign_id)).by_action_type.items())
