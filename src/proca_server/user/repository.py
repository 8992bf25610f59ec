from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import User, UserToken


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
