"""`/link/rights/<token>`: the supporter's page from the `rightsLink` of their emails
(docs/supporter-rights.md).

GET (and HEAD) only shows the choices, so a mail scanner that follows links changes nothing;
each choice is a form that POSTs back to the same address. The signed token in the address
is the only credential (no session, no cookie): a cross-site form cannot post without it.
Each POST is one transaction; its events go to the pipeline after commit. The page has no
script and no personal data: the campaign, the date, and the organisations by their titles."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.models.enums import SupporterProcessingStatus
from proca_server.processing import handoff
from proca_server.processing.loader import LoadedAction
from proca_server.supporter import rights
from proca_server.supporter.rights import Receiver, RightsOutcome, RightsRequest
from proca_server.web.html import SECURITY_HEADERS, STYLE, Html, e, hidden, html_response

log = logging.getLogger(__name__)
router = APIRouter()

MAX_FORM_BYTES = 4096
PAGE_HEADERS = {
    **SECURITY_HEADERS,
    # the address is the credential: never sent on as a Referer, never indexed
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
ALL = "all"


def _page(title: str, body: str, status: int = 200) -> Response:
    content = Html(
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{e(title)}</title><style>{STYLE}"
        "section { border-top: 1px solid #ddd; margin-top: 1.5rem; } "
        "form.choice { margin: .5rem 0; }</style></head><body>"
        f"<main><h1>{e(title)}</h1>{e(body)}</main></body></html>"
    )
    response = html_response(content, status)
    response.headers.update(PAGE_HEADERS)
    return response


def _invalid(status: int) -> Response:
    return _page(
        "This link is not valid",
        Html(
            "<p>This link is not valid: it may have been cut or changed. Open it again from "
            "the email you received, as it is.</p>"
        ),
        status,
    )


def _choice(token: str, request: RightsRequest, label: str, *fields: Html, org: str = "") -> Html:
    inputs = [hidden("request", request.value), *fields]
    if org:
        inputs.append(hidden("org", org))
    return Html(
        f'<form class="choice" method="post" action="/link/rights/{e(token)}">'
        + "".join(inputs)
        + f'<button type="submit">{e(label)}</button></form>'
    )


@dataclass(frozen=True)
class _Subject:
    action_id: int
    campaign_title: str
    signed_on: str
    rejected: bool


def _subject(loaded: LoadedAction) -> _Subject:
    supporter = loaded.supporter
    assert supporter is not None
    return _Subject(
        loaded.action.id,
        loaded.campaign.title,
        loaded.action.inserted_at.strftime("%Y-%m-%d"),
        supporter.processing_status is SupporterProcessingStatus.REJECTED,
    )


def _receiver(token: str, receiver: Receiver) -> str:
    if not receiver.consent:
        return f"<li>{e(receiver.title)} — will not send you emails</li>"
    label = f"No more emails from {receiver.title}"
    withdraw = _choice(token, RightsRequest.WITHDRAW, label, org=str(receiver.org_id))
    return f"<li>{e(receiver.title)} — may send you emails{withdraw}</li>"


def _choices(token: str, subject: _Subject, receivers: list[Receiver]) -> Html:
    intro = (
        f"<p>This page is about your action in the campaign “{e(subject.campaign_title)}” "
        f"on {e(subject.signed_on)}. Nothing changes until you press one of the buttons.</p>"
    )
    if receivers:
        rows = "".join(_receiver(token, r) for r in receivers)
        emails = (
            "<section><h2>Emails</h2><p>These organisations received your details:</p>"
            f"<ul>{rows}</ul>"
            + _choice(token, RightsRequest.WITHDRAW, "No more emails from any of them", org=ALL)
            + "</section>"
        )
    else:
        emails = (
            "<section><h2>Emails</h2><p>No organisation holds your contact details any "
            "more.</p></section>"
        )
    not_me = (
        "<section><h2>It wasn't me</h2><p>If you did not take this action yourself, say so: "
        "it is cancelled and nobody will email you about it.</p>"
        + (
            "<p>This action is already cancelled.</p>"
            if subject.rejected
            else _choice(token, RightsRequest.NOT_ME, "It wasn't me")
        )
        + "</section>"
    )
    confirm = Html(
        '<label><input type="checkbox" name="confirm" value="yes" required> '
        "I want my personal data erased</label>"
    )
    erase = (
        "<section><h2>Erase my data</h2><p>Your name, email address and other details are "
        "deleted from this server and every organisation above is asked to delete them too. "
        "Your action still counts, anonymously.</p>"
        + _choice(token, RightsRequest.ERASE, "Erase my data", confirm)
        + "</section>"
    )
    return Html(intro + emails + not_me + erase)


async def _form(request: Request) -> dict[str, str] | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_FORM_BYTES or content_type != "application/x-www-form-urlencoded":
        return None
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


async def _open(session: AsyncSession, request: Request, token: str) -> LoadedAction | int:
    """The token's action, or the status of the page that refuses it."""
    try:
        loaded = await rights.open_token(session, state_of(request).settings, token)
    except rights.MalformedToken:
        return 400
    return 404 if loaded is None else loaded


