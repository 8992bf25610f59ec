"""Who is calling: the session cookie of the HTML pages, then the Authorization
header: HTTP Basic, an API token (`Bearer API-…`) or a JWT (`Bearer ey…`).

A header, when present, decides: bad credentials there are an error even with a valid
cookie. A cookie that does not hold (unsigned, unknown or expired token) is just anonymous.
A route may accept only some of these methods (`AuthMethod`; the ECI build's /private/api
takes Basic and API tokens only) and refuse anonymous callers.

Cookies carry a session token signed with HMAC-SHA256 under a key derived from
SECRET_KEY_BASE and the cookie's name. The token is stored as is in `users_tokens`
(context `session`), as the original stores it."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import timedelta
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.jwt import KeySetCache, authenticate_jwt, looks_like_jwt
from proca_server.auth.passwords import (
    check_password_in_thread,
    hash_password_in_thread,
    needs_rehash,
)
from proca_server.auth.throttle import LoginThrottle
from proca_server.config import Settings, get_settings
from proca_server.errors import AuthenticationFailed
from proca_server.kit import base64url
from proca_server.kit.time import utcnow
from proca_server.models import User
from proca_server.user import repository, service

log = logging.getLogger("proca_server.auth")

SESSION_COOKIE = "_proca_key"
REMEMBER_ME_COOKIE = "_proca_user_remember_me"
_CREDENTIAL_COOKIES = frozenset((SESSION_COOKIE, REMEMBER_ME_COOKIE))
SESSION_CONTEXT = "session"
SESSION_VALIDITY = timedelta(days=60)
SESSION_TOKEN_BYTES = 32


class MalformedCredentials(AuthenticationFailed):
    http_status = 400


class AuthMethod(enum.Flag):
    """The ways a caller may identify themselves."""

    SESSION = enum.auto()  # the log-in cookies of the HTML pages
    BASIC = enum.auto()
    API_TOKEN = enum.auto()
    JWT = enum.auto()


ANY_METHOD = AuthMethod.SESSION | AuthMethod.BASIC | AuthMethod.API_TOKEN | AuthMethod.JWT
_METHOD_NAMES = {
    AuthMethod.BASIC: "HTTP Basic",
    AuthMethod.API_TOKEN: "an API token",
    AuthMethod.JWT: "a JWT",
    AuthMethod.SESSION: "a session cookie",
}


class AuthenticationRequired(AuthenticationFailed):
    """An anonymous call to a route that needs a caller: HTTP 401, with a Basic challenge
    when the route takes Basic."""

    def __init__(self, methods: AuthMethod) -> None:
        super().__init__("Authentication is required for this API call")
        self.methods = methods

    @property
    def headers(self) -> dict[str, str]:
        if AuthMethod.BASIC in self.methods:
            return {"WWW-Authenticate": 'Basic realm="Proca"'}
        return {}


def _accept(methods: AuthMethod, method: AuthMethod) -> None:
    if method not in methods:
        accepted = " or ".join(name for m, name in _METHOD_NAMES.items() if m in methods)
        raise AuthenticationFailed(
            f"Authentication with {_METHOD_NAMES[method]} is not accepted here: use {accepted}"
        )


async def authenticate_request(
    session: AsyncSession,
    settings: Settings,
    *,
    authorization: str | None,
    cookies: Mapping[str, str],
    client: str | None,
    throttle: LoginThrottle,
    key_sets: KeySetCache,
    methods: AuthMethod = ANY_METHOD,
    required: bool = False,
) -> User | None:
    """The caller of an /api (or /link) request; None when anonymous (AuthenticationRequired
    when `required`). Credentials of a method not in `methods` are refused; cookies are read
    only when SESSION is. Failed Basic log-ins are counted in the app's `throttle` by email
    and by `client`, the client's address."""
    user = None
    if authorization and authorization.strip():
        user = await authenticate(
            session,
            authorization,
            settings,
            client=client,
            throttle=throttle,
            key_sets=key_sets,
            methods=methods,
        )
    elif AuthMethod.SESSION in methods:
        user = await user_from_cookies(session, settings, cookies)
    if user is None and required:
        raise AuthenticationRequired(methods)
    return user


async def authenticate(
    session: AsyncSession,
    authorization: str | None,
    settings: Settings | None = None,
    *,
    client: str | None,
    throttle: LoginThrottle,
    key_sets: KeySetCache,
    methods: AuthMethod = ANY_METHOD,
) -> User | None:
    """The user the Authorization header identifies; None when there is no header.

    Raises AuthenticationFailed when credentials are given but do not hold, or are of a
    method not in `methods` (TooManyAttempts after too many failed Basic log-ins)."""
    if not authorization:
        return None
    settings = settings or get_settings()
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        if looks_like_jwt(credentials):
            _accept(methods, AuthMethod.JWT)
            return await authenticate_jwt(session, credentials, settings, key_sets)
        _accept(methods, AuthMethod.API_TOKEN)
        user = await service.get_user_by_api_token(session, credentials)
        if user is None:
            raise AuthenticationFailed("Cannot verify token")
        return user
    if scheme == "basic":
        _accept(methods, AuthMethod.BASIC)
        return await _basic(session, credentials, throttle, client)
    raise MalformedCredentials("Unsupported Authorization scheme")


