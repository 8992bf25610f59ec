"""Which letters go, and when: the ranking of duplicates and the plans of the
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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import utcnow
from proca_server.models import Campaign, Mtt
from proca_server.models.message import SendStatus
from proca_server.models.mtt import MttTargetCount
from proca_server.mtt import repository as repo
from proca_server.mtt import schedule

log = logging.getLogger(__name__)

RANK_BATCH = 5000
TARGET_CHUNK = 10
TEST_LETTER_LIFETIME = timedelta(days=1)
NO_ADDRESS = "the target has no usable email address"


@dataclass
class PlanReport:
    ranked: int = 0
    planned: int = 0
    undeliverable: int = 0
    campaigns: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)


async def rank_messages(session: AsyncSession, now: datetime, limit: int = RANK_BATCH) -> int:
    """Rank the letters of delivered actions; how many were ranked."""
    rows = await repo.list_unranked_letters(session, limit)
    if not rows:
        return 0
    real = [r for r in rows if not r.testing]
    earlier = await repo.count_ranked_letters(session, {(r.target_id, r.fingerprint) for r in real})
    by_rank: dict[int, list[int]] = defaultdict(list)
    for r in real:
        key = (r.target_id, r.fingerprint)
        by_rank[earlier[key]].append(r.id)
        earlier[key] += 1
    campaign_of = {r.target_id: r.campaign_id for r in rows}
    ranked = 0
    for rank, ids in sorted(by_rank.items()):
        targets = await repo.set_rank(session, ids, rank)
        ranked += sum(targets.values())
        if rank == 0:
            await repo.upsert_counts(session, campaign_of, "queued", targets)
    ranked += await repo.rank_test_letters(session, [r.id for r in rows if r.testing], now)
    return ranked


def _rest_of_hour(now: datetime) -> timedelta:
    """The hourly spread: 55 minutes from the top of the hour, what is left of them after."""
    left = schedule.hour_start(now) + schedule.SPREAD - now
    return max(left, timedelta(seconds=1))


def _lease_end(mtt: Mtt, now: datetime, cycle_seconds: int) -> datetime:
    if mtt.drip_delivery:
        return now + timedelta(seconds=cycle_seconds)
    return schedule.next_hour(now)


def allowances(
    targets: Sequence[UUID],
    counts: dict[UUID, MttTargetCount],
    mtt: Mtt,
    now: datetime,
    cycle_seconds: int,
    per_chunk: int,
) -> dict[UUID, int]:
    """How many letters each target may be given in this plan."""
    if mtt.drip_delivery:
        cycle = schedule.drip_cycle(mtt.start_at, mtt.end_at, now, cycle_seconds)
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
    # a drip cycle plans at most `per_chunk` letters for each 10 targets, shared round robin
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
    targets, reachable = await repo.list_campaign_targets(session, campaign.id)
    unreachable: dict[UUID, int] = {}
    for target_id in targets:
        if target_id not in reachable:
            n = await repo.settle_waiting_letters(
                session, target_id, SendStatus.UNDELIVERABLE, NO_ADDRESS, now
            )
            if n:
                unreachable[target_id] = n
    await repo.add_to_counts(session, "undeliverable", unreachable)
    await repo.add_to_counts(session, "planned", unreachable)
    live = [t for t in targets if t in reachable]
    counts = await repo.list_campaign_counts(session, campaign.id)
    allowed = allowances(live, counts, mtt, now, cycle_seconds, per_chunk)
    planned: dict[UUID, int] = {}
    if mtt.drip_delivery:
        # a drip cycle's letters are all due at once
        planned = dict(await repo.plan_waiting_letters(session, allowed, now))
    else:
        times: list[tuple[int, datetime]] = []
        for target_id, n in allowed.items():
            ids = await repo.list_waiting_letters(session, target_id, n)
            at = schedule.spread(now, len(ids), span=_rest_of_hour(now), rng=rng)
            times += zip(ids, at, strict=True)
            if ids:
                planned[target_id] = len(ids)
        # the lease keeps other planners off these letters: no need to check them again
        await repo.set_send_times(session, times)
    await repo.add_to_counts(session, "planned", planned)
    return sum(planned.values()), sum(unreachable.values())


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
    campaigns = [
        entry
        for entry in await repo.list_campaigns_in_days(session, now)
        if schedule.in_days(entry[0].start_at, entry[0].end_at, now)
    ]
    (rng or random).shuffle(campaigns)
    for mtt, campaign, org in campaigns:
        if not await repo.take_plan_lease(
            session, mtt.id, now, _lease_end(mtt, now, cycle_seconds)
        ):
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
    return await repo.delete_test_letters_before(session, (now or utcnow()) - TEST_LETTER_LIFETIME)
