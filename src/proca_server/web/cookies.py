"""Browser state of the HTML pages: the log-in cookies, CSRF tokens and flash messages.

CSRF: a random value lives in the `_proca_csrf` cookie (HttpOnly); forms carry an HMAC of
it under SECRET_KEY_BASE, so neither a cross-site form (it cannot read the token) nor a value
planted by a sibling domain (it cannot compute the HMAC) passes. The cookie is SameSite Lax,
not Strict: a page opened from a link in an email must not replace it (other open forms would
then fail). Flash messages ride in a signed cookie across one redirect."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Literal

from fastapi import Request, Response

from proca_server.app_state import state_of
from proca_server.auth.authenticate import (
    REMEMBER_ME_COOKIE,
    SESSION_COOKIE,
    SESSION_VALIDITY,
    sign,
    signing_key,
    unsign,
)
from proca_server.config import Settings
from proca_server.kit import base64url
from proca_server.web.urls import uses_https

CSRF_COOKIE = "_proca_csrf"
CSRF_FIELD = "_csrf_token"
CSRF_HEADER = "x-csrf-token"
FLASH_COOKIE = "_proca_flash"

FlashKind = Literal["info", "error"]


def _settings(request: Request) -> Settings:
    return state_of(request).settings


def _set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    samesite: Literal["strict", "lax"] = "strict",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=uses_https(_settings(request)),
        samesite=samesite,
    )


# --- CSRF --------------------------------------------------------------------------------------


def _csrf_for(settings: Settings, cookie_value: str) -> str:
    mac = hmac.new(signing_key(settings, CSRF_COOKIE), cookie_value.encode(), hashlib.sha256)
    return base64url.encode(mac.digest())


def csrf_token(request: Request) -> str:
    """The token for this browser's forms; a new browser gets its cookie with the response."""
    value = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not value:
        value = base64url.encode(secrets.token_bytes(32))
        request.state.new_csrf = value
    return _csrf_for(_settings(request), value)


def csrf_valid(request: Request, submitted: str | None) -> bool:
    value = request.cookies.get(CSRF_COOKIE)
    submitted = submitted or request.headers.get(CSRF_HEADER)
    if not value or not submitted:
        return False
    return hmac.compare_digest(_csrf_for(_settings(request), value), submitted)


# --- flash messages ----------------------------------------------------------------------------


def flash(request: Request, kind: FlashKind, text: str) -> None:
    pending: list[tuple[str, str]] = getattr(request.state, "flash_out", [])
    pending.append((kind, text))
    request.state.flash_out = pending


def take_flashes(request: Request) -> list[tuple[str, str]]:
    """The messages left by the previous response (cleared with this one)."""
    raw = unsign(_settings(request), FLASH_COOKIE, request.cookies.get(FLASH_COOKIE))
    request.state.flash_taken = FLASH_COOKIE in request.cookies
    messages: list[tuple[str, str]] = list(getattr(request.state, "flash_out", []))
    request.state.flash_out = []
    if raw is None:
        return messages
    try:
        stored = json.loads(raw)
    except ValueError:
        return messages
    if isinstance(stored, list):
        for item in stored:
            if isinstance(item, list) and len(item) == 2 and item[0] in ("info", "error"):
                messages.insert(0, (str(item[0]), str(item[1])))
    return messages


# --- log-in cookies ----------------------------------------------------------------------------


def put_session_cookies(
    request: Request, response: Response, token: bytes, *, remember: bool
) -> None:
    settings = _settings(request)
    _set_cookie(request, response, SESSION_COOKIE, sign(settings, SESSION_COOKIE, token))
    if remember:
        _set_cookie(
            request,
            response,
            REMEMBER_ME_COOKIE,
            sign(settings, REMEMBER_ME_COOKIE, token),
            max_age=int(SESSION_VALIDITY.total_seconds()),
            samesite="lax",
        )


def clear_session_cookies(request: Request, response: Response) -> None:
    secure = uses_https(_settings(request))
    for name, samesite in ((SESSION_COOKIE, "strict"), (REMEMBER_ME_COOKIE, "lax")):
        response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite=samesite)  # type: ignore[arg-type]


def finish(request: Request, response: Response) -> Response:
    """Write what the request left for the browser: a new CSRF cookie, flash messages."""
    new_csrf = getattr(request.state, "new_csrf", None)
    if new_csrf:
        _set_cookie(request, response, CSRF_COOKIE, new_csrf, samesite="lax")
    pending: list[tuple[str, str]] = getattr(request.state, "flash_out", [])
    if pending:
        value = sign(_settings(request), FLASH_COOKIE, json.dumps(pending).encode())
        _set_cookie(request, response, FLASH_COOKIE, value, samesite="lax")
    elif getattr(request.state, "flash_taken", False):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response
