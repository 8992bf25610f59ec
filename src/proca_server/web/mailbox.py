"""The preview mailbox: emails kept by the `preview` backend, newest first.

The mailbox holds every user's confirmation and password-reset links, so it is open to
anyone only on a development server reached on a local domain; elsewhere only an instance
admin logged in on the HTML pages sees it (others get 404). A message's HTML is shown in a
sandboxed frame (no scripts, no access to this site); its text part is escaped, with links
made clickable."""

from __future__ import annotations

import json
import re

from fastapi import APIRouter, Depends, HTTPException, Response

from proca_server.auth.permissions import is_admin
from proca_server.config import Settings
from proca_server.email.preview import get_preview_email, list_preview_emails
from proca_server.models import PreviewEmail, User
from proca_server.web.html import Html, e, link
from proca_server.web.pages import Page, PageRoute, page_context
from proca_server.web.urls import is_local_domain

router = APIRouter(route_class=PageRoute)

URL_RE = re.compile(r"https?://[^\s<>\"']+")
# links in a previewed email open outside the sandboxed frame
FRAME_HEAD = '<base target="_blank">'


def mailbox_allowed(settings: Settings, user: User | None) -> bool:
    if user is not None and is_admin(user.perms):
        return True
    return settings.env in ("dev", "test") and is_local_domain(settings.domain)


def _check_access(page: Page) -> None:
    if not mailbox_allowed(page.settings, page.user):
        raise HTTPException(404)


def linkify(text: str) -> Html:
    parts: list[str] = []
    position = 0
    for match in URL_RE.finditer(text):
        parts.append(e(text[position : match.start()]))
        parts.append(link(match.group(0), match.group(0)))
        position = match.end()
    parts.append(e(text[position:]))
    return Html("".join(parts))


def _row(message: PreviewEmail) -> str:
    sent = message.inserted_at.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"<tr><td>{e(sent)}</td><td>{e(message.to_address)}</td>"
        f"<td>{link(f'/mailbox/{message.id}', message.subject or '(no subject)')}</td></tr>"
    )


@router.get("/mailbox")
async def mailbox(page: Page = Depends(page_context)) -> Response:
    _check_access(page)
    messages = await list_preview_emails(page.session)
    if not messages:
        return page.render("Mailbox", Html("<p>No emails yet.</p>"))
    rows = "".join(_row(m) for m in messages)
    body = Html(
        "<table><thead><tr><th>Sent (UTC)</th><th>To</th><th>Subject</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return page.render("Mailbox", body)


@router.get("/mailbox/{email_id}")
async def mailbox_message(email_id: int, page: Page = Depends(page_context)) -> Response:
    _check_access(page)
    message = await get_preview_email(page.session, email_id)
    if message is None:
        raise HTTPException(404)
    headers = [("From", message.from_address), ("To", message.to_address)]
    headers += [
        (str(k), json.dumps(v) if not isinstance(v, str) else v) for k, v in message.headers.items()
    ]
    header_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in headers)
    parts = [f"<table>{header_rows}</table>"]
    if message.html:
        parts.append(
            "<h2>HTML</h2>"
            f'<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" '
            f'referrerpolicy="no-referrer" title="HTML part" '
            f'srcdoc="{e(FRAME_HEAD + message.html)}"></iframe>'
        )
    if message.text:
        parts.append(f"<h2>Text</h2><pre>{linkify(message.text)}</pre>")
    parts.append("<p>" + link("/mailbox", "Back to the mailbox") + "</p>")
    return page.render(message.subject or "(no subject)", Html("".join(parts)))
