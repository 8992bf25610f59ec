"""API tokens: `API-` prefix bytes + 32 random bytes, base64url; SHA-256 stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from proca_server.kit import base64url

API_CONTEXT = "api"
API_PREFIX = b"\x00\xf2\x3e"  # base64url-encodes to "API-"
API_TOKEN_VALIDITY = timedelta(days=30)


def generate_api_token() -> tuple[str, bytes]:
    """Return (the token the user holds, the hash the database stores)."""
    raw = API_PREFIX + secrets.token_bytes(32)
    return base64url.encode(raw), hash_token(raw)


def hash_token(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def decode_api_token(token: str) -> bytes | None:
    """The stored hash for a presented token, or None if it cannot be one of ours."""
    if not token.startswith("API-"):
        return None
    try:
        raw = base64url.decode(token)
    except ValueError:
        return None
    if len(raw) != len(API_PREFIX) + 32 or not raw.startswith(API_PREFIX):
        return None
    return hash_token(raw)


def api_token_expires_at(inserted_at: datetime) -> datetime:
    return inserted_at + API_TOKEN_VALIDITY
