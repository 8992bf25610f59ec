"""Bounce reports of the email providers (spec §7.6): `POST /webhook/mailjet` and
`POST /webhook/brevo`.

The providers call these without credentials (as their webhooks are configured), so the
routes only act on emails this server sent: an event names its email by the custom id the
email carried (`action:<id>`; Mailjet `CustomID`, Brevo the first tag) or, failing that, by
the recipient address. A hard bounce, a block, a spam complaint or an unsubscription rejects
the supporter and the action with that email status; the `email_status` events then go to the
pipeline. A soft bounce is only logged (by domain). Every answer is 200, so the provider does
not send a report again: one that cannot be used is logged and dropped."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.email.message import parse_custom_id
from proca_server.models import Action, Supporter
from proca_server.models.enums import EmailStatus
from proca_server.processing import handoff
from proca_server.processing.lifecycle import Outcome, reject_supporter
from proca_server.processing.loader import LoadedAction, load_actions_for_processing
from proca_server.supporter.fingerprint import email_fingerprint

log = logging.getLogger(__name__)
router = APIRouter()

# at most this many events of one request are handled (a provider groups a few hundred)
MAX_EVENTS = 1000


@dataclass(frozen=True)
class BounceEvent:
    """A provider's report on one email: `status` None for a soft bounce."""

    status: EmailStatus | None
    custom_id: str | None
    email: str | None
    reason: str = ""


def _events(payload: Any) -> list[dict[str, Any]]:
    items = payload if isinstance(payload, list) else [payload]
    return [item for item in items[:MAX_EVENTS] if isinstance(item, dict)]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def mailjet_events(payload: Any) -> list[BounceEvent]:
    """Mailjet posts one event object, or an array of them when grouping is on."""
    found = []
    for item in _events(payload):
        kind = item.get("event")
        if kind == "bounce":
            status = EmailStatus.BOUNCE if item.get("hard_bounce") is True else None
        elif kind == "blocked":
            status = EmailStatus.BLOCKED
        elif kind == "spam":
            status = EmailStatus.SPAM
        elif kind == "unsub":
            status = EmailStatus.UNSUB
        else:
            continue  # sent / open / click: MTT delivery flags, not bounces
        parts = [str(item[k]) for k in ("error_related_to", "error", "comment") if item.get(k)]
        found.append(
            BounceEvent(
                status, _text(item.get("CustomID")), _text(item.get("email")), ": ".join(parts)
            )
        )
    return found


BREVO_STATUSES: dict[str, EmailStatus | None] = {
    "bounced": EmailStatus.BOUNCE,
    "hard_bounce": EmailStatus.BOUNCE,
    "hardBounce": EmailStatus.BOUNCE,
    "soft_bounce": None,
    "softBounce": None,
    "spam": EmailStatus.SPAM,
    "complaint": EmailStatus.SPAM,
    "unsubscribed": EmailStatus.UNSUB,
    "blocked": EmailStatus.BLOCKED,
}


def brevo_events(payload: Any) -> list[BounceEvent]:
    """Brevo posts one event object per request; the custom id is the email's first tag."""
    found = []
    for item in _events(payload):
        kind = item.get("event")
        if not isinstance(kind, str) or kind not in BREVO_STATUSES:
            continue
        tags = item.get("tags")
        custom_id = _text(tags[0]) if isinstance(tags, list) and tags else _text(item.get("tag"))
        found.append(
            BounceEvent(
                BREVO_STATUSES[kind],
                custom_id,
                _text(item.get("email")),
                _text(item.get("reason")) or "",
            )
        )
    return found


async def _action_of(session: AsyncSession, event: BounceEvent, seed: str) -> LoadedAction | None:
    parsed = parse_custom_id(event.custom_id)
    action_id: int | None = None
    if parsed is not None:
        kind, value = parsed
        if kind != "action":
            return None  # MTT and account emails have no supporter to reject
        assert isinstance(value, int)
        action_id = value
    elif event.email:
        action_id = await session.scalar(
            select(Action.id)
            .join(Supporter, Supporter.id == Action.supporter_id)
            .where(
                or_(
                    func.lower(Supporter.email) == event.email.strip().lower(),
                    # the address is gone from a delivered supporter; its fingerprint stays
                    Supporter.fingerprint == email_fingerprint(seed, event.email),
                )
            )
            .order_by(Action.id.desc())
            .limit(1)
        )
    if action_id is None:
        return None
    loaded = await load_actions_for_processing(session, [action_id])
    if not loaded or loaded[0].supporter is None:
        return None
    return loaded[0]


def _domain(email: str | None) -> str:
    return email.rpartition("@")[2] if email and "@" in email else "-"


async def handle_bounces(request: Request, provider: str, events: Iterable[BounceEvent]) -> int:
    """Reject the supporters the events name, in one transaction; how many were handled."""
    outcome = Outcome()
    handled = 0
    seed = request.app.state.settings.fingerprint_seed
    async with request.app.state.sessionmaker() as session:
        for event in events:
            if event.status is None:
                log.info("%s: soft bounce at %s", provider, _domain(event.email))
                continue
            loaded = await _action_of(session, event, seed)
            if loaded is None:
                log.info("%s: %s report for no known action", provider, event.status.name.lower())
                continue
            result = await reject_supporter(session, loaded, email_status=event.status)
            outcome = outcome.merge(result)
            handled += 1
            log.info(
                "%s: action %d rejected, email status %s",
                provider,
                loaded.action.id,
                event.status.name.lower(),
            )
        await session.commit()
    await handoff.after_commit(request.app.state, outcome.publications, outcome.process_action_ids)
    return handled


async def _payload(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None


@router.post("/webhook/mailjet")
async def mailjet_webhook(request: Request) -> Response:
    handled = await handle_bounces(request, "mailjet", mailjet_events(await _payload(request)))
    return JSONResponse({"handled": handled})


@router.post("/webhook/brevo")
async def brevo_webhook(request: Request) -> Response:
    handled = await handle_bounces(request, "brevo", brevo_events(await _payload(request)))
    return JSONResponse({"handled": handled})
