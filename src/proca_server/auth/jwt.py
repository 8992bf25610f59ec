"""JWT bearer tokens from an identity provider (`Authorization: Bearer ey…`; settings in
docs/configuration.md).

HS* tokens are checked with JWT_SECRET; RS*, PS*, ES* and EdDSA tokens with the key of the
token's `kid` in the key set at JWKS_URL (https:// or file://). The key set is cached per URL
for KEY_SET_TTL; a `kid` missing from the cached set triggers one refetch, and such refetches
are spaced by at least REFETCH_INTERVAL so that tokens with made-up `kid`s cannot hammer the
provider.

Claims: the email from the JWT_EMAIL paths, the external id from `sub`, a future `exp`, and
(unless ALLOW_UNVERIFIED_EMAIL) a true email-verified flag from the JWT_EMAIL_VERIFIED paths.
A path is dot-separated keys; a key suffixed `[]` (or a bare `[]`) maps the rest of the path
over a list and takes the first value found."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.errors import AuthenticationFailed, BadArgument
from proca_server.kit.cache import Cache
from proca_server.models import User
from proca_server.user import repository, service

log = logging.getLogger("proca_server.auth.jwt")

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# algorithm -> the JWK key types that may verify it
KEY_ALGORITHMS: dict[str, frozenset[str]] = {
    **{alg: frozenset({"RSA"}) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    **{alg: frozenset({"EC"}) for alg in ("ES256", "ES384", "ES512")},
    "EdDSA": frozenset({"OKP"}),
}
KEY_SET_TTL = 30 * 60.0
REFETCH_INTERVAL = 10.0
FETCH_TIMEOUT = 10.0
MAX_KEY_SET_BYTES = 1 << 20


class JwtRejected(AuthenticationFailed):
    pass


def looks_like_jwt(credentials: str) -> bool:
    # a JSON header, `{"…`, base64url-encodes to `ey…`
    return credentials.startswith("ey")


@dataclass(frozen=True)
class Identity:
    external_id: str
    email: str


# --- claim paths -------------------------------------------------------------------------------


def parse_paths(setting: str) -> list[list[str]]:
    """`a.b, c[].d` -> [["a", "b"], ["c", "[]", "d"]]"""
    paths = []
    for raw in setting.split(","):
        raw = raw.strip()
        if not raw:
            continue
        steps: list[str] = []
        for key in raw.split("."):
            if key.endswith("[]"):
                if key[:-2]:
                    steps.append(key[:-2])
                steps.append("[]")
            elif key:
                steps.append(key)
        paths.append(steps)
    return paths


def claim_at(claims: Any, path: Sequence[str]) -> Any:
    """The value at `path`, or None."""
    value = claims
    for index, step in enumerate(path):
        if step == "[]":
            if not isinstance(value, list):
                return None
            for item in value:
                found = claim_at(item, path[index + 1 :])
                if found is not None:
                    return found
            return None
        if not isinstance(value, dict):
            return None
        value = value.get(step)
        if value is None:
            return None
    return value


def first_claim(claims: dict[str, Any], setting: str) -> Any:
    for path in parse_paths(setting):
        value = claim_at(claims, path)
        if value is not None:
            return value
    return None


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# --- key set -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str | None
    key_type: str
    # the `alg` the key set pins the key to, if any
    alg: str | None
    jwk: jwt.PyJWK


def parse_key_set(data: Any) -> list[SigningKey]:
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWK set")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use") not in (None, "sig"):
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # key types we cannot use
        kid, alg = entry.get("kid"), entry.get("alg")
        keys.append(
            SigningKey(
                kid=kid if isinstance(kid, str) else None,
                key_type=str(entry.get("kty")),
                alg=alg if isinstance(alg, str) else None,
                jwk=jwk,
            )
        )
    return keys


def _find_key(keys: list[SigningKey], kid: str | None) -> SigningKey | None:
    if kid is None:
        # a provider with a single key may leave `kid` out
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.kid == kid), None)


MAX_KEY_SETS = 16


class KeySetCache:
    """Key sets by URL, shared by the requests of one process (the app's `key_sets`)."""

    def __init__(self) -> None:
        self._sets: Cache[str, list[SigningKey]] = Cache(MAX_KEY_SETS, KEY_SET_TTL)
        # when each set was last fetched again for an unknown `kid`
        self._refetched: Cache[str, bool] = Cache(MAX_KEY_SETS)
        self._lock = asyncio.Lock()

    def clear(self) -> None:
        self._sets.clear()
        self._refetched.clear()

    async def key_for(self, url: str, kid: str | None) -> SigningKey | None:
        async with self._lock:
            now = time.monotonic()
            keys = self._sets.get(url)
            if keys is None:
                keys = await fetch_key_set(url)
                self._sets.put(url, keys, at=now)
                return _find_key(keys, kid)
            key = _find_key(keys, kid)
            if key is not None or self._refetched.get(url, REFETCH_INTERVAL):
                return key
            self._refetched.put(url, True, at=now)
            log.info("JWT key id not in the cached key set; fetching the key set again")
            keys = await fetch_key_set(url)
            self._sets.put(url, keys, at=now)
            return _find_key(keys, kid)


async def fetch_key_set(url: str) -> list[SigningKey]:
    parsed = urlparse(url)
    try:
        if parsed.scheme == "file":
            raw = await asyncio.to_thread(Path(unquote(parsed.path)).read_bytes)
        elif parsed.scheme == "https":
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                raw = response.content
        else:
            raise JwtRejected("JWKS_URL must be an https:// or file:// URL")
        if len(raw) > MAX_KEY_SET_BYTES:
            raise ValueError("key set too large")
        return parse_key_set(json.loads(raw))
    except (OSError, httpx.HTTPError, ValueError) as exc:
        log.warning("cannot load the JWT key set: %s", type(exc).__name__)
        raise JwtRejected("Cannot load the JWT key set") from exc


# --- verification ------------------------------------------------------------------------------


async def verify_token(token: str, settings: Settings, key_sets: KeySetCache) -> dict[str, Any]:
    """The token's claims once its signature and times hold."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise JwtRejected("Cannot decode JWT") from exc
    alg = header.get("alg")
    kid = header.get("kid")
    if not isinstance(alg, str) or (kid is not None and not isinstance(kid, str)):
        raise JwtRejected("Cannot decode JWT")

    key: Any
    if alg in HMAC_ALGORITHMS:
        if not settings.jwt_secret:
            raise JwtRejected("JWT with a shared secret is not configured")
        key = settings.jwt_secret
    elif alg in KEY_ALGORITHMS:
        if not settings.jwks_url:
            raise JwtRejected("JWT with a key set is not configured")
        signing_key = await key_sets.key_for(settings.jwks_url, kid)
        if signing_key is None:
            raise JwtRejected("JWT signing key is not known")
        # The header must not choose an algorithm the key was not made for.
        if signing_key.key_type not in KEY_ALGORITHMS[alg] or signing_key.alg not in (None, alg):
            raise JwtRejected("JWT signing key does not fit its algorithm")
        key = signing_key.jwk.key
    else:
        raise JwtRejected("JWT algorithm is not supported")

    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            # Providers set `aud` to values of their own; `iat` is not checked so that a few
            # seconds of clock skew do not reject fresh tokens.
            options={"require": ["exp"], "verify_aud": False, "verify_iat": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise JwtRejected("JWT has expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise JwtRejected("JWT has no expiry") from exc
    except jwt.InvalidSignatureError as exc:
        raise JwtRejected("JWT signature is not valid") from exc
    except jwt.PyJWTError as exc:
        raise JwtRejected("Cannot verify JWT") from exc
    if not isinstance(claims, dict):
        raise JwtRejected("Cannot decode JWT")
    return claims


def identity_from_claims(claims: dict[str, Any], settings: Settings) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise JwtRejected("JWT has no subject")
    email = first_claim(claims, settings.jwt_email)
    if not isinstance(email, str) or not email.strip():
        raise JwtRejected("JWT has no email")
    if not settings.allow_unverified_email and not _is_true(
        first_claim(claims, settings.jwt_email_verified)
    ):
        raise JwtRejected("JWT email is not verified")
    return Identity(external_id=subject, email=email.strip())


# --- users -------------------------------------------------------------------------------------


async def get_user_by_external_id(session: AsyncSession, external_id: str) -> User | None:
    result = await session.execute(select(User).where(User.external_id == external_id))
    return result.scalar_one_or_none()


async def user_for_identity(session: AsyncSession, identity: Identity) -> User:
    """The user of this identity: by external id, else by email (linking it), else a new one."""
    user = await get_user_by_external_id(session, identity.external_id)
    if user is not None:
        return user
    user = await repository.get_user_by_email(session, identity.email)
    if user is not None:
        if user.external_id not in (None, identity.external_id):
            # Re-linking would let a second identity take over the account.
            raise JwtRejected("User email is linked to another identity")
        user.external_id = identity.external_id
        await session.flush()
        return user
    try:
        created = await service.create_user(session, identity.email)
        created.user.external_id = identity.external_id
        await session.flush()
    except BadArgument as exc:
        raise JwtRejected("JWT email is not valid") from exc
    except IntegrityError:
        # A concurrent request registered the same user first. Authentication runs first in
        # the request's transaction, so rolling it back loses nothing else.
        await session.rollback()
        user = await get_user_by_external_id(session, identity.external_id)
        if user is None:
            raise JwtRejected("Cannot register the JWT user") from None
        return user
    log.info("registered a user from a JWT")
    service.note_registered(session, created.user.email)
    return created.user


async def authenticate_jwt(
    session: AsyncSession, token: str, settings: Settings, key_sets: KeySetCache
) -> User:
    claims = await verify_token(token, settings, key_sets)
    return await user_for_identity(session, identity_from_claims(claims, settings))
