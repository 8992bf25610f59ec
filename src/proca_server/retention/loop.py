"""The server's housekeeping (every process runs it; HOUSEKEEPING_INTERVAL): every interval it
looks for due jobs, each at most once a day across all processes (retention/schedule.py):

- close the live campaigns whose end date has passed (campaign/housekeeping.py);
- apply each org's retention policy (`config.retention`, retention/policy.py) as
  `proca-server retention ORG` would, with the policy's months and mode, every campaign.

A failed job is tried again at the next look; one stopped with its process is taken up again
once its claim has expired."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.audit import service as audit
from proca_server.campaign.housekeeping import close_ended
from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models import Org
from proca_server.retention import schedule
from proca_server.retention.policy import POLICY_KEY, org_policy
from proca_server.retention.service import (
    DEFAULT_BATCH,
    RetentionReport,
    erase,
    list_candidates,
    policy_run,
)

log = logging.getLogger(__name__)

RUN_EVERY = timedelta(days=1)
STARTUP_DELAY = 60.0
T = TypeVar("T")


class Outcome(enum.Enum):
    NOT_DUE = "not due"  # or another process has it
    DONE = "done"
    FAILED = "failed"


@dataclass
class TickReport:
    # None: not due, or another process had it
    closed: list[str] | None = None
    # per org name, the runs this process made
    retention: dict[str, RetentionReport] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


async def _claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    job: str,
    now: datetime,
    work: Callable[[Callable[[], datetime], str], Awaitable[tuple[T, dict[str, Any]]]],
) -> tuple[Outcome, T | None]:
    """Run `work(clock, token)` if this process gets the job. The job is due again a day
    after `now` when it ran, at the next look when it failed."""
    async with sessionmaker() as session, session.begin():
        token = await schedule.claim(session, job, now)
    if token is None:
        return Outcome.NOT_DUE, None
    started = time.monotonic()

    def clock() -> datetime:
        return now + timedelta(seconds=time.monotonic() - started)

    try:
        result, outcome = await work(clock, token)
    except schedule.LostClaim:
        log.warning("housekeeping: %s was taken over by another process", job)
        return Outcome.FAILED, None
    except Exception as exc:
        log.exception("housekeeping: %s failed", job)
        async with sessionmaker() as session, session.begin():
            await schedule.finish(
                session, job, token, clock(), {"error": type(exc).__name__}, next_run_at=None
            )
        return Outcome.FAILED, None
    async with sessionmaker() as session, session.begin():
        await schedule.finish(session, job, token, clock(), outcome, next_run_at=now + RUN_EVERY)
    return Outcome.DONE, result


async def _close_ended(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime
) -> list[str] | None:
    async def work(clock: Callable[[], datetime], token: str) -> tuple[list[str], dict[str, Any]]:
        async with sessionmaker() as session, session.begin():
            await schedule.keep_claim(session, schedule.CLOSE_ENDED_JOB, token, clock())
            closed = await close_ended(session, now.date())
        if closed:
            log.info("housekeeping: closed %d campaigns whose end date passed", len(closed))
        return closed, {"closed": len(closed)}

    _, closed = await _claimed(sessionmaker, schedule.CLOSE_ENDED_JOB, now, work)
    return closed


async def _apply_policy(
    sessionmaker: async_sessionmaker[AsyncSession],
    org_id: int,
    org_name: str,
    config: Mapping[str, Any],
    now: datetime,
    batch_size: int,
) -> tuple[Outcome, RetentionReport | None]:
    job = schedule.retention_job(org_id)

    async def work(
        clock: Callable[[], datetime], token: str
    ) -> tuple[RetentionReport | None, dict[str, Any]]:
        policy = org_policy(config)
        if policy is None:
            log.warning(
                "org %s: config.retention is not a policy that holds; not applied", org_name
            )
            return None, {"error": "invalid policy"}
        run = policy_run(org_id, org_name, policy, now)

        async def heartbeat(session: AsyncSession) -> None:
            await schedule.keep_claim(session, job, token, clock())

        candidates = await list_candidates(sessionmaker, run)
        report = await erase(
            sessionmaker,
            run,
            candidates,
            actor=audit.SYSTEM,
            batch_size=batch_size,
            heartbeat=heartbeat,
        )
        if report.supporters:
            log.info(
                "org %s: retention (%s, %d months) deleted %d contacts of %d supporters, "
                "cleared the personal data of %d",
                org_name,
                run.mode.value,
                run.months,
                report.contacts,
                report.supporters,
                report.anonymised,
            )
        return report, {**run.details(), **report.as_dict()}

    return await _claimed(sessionmaker, job, now, work)


async def tick(
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
) -> TickReport:
    """Run the jobs that are due and that no other process holds."""
    now = now or utcnow()
    async with sessionmaker() as session, session.begin():
        orgs = [
            (org_id, name, config)
            for org_id, name, config in (
                await session.execute(select(Org.id, Org.name, Org.config).order_by(Org.id))
            ).all()
            if (config or {}).get(POLICY_KEY) is not None
        ]
        await schedule.ensure_jobs(
            session,
            [
                (schedule.CLOSE_ENDED_JOB, None),
                *((schedule.retention_job(org_id), org_id) for org_id, _, _ in orgs),
            ],
        )
    report = TickReport(closed=await _close_ended(sessionmaker, now))
    for org_id, name, config in orgs:
        outcome, result = await _apply_policy(sessionmaker, org_id, name, config, now, batch_size)
        if result is not None:
            report.retention[name] = result
        elif outcome is not Outcome.NOT_DUE:
            report.failed.append(name)  # the run failed, or the policy does not hold
    return report


async def housekeeping_loop(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Look for due jobs every HOUSEKEEPING_INTERVAL seconds (0: never), the first time
    shortly after start."""
    interval = settings.housekeeping_interval
    if interval <= 0:
        return
    await asyncio.sleep(min(STARTUP_DELAY, interval))
    while True:
        try:
            await tick(sessionmaker)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("housekeeping failed")
        await asyncio.sleep(interval)
