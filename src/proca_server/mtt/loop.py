"""The mail-to-target schedule of a process (the embedded server, each `proca-server worker`):
every `MTT_SEND_INTERVAL_MS`, rank and plan (each campaign's plan is leased, so processes
share the work) and send what is due, batch after batch while there is some; every hour, delete
the test letters older than a day. Any number of processes may run it (mtt/sender.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.metrics import (
    MTT_CAMPAIGN_LETTERS,
    MTT_CAMPAIGNS_RUNNING,
    MTT_LETTERS,
    MTT_TICK_SECONDS,
)
from proca_server.mtt.planner import PlanReport, delete_old_test_letters, plan
from proca_server.mtt.reports import MttState, campaign_status
from proca_server.mtt.sender import CLAIM_BATCH, Sender, SendReport

log = logging.getLogger(__name__)

CLEANUP_INTERVAL = 3600.0
GAUGES_INTERVAL = 60.0
GAUGE_STATES = ("sent", "pending", "failed", "cancelled", "undeliverable", "in_doubt", "duplicates")
# batches one tick may send before it plans again (a bound on a tick, not on sending)
MAX_BATCHES_PER_TICK = 50


@dataclass
class TickReport:
    plan: PlanReport
    sent: int = 0
    claimed: int = 0


async def plan_once(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> PlanReport:
    async with sessionmaker() as session:
        report = await plan(
            session,
            utcnow(),
            cycle_seconds=settings.mtt_cycle_seconds,
            per_chunk=settings.max_messages_per_cycle,
        )
        await session.commit()
    return report


async def tick(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], sender: Sender
) -> TickReport:
    started = time.perf_counter()
    report = TickReport(await plan_once(settings, sessionmaker))
    MTT_TICK_SECONDS.labels(phase="plan").observe(time.perf_counter() - started)
    for _ in range(MAX_BATCHES_PER_TICK):
        sent: SendReport = await sender.send_due(limit=CLAIM_BATCH)
        report.claimed += sent.claimed
        report.sent += sent.sent
        MTT_LETTERS.labels(outcome="sent").inc(sent.sent)
        MTT_LETTERS.labels(outcome="retried").inc(sent.retried)
        for status, n in sent.by_status.items():
            MTT_LETTERS.labels(outcome=status).inc(n)
        if sent.claimed < CLAIM_BATCH:
            break
    return report


async def refresh_gauges(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """The campaigns' letters by state, as the database has them (every process reports the
    same figures; the exporter keeps the highest)."""
    async with sessionmaker() as session:
        statuses = await campaign_status(session, None, utcnow())
    running = {"drip": 0, "hourly": 0}
    for status in statuses:
        if status.state is MttState.RUNNING:
            running[status.mode] = running.get(status.mode, 0) + 1
        for state in GAUGE_STATES:
            MTT_CAMPAIGN_LETTERS.labels(campaign=status.campaign, state=state).set(
                getattr(status, state)
            )
    for mode, n in running.items():
        MTT_CAMPAIGNS_RUNNING.labels(mode=mode).set(n)


async def mtt_loop(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    sender = Sender(settings, sessionmaker)
    interval = settings.mtt_send_interval_ms / 1000
    last_cleanup = last_gauges = 0.0
    while True:
        try:
            await tick(settings, sessionmaker, sender)
            if time.monotonic() - last_gauges >= GAUGES_INTERVAL:
                await refresh_gauges(sessionmaker)
                last_gauges = time.monotonic()
            if time.monotonic() - last_cleanup >= CLEANUP_INTERVAL:
                async with sessionmaker() as session:
                    removed = await delete_old_test_letters(session)
                    await session.commit()
                if removed:
                    log.info("deleted %d test letters older than a day", removed)
                last_cleanup = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("mail to target: a tick failed")
        await asyncio.sleep(interval)
