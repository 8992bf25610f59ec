"""Which letters go, and when (spec §9.7): the ranking of duplicates and the plans of the
running campaigns. The senders (mtt/sender.py) then send what is due.

- Ranking: a letter whose action was delivered (its supporter accepted) gets its `dupe_rank`,
  the number of earlier letters of the same person (fingerprint) to the same target; only rank
  0 goes to a target, the others become DUPLICATE. Test letters are exempt: they are ranked 0,
  count for no one, and are due at once (to the supporter, see render.py).
- Planning: once per cycle (drip) or per hour (hourly), one process takes a campaign's plan
  lease (`mtt.next_plan_at`, a conditional update) and gives send times to the letters the
  mode allows; the leases make any number of processes plan each campaign once.
- Letters to a target without a usable address (none left, or all bounced) become
  UNDELIVERABLE when planned: they would never be sent, and are counted.

Costs are bounded by what waits, never by what was sent: the counts per target are kept in
`mtt_target_counts` (queued by the ranking, planned by the planner), and the letters to plan
are read from the index on (target, status, send time, id)."""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import utcnow
from proca_server.models import Action, Campaign, Message, Mtt, Org, Supporter, Target, TargetEmail
from proca_server.models.enums import (
    ActionProcessingStatus,
    EmailStatus,
    SupporterProcessingStatus,
)
from proca_server.models.message import SendStatus
from proca_server.models.mtt import MttTargetCount
from proca_server.mtt import schedule

log = logging.getLogger(__name__)

RANK_BATCH = 5000
TARGET_CHUNK = 10
USABLE = (EmailStatus.NONE, EmailStatus.ACTIVE)
TEST_LETTER_LIFETIME = timedelta(days=1)


@dataclass
class PlanReport:
    ranked: int = 0
    planned: int = 0
    undeliverable: int = 0
    campaigns: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)


async def _bump(
    session: AsyncSession, campaign_of: dict[UUID, int], column: str, by: dict[UUID, int]
) -> None:
    """Add to a count of each target, making its row on first use."""
    rows = [
        {"target_id": t, "campaign_id": campaign_of[t], column: n}
        for t, n in sorted(by.items())
        if n
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = MttTargetCount.__table__
    assert isinstance(table, Table)
    for row in rows:
        statement = insert(table).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.target_id],
            set_={column: table.c[column] + statement.excluded[column]},
        )
        await session.execute(statement)


async def bump_counts(session: AsyncSession, column: str, by: dict[UUID, int]) -> None:
    """Add to a count of each target (the row exists once a letter to it was ranked). Rows
    are updated in target order, as by every other writer, so that two never deadlock."""
    for target_id, n in sorted(by.items()):
        if n:
            await session.execute(
                update(MttTargetCount)
                .where(MttTargetCount.target_id == target_id)
                .values({column: getattr(MttTargetCount, column) + n})
            )


