"""Campaign lifecycle housekeeping: closing campaigns that ended or went quiet,
and filling in missing start and end dates from the campaigns' actions.

- `close_ended`: live campaigns whose end date has passed (before today, UTC) are closed. The
  server does this every day on its own (retention/loop.py): the end date is the campaign's
  own statement that it is over.
- `auto_close` (an operator's command, never automatic: a quiet campaign may still be meant
  to be live): live campaigns whose newest non-test action is older than N months are closed,
  their missing dates filled from their first and last non-test actions; live campaigns with no
  non-test action, created more than N months ago, are closed.
- `backfill_dates`: a missing start date becomes the day of the first non-test action; a
  missing end date the day of the last one, when nothing happened in the last month and the
  campaign is not live (a past end date would have the daily housekeeping close it). No
  status changes.

Dates are days in UTC. A filled pair always keeps the start before the end (the API refuses
to save a campaign otherwise): an end filled on the start's day moves a day later.

Each works through its campaigns `BATCH` at a time and tells `on_progress` (the commands'
progress bar) how many it has looked at; `count_*` say how many there are."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import months_before
from proca_server.models import Action, Campaign
from proca_server.models.enums import CampaignStatus

DAY = timedelta(days=1)
AUTO_CLOSE_MONTHS = 3
QUIET_MONTHS = 1
# campaigns per statement: the steps of the commands' progress, and few parameters a statement
BATCH = 500

T = TypeVar("T")


@dataclass(frozen=True)
class Change:
    """What housekeeping does to one campaign."""

    campaign_id: int
    name: str
    close: bool = False
    start_date: date | None = None
    end_date: date | None = None
    # the newest non-test action, None when there is none
    last_action_at: datetime | None = None


@dataclass
class AutoCloseReport:
    with_actions: list[Change] = field(default_factory=list)
    without_actions: list[Change] = field(default_factory=list)

    @property
    def closed(self) -> int:
        return len(self.with_actions) + len(self.without_actions)

    @property
    def dated(self) -> int:
        return sum(1 for c in self.with_actions if c.start_date or c.end_date)


@dataclass
class BackfillReport:
    changes: list[Change] = field(default_factory=list)

    @property
    def starts(self) -> int:
        return sum(1 for c in self.changes if c.start_date)

    @property
    def ends(self) -> int:
        return sum(1 for c in self.changes if c.end_date)


def _ended(today: date) -> tuple[ColumnElement[bool], ...]:
    return (Campaign.status == CampaignStatus.LIVE, Campaign.end_date < today)


def _live() -> tuple[ColumnElement[bool], ...]:
    return (Campaign.status == CampaignStatus.LIVE,)


def _undated() -> tuple[ColumnElement[bool], ...]:
    return (or_(Campaign.start_date.is_(None), Campaign.end_date.is_(None)),)


async def _count(session: AsyncSession, where: tuple[ColumnElement[bool], ...]) -> int:
    return await session.scalar(select(func.count()).select_from(Campaign).where(*where)) or 0


async def count_ended(session: AsyncSession, today: date) -> int:
    """How many campaigns `close_ended` looks at."""
    return await _count(session, _ended(today))


async def count_live(session: AsyncSession) -> int:
    """How many campaigns `auto_close` looks at."""
    return await _count(session, _live())


async def count_undated(session: AsyncSession) -> int:
    """How many campaigns `backfill_dates` looks at."""
    return await _count(session, _undated())


def _batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _tell(on_progress: Callable[[int], None] | None, count: int) -> None:
    if on_progress is not None and count:
        on_progress(count)


async def close_ended(
    session: AsyncSession,
    today: date,
    *,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Close the live campaigns that ended before `today`; their names."""
    ended = _ended(today)
    if dry_run:
        names = list(
            await session.scalars(select(Campaign.name).where(*ended).order_by(Campaign.id))
        )
        _tell(on_progress, len(names))
        return names
    ids = list(await session.scalars(select(Campaign.id).where(*ended).order_by(Campaign.id)))
    closed: list[str] = []
    for batch in _batches(ids):
        # `ended` again: a campaign another process changed meanwhile is left as it is
        closed.extend(
            await session.scalars(
                update(Campaign)
                .where(Campaign.id.in_(batch), *ended)
                .values(status=CampaignStatus.CLOSED)
                .returning(Campaign.name)
                .execution_options(synchronize_session=False)
            )
        )
        _tell(on_progress, len(batch))
    return sorted(closed)


