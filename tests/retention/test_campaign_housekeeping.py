"""Campaign housekeeping: auto-close of quiet campaigns and backfill of missing
dates from the campaigns' actions."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.campaign.housekeeping import auto_close, backfill_dates, close_ended
from proca_server.kit.time import months_before
from proca_server.models import Action, Campaign
from proca_server.models.enums import CampaignStatus
from tests.retention.world import NOW, OrgRef, Page, campaign_with_page, new_org

LIVE, CLOSED = CampaignStatus.LIVE, CampaignStatus.CLOSED


async def act(session: AsyncSession, page: Page, at: datetime, *, testing: bool = False) -> None:
    session.add(
        Action(
            action_type="petition",
            campaign_id=page.campaign_id,
            action_page_id=page.id,
            testing=testing,
            inserted_at=at,
        )
    )
    await session.flush()


async def campaign(
    session: AsyncSession,
    org: OrgRef,
    *,
    status: CampaignStatus = LIVE,
    created: datetime | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Page:
    page = await campaign_with_page(session, org, status=status, ended=end)
    row = await session.get(Campaign, page.campaign_id)
    assert row is not None
    row.start_date = start
    row.inserted_at = created or months_before(NOW, 12)
    await session.flush()
    return page


async def state(
    session: AsyncSession, page: Page
) -> tuple[CampaignStatus, date | None, date | None]:
    await session.rollback()  # end the read snapshot, see fresh data
    row = (
        await session.execute(
            select(Campaign.status, Campaign.start_date, Campaign.end_date).where(
                Campaign.id == page.campaign_id
            )
        )
    ).one()
    return row[0], row[1], row[2]


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


async def test_auto_close_closes_quiet_and_empty_live_campaigns(session: AsyncSession) -> None:
    org = await new_org(session)
    quiet = await campaign(session, org)
    await act(session, quiet, ago(180))
    await act(session, quiet, ago(120))
    await act(session, quiet, ago(10), testing=True)  # a test action is no activity
    quiet_dated = await campaign(session, org, start=ago(400).date(), end=ago(100).date())
    await act(session, quiet_dated, ago(120))
    busy = await campaign(session, org)
    await act(session, busy, ago(200))
    await act(session, busy, ago(7))
    tested_only = await campaign(session, org, created=ago(150))
    await act(session, tested_only, ago(3), testing=True)
    new_empty = await campaign(session, org, created=ago(20))
    closed = await campaign(session, org, status=CLOSED)
    await act(session, closed, ago(300))
    await session.commit()

    would = await auto_close(session, NOW, months=3, dry_run=True)
    assert [c.name for c in would.with_actions] == [quiet.campaign, quiet_dated.campaign]
    assert [c.name for c in would.without_actions] == [tested_only.campaign]
    assert await state(session, quiet) == (LIVE, None, None)

    report = await auto_close(session, NOW, months=3)
    await session.commit()
    assert (report.closed, len(report.with_actions), report.dated) == (3, 2, 1)
    # the dates are filled from the first and last non-test actions
    assert await state(session, quiet) == (CLOSED, ago(180).date(), ago(120).date())
    assert await state(session, quiet_dated) == (CLOSED, ago(400).date(), ago(100).date())
    assert await state(session, tested_only) == (CLOSED, None, None)
    assert (await state(session, busy))[0] == LIVE
    assert (await state(session, new_empty))[0] == LIVE
    assert await state(session, closed) == (CLOSED, None, None)
    assert (await auto_close(session, NOW, months=3)).closed == 0
    # a longer quiet period spares the busy ones
    assert (await auto_close(session, NOW, months=12, dry_run=True)).closed == 0


async def test_backfill_fills_missing_dates_without_closing(session: AsyncSession) -> None:
    org = await new_org(session)
    done = await campaign(session, org, status=CLOSED)
    await act(session, done, ago(200))
    await act(session, done, ago(60))
    await act(session, done, ago(5), testing=True)
    live = await campaign(session, org)
    await act(session, live, ago(200))
    await act(session, live, ago(60))
    lately = await campaign(session, org, status=CLOSED)
    await act(session, lately, ago(90))
    await act(session, lately, ago(10))
    one_day = await campaign(session, org, status=CLOSED)
    await act(session, one_day, ago(90))
    ends_before = await campaign(session, org, status=CLOSED, end=ago(100).date())
    await act(session, ends_before, ago(95))
    untouched = await campaign(session, org, status=CLOSED, start=ago(300).date())
    await campaign(session, org, status=CLOSED)  # no action: nothing to go by
    await session.commit()

    would = await backfill_dates(session, NOW, dry_run=True)
    assert (would.starts, would.ends) == (5, 2)
    assert await state(session, done) == (CLOSED, None, None)

    report = await backfill_dates(session, NOW)
    await session.commit()
    assert [c.name for c in report.changes] == [
        done.campaign,
        live.campaign,
        lately.campaign,
        one_day.campaign,
        ends_before.campaign,
    ]
    assert await state(session, done) == (CLOSED, ago(200).date(), ago(60).date())
    # a live campaign keeps an open end (a past end would have it closed the next day)
    assert await state(session, live) == (LIVE, ago(200).date(), None)
    # activity within the last month: the end stays open
    assert await state(session, lately) == (CLOSED, ago(90).date(), None)
    # the start stays before the end
    assert await state(session, one_day) == (CLOSED, ago(90).date(), ago(89).date())
    assert await state(session, ends_before) == (CLOSED, ago(101).date(), ago(100).date())
    assert await state(session, untouched) == (CLOSED, ago(300).date(), None)
    assert (await backfill_dates(session, NOW)).changes == []


async def test_close_ended_closes_live_campaigns_past_their_end(session: AsyncSession) -> None:
    org = await new_org(session)
    ended = await campaign(session, org, end=ago(1).date())
    today = await campaign(session, org, end=NOW.date())
    draft = await campaign(session, org, status=CampaignStatus.DRAFT, end=ago(5).date())
    await session.commit()
    assert await close_ended(session, NOW.date(), dry_run=True) == [ended.campaign]
    assert (await state(session, ended))[0] == LIVE
    assert await close_ended(session, NOW.date()) == [ended.campaign]
    await session.commit()
    assert (await state(session, ended))[0] == CLOSED
    assert (await state(session, today))[0] == LIVE
    assert (await state(session, draft))[0] == CampaignStatus.DRAFT
