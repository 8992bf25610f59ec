"""`GET /link/<accept|reject>/<code>`: the links of confirm notification emails.

The caller is identified as on /api (Authorization header or session cookie). Without a
user an operation that needs one answers 401 with a Basic challenge, so a browser asks for
the password and retries."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.auth.authenticate import authenticate_request
from proca_server.confirm.service import (
    Acceptor,
    ConfirmExpired,
    ConfirmNotFound,
    Verb,
    run_confirm,
)
from proca_server.errors import AuthenticationFailed, ProcaError, Unauthorized
from proca_server.models import Org, Staffer, User
from proca_server.processing import events
from proca_server.processing.events import AfterCommit, run_after_commit
from proca_server.processing.handoff import pipeline_of

log = logging.getLogger("proca_server.confirm.links")
router = APIRouter()

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Proca"'}


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
    headers = BASIC_CHALLENGE if status == 401 else None
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


def _safe_redirect(redir: str | None) -> str:
    """`redir` when it is a path on this server or an http(s) URL; else `/`."""
    if not redir:
        return "/"
    parts = urlsplit(redir)
    if parts.scheme in ("http", "https") and parts.netloc:
        return redir
    if not parts.scheme and not parts.netloc and redir.startswith("/") and "\\" not in redir:
        return redir
    return "/"


async def _staffer_for(session: AsyncSession, user: User, org_name: str | None) -> Staffer | None:
    """The membership to act with: in the named org, else the one signed in most recently."""
    query = select(Staffer).where(Staffer.user_id == user.id)
    if org_name:
        query = query.join(Org, Org.id == Staffer.org_id).where(Org.name == org_name)
    else:
        query = query.order_by(Staffer.last_signin_at.desc().nulls_last(), Staffer.id.desc())
    return (await session.execute(query.limit(1))).scalars().first()


def _parse_id(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(raw)
    return int(raw)


@router.get("/link/{verb}/{code}")
async def confirm_link(request: Request, verb: str, code: str) -> Response:
    if verb not in ("accept", "reject"):
        return _error(400, "malformed link")
    if not code.isascii() or not code.isdigit():
        return _error(400, "code invalid")
    params = request.query_params
    try:
        object_id = _parse_id(params.get("id"))
    except ValueError:
        return _error(400, "malformed link")
    email = params.get("email") or None

    state = state_of(request)
    async with state.sessionmaker() as session:
        try:
            user = await authenticate_request(
                session,
                state.settings,
                authorization=request.headers.get("authorization"),
                cookies=request.cookies,
                client=request.client.host if request.client else None,
                throttle=state.login_throttle,
                key_sets=state.key_sets,
            )
        except AuthenticationFailed as exc:
            await session.rollback()
            response = _error(exc.http_status, exc.message, exc.code)
            response.headers.update(exc.headers)
            return response
        pipeline = pipeline_of(state)
        await events.commit_registrations(session, state.settings, pipeline)
        after_commit: AfterCommit = []
        staffer = await _staffer_for(session, user, params.get("org")) if user else None
        try:
            await run_confirm(
                session,
                after_commit,
                pipeline,
                Verb(verb),
                code,
                email=email,
                object_id=object_id,
                acceptor=Acceptor(user, staffer),
            )
            await session.commit()
        except ProcaError as exc:
            await session.rollback()
            return _error_for(exc)
        except Exception:
            await session.rollback()
            log.exception("confirm link failed")
            return _error(500, "Internal server error", "internal")
        await run_after_commit(after_commit)
    return RedirectResponse(_safe_redirect(params.get("redir")), status_code=302)


def _error_for(exc: ProcaError) -> JSONResponse:
    if isinstance(exc, Unauthorized):
        return _error(401, "unauthorized", exc.code)
    if isinstance(exc, ConfirmExpired):
        return _error(400, "expired", exc.code)
    if isinstance(exc, ConfirmNotFound):
        return _error(400, "code invalid")
    # As the original: whatever else the operation refuses is a 500, with its reason.
    log.warning("confirm link refused: %s (%s)", exc.code, exc.message)
    return _error(500, exc.message, exc.code)
