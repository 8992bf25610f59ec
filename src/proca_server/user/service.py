"""Users: creation, instance admins, API tokens, lookup by token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth import passwords, tokens
from proca_server.auth.permissions import ADMIN, is_admin
from proca_server.errors import BadArgument
from proca_server.kit.time import utcnow
from proca_server.models import User, UserToken
from proca_server.user import repository

EMAIL_RE = re.compile(r"^[^\s@]+@[^\s@]+$")
EMAIL_MAX = 160
# A token's sliding expiry is refreshed at most this often, so a busy token costs no write
# per request.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedUser:
    user: User
    generated_password: str | None


def validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > EMAIL_MAX:
        raise BadArgument(f"should be at most {EMAIL_MAX} character(s)", field="email")
    if not EMAIL_RE.match(email):
        raise BadArgument("must have the @ sign and no spaces", field="email")
    return email


async def create_user(
    session: AsyncSession, email: str, *, password: str | None = None, admin: bool = False
) -> CreatedUser:
    email = validate_email(email)
    if await repository.get_user_by_email(session, email) is not None:
        raise BadArgument("has already been taken", field="email")
    generated = None
    if password is None:
        password = generated = passwords.generate_password()
    else:
        problems = passwords.password_problems(password)
        if problems:
            raise BadArgument("; ".join(problems), field="password")
    user = User(
        email=email,
        hashed_password=await passwords.hash_password_in_thread(password),
        perms=int(ADMIN) if admin else 0,
    )
    session.add(user)
    await session.flush()
    return CreatedUser(user, generated)


async def set_instance_admin(session: AsyncSession, user: User, admin: bool) -> bool:
    """Give the user the instance admin bits, or take them away; whether anything changed.
    The last instance admin stays one: promote another user first."""
    if admin:
        changed = (user.perms & ADMIN) != ADMIN
        user.perms |= int(ADMIN)
    else:
        admins = await repository.lock_admins(session)
        changed = bool(user.perms & ADMIN)
        if is_admin(user.perms) and all(a.id == user.id for a in admins):
            raise BadArgument("the last instance admin stays one: promote another user first")
        user.perms &= ~int(ADMIN)
    await session.flush()
    return changed


# the session.info key of the users registered in a session's transaction, to announce
_REGISTERED = "proca.registered_users"


def note_registered(session: AsyncSession, email: str) -> None:
    """Authentication registered this user on the way (a JWT's first use): the boundary
    commits it and announces it (processing/events.py)."""
    session.info.setdefault(_REGISTERED, []).append(email)


def take_registered(session: AsyncSession) -> list[str]:
    registered: list[str] = session.info.pop(_REGISTERED, [])
    return registered


async def reset_api_token(session: AsyncSession, user: User, *, keep_others: bool = False) -> str:
    """Issue a new API token and delete the user's older ones (unless `keep_others`)."""
    if not keep_others:
        await repository.delete_tokens(session, user.id, tokens.API_CONTEXT)
    token, token_hash = tokens.generate_api_token()
    session.add(UserToken(user_id=user.id, token=token_hash, context=tokens.API_CONTEXT))
    await session.flush()
    return token


async def get_user_by_api_token(session: AsyncSession, token: str) -> User | None:
    """The token's user if the token is valid and unexpired; each use slides the expiry."""
    token_hash = tokens.decode_api_token(token)
    if token_hash is None:
        return None
    row = await repository.get_token(session, tokens.API_CONTEXT, token_hash)
    now = utcnow()
    if row is None or tokens.api_token_expires_at(row.inserted_at) <= now:
        return None
    if now - row.inserted_at >= TOKEN_TOUCH_INTERVAL:
        await session.execute(
            update(UserToken).where(UserToken.id == row.id).values(inserted_at=now)
        )
    return await repository.get_user(session, row.user_id)
