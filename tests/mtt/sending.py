"""Driving the MTT planner and sender step by step."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models import Message
from proca_server.models.message import SendStatus
from proca_server.mtt.loop import tick
from proca_server.mtt.planner import plan
from proca_server.mtt.sender import Sender


def mtt_settings(settings: Settings, **over: object) -> Settings:
    return settings.model_copy(update={"mtt_cycle_seconds": 60, **over})


async def run_until_idle(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sender = Sender(settings, sessionmaker)
    for _ in range(5):
        report = await tick(settings, sessionmaker, sender)
        if not report.claimed and not report.plan.planned:
            return


async def plan_now(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        await plan(s, utcnow(), cycle_seconds=60, per_chunk=999)
        await s.commit()


async def make_due(session: AsyncSession) -> None:
    """Bring every waiting letter's next try to now."""
    await session.execute(
        update(Message)
        .where(Message.send_status == SendStatus.PENDING)
        .values(scheduled_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()
