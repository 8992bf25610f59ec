"""SQL of the scheduled runs (models/scheduled_run.py): any number of processes may look for
due jobs at once; one conditional UPDATE lets one of them claim a job, for `LEASE`, which it
renews while it works. A claim that is not renewed (the process died) expires, and the job is
taken up again at the next look."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import ScheduledRun

LEASE = timedelta(minutes=15)
CLOSE_ENDED_JOB = "campaigns:close-ended"

_ENSURE = text(
    "INSERT INTO scheduled_runs (job, org_id, last_outcome) VALUES (:job, :org_id, '{}') "
    "ON CONFLICT (job) DO NOTHING"
)


class LostClaim(RuntimeError):
    """Another process holds the job now: this one's claim expired."""


def retention_job(org_id: int) -> str:
    return f"retention:{org_id}"


async def ensure_jobs(session: AsyncSession, jobs: Sequence[tuple[str, int | None]]) -> None:
    """Add the jobs not known yet, due at once."""
    if jobs:
        await session.execute(_ENSURE, [{"job": job, "org_id": org_id} for job, org_id in jobs])


async def claim(session: AsyncSession, job: str, now: datetime) -> str | None:
    """Claim `job` if it is due and nobody holds it; the claim's token."""
    token = secrets.token_hex(8)
    claimed = await session.scalar(
        update(ScheduledRun)
        .where(
            ScheduledRun.job == job,
            or_(ScheduledRun.next_run_at.is_(None), ScheduledRun.next_run_at <= now),
            or_(ScheduledRun.claimed_until.is_(None), ScheduledRun.claimed_until <= now),
        )
        .values(claimed_by=token, claimed_until=now + LEASE, last_started_at=now)
        .returning(ScheduledRun.job)
        .execution_options(synchronize_session=False)
    )
    return token if claimed is not None else None


async def keep_claim(session: AsyncSession, job: str, token: str, now: datetime) -> None:
    renewed = await session.scalar(
        update(ScheduledRun)
        .where(ScheduledRun.job == job, ScheduledRun.claimed_by == token)
        .values(claimed_until=now + LEASE)
        .returning(ScheduledRun.job)
        .execution_options(synchronize_session=False)
    )
    if renewed is None:
        raise LostClaim(job)


async def finish(
    session: AsyncSession,
    job: str,
    token: str,
    now: datetime,
    outcome: dict[str, Any],
    *,
    next_run_at: datetime | None,
) -> None:
    """Release the claim, saying what the run did and when the job is due again (None: keep
    the date it had, so a failed run is tried again at the next look)."""
    values: dict[str, Any] = {
        "claimed_by": None,
        "claimed_until": None,
        "last_finished_at": now,
        "last_outcome": outcome,
    }
    if next_run_at is not None:
        values["next_run_at"] = next_run_at
    await session.execute(
        update(ScheduledRun)
        .where(ScheduledRun.job == job, ScheduledRun.claimed_by == token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def list_runs(session: AsyncSession) -> dict[str, ScheduledRun]:
    rows = await session.scalars(select(ScheduledRun).order_by(ScheduledRun.job))
    return {run.job: run for run in rows}