@router.api_route("/link/rights/{token}", methods=["GET", "HEAD"])
async def rights_page(request: Request, token: str) -> Response:
    async with state_of(request).sessionmaker() as session:
        loaded = await _open(session, request, token)
        if isinstance(loaded, int):
            return _invalid(loaded)
        assert loaded.supporter is not None
        receivers = await rights.list_receivers(session, bytes(loaded.supporter.fingerprint))
        return _page("Your data and your choices", _choices(token, _subject(loaded), receivers))


def _titles(receivers: list[Receiver], org_ids: list[int]) -> str:
    titles = [r.title for r in receivers if r.org_id in org_ids]
    return ", ".join(titles)


def _result(outcome: RightsOutcome, receivers: list[Receiver], org: str | None) -> str:
    done = "" if outcome.changed else " Nothing more to do: this was already done."
    if outcome.request is RightsRequest.WITHDRAW:
        if org is None:
            return "None of these organisations will send you emails any more." + done
        title = _titles(receivers, [int(org)]) or "This organisation"
        return f"{title} will not send you emails any more." + done
    if outcome.request is RightsRequest.NOT_ME:
        return "Thank you. The action is cancelled and nobody will email you about it." + done
    return (
        "Your personal data is erased from this server, and the organisations that "
        "received it are asked to erase it too. Your action still counts, anonymously." + done
    )


@router.post("/link/rights/{token}")
async def rights_request(request: Request, token: str) -> Response:
    fields = await _form(request)
    choice = (fields or {}).get("request", "")
    if fields is None or choice not in tuple(RightsRequest):
        return _page("Unknown request", Html("<p>Go back and press one of the buttons.</p>"), 400)
    wanted = RightsRequest(choice)
    org = fields.get("org") or None
    if wanted is RightsRequest.WITHDRAW:
        if org is None or not (org == ALL or (org.isascii() and org.isdigit() and len(org) < 19)):
            return _page("Unknown request", Html("<p>Go back and choose an organisation.</p>"), 400)
        if org == ALL:
            org = None
    if wanted is RightsRequest.ERASE and fields.get("confirm") != "yes":
        return _page(
            "Please confirm",
            Html("<p>Go back and tick the box to confirm that you want your data erased.</p>"),
            400,
        )

    state = state_of(request)
    async with state.sessionmaker() as session:
        loaded = await _open(session, request, token)
        if isinstance(loaded, int):
            return _invalid(loaded)
        assert loaded.supporter is not None
        fingerprint = bytes(loaded.supporter.fingerprint)
        receivers = await rights.list_receivers(session, fingerprint)
        if wanted is RightsRequest.WITHDRAW:
            outcome = await rights.withdraw_consent(session, loaded, int(org) if org else None)
        elif wanted is RightsRequest.NOT_ME:
            outcome = await rights.reject_as_not_me(session, loaded)
        else:
            outcome = await rights.erase_person(session, loaded)
        await session.commit()
    await handoff.after_commit(state, outcome.publications, outcome.process_action_ids)
    if outcome.changed:
        log.info("supporter rights request: %s, %d orgs", wanted.value, len(outcome.org_ids))
    body = Html(
        f"<p>{e(_result(outcome, receivers, org))}</p>"
        f'<p><a href="/link/rights/{e(token)}">Back to your choices</a></p>'
    )
    return _page("Done", body)