async def rank_messages(session: AsyncSession, now: datetime, limit: int = RANK_BATCH) -> int:
    """Rank the letters of delivered actions; how many were ranked."""
    rows = (
        await session.execute(
            select(
                Message.id,
                Message.target_id,
                Supporter.fingerprint,
                Action.testing,
                Target.campaign_id,
            )
            .join(Action, Action.id == Message.action_id)
            .join(Supporter, Supporter.id == Action.supporter_id)
            .join(Target, Target.id == Message.target_id)
            .where(
                Message.dupe_rank.is_(None),
                Action.processing_status == ActionProcessingStatus.DELIVERED,
                Supporter.processing_status == SupporterProcessingStatus.ACCEPTED,
            )
            .order_by(Message.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0
    real = [r for r in rows if not r.testing]
    keys = {(r.target_id, r.fingerprint) for r in real}
    earlier: Counter[tuple[UUID, bytes]] = Counter()
    for start in range(0, len(keys), 500):
        part = list(keys)[start : start + 500]
        counted = await session.execute(
            select(Message.target_id, Supporter.fingerprint, func.count())
            .join(Action, Action.id == Message.action_id)
            .join(Supporter, Supporter.id == Action.supporter_id)
            .where(
                Message.dupe_rank.is_not(None),
                Action.testing.is_(False),
                tuple_(Message.target_id, Supporter.fingerprint).in_(part),
            )
            .group_by(Message.target_id, Supporter.fingerprint)
        )
        for target_id, fingerprint, count in counted.all():
            earlier[(target_id, fingerprint)] = count
    by_rank: dict[int, list[int]] = defaultdict(list)
    for r in real:
        key = (r.target_id, r.fingerprint)
        by_rank[earlier[key]].append(r.id)
        earlier[key] += 1
    campaign_of = {r.target_id: r.campaign_id for r in rows}
    ranked = 0
    for rank, ids in by_rank.items():
        values: dict[str, object] = {"dupe_rank": rank}
        if rank > 0:
            values["send_status"] = SendStatus.DUPLICATE
        for start in range(0, len(ids), 1000):
            done = await session.execute(
                update(Message)
                .where(Message.id.in_(ids[start : start + 1000]), Message.dupe_rank.is_(None))
                .values(values)
                .returning(Message.target_id)
            )
            targets = Counter(done.scalars().all())
            ranked += sum(targets.values())
            if rank == 0:
                await _bump(session, campaign_of, "queued", dict(targets))
    tests = [r.id for r in rows if r.testing]
    for start in range(0, len(tests), 1000):
        done = await session.execute(
            update(Message)
            .where(Message.id.in_(tests[start : start + 1000]), Message.dupe_rank.is_(None))
            .values(dupe_rank=0, scheduled_at=now)
        )
        ranked += _rowcount(done)
    return ranked


async def running_campaigns(
    session: AsyncSession, now: datetime
) -> list[tuple[Mtt, Campaign, Org]]:
    """The MTT campaigns whose days include today (the modes narrow this down)."""
    rows = await session.execute(
        select(Mtt, Campaign, Org)
        .join(Campaign, Campaign.id == Mtt.campaign_id)
        .join(Org, Org.id == Campaign.org_id)
        .where(Mtt.start_at <= now, Mtt.end_at > now - timedelta(days=1))
    )
    return [(m, c, o) for m, c, o in rows.all() if schedule.in_days(m.start_at, m.end_at, now)]


async def _take_lease(session: AsyncSession, mtt: Mtt, now: datetime, until: datetime) -> bool:
    taken = await session.execute(
        update(Mtt)
        .where(Mtt.id == mtt.id, or_(Mtt.next_plan_at.is_(None), Mtt.next_plan_at <= now))
        .values(next_plan_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(_rowcount(taken))


def _rest_of_hour(now: datetime) -> timedelta:
    """The hourly spread: 55 minutes from the top of the hour, what is left of them after."""
    left = schedule.hour_start(now) + schedule.SPREAD - now
    return max(left, timedelta(seconds=1))


def _lease_end(mtt: Mtt, now: datetime, cycle_seconds: int) -> datetime:
    if mtt.drip_delivery:
        return now + timedelta(seconds=cycle_seconds)
    return schedule.next_hour(now)


async def _targets(session: AsyncSession, campaign_id: int) -> tuple[list[UUID], set[UUID]]:
    """The campaign's targets (stable order) and those with a usable address."""
    usable = (
        select(TargetEmail.id)
        .where(TargetEmail.target_id == Target.id, TargetEmail.email_status.in_(USABLE))
        .exists()
    )
    rows = await session.execute(
        select(Target.id, usable).where(Target.campaign_id == campaign_id).order_by(Target.id)
    )
    all_targets, reachable = [], set()
    for target_id, ok in rows.all():
        all_targets.append(target_id)
        if ok:
            reachable.add(target_id)
    return all_targets, reachable


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _waiting(target_id: UUID) -> tuple[ColumnElement[bool], ...]:
    return (
        Message.target_id == target_id,
        Message.send_status == SendStatus.PENDING,
        Message.scheduled_at.is_(None),
        Message.dupe_rank == 0,
    )


async def _settle_unreachable(
    session: AsyncSession, campaign_id: int, targets: Sequence[UUID], now: datetime
) -> int:
    marked: dict[UUID, int] = {}
    for target_id in targets:
        done = await session.execute(
            update(Message)
            .where(*_waiting(target_id))
            .values(
                send_status=SendStatus.UNDELIVERABLE,
                scheduled_at=now,
                error="the target has no usable email address",
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(done):
            marked[target_id] = _rowcount(done)
    await bump_counts(session, "undeliverable", marked)
    await bump_counts(session, "planned", marked)
    return sum(marked.values())


def _allowances(
    targets: Sequence[UUID],
    counts: dict[UUID, MttTargetCount],
    mtt: Mtt,
    now: datetime,
    settings_cycle: int,
    per_chunk: int,
) -> dict[UUID, int]:
    """How many letters each target may be given in this plan."""
    if mtt.drip_delivery:
        cycle = schedule.drip_cycle(mtt.start_at, mtt.end_at, now, settings_cycle)
        if cycle is None:
            return {}
        wanted = {}
        for t in targets:
            c = counts.get(t)
            if c is not None:
                wanted[t] = max(0, schedule.drip_goal(c.queued, cycle) - c.planned)
    else:
        if now >= mtt.end_at:
            return {}
        cap = schedule.hourly_cap(mtt.max_emails_per_hour, now, mtt.timezone)
        wanted = {t: cap for t in targets if t in counts}
    # a cycle plans at most `per_chunk` letters for each 10 targets, shared round robin
    allowed: dict[UUID, int] = {}
    for start in range(0, len(targets), TARGET_CHUNK):
        chunk = [t for t in targets[start : start + TARGET_CHUNK] if wanted.get(t)]
        budget = per_chunk if mtt.drip_delivery else sum(wanted.get(t, 0) for t in chunk)
        while budget > 0 and chunk:
            for t in list(chunk):
                if budget == 0:
                    break
                allowed[t] = allowed.get(t, 0) + 1
                budget -= 1
                if allowed[t] >= wanted[t]:
                    chunk.remove(t)
    return allowed


async def plan_campaign(
    session: AsyncSession,
    mtt: Mtt,
    campaign: Campaign,
    now: datetime,
    *,
    cycle_seconds: int,
    per_chunk: int,
    rng: random.Random | None = None,
) -> tuple[int, int]:
    """Give send times to the letters the campaign's mode allows now: (planned, undeliverable)."""
    targets, reachable = await _targets(session, campaign.id)
    undeliverable = await _settle_unreachable(
        session, campaign.id, [t for t in targets if t not in reachable], now
    )
    live = [t for t in targets if t in reachable]
    counts = {
        c.target_id: c
        for c in (
            await session.scalars(
                select(MttTargetCount).where(MttTargetCount.campaign_id == campaign.id)
            )
        ).all()
    }
    allowed = _allowances(live, counts, mtt, now, cycle_seconds, per_chunk)
    planned: dict[UUID, int] = {}
    times: list[dict[str, object]] = []
    for target_id, n in allowed.items():
        if n <= 0:
            continue
        ids = (
            await session.scalars(
                select(Message.id).where(*_waiting(target_id)).order_by(Message.id).limit(n)
            )
        ).all()
        if not ids:
            continue
        if mtt.drip_delivery:
            at = [now] * len(ids)
        else:
            at = schedule.spread(now, len(ids), span=_rest_of_hour(now), rng=rng)
        times += [{"id": i, "scheduled_at": t} for i, t in zip(ids, at, strict=True)]
        planned[target_id] = len(ids)
    # the lease keeps other planners off these letters: no need to re-check them
    for start in range(0, len(times), 1000):
        await session.execute(update(Message), times[start : start + 1000])
    await bump_counts(session, "planned", planned)
    return sum(planned.values()), undeliverable


async def plan(
    session: AsyncSession,
    now: datetime,
    *,
    cycle_seconds: int,
    per_chunk: int,
    rng: random.Random | None = None,
) -> PlanReport:
    """Rank, then plan every running campaign whose lease this process takes. Flushes only:
    the caller commits (one transaction per call, so a crash plans nothing twice)."""
    report = PlanReport()
    report.ranked = await rank_messages(session, now)
    campaigns = await running_campaigns(session, now)
    (rng or random).shuffle(campaigns)
    for mtt, campaign, org in campaigns:
        if not await _take_lease(session, mtt, now, _lease_end(mtt, now, cycle_seconds)):
            continue
        if org.email_backend_id is None:
            report.blocked.append(campaign.id)
            log.warning(
                "mail to target of campaign %d is blocked: its org %s has no email backend",
                campaign.id,
                org.name,
            )
            continue
        planned, undeliverable = await plan_campaign(
            session, mtt, campaign, now, cycle_seconds=cycle_seconds, per_chunk=per_chunk, rng=rng
        )
        report.planned += planned
        report.undeliverable += undeliverable
        report.campaigns.append(campaign.id)
    return report


async def delete_old_test_letters(session: AsyncSession, now: datetime | None = None) -> int:
    """Test letters are kept a day after they were handled, for the tester to look back."""
    before = (now or utcnow()) - TEST_LETTER_LIFETIME
    test_action = exists().where(
        and_(
            Action.id == Message.action_id,
            Action.testing.is_(True),
            Action.processing_status == ActionProcessingStatus.DELIVERED,
        )
    )
    done = await session.execute(
        delete(Message)
        .where(
            Message.send_status != SendStatus.PENDING,
            Message.updated_at < before,
            test_action,
        )
        .execution_options(synchronize_session=False)
    )
    return int(_rowcount(done) or 0)
