"""Local accounts: registration, log-in sessions, email tokens, confirmation,
password reset and change, email change.

Email tokens: 32 random bytes, base64url in the link, SHA-256 stored with the address they
were sent to. A token works only while the user's email is still that address, within its
context's validity. Changing or resetting a password deletes every token of the user (other
sessions and the API token included)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth import passwords
from proca_server.auth.authenticate import SESSION_CONTEXT, generate_session_token
from proca_server.auth.throttle import LoginThrottle
from proca_server.config import Settings
from proca_server.email import EmailMessage
from proca_server.errors import BadArgument
from proca_server.kit import base64url
from proca_server.kit.time import utcnow
from proca_server.models import User, UserToken
from proca_server.user import repository, service
from proca_server.web import account_emails
from proca_server.web.urls import public_url

# the log-in throttle and the client's address, for a form that asks the current password
Guess = tuple[LoginThrottle, str | None]

CONFIRM_CONTEXT = "confirm"
RESET_CONTEXT = "reset_password"
CHANGE_EMAIL_PREFIX = "change:"
CONFIRM_VALIDITY = timedelta(days=7)
RESET_PASSWORD_VALIDITY = timedelta(days=1)
CHANGE_EMAIL_VALIDITY = timedelta(days=7)
EMAIL_TOKEN_BYTES = 32


# --- email tokens ------------------------------------------------------------------------------


def _hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def build_email_token(user: User, context: str, sent_to: str) -> tuple[str, UserToken]:
    """(what goes in the link, the row to store)"""
    raw = secrets.token_bytes(EMAIL_TOKEN_BYTES)
    row = UserToken(user_id=user.id, token=_hash(raw), context=context, sent_to=sent_to)
    return base64url.encode(raw), row


async def _user_by_email_token(
    session: AsyncSession, token: str, context: str, validity: timedelta
) -> User | None:
    try:
        raw = base64url.decode(token)
    except ValueError:
        return None
    if len(raw) != EMAIL_TOKEN_BYTES:
        return None
    row = await repository.get_token(session, context, _hash(raw))
    if row is None or row.inserted_at + validity <= utcnow():
        return None
    user = await repository.get_user(session, row.user_id)
    # bound to the address it was mailed to
    if user is None or (row.sent_to or "").lower() != user.email.lower():
        return None
    return user


async def delete_all_tokens(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(UserToken).where(UserToken.user_id == user_id))


# --- sessions ----------------------------------------------------------------------------------


async def create_session_token(session: AsyncSession, user: User) -> bytes:
    token = generate_session_token()
    session.add(UserToken(user_id=user.id, token=token, context=SESSION_CONTEXT))
    await session.flush()
    return token


async def delete_session_token(session: AsyncSession, token: bytes) -> None:
    await session.execute(
        delete(UserToken).where(UserToken.context == SESSION_CONTEXT, UserToken.token == token)
    )


# --- registration and confirmation -------------------------------------------------------------


async def register_user(session: AsyncSession, email: str, password: str) -> User:
    """Raises BadArgument (field email or password) when the form does not hold."""
    if not password:
        raise BadArgument("can't be blank", field="password")
    return (await service.create_user(session, email, password=password)).user


async def confirmation_instructions(
    session: AsyncSession, settings: Settings, user: User
) -> EmailMessage | None:
    """The confirmation email for an unconfirmed user (its token stored); None when the user
    is already confirmed."""
    if user.confirmed_at is not None:
        return None
    token, row = build_email_token(user, CONFIRM_CONTEXT, user.email)
    session.add(row)
    await session.flush()
    return await account_emails.compose_account_email(
        session,
        settings,
        account_emails.CONFIRM_TEMPLATE,
        user.email,
        public_url(settings, f"/users/confirm/{token}"),
    )


async def confirm_user(session: AsyncSession, token: str) -> User | None:
    user = await _user_by_email_token(session, token, CONFIRM_CONTEXT, CONFIRM_VALIDITY)
    if user is None:
        return None
    user.confirmed_at = utcnow()
    await repository.delete_tokens(session, user.id, CONFIRM_CONTEXT)
    await session.flush()
    return user


# --- password reset ----------------------------------------------------------------------------


async def reset_password_instructions(
    session: AsyncSession, settings: Settings, user: User
) -> EmailMessage:
    token, row = build_email_token(user, RESET_CONTEXT, user.email)
    session.add(row)
    await session.flush()
    return await account_emails.compose_account_email(
        session,
        settings,
        account_emails.RESET_TEMPLATE,
        user.email,
        public_url(settings, f"/users/reset_password/{token}"),
    )


async def get_user_by_reset_password_token(session: AsyncSession, token: str) -> User | None:
    return await _user_by_email_token(session, token, RESET_CONTEXT, RESET_PASSWORD_VALIDITY)


def check_new_password(password: str, confirmation: str) -> None:
    problems = passwords.password_problems(password)
    if problems:
        raise BadArgument("; ".join(problems), field="password")
    if password != confirmation:
        raise BadArgument("does not match password", field="password_confirmation")


async def reset_password(
    session: AsyncSession, user: User, password: str, confirmation: str
) -> None:
    check_new_password(password, confirmation)
    user.hashed_password = await passwords.hash_password_in_thread(password)
    await delete_all_tokens(session, user.id)
    await session.flush()


# --- settings ----------------------------------------------------------------------------------


async def _check_current_password(user: User, current_password: str, guess: Guess) -> None:
    """The current password, guessed no faster than a log-in (raises TooManyAttempts)."""
    throttle, client = guess
    throttle.attempt(user.email, client)
    if not await passwords.check_password_in_thread(current_password, user.hashed_password):
        raise BadArgument("is not valid", field="current_password")
    throttle.succeeded(user.email, client)


async def change_password(
    session: AsyncSession,
    user: User,
    current_password: str,
    password: str,
    confirmation: str,
    guess: Guess,
) -> None:
    """Every session ends, this one too: the caller logs the user in again."""
    check_new_password(password, confirmation)
    await _check_current_password(user, current_password, guess)
    user.hashed_password = await passwords.hash_password_in_thread(password)
    await delete_all_tokens(session, user.id)
    await session.flush()


async def change_email_instructions(
    session: AsyncSession,
    settings: Settings,
    user: User,
    current_password: str,
    new_email: str,
    guess: Guess,
) -> EmailMessage:
    """The link to confirm a new address, mailed to that address; the email changes only when
    the link is followed."""
    new_email = service.validate_email(new_email)
    if new_email.lower() == user.email.lower():
        raise BadArgument("did not change", field="email")
    await _check_current_password(user, current_password, guess)
    if await repository.get_user_by_email(session, new_email) is not None:
        raise BadArgument("has already been taken", field="email")
    token, row = build_email_token(user, CHANGE_EMAIL_PREFIX + user.email, new_email)
    session.add(row)
    await session.flush()
    return await account_emails.compose_account_email(
        session,
        settings,
        account_emails.CHANGE_EMAIL_TEMPLATE,
        new_email,
        public_url(settings, f"/users/settings/confirm_email/{token}"),
    )


async def apply_email_change(session: AsyncSession, user: User, token: str) -> bool:
    context = CHANGE_EMAIL_PREFIX + user.email
    try:
        raw = base64url.decode(token)
    except ValueError:
        return False
    row = await repository.get_token(session, context, _hash(raw))
    if (
        row is None
        or row.user_id != user.id
        or not row.sent_to
        or row.inserted_at + CHANGE_EMAIL_VALIDITY <= utcnow()
    ):
        return False
    if await repository.get_user_by_email(session, row.sent_to) is not None:
        return False
    user.email = row.sent_to
    # a confirmed new address: the link proved the user reads it
    user.confirmed_at = utcnow()
    await repository.delete_tokens(session, user.id, context)
    await session.flush()
    return True
