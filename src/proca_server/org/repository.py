from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import (
    ActionPage,
    Campaign,
    EmailTemplate,
    Org,
    PublicKey,
    Service,
    Staffer,
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
    session: AsyncSession, org_id: int, *, title_like: str | None = None
) -> Sequence[Campaign]:
    """Campaigns the org leads or has an action page in."""
    partner = select(ActionPage.campaign_id).where(ActionPage.org_id == org_id)
    query = select(Campaign).where(or_(Campaign.org_id == org_id, Campaign.id.in_(partner)))
    if title_like:
        query = query.where(Campaign.title.like(title_like))
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


async def user_memberships(session: AsyncSession, user_id: int) -> Sequence[tuple[Staffer, Org]]:
    result = await session.execute(
        select(Staffer, Org)
        .join(Org, Org.id == Staffer.org_id)
        .where(Staffer.user_id == user_id)
        .order_by(Org.id)
    )
    return [(s, o) for s, o in result.all()]
