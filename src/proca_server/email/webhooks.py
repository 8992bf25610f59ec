"""Event reports of the email providers (docs/security.md, "Provider reports"):
`POST /webhook/mailjet` and
`POST /webhook/brevo`.

The providers call these without credentials (as their webhooks are configured), so the
routes only act on emails this server sent: an event names its email by the custom id the
email carried (Mailjet `CustomID`, Brevo the first tag) or, failing that, by the recipient
address. Event names are normalised to `EventKind` first.

- `action:<id>` (or no custom id): a hard bounce, a block, a spam complaint or an
  unsubscription rejects the supporter and the action with that email status; the
  `email_status` events then go to the pipeline. A soft bounce is only logged (by domain).
- `mtt:<message id>`: delivery, opens, clicks and bounces of a mail-to-target letter, handled
  by `mtt.tracking` (message flags, the target address's status).
- anything else (`user:` ids, events of no interest) is dropped.

All of a request is one transaction. Every answer is 200, so the provider does not send a
report again: one that cannot be used is logged and dropped. The answer counts the rejected
actions (`handled`) and, when the report was about letters, the events that found their
letter (`tracked`)."""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.email.message import parse_custom_id
from proca_server.metrics import EMAIL_PROVIDER_BOUNCES, EMAIL_PROVIDER_EVENTS, MTT_PROVIDER_EVENTS
from proca_server.models import Action, Supporter
from proca_server.models.enums import EmailStatus
from proca_server.mtt.tracking import (
    BOUNCE_KINDS,
    GIVE_UP_STATUSES,
    EventKind,
    MttEvent,
    track_mtt_events,
)
from proca_server.processing import handoff
from proca_server.processing.lifecycle import Outcome, reject_supporter
from proca_server.processing.loader import LoadedAction, load_actions_for_processing
from proca_server.supporter.fingerprint import email_fingerprint

log = logging.getLogger(__name__)
router = APIRouter()

# at most this many events of one request are handled (a provider groups a few hundred)
MAX_EVENTS = 1000


@dataclass(frozen=True)
class ProviderEvent:
    """A provider's report on one email."""

    kind: EventKind
    custom_id: str | None
    email: str | None
    reason: str = ""

    @property
    def is_bounce(self) -> bool:
        return self.kind in BOUNCE_KINDS

    @property
    def status(self) -> EmailStatus | None:
        """The email status a bounce gives; None for a soft bounce (and non-bounces)."""
        return GIVE_UP_STATUSES.get(self.kind)


def _events(payload: Any) -> list[dict[str, Any]]:
    items = payload if isinstance(payload, list) else [payload]
    return [item for item in items[:MAX_EVENTS] if isinstance(item, dict)]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


MAILJET_KINDS: dict[str, EventKind] = {
    "sent": EventKind.SENT,
    "open": EventKind.OPEN,
    "click": EventKind.CLICK,
    "blocked": EventKind.BLOCKED,
    "spam": EventKind.SPAM,
    "unsub": EventKind.UNSUB,
}


def _mailjet_kind(item: dict[str, Any]) -> EventKind:
    name = item.get("event")
    if name == "bounce":
        return EventKind.BOUNCE if item.get("hard_bounce") is True else EventKind.SOFT_BOUNCE
    return MAILJET_KINDS.get(name, EventKind.OTHER) if isinstance(name, str) else EventKind.OTHER


