"""Supporter detail lookup: the page owner org's CRM is asked about a supporter before the
action's stage messages go out.

When the org has a `detail_backend`, processing moves the action and supporter to their new
statuses as usual but, instead of the stage messages, sends a lookup request
(`{"actionId", "stage"}`, no personal data) to the org's `wrk.N.detail` queue. The detail
worker (workers/detail.py) asks the backend, folds its answer in (`apply_details`) and
emits the stage messages then, clearing the transient fields at delivery
(`processing.service.emission_plan`). The request is the action's outbox message, as a
stage message is for other orgs: the sweeper does not take the action again, a failing
lookup is retried through the queue's retry delay and parked in `org.N.fail` after the
retry limit, from where an operator sends it back once the backend works. Each org has its
own queue and consumer, so a slow or failing backend holds back that org's actions only.
Like any worker queue, `wrk.N.detail` is no longer consumed once the org's detail backend is
unset; requests still in it wait until one is set again.

The answer (HTTP 200, a JSON object; every key optional):

    {"privacy": {"optIn": true, "givenAt": "2025-01-31T10:00:00Z",
                 "emailStatus": "double_opt_in", "emailStatusChanged": "2025-01-31T10:00:00Z"},
     "action": {"customFields": {"member": true}}}

`emailStatus` needs `emailStatusChanged`, `optIn: true` needs `givenAt`; times are ISO 8601.
Effects: `optIn: true` gives the page owner org's contact communication consent, dated
`givenAt`; `emailStatus` becomes the supporter's email status, changed at
`emailStatusChanged` (no `email_status` event: the org's own CRM said it); `customFields`
are merged into the action's fields (the answer's keys win)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.fields import check_fields
from proca_server.broker.topology import worker_queue
from proca_server.errors import BadArgument
from proca_server.kit import base64url
from proca_server.models.enums import EmailStatus
from proca_server.processing.lifecycle import set_email_status
from proca_server.processing.loader import LoadedAction
from proca_server.processing.messages import Publication, encode_message
from proca_server.processing.transition import Stage, stage_of

DETAIL_WORKER = "detail"


def lookup_queue(org_id: int) -> str:
    return worker_queue(org_id, DETAIL_WORKER)


def lookup_publication(loaded: LoadedAction, stage: Stage) -> Publication:
    """The lookup request of an action moved to `stage`, to its page owner org's queue."""
    body = encode_message({"actionId": loaded.action.id, "stage": stage.value})
    return Publication("", lookup_queue(loaded.org.id), body)


@dataclass(frozen=True, slots=True)
class LookupRequest:
    action_id: int
    stage: Stage


def decode_lookup(body: bytes) -> LookupRequest:
    """Raises ValueError when `body` is not a lookup request."""
    try:
        data = json.loads(body)
        action_id, stage = data["actionId"], Stage(data["stage"])
    except (ValueError, TypeError, KeyError):
        raise ValueError("not a lookup request") from None
    if not isinstance(action_id, int) or isinstance(action_id, bool):
        raise ValueError("not a lookup request")
    return LookupRequest(action_id, stage)


def lookup_due(loaded: LoadedAction | None, stage: Stage) -> bool:
    """Whether the action still waits at `stage` (a later change, such as a rejection or a
    confirmation that moved it on, makes an older request moot)."""
    if loaded is None or loaded.supporter is None:
        return False
    return stage_of(loaded.action.processing_status, loaded.supporter.processing_status) is stage


def lookup_body(loaded: LoadedAction) -> bytes:
    """What the backend is asked: the supporter's email and contactRef."""
    supporter = loaded.supporter
    assert supporter is not None
    return encode_message(
        {"email": supporter.email, "contactRef": base64url.encode(supporter.fingerprint)}
    )


# -- the answer ------------------------------------------------------------------------------


class InvalidDetails(ValueError):
    """The backend's answer is not one we can use (the message names keys, never values)."""


@dataclass(frozen=True, slots=True)
class SupporterDetails:
    opt_in: bool | None = None
    given_at: datetime | None = None
    email_status: EmailStatus | None = None
    email_status_changed: datetime | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _get(data: dict[str, Any], camel: str) -> Any:
    """A key as camelCase or snake_case."""
    if camel in data:
        return data[camel]
    return data.get(_CAMEL.sub("_", camel).lower())


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidDetails(f"{name} is not an object")
    return value


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidDetails(f"{name} is not an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _email_status(value: Any) -> EmailStatus | None:
    if value is None:
        return None
    if isinstance(value, str):
        name = _CAMEL.sub("_", value).upper()  # doubleOptIn or double_opt_in
        if name in EmailStatus.__members__:
            return EmailStatus[name]
    raise InvalidDetails("privacy.emailStatus is not an email status")


def parse_details(data: Any) -> SupporterDetails:
    """The details of a backend's JSON answer; raises InvalidDetails."""
    answer = _object(data, "the answer")
    privacy = _object(_get(answer, "privacy"), "privacy")
    action = _object(_get(answer, "action"), "action")
    opt_in = _get(privacy, "optIn")
    if opt_in is not None and not isinstance(opt_in, bool):
        raise InvalidDetails("privacy.optIn is not a boolean")
    given_at = _time(_get(privacy, "givenAt"), "privacy.givenAt")
    if opt_in and given_at is None:
        raise InvalidDetails("privacy.optIn needs privacy.givenAt")
    email_status = _email_status(_get(privacy, "emailStatus"))
    changed = _time(_get(privacy, "emailStatusChanged"), "privacy.emailStatusChanged")
    if email_status is not None and changed is None:
        raise InvalidDetails("privacy.emailStatus needs privacy.emailStatusChanged")
    custom = _object(_get(action, "customFields"), "action.customFields")
    try:
        custom = check_fields(custom)
    except BadArgument:
        raise InvalidDetails("action.customFields are not custom fields") from None
    return SupporterDetails(opt_in, given_at, email_status, changed, custom)


async def apply_details(
    session: AsyncSession, loaded: LoadedAction, details: SupporterDetails
) -> None:
    """Fold the backend's answer into the supporter, the page owner org's contact and the
    action (flushed; the caller commits). Raises InvalidDetails when the merged custom
    fields are too big to store."""
    supporter = loaded.supporter
    assert supporter is not None
    if details.opt_in and details.given_at is not None:
        copy = loaded.contact_for(loaded.org.id)
        if copy is not None:
            copy.contact.communication_consent = True
            copy.contact.inserted_at = details.given_at
    if details.email_status is not None:
        # the org's own CRM said it: the events set_email_status returns are not sent back
        await set_email_status(
            session, loaded, details.email_status, changed_at=details.email_status_changed
        )
    if details.custom_fields:
        action = loaded.action
        try:
            action.fields = check_fields({**(action.fields or {}), **details.custom_fields})
        except BadArgument:
            raise InvalidDetails("the merged custom fields are too big") from None
    await session.flush()
