"""Retention cleanup of an org's contacts (its two modes, `delete_contacts` and `remove_pii`).

A run lists its candidate supporters once (repository.py says which), then works through
them in batches, one transaction each: the batch's supporters are checked again, the org's
contacts of those still eligible are deleted, and in `remove_pii` mode their cleartext
personal data is cleared where no other org holds a contact of theirs. Fingerprints, areas and
actions stay, so the campaign counters do not move.

A run stopped midway keeps the batches it committed; the next run lists what is left. Its one
audit entry is written with the first batch and brought up to date by each of the others, in
the same transactions, so it always says what was committed (`complete` once the last batch
is)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.audit import service as audit
from proca_server.errors import UserInputError
from proca_server.kit.time import months_before
from proca_server.models import AuditLog, Campaign, Org, ScheduledRun
from proca_server.org.repository import get_org_by_name
from proca_server.retention import repository, schedule
from proca_server.retention.policy import (
    DEFAULT_MONTHS,
    MODES,
    MONTHS_RULE,
    POLICY_KEY,
    Mode,
    RetentionPolicy,
    org_policy,
    parse_mode,
    parse_months,
)
from proca_server.retention.repository import Counts, Scope

DEFAULT_BATCH = 2000
MAX_BATCH = 10_000
AUDIT_ACTION = "retention"

Heartbeat = Callable[[AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class RetentionRun:
    """One run's settings: whose contacts, which mode, how old, which campaign."""

    org_id: int
    org_name: str
    mode: Mode
    months: int
    campaign: str | None
    scope: Scope

    def details(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "months": self.months, "campaign": self.campaign}


@dataclass
class RetentionReport:
    contacts: int = 0
    supporters: int = 0
    # supporters whose cleartext personal data was cleared (remove_pii)
    anonymised: int = 0
    # listed, but no longer candidates when their batch came (they acted again, ...)
    skipped: int = 0
    complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts,
            "supporters": self.supporters,
            "anonymised": self.anonymised,
            "skipped": self.skipped,
            "complete": self.complete,
        }


def make_scope(org_id: int, months: int, campaign_id: int | None, now: datetime) -> Scope:
    cutoff = months_before(now, months)
    return Scope(org_id, cutoff, cutoff.date(), campaign_id)


async def plan_run(
    session: AsyncSession,
    org_name: str,
    *,
    months: str | int | None,
    mode: str | None,
    campaign: str | None,
    now: datetime,
) -> RetentionRun:
    """A run as an operator asks for it; what they leave out comes from the org's policy,
    else 24 months and `delete_contacts`."""
    org = await get_org_by_name(session, org_name)
    if org is None:
        raise UserInputError(f"no org named {org_name}")
    policy = org_policy(org.config)
    if months is None:
        chosen_months = policy.months if policy else DEFAULT_MONTHS
    else:
        try:
            chosen_months = parse_months(months)
        except ValueError:
            raise UserInputError(f"--months {MONTHS_RULE}") from None
    if mode is None:
        chosen_mode = policy.mode if policy else Mode.DELETE_CONTACTS
    else:
        try:
            chosen_mode = parse_mode(mode)
        except ValueError:
            raise UserInputError(f"--mode must be one of {MODES}") from None
    campaign_id = None
    if campaign is not None:
        found = (
            await session.execute(
                select(Campaign.id, Campaign.name).where(Campaign.name == campaign)
            )
        ).one_or_none()
        if found is None:
            raise UserInputError(f"no campaign named {campaign}")
        campaign_id, campaign = found
    return RetentionRun(
        org.id,
        org.name,
        chosen_mode,
        chosen_months,
        campaign,
        make_scope(org.id, chosen_months, campaign_id, now),
    )


def policy_run(org_id: int, org_name: str, policy: RetentionPolicy, now: datetime) -> RetentionRun:
    return RetentionRun(
        org_id,
        org_name,
        policy.mode,
        policy.months,
        None,
        make_scope(org_id, policy.months, None, now),
    )


async def count(session: AsyncSession, run: RetentionRun) -> Counts:
    """What the run would do now (a dry run)."""
    return await repository.count_candidates(session, run.scope)


async def list_candidates(
    sessionmaker: async_sessionmaker[AsyncSession], run: RetentionRun
) -> list[int]:
    async with sessionmaker() as session:
        return await repository.list_candidate_ids(session, run.scope)


async def erase(
    sessionmaker: async_sessionmaker[AsyncSession],
    run: RetentionRun,
    candidates: Sequence[int],
    *,
    actor: str,
    batch_size: int = DEFAULT_BATCH,
    advance: Callable[[int], None] | None = None,
    heartbeat: Heartbeat | None = None,
) -> RetentionReport:
    """Erase what `run` allows of the `candidates` (list_candidates), `batch_size` supporters
    per transaction (a boundary: it commits). `heartbeat` runs in each batch's transaction
    (the schedule keeps its claim alive there, and stops the run when it lost it)."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise UserInputError(f"the batch size must be from 1 to {MAX_BATCH}")
    report = RetentionReport()
    batches = [candidates[i : i + batch_size] for i in range(0, len(candidates), batch_size)]
    audit_id: uuid.UUID | None = None
    for number, batch in enumerate(batches or [[]], start=1):
        async with sessionmaker() as session, session.begin():
            if heartbeat is not None:
                await heartbeat(session)
            kept = await repository.still_candidates(session, run.scope, batch) if batch else []
            if kept:
                report.contacts += await repository.delete_org_contacts(session, run.org_id, kept)
                if run.mode is Mode.REMOVE_PII:
                    report.anonymised += await repository.clear_unshared_pii(
                        session, run.org_id, kept
                    )
            report.supporters += len(kept)
            report.skipped += len(batch) - len(kept)
            report.complete = number >= len(batches)
            audit_id = await _audit(session, run, report, actor, audit_id)
        if advance is not None:
            advance(len(batch))
    return report


async def _audit(
    session: AsyncSession,
    run: RetentionRun,
    report: RetentionReport,
    actor: str,
    entry_id: uuid.UUID | None,
) -> uuid.UUID:
    details = {**run.details(), **report.as_dict()}
    if entry_id is None:
        entry = audit.record(
            session,
            actor=actor,
            action=AUDIT_ACTION,
            org_id=run.org_id,
            count=report.supporters,
            details=details,
        )
        await session.flush()
        return entry.id
    await session.execute(
        update(AuditLog)
        .where(AuditLog.id == entry_id)
        .values(changeset={**details, "count": report.supporters})
    )
    return entry_id


@dataclass(frozen=True)
class PolicyStatus:
    """An org with a retention policy (None: its config holds one that does not), and its
    scheduled run."""

    org_name: str
    policy: RetentionPolicy | None
    run: ScheduledRun | None


async def policy_status(session: AsyncSession) -> tuple[list[PolicyStatus], ScheduledRun | None]:
    """The orgs with a policy, and the schedule of the closing of ended campaigns."""
    runs = await schedule.list_runs(session)
    orgs = (await session.execute(select(Org.id, Org.name, Org.config).order_by(Org.name))).all()
    found = [
        PolicyStatus(name, org_policy(config), runs.get(schedule.retention_job(org_id)))
        for org_id, name, config in orgs
        if (config or {}).get(POLICY_KEY) is not None
    ]
    return found, runs.get(schedule.CLOSE_ENDED_JOB)
