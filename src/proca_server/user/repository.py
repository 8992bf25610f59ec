from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from proca_server.auth.permissions import Permission
from proca_server.models import Org, Staffer, User, UserToken


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email.strip()))
    return result.scalar_one_or_none()


async def get_token(session: AsyncSession, context: str, token_hash: bytes) -> UserToken | None:
    result = await session.execute(
        select(UserToken).where(UserToken.context == context, UserToken.token == token_hash)
    )
    return result.scalar_one_or_none()


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def list_users_by_id(session: AsyncSession, ids: Collection[int]) -> Sequence[User]:
    if not ids:
        return []
    return (await session.scalars(select(User).where(User.id.in_(ids)))).all()


async def list_users(
    session: AsyncSession,
    *,
    id: int | None = None,
    email_like: str | None = None,
    org_name: str | None = None,
) -> Sequence[User]:
    """Users, by id; each criterion given narrows the list (`org_name`: the org's staff)."""
    query = select(User)
    if id is not None:
        query = query.where(User.id == id)
    if email_like is not None:
        query = query.where(User.email.like(email_like))
    if org_name is not None:
        query = (
            query.join(Staffer, Staffer.user_id == User.id)
            .join(Org, Org.id == Staffer.org_id)
            .where(Org.name == org_name)
        )
    result = await session.execute(query.order_by(User.id))
    return result.scalars().all()


async def delete_tokens(session: AsyncSession, user_id: int, context: str) -> None:
    await session.execute(
        delete(UserToken).where(UserToken.user_id == user_id, UserToken.context == context)
    )


async def get_latest_token(session: AsyncSession, user_id: int, context: str) -> UserToken | None:
    result = await session.execute(
        select(UserToken)
        .where(UserToken.user_id == user_id, UserToken.context == context)
        .order_by(UserToken.inserted_at.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


def _is_admin() -> ColumnElement[bool]:
    return User.perms.op("&")(int(Permission.INSTANCE_OWNER)) != 0


async def lock_admins(session: AsyncSession) -> Sequence[User]:
    """The instance admins, fresh and locked until the transaction ends, so that two
    concurrent demotions cannot both take the last admin away (the same write-that-changes-
    nothing lock as org/repository.py's `lock_staff`)."""
    await session.execute(
        update(User)
        .where(_is_admin())
        .values(perms=User.perms, updated_at=User.updated_at)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        select(User).where(_is_admin()).order_by(User.id).execution_options(populate_existing=True)
    )
    return result.scalars().all()


@dataclass(frozen=True)
class UserMemberships:
    user: User
    # (org name, staffer perms), by org name
    orgs: list[tuple[str, int]]


async def list_users_with_orgs(
    session: AsyncSession, *, org_id: int | None = None
) -> list[UserMemberships]:
    """Every user (or the members of one org) with all their memberships, in one statement."""
    query = (
        select(User, Org.name, Staffer.perms)
        .outerjoin(Staffer, Staffer.user_id == User.id)
        .outerjoin(Org, Org.id == Staffer.org_id)
        .order_by(User.email, User.id, Org.name)
    )
    if org_id is not None:
        # its own alias: the outer query joins every membership, this one picks the org's
        membership = aliased(Staffer)
        query = query.where(
            exists(
                select(membership.id).where(
                    membership.user_id == User.id, membership.org_id == org_id
                )
            )
        )
    found: dict[int, UserMemberships] = {}
    for user, org_name, perms in (await session.execute(query)).all():
        entry = found.setdefault(user.id, UserMemberships(user, []))
        if org_name is not None:
            entry.orgs.append((org_name, perms))
    return list(found.values())
