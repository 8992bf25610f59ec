"""Action pages in SQL: lookups by name, a campaign's pages, what the staff views show of a
page (its template's reference, its newest action), and deletion."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ScalarSelect, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, ActionPage, EmailTemplate, Org, Source, Supporter

T = TypeVar("T")


async def get_page_by_name(session: AsyncSession, name: str) -> ActionPage | None:
    result = await session.execute(select(ActionPage).where(ActionPage.name == name))
    return result.scalar_one_or_none()


async def find_campaign_page(
    session: AsyncSession, name: str, org_id: int, campaign_id: int
) -> ActionPage | None:
    """The org's page of that name in the campaign."""
    page: ActionPage | None = await session.scalar(
        select(ActionPage).where(
            ActionPage.name == name,
            ActionPage.org_id == org_id,
            ActionPage.campaign_id == campaign_id,
        )
    )
    return page


async def newest_page_of(
    session: AsyncSession, campaign_id: int, org_id: int | None
) -> ActionPage | None:
    """The org's newest page in the campaign."""
    result = await session.execute(
        select(ActionPage)
        .where(ActionPage.campaign_id == campaign_id, ActionPage.org_id == org_id)
        .order_by(ActionPage.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def list_pages_of_campaigns(
    session: AsyncSession, campaign_ids: Collection[int]
) -> Sequence[ActionPage]:
    """The campaigns' pages, by id."""
    if not campaign_ids:
        return []
    result = await session.execute(
        select(ActionPage).where(ActionPage.campaign_id.in_(campaign_ids)).order_by(ActionPage.id)
    )
    return result.scalars().all()


async def list_pages_with_orgs(
    session: AsyncSession, campaign_id: int
) -> Sequence[tuple[ActionPage, Org]]:
    """The campaign's pages with their orgs, by page id."""
    result = await session.execute(
        select(ActionPage, Org)
        .join(Org, Org.id == ActionPage.org_id)
        .where(ActionPage.campaign_id == campaign_id)
        .order_by(ActionPage.id)
    )
    return [(page, org) for page, org in result.all()]


async def list_template_refs(
    session: AsyncSession, keys: Collection[tuple[int, str]]
) -> dict[tuple[int, str], str | None]:
    """(org id, template name) -> the external id of the org's first template of that name
    (keys without a template are left out)."""
    if not keys:
        return {}
    result = await session.execute(
        select(EmailTemplate.org_id, EmailTemplate.name, EmailTemplate.external_id)
        .where(
            EmailTemplate.org_id.in_({org_id for org_id, _ in keys}),
            EmailTemplate.name.in_({name for _, name in keys}),
        )
        .order_by(EmailTemplate.id)
    )
    refs: dict[tuple[int, str], str | None] = {}
    for org_id, name, external_id in result.all():
        refs.setdefault((org_id, name), external_id)
    return refs


async def list_last_locations(
    session: AsyncSession, page_ids: Collection[int]
) -> dict[int, str | None]:
    """page id -> the location of its newest action that has one."""
    newest = (
        select(Source.location)
        .join(Action, Action.source_id == Source.id)
        .where(Action.action_page_id == ActionPage.id, Source.location != "")
        .order_by(Action.id.desc())
        .limit(1)
        .correlate(ActionPage)
        .scalar_subquery()
    )
    return await _per_page(session, page_ids, newest)


async def list_last_action_times(
    session: AsyncSession, page_ids: Collection[int]
) -> dict[int, datetime | None]:
    """page id -> when its newest action was made."""
    newest = (
        select(Action.inserted_at)
        .where(Action.action_page_id == ActionPage.id)
        .order_by(Action.id.desc())
        .limit(1)
        .correlate(ActionPage)
        .scalar_subquery()
    )
    return await _per_page(session, page_ids, newest)


async def _per_page(
    session: AsyncSession, page_ids: Collection[int], value: ScalarSelect[T]
) -> dict[int, T | None]:
    # one statement for all pages, each page's value still found through its own newest
    # actions (the index on actions' page), not by reading all of them
    if not page_ids:
        return {}
    result = await session.execute(select(ActionPage.id, value).where(ActionPage.id.in_(page_ids)))
    return {page_id: found for page_id, found in result.all()}


async def has_real_action(session: AsyncSession, page_id: int) -> bool:
    found = await session.scalar(
        select(Action.id)
        .where(Action.action_page_id == page_id, Action.testing.is_(False))
        .limit(1)
    )
    return found is not None


async def has_supporter_acting_elsewhere(session: AsyncSession, page_id: int) -> bool:
    """Whether a supporter who signed on the page has an action on another page."""
    found = await session.scalar(
        select(Action.id)
        .join(Supporter, Supporter.id == Action.supporter_id)
        .where(Supporter.action_page_id == page_id, Action.action_page_id != page_id)
        .limit(1)
    )
    return found is not None


async def delete_page_actions(session: AsyncSession, page_id: int) -> None:
    """Delete the page's actions and its supporters."""
    await session.execute(delete(Action).where(Action.action_page_id == page_id))
    await session.execute(delete(Supporter).where(Supporter.action_page_id == page_id))
