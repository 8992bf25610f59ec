"""What every HTML page handler gets: one database session, the logged-in user (from the
session cookies) and helpers to read forms and answer with a page or a redirect."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.auth.authenticate import REMEMBER_ME_COOKIE, session_from_cookies, unsign
from proca_server.config import Settings
from proca_server.email import EmailMessage
from proca_server.email.instance import deliver_instance_emails
from proca_server.models import User
from proca_server.web import cookies
from proca_server.web.html import html_response, layout

log = logging.getLogger("proca_server.web")

MAX_FORM_BYTES = 64 * 1024


class CsrfRejected(Exception):
    pass


@dataclass
class Page:
    request: Request
    session: AsyncSession
    settings: Settings
    user: User | None
    # the user came with the remember-me cookie only: give the browser a session cookie again
    renew_session: bytes | None = None

    @property
    def csrf(self) -> str:
        return cookies.csrf_token(self.request)

    def flash(self, kind: cookies.FlashKind, text: str) -> None:
        cookies.flash(self.request, kind, text)

    def finish(self, response: Response) -> Response:
        if self.renew_session is not None and self.user is not None:
            cookies.put_session_cookies(self.request, response, self.renew_session, remember=False)
        return cookies.finish(self.request, response)

    def render(self, title: str, body: str, *, status: int = 200) -> Response:
        content = layout(
            title,
            body,
            user_email=self.user.email if self.user else None,
            csrf_token=self.csrf if self.user else None,
            flashes=cookies.take_flashes(self.request),
        )
        return self.finish(html_response(content, status))

    def redirect(self, url: str) -> Response:
        return self.finish(RedirectResponse(url, status_code=303))

    async def rollback(self) -> None:
        """Drop this request's writes, keeping the logged-in user loaded for the page."""
        await self.session.rollback()
        if self.user is not None:
            await self.session.refresh(self.user)

    async def form(self) -> dict[str, str]:
        """The submitted form (urlencoded), once its CSRF token checked out."""
        content_type = self.request.headers.get("content-type", "").split(";")[0].strip()
        body = await self.request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "Form too large")
        fields: dict[str, str] = {}
        if content_type.lower() == "application/x-www-form-urlencoded":
            for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                fields.setdefault(name, value)
        elif body.strip():
            raise HTTPException(415, "Forms must be sent urlencoded")
        if not cookies.csrf_valid(self.request, fields.get(cookies.CSRF_FIELD)):
            raise CsrfRejected()
        return fields

    async def send(self, messages: Sequence[EmailMessage | None]) -> None:
        """Deliver emails composed by this request; call after the commit."""
        ready = [m for m in messages if m is not None]
        if not ready:
            return
        state = state_of(self.request)
        try:
            await deliver_instance_emails(state.sessionmaker, state.settings, ready)
        except Exception:
            # The account change is committed; the user can ask for the email again.
            log.exception("could not deliver an account email")


async def page_context(request: Request) -> AsyncIterator[Page]:
    state = state_of(request)
    settings = state.settings
    async with state.sessionmaker() as session:
        user, cookie = await session_from_cookies(session, settings, request.cookies)
        renew = None
        if cookie == REMEMBER_ME_COOKIE:
            renew = unsign(settings, cookie, request.cookies.get(cookie))
        yield Page(request, session, settings, user, renew)


def csrf_rejected_response(request: Request) -> Response:
    content = layout(
        "Invalid form",
        "The form expired or did not come from this site. Go back, reload the page and try again.",
        flashes=[],
    )
    return cookies.finish(request, html_response(content, 403))


class PageRoute(APIRoute):
    """Routes of the HTML pages: a form whose CSRF token does not hold gets a 403 page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except CsrfRejected:
                return csrf_rejected_response(request)

        return handle
