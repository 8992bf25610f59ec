"""Who is calling: API token or HTTP Basic from the Authorization header (spec §3.1)."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.passwords import verify_password
from proca_server.errors import AuthenticationFailed
from proca_server.models import User
from proca_server.user import repository, service


class MalformedCredentials(AuthenticationFailed):
    http_status = 400


async def authenticate(session: AsyncSession, authorization: str | None) -> User | None:
    """The user the header identifies; None when there is no header.

    Raises AuthenticationFailed when credentials are given but do not hold."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        user = await service.get_user_by_api_token(session, credentials)
        if user is None:
            raise AuthenticationFailed("Cannot verify token")
        return user
    if scheme == "basic":
        return await _basic(session, credentials)
    raise MalformedCredentials("Unsupported Authorization scheme")


async def _basic(session: AsyncSession, credentials: str) -> User:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise MalformedCredentials("Can not decode Basic HTTP credentials") from exc
    email, sep, password = decoded.partition(":")
    if not sep:
        raise MalformedCredentials("Can not decode Basic HTTP credentials")
    user = await repository.get_user_by_email(session, email)
    if user is None or not verify_password(password, user.hashed_password):
        raise AuthenticationFailed("Can not authenticate with these Basic HTTP credentials")
    return user
