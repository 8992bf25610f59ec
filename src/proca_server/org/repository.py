from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Subquery, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import (
    Action,
    ActionPage,
    Campaign,
    Contact,
    EmailTemplate,
    Org,
    PublicKey,
    Service,
    Staffer,
    Supporter,
    User,
)


async def get_org_by_name(session: AsyncSession, name: str) -> Org | None:
    result = await session.execute(select(Org).where(Org.name == name))
    return result.scalar_one_or_none()


async def list_keys(
    session: AsyncSession,
    org_id: int,
    *,
    id: int | None = None,
    active: bool | None = None,
    public: bytes | None = None,
) -> Sequence[PublicKey]:
    query = select(PublicKey).where(PublicKey.org_id == org_id)
    if id is not None:
        query = query.where(PublicKey.id == id)
    if active is not None:
        query = query.where(PublicKey.active.is_(active))
    if public is not None:
        query = query.where(PublicKey.public == public)
    result = await session.execute(
        query.order_by(PublicKey.inserted_at.desc(), PublicKey.id.desc())
    )
    return result.scalars().all()


async def list_services(
    session: AsyncSession, org_id: int, name: str | None = None
) -> Sequence[Service]:
    query = select(Service).where(Service.org_id == org_id)
    if name is not None:
        query = query.where(Service.name == name)
    result = await session.execute(query.order_by(Service.id))
    return result.scalars().all()


async def latest_service(session: AsyncSession, org_id: int, name: str) -> Service | None:
    result = await session.execute(
        select(Service)
        .where(Service.org_id == org_id, Service.name == name)
        .order_by(Service.updated_at.desc(), Service.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def list_staff(session: AsyncSession, org_id: int) -> Sequence[tuple[Staffer, User]]:
    result = await session.execute(
        select(Staffer, User)
        .join(User, User.id == Staffer.user_id)
        .where(Staffer.org_id == org_id)
        .order_by(Staffer.id)
    )
    return [(s, u) for s, u in result.all()]


async def lock_staff(session: AsyncSession, org_id: int) -> Sequence[Staffer]:
    """The org's memberships, fresh from the database and locked until the transaction ends,
    so that two concurrent changes cannot both take the org's last owner away.

    A write that changes nothing takes the lock on both databases: the rows' locks on
    PostgreSQL, the write lock on SQLite (whose transactions begin at the first write, so a
    SELECT ... FOR UPDATE would lock nothing there)."""
    await session.execute(
        update(Staffer)
        .where(Staffer.org_id == org_id)
        .values(perms=Staffer.perms, updated_at=Staffer.updated_at)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        select(Staffer)
        .where(Staffer.org_id == org_id)
        .order_by(Staffer.id)
        .execution_options(populate_existing=True)
    )
    return result.scalars().all()


async def list_campaigns(
    session: AsyncSession,
    org_id: int,
    *,
    title_like: str | None = None,
    lead_org_name: str | None = None,
    id: int | None = None,
) -> Sequence[Campaign]:
    """Campaigns the org leads or has an action page in; `lead_org_name`: those led by the
    org of that name."""
    partner = select(ActionPage.campaign_id).where(ActionPage.org_id == org_id)
    query = select(Campaign).where(or_(Campaign.org_id == org_id, Campaign.id.in_(partner)))
    if title_like:
        query = query.where(Campaign.title.like(title_like))
    if lead_org_name is not None:
        lead = select(Org.id).where(Org.name == lead_org_name).scalar_subquery()
        query = query.where(Campaign.org_id == lead)
    if id is not None:
        query = query.where(Campaign.id == id)
    result = await session.execute(query.order_by(Campaign.id))
    return result.scalars().all()


async def list_action_pages(
    session: AsyncSession, org_id: int, *, campaign_id: int | None = None
) -> Sequence[ActionPage]:
    query = select(ActionPage).where(ActionPage.org_id == org_id)
    if campaign_id is not None:
        query = query.where(ActionPage.campaign_id == campaign_id)
    result = await session.execute(query.order_by(ActionPage.id))
    return result.scalars().all()


async def list_templates(session: AsyncSession, org_id: int) -> Sequence[EmailTemplate]:
    result = await session.execute(
        select(EmailTemplate)
        .where(EmailTemplate.org_id == org_id)
        .order_by(EmailTemplate.name, EmailTemplate.locale)
    )
    return result.scalars().all()


async def list_orgs_by_id(session: AsyncSession, ids: Collection[int]) -> Sequence[Org]:
    if not ids:
        return []
    return (await session.scalars(select(Org).where(Org.id.in_(ids)))).all()


async def list_services_by_id(session: AsyncSession, ids: Collection[int]) -> Sequence[Service]:
    if not ids:
        return []
    return (await session.scalars(select(Service).where(Service.id.in_(ids)))).all()


async def list_memberships_in(
    session: AsyncSession, user_id: int, org_ids: Collection[int]
) -> Sequence[Staffer]:
    """The user's memberships among these orgs."""
    if not org_ids:
        return []
    result = await session.execute(
        select(Staffer).where(Staffer.user_id == user_id, Staffer.org_id.in_(org_ids))
    )
    return result.scalars().all()


async def user_memberships(session: AsyncSession, user_id: int) -> Sequence[tuple[Staffer, Org]]:
    result = await session.execute(
        select(Staffer, Org)
        .join(Org, Org.id == Staffer.org_id)
        .where(Staffer.user_id == user_id)
        .order_by(Org.id)
    )
    return [(s, o) for s, o in result.all()]


@dataclass(frozen=True)
class OrgCounts:
    name: str
    title: str
    campaigns: int
    action_pages: int
    staff: int
    # made on the org's action pages (test actions included)
    actions: int
    supporters: int
    # contacts the org received (its copies, on its pages or as a partner's data receiver)
    contacts: int


def _count_by(org_id: Any, *joins: tuple[Any, Any]) -> Subquery:
    query = select(org_id.label("org_id"), func.count().label("n"))
    for table, on in joins:
        query = query.join(table, on)
    return query.group_by(org_id).subquery()


async def org_counts(session: AsyncSession) -> list[OrgCounts]:
    """Every org with its counts, by name: one statement whatever the number of orgs."""
    per_page = ActionPage.org_id
    counts = {
        "campaigns": _count_by(Campaign.org_id),
        "action_pages": _count_by(ActionPage.org_id),
        "staff": _count_by(Staffer.org_id),
        "actions": _count_by(per_page, (Action, Action.action_page_id == ActionPage.id)),
        "supporters": _count_by(per_page, (Supporter, Supporter.action_page_id == ActionPage.id)),
        "contacts": _count_by(Contact.org_id),
    }
    query = select(
        Org.name, Org.title, *(func.coalesce(c.c.n, 0).label(k) for k, c in counts.items())
    )
    for subquery in counts.values():
        query = query.outerjoin(subquery, subquery.c.org_id == Org.id)
    rows = await session.execute(query.order_by(Org.name))
    return [OrgCounts(**row._asdict()) for row in rows.all()]