async def _basic(
    session: AsyncSession, credentials: str, throttle: LoginThrottle, client: str | None
) -> User:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise MalformedCredentials("Can not decode Basic HTTP credentials") from exc
    email, sep, password = decoded.partition(":")
    if not sep:
        raise MalformedCredentials("Can not decode Basic HTTP credentials")
    user = await authenticate_password(session, throttle, email, password, client)
    if user is None:
        raise AuthenticationFailed("Can not authenticate with these Basic HTTP credentials")
    return user


async def authenticate_password(
    session: AsyncSession,
    throttle: LoginThrottle,
    email: str,
    password: str,
    client: str | None,
) -> User | None:
    """The user with this email and password, or None. Raises TooManyAttempts, checking
    nothing, after too many failures with this email or from this client address. Takes as
    long for an unknown email as for a wrong password."""
    if not email.strip():
        return None  # no account has an empty email: nothing to guess, nothing to count
    throttle.attempt(email, client)
    user = await repository.get_user_by_email(session, email)
    hashed = user.hashed_password if user is not None else None
    if not await check_password_in_thread(password, hashed) or user is None:
        return None
    throttle.succeeded(email, client)
    await upgrade_password_hash(user, password)
    return user


async def upgrade_password_hash(user: User, password: str) -> None:
    """Replace a legacy (Pow) hash by bcrypt once the password has been checked."""
    if needs_rehash(user.hashed_password):
        user.hashed_password = await hash_password_in_thread(password)


# --- session cookies ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _ephemeral_secret() -> bytes:
    log.warning(
        "SECRET_KEY_BASE is not set: cookies are signed with a random key that lasts as long "
        "as this process (log-ins do not survive a restart or span several processes)"
    )
    return secrets.token_bytes(64)


def signing_key(settings: Settings, purpose: str) -> bytes:
    base = settings.secret_key_base.encode() or _ephemeral_secret()
    return hmac.new(base, b"proca-server/" + purpose.encode(), hashlib.sha256).digest()


def sign(settings: Settings, purpose: str, value: bytes) -> str:
    payload = base64url.encode(value)
    mac = hmac.new(signing_key(settings, purpose), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{base64url.encode(mac)}"


def unsign(settings: Settings, purpose: str, signed: str | None) -> bytes | None:
    """The signed value, or None when it was not signed by us for this purpose."""
    if not signed:
        return None
    payload, sep, mac_text = signed.partition(".")
    if not sep:
        return None
    expected = hmac.new(signing_key(settings, purpose), payload.encode(), hashlib.sha256)
    try:
        mac = base64url.decode(mac_text)
        if not hmac.compare_digest(mac, expected.digest()):
            return None
        return base64url.decode(payload)
    except ValueError:
        return None


def generate_session_token() -> bytes:
    return secrets.token_bytes(SESSION_TOKEN_BYTES)


async def get_user_by_session_token(session: AsyncSession, token: bytes) -> User | None:
    row = await repository.get_token(session, SESSION_CONTEXT, token)
    if row is None or row.inserted_at + SESSION_VALIDITY <= utcnow():
        return None
    return await repository.get_user(session, row.user_id)


def carries_credentials(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when something in a request's raw (ASGI) headers could make its caller someone:
    an Authorization header or a session cookie, its name read as the request's cookie parser
    reads it (latin-1, whitespace stripped) or more widely (a chunk without "=")."""
    for name, value in headers:
        if name == b"authorization":
            return True
        if name == b"cookie":
            for chunk in value.decode("latin-1").split(";"):
                if chunk.split("=", 1)[0].strip() in _CREDENTIAL_COOKIES:
                    return True
    return False


async def session_from_cookies(
    session: AsyncSession, settings: Settings, cookies: Mapping[str, str]
) -> tuple[User | None, str | None]:
    """The logged-in user and the name of the cookie that holds their session token."""
    for name in (SESSION_COOKIE, REMEMBER_ME_COOKIE):
        token = unsign(settings, name, cookies.get(name))
        if token is not None:
            user = await get_user_by_session_token(session, token)
            if user is not None:
                return user, name
    return None, None


async def user_from_cookies(
    session: AsyncSession, settings: Settings, cookies: Mapping[str, str]
) -> User | None:
    return (await session_from_cookies(session, settings, cookies))[0]
