"""The supporter's links from confirm and thank-you emails.

- `GET|POST /link/s/<action id>/<accept|reject>/<contact ref>`: confirm the supporter (or
  say "it wasn't me"); `doi=1` also sets double opt-in; `redir` sends the browser on.
- `GET /link/d/<action id>/<contact ref>`: newsletter double opt-in, then a redirect.

The contact ref (the supporter's fingerprint) proves the link came from the email. Each
request is one transaction; what it makes (email_status events, actions to process) goes
to the pipeline after commit (processing.handoff)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.errors import ProcaError
from proca_server.kit import base64url
from proca_server.models import Action, Source
from proca_server.processing import handoff
from proca_server.processing.lifecycle import (
    LifecycleRefused,
    Outcome,
    confirm_supporter,
    find_action_by_ref,
    reject_supporter,
    set_double_opt_in,
)

log = logging.getLogger(__name__)
router = APIRouter()

DOI_VALUES = ("1", "0", "true", "false", "yes", "no")
DOI_TRUE = ("1", "true", "yes")
VERBS = ("accept", "reject")


class _Malformed(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def _action_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise _Malformed
    return int(raw)


def _ref(raw: str) -> bytes:
    try:
        ref = base64url.decode(raw)
    except ValueError as exc:
        raise _Malformed from exc
    if not ref:
        raise _Malformed
    return ref


def well_formed_url(url: str) -> bool:
    """An absolute http(s) URL with a host: where a link may send the browser."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def with_params(url: str, params: Sequence[tuple[str, str]]) -> str:
    """`url` with `params` put before its own query parameters."""
    parts = urlsplit(url)
    query = [*params, *parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _last_location(session: AsyncSession, page_id: int) -> str | None:
    """The page's address as last reported by its widget (the newest action's location)."""
    result = await session.execute(
        select(Source.location)
        .join(Action, Action.source_id == Source.id)
        .where(Action.action_page_id == page_id, Source.location != "")
        .order_by(Action.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def _finish(request: Request, session: AsyncSession, outcome: Outcome) -> None:
    await session.commit()
    await handoff.after_commit(state_of(request), outcome.publications, outcome.process_action_ids)


@router.api_route("/link/s/{action_id}/{verb}/{ref}", methods=["GET", "POST"])
async def supporter_link(request: Request, action_id: str, verb: str, ref: str) -> Response:
    params = request.query_params
    doi = params.get("doi")
    try:
        aid, fingerprint = _action_id(action_id), _ref(ref)
        if verb not in VERBS or (doi is not None and doi not in DOI_VALUES):
            raise _Malformed
    except _Malformed:
        return _error(400, "malformed link")

    async with state_of(request).sessionmaker() as session:
        loaded = await find_action_by_ref(session, aid, fingerprint)
        if loaded is None:
            return _error(404, "malformed link")
        page_org_id = loaded.page.org_id
        try:
            outcome = Outcome()
            if doi in DOI_TRUE:
                outcome = await set_double_opt_in(session, loaded)
            if verb == "accept":
                outcome = outcome.merge(await confirm_supporter(session, loaded))
            else:
                outcome = outcome.merge(await reject_supporter(session, loaded))
        except LifecycleRefused as exc:
            await session.rollback()
            return _error(400, exc.message)
        except ProcaError as exc:
            await session.rollback()
            log.warning("supporter link refused: %s", exc.code)
            return _error(400, exc.message)
        await _finish(request, session, outcome)

    if params.get("reminder") == "1":
        log.info("confirm reminder clicked", extra={"org_id": page_org_id})
    redir = params.get("redir")
    if redir is None:
        return PlainTextResponse("SUCCESS")
    if not well_formed_url(redir):
        return PlainTextResponse("SUCCESS; Could not redirect to a bad URL")
    extra = [("proca_confirm", verb)]
    if doi is not None:
        extra.append(("proca_doi", doi))
    return RedirectResponse(with_params(redir, extra), status_code=302)


@router.get("/link/d/{action_id}/{ref}")
async def double_opt_in_link(request: Request, action_id: str, ref: str) -> Response:
    params = request.query_params
    try:
        aid, fingerprint = _action_id(action_id), _ref(ref)
    except _Malformed:
        return _error(400, "malformed link")

    async with state_of(request).sessionmaker() as session:
        loaded = await find_action_by_ref(session, aid, fingerprint)
        if loaded is None:
            return _error(404, "malformed link")
        page_id, page_org_id = loaded.page.id, loaded.page.org_id
        outcome = await set_double_opt_in(session, loaded)
        await _finish(request, session, outcome)
        location = None
        redir = params.get("redir")
        if redir is None or not well_formed_url(redir):
            location = await _last_location(session, page_id)

    if params.get("reminder") == "1":
        log.info("double opt-in reminder clicked", extra={"org_id": page_org_id})
    if redir is not None and well_formed_url(redir):
        target = with_params(redir, [("proca_doi", "1")])
    elif location is not None and well_formed_url(location):
        target = with_params(location, [("proca_doi", "1")])
    else:
        target = "/"
    return RedirectResponse(target, status_code=302)
