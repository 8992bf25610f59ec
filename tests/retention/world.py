"""A world with old and recent campaigns: people who signed them, their contacts with one or
two orgs, and the counters as signatures leave them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import months_before, utcnow
from proca_server.models import Action, Contact, Org, Supporter
from proca_server.models.enums import (
    ActionProcessingStatus,
    CampaignStatus,
    SupporterProcessingStatus,
)
from proca_server.stats import record_action
from tests.factories import make_campaign, make_org, make_page

NOW = utcnow()
LONG_AGO = months_before(NOW, 30)
LATELY = NOW - timedelta(days=30)


def fp(who: str) -> bytes:
    return hashlib.sha256(who.encode()).digest()


@dataclass(frozen=True)
class OrgRef:
    """An org's keys (plain values: the ORM objects expire at each commit)."""

    id: int
    name: str


@dataclass(frozen=True)
class Page:
    id: int
    campaign_id: int
    campaign: str
    org_id: int


async def new_org(session: AsyncSession) -> OrgRef:
    org = await make_org(session)
    return OrgRef(org.id, org.name)


async def campaign_with_page(
    session: AsyncSession,
    org: OrgRef,
    *,
    status: CampaignStatus = CampaignStatus.CLOSED,
    ended: date | None = None,
) -> Page:
    owner = await session.get(Org, org.id)
    assert owner is not None
    campaign = await make_campaign(session, owner)
    campaign.status = status
    campaign.end_date = ended
    page = await make_page(session, campaign, owner)
    await session.flush()
    return Page(page.id, campaign.id, campaign.name, org.id)


async def sign(
    session: AsyncSession,
    page: Page,
    who: str,
    *,
    at: datetime,
    contacts: Sequence[OrgRef],
    area: str = "DE",
    testing: bool = False,
) -> int:
    """What a processed signature leaves: a supporter with its cleartext, a contact per org,
    an action made `at`, counted."""
    supporter = Supporter(
        fingerprint=fp(who),
        campaign_id=page.campaign_id,
        action_page_id=page.id,
        first_name=who.title(),
        last_name="Lee",
        email=f"{who}@example.org",
        address="1 Main Street",
        area=area,
        processing_status=SupporterProcessingStatus.ACCEPTED,
        inserted_at=at,
    )
    session.add(supporter)
    await session.flush()
    for org in contacts:
        session.add(
            Contact(
                supporter_id=supporter.id,
                org_id=org.id,
                payload=json.dumps({"email": f"{who}@example.org"}).encode(),
                communication_consent=True,
                delivery_consent=True,
            )
        )
    session.add(
        Action(
            action_type="petition",
            campaign_id=page.campaign_id,
            action_page_id=page.id,
            supporter_id=supporter.id,
            with_consent=True,
            testing=testing,
            processing_status=ActionProcessingStatus.DELIVERED,
            inserted_at=at,
        )
    )
    await session.flush()
    await record_action(
        session,
        campaign_id=page.campaign_id,
        org_id=page.org_id,
        action_page_id=page.id,
        action_type="petition",
        fingerprint=fp(who),
        area=area,
        testing=testing,
    )
    return supporter.id


@dataclass
class Retention:
    """The org `org` (its partner `partner` collects too) and its campaigns:

    - `old`: closed, ended 30 months ago; `recent`: closed, ended a month ago; `live`.
    - ann: signed `old` long ago, contact with org: eligible.
    - bob: signed `old` long ago, contacts with org and partner: eligible, but his cleartext
      stays (the partner holds a contact of his).
    - cat: signed `old` long ago and `live` lately: protected.
    - dan: signed `recent`: not eligible.
    - eve: signed `old` lately (after it ended): not eligible.
    - fay: signed `old` long ago, contact with the partner only: not the org's.
    """

    org: OrgRef
    partner: OrgRef
    old: Page
    recent: Page
    live: Page
    # supporter ids
    people: dict[str, int] = field(default_factory=dict)

    @property
    def campaign_ids(self) -> list[int]:
        return [self.old.campaign_id, self.recent.campaign_id, self.live.campaign_id]


async def make_retention_world(session: AsyncSession) -> Retention:
    org = await new_org(session)
    partner = await new_org(session)
    old = await campaign_with_page(session, org, ended=(LONG_AGO + timedelta(days=1)).date())
    recent = await campaign_with_page(session, org, ended=LATELY.date())
    live = await campaign_with_page(session, org, status=CampaignStatus.LIVE)
    world = Retention(org, partner, old, recent, live)
    people = world.people
    people["ann"] = await sign(session, old, "ann", at=LONG_AGO, contacts=[org], area="DE")
    people["bob"] = await sign(session, old, "bob", at=LONG_AGO, contacts=[org, partner], area="FR")
    people["cat"] = await sign(session, old, "cat", at=LONG_AGO, contacts=[org], area="DE")
    people["cat_live"] = await sign(session, live, "cat", at=LATELY, contacts=[org], area="IT")
    people["dan"] = await sign(session, recent, "dan", at=LATELY, contacts=[org])
    people["eve"] = await sign(session, old, "eve", at=LATELY, contacts=[org])
    people["fay"] = await sign(session, old, "fay", at=LONG_AGO, contacts=[partner])
    await session.commit()
    return world


async def contacts_of(session: AsyncSession, supporter_id: int) -> list[int]:
    await session.rollback()  # end the read snapshot, see fresh data
    rows = await session.scalars(
        select(Contact.org_id).where(Contact.supporter_id == supporter_id).order_by(Contact.org_id)
    )
    return [org_id for org_id in rows if org_id is not None]


async def cleartext(session: AsyncSession, supporter_id: int) -> tuple[str | None, ...]:
    await session.rollback()
    row = (
        await session.execute(
            select(
                Supporter.first_name,
                Supporter.last_name,
                Supporter.email,
                Supporter.address,
                Supporter.area,
            ).where(Supporter.id == supporter_id)
        )
    ).one()
    return tuple(row)


async def table_count(session: AsyncSession, model: type[object]) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)