def mailjet_events(payload: Any) -> list[ProviderEvent]:
    """Mailjet posts one event object, or an array of them when grouping is on."""
    found = []
    for item in _events(payload):
        kind = _mailjet_kind(item)
        parts = [str(item[k]) for k in ("error_related_to", "error", "comment") if item.get(k)]
        found.append(
            ProviderEvent(
                kind, _text(item.get("CustomID")), _text(item.get("email")), ": ".join(parts)
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
_BOUNCE_KIND_OF = {status: kind for kind, status in GIVE_UP_STATUSES.items()}
# Brevo's transactional events of a letter's life (`request`, `deferred`, ... are not used)
BREVO_TRACKING: dict[str, EventKind] = {
    "delivered": EventKind.DELIVERED,
    "opened": EventKind.OPEN,
    "unique_opened": EventKind.OPEN,
    "proxy_open": EventKind.OPEN,
    "unique_proxy_open": EventKind.OPEN,
    "click": EventKind.CLICK,
}


def _brevo_kind(name: Any) -> EventKind:
    if not isinstance(name, str):
        return EventKind.OTHER
    if name in BREVO_STATUSES:
        status = BREVO_STATUSES[name]
        return EventKind.SOFT_BOUNCE if status is None else _BOUNCE_KIND_OF[status]
    return BREVO_TRACKING.get(name, EventKind.OTHER)


def brevo_events(payload: Any) -> list[ProviderEvent]:
    """Brevo posts one event object per request; the custom id is the email's first tag."""
    found = []
    for item in _events(payload):
        tags = item.get("tags")
        custom_id = _text(tags[0]) if isinstance(tags, list) and tags else _text(item.get("tag"))
        found.append(
            ProviderEvent(
                _brevo_kind(item.get("event")),
                custom_id,
                _text(item.get("email")),
                _text(item.get("reason")) or "",
            )
        )
    return found


async def _action_of(session: AsyncSession, event: ProviderEvent, seed: str) -> LoadedAction | None:
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


def _mtt_event(event: ProviderEvent) -> MttEvent | None:
    parsed = parse_custom_id(event.custom_id)
    if parsed is None or parsed[0] != "mtt":
        return None
    assert isinstance(parsed[1], int)
    return MttEvent(parsed[1], event.kind, event.email, event.reason)


def _count(provider: str, event: ProviderEvent, mtt: MttEvent | None) -> None:
    EMAIL_PROVIDER_EVENTS.labels(provider=provider).inc()
    if event.is_bounce:
        EMAIL_PROVIDER_BOUNCES.labels(provider=provider, reason=event.kind.value).inc()
    if mtt is not None:
        MTT_PROVIDER_EVENTS.labels(provider=provider, event=event.kind.value).inc()


async def handle_events(
    request: Request, provider: str, events: Sequence[ProviderEvent]
) -> dict[str, int]:
    """Act on the events in one transaction: the answer's counts."""
    outcome = Outcome()
    handled = 0
    letters: list[MttEvent] = []
    state = state_of(request)
    seed = state.settings.fingerprint_seed
    async with state.sessionmaker() as session:
        for event in events:
            mtt = _mtt_event(event)
            _count(provider, event, mtt)
            if mtt is not None:
                letters.append(mtt)
                continue
            if not event.is_bounce:
                continue
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
        tracked = await track_mtt_events(session, letters, provider) if letters else 0
        await session.commit()
    await handoff.after_commit(state, outcome.publications, outcome.process_action_ids)
    # `tracked` only for reports about letters, so that a supporter bounce answers as before
    return {"handled": handled, "tracked": tracked} if letters else {"handled": handled}


async def _payload(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None


def _authorized(request: Request) -> bool:
    """With EMAIL_WEBHOOK_SECRET set, a report must carry it: as the password of HTTP Basic
    authentication (`https://proca:SECRET@host/webhook/mailjet`, which Mailjet and Brevo both
    send) or as `?secret=`. Without it, anyone who can guess a letter's id could stop a
    target's letters with a made-up bounce."""
    secret = state_of(request).settings.email_webhook_secret
    if not secret:
        return True
    given = request.query_params.get("secret", "")
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            given = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            given = ""
    return hmac.compare_digest(given.encode(), secret.encode())


def _refused() -> Response:
    return JSONResponse(
        {"error": "unauthorized: the webhook secret is missing or wrong"},
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="proca webhooks"'},
    )


@router.post("/webhook/mailjet")
async def mailjet_webhook(request: Request) -> Response:
    if not _authorized(request):
        return _refused()
    counts = await handle_events(request, "mailjet", mailjet_events(await _payload(request)))
    return JSONResponse(counts)


@router.post("/webhook/brevo")
async def brevo_webhook(request: Request) -> Response:
    if not _authorized(request):
        return _refused()
    counts = await handle_events(request, "brevo", brevo_events(await _payload(request)))
    return JSONResponse(counts)