async def _activity(
    session: AsyncSession, campaign_ids: Iterable[int]
) -> dict[int, tuple[datetime, datetime]]:
    """First and last non-test action of each campaign that has one."""
    ids = list(campaign_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Action.campaign_id, func.min(Action.inserted_at), func.max(Action.inserted_at))
        .where(Action.campaign_id.in_(ids), Action.testing.is_(False))
        .group_by(Action.campaign_id)
    )
    return {cid: (first, last) for cid, first, last in rows.all() if cid is not None}


def _fill(
    campaign: Campaign, first: datetime, last: datetime | None
) -> tuple[date | None, date | None]:
    """The dates to fill (None: leave as it is); `last` None leaves the end open."""
    start = campaign.start_date
    new_start = None
    if start is None:
        new_start = first.date()
        if campaign.end_date is not None and new_start >= campaign.end_date:
            new_start = campaign.end_date - DAY
        start = new_start
    new_end = None
    if campaign.end_date is None and last is not None:
        new_end = max(last.date(), start + DAY)
    return new_start, new_end


async def _apply(session: AsyncSession, changes: Iterable[Change]) -> None:
    for change in changes:
        values: dict[str, object] = {}
        if change.close:
            values["status"] = CampaignStatus.CLOSED
        if change.start_date is not None:
            values["start_date"] = change.start_date
        if change.end_date is not None:
            values["end_date"] = change.end_date
        if values:
            await session.execute(
                update(Campaign)
                .where(Campaign.id == change.campaign_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )


async def auto_close(
    session: AsyncSession,
    now: datetime,
    *,
    months: int = AUTO_CLOSE_MONTHS,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> AutoCloseReport:
    cutoff = months_before(now, months)
    live = list(await session.scalars(select(Campaign).where(*_live()).order_by(Campaign.id)))
    report = AutoCloseReport()
    for batch in _batches(live):
        activity = await _activity(session, (c.id for c in batch))
        changes = []
        for campaign in batch:
            seen = activity.get(campaign.id)
            if seen is not None:
                first, last = seen
                if last < cutoff:
                    start, end = _fill(campaign, first, last)
                    change = Change(campaign.id, campaign.name, True, start, end, last)
                    report.with_actions.append(change)
                    changes.append(change)
            elif campaign.inserted_at < cutoff:
                change = Change(campaign.id, campaign.name, close=True)
                report.without_actions.append(change)
                changes.append(change)
        if not dry_run:
            await _apply(session, changes)
        _tell(on_progress, len(batch))
    return report


async def backfill_dates(
    session: AsyncSession,
    now: datetime,
    *,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> BackfillReport:
    quiet_since = months_before(now, QUIET_MONTHS)
    undated = list(await session.scalars(select(Campaign).where(*_undated()).order_by(Campaign.id)))
    report = BackfillReport()
    for batch in _batches(undated):
        activity = await _activity(session, (c.id for c in batch))
        changes = []
        for campaign in batch:
            seen = activity.get(campaign.id)
            if seen is None:
                continue
            first, last = seen
            ends = last < quiet_since and campaign.status != CampaignStatus.LIVE
            start, end = _fill(campaign, first, last if ends else None)
            if start or end:
                changes.append(Change(campaign.id, campaign.name, False, start, end, last))
        report.changes.extend(changes)
        if not dry_run:
            await _apply(session, changes)
        _tell(on_progress, len(batch))
    return report
