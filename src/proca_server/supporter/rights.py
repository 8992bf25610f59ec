"""Supporters' rights from a link in their emails (docs/supporter-rights.md).

Map:

- The link: `/link/rights/<token>`, the `rightsLink` merge tag of every supporter email. The
  token is base64url of a version byte, the action id and a MAC: HMAC-SHA256, under a key
  derived from SECRET_KEY_BASE for this purpose alone, of the version, the action id and the
  supporter's fingerprint, cut to 16 bytes. It holds no personal data, does not expire, and
  opens only the action whose supporter still has that fingerprint.
- The person: every supporter row with that fingerprint (their signatures, whatever the
  campaign). The orgs that received their data: those holding a contact row of any of them.
- The requests, each in the caller's transaction (flush, never commit):
  `withdraw_consent` (one org, or all of them: then also the email status `unsub`),
  `reject_as_not_me` (the reject link's "it wasn't me", and that signature's consents
  withdrawn), `erase_person` (`deleteContact` for every receiving org, and the person's
  cleartext columns cleared everywhere; fingerprints, actions and counters stay).
- What each returns: the `supporter.email_status` events for every org concerned (built
  after the change from that org's contact, plus `rightsRequest` naming the request), and
  the actions to hand back to processing. An audit entry per org, without personal data.
- Idempotent: a request that changes nothing publishes and records nothing."""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.export import delete_contact
from proca_server.audit import service as audit
from proca_server.auth.authenticate import signing_key
from proca_server.config import Settings
from proca_server.kit import base64url
from proca_server.kit.time import utcnow
from proca_server.models import Action, Contact, Org, Supporter
from proca_server.models.enums import EmailStatus
from proca_server.processing.lifecycle import reject_supporter
from proca_server.processing.loader import LoadedAction, load_actions_for_processing
from proca_server.processing.messages import (
    Publication,
    email_status_event,
    encode_message,
    iso8601_now,
    org_exchange,
)
from proca_server.web.urls import public_url

TOKEN_VERSION = 1
_MAC_BYTES = 16
_TOKEN_BYTES = 1 + 8 + _MAC_BYTES
_PURPOSE = "supporter-rights"
AUDIT_ACTION = "rights_request"
# statuses that say more than "unsubscribed" about the address: a request leaves them
_KEPT_STATUSES = (EmailStatus.BOUNCE, EmailStatus.BLOCKED, EmailStatus.SPAM, EmailStatus.UNSUB)
_CLEARTEXT = ("first_name", "last_name", "email", "address")


class RightsRequest(enum.StrEnum):
    WITHDRAW = "withdraw"
    NOT_ME = "not_me"
    ERASE = "erase"


# --- the link ---------------------------------------------------------------------------------


def _mac(settings: Settings, action_id: int, fingerprint: bytes) -> bytes:
    message = bytes([TOKEN_VERSION]) + action_id.to_bytes(8, "big") + fingerprint
    key = signing_key(settings, _PURPOSE)
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def rights_token(settings: Settings, action_id: int, fingerprint: bytes) -> str:
    mac = _mac(settings, action_id, fingerprint)
    return base64url.encode(bytes([TOKEN_VERSION]) + action_id.to_bytes(8, "big") + mac)


def rights_link(settings: Settings, action_id: int, fingerprint: bytes) -> str:
    return public_url(settings, f"/link/rights/{rights_token(settings, action_id, fingerprint)}")


class MalformedToken(Exception):
    """Not a token this server makes (a truncated or mangled link)."""


def parse_token(token: str) -> tuple[int, bytes]:
    """(action id, MAC) of a well-formed token; raises MalformedToken."""
    try:
        raw = base64url.decode(token)
    except ValueError as exc:
        raise MalformedToken from exc
    if len(raw) != _TOKEN_BYTES or raw[0] != TOKEN_VERSION:
        raise MalformedToken
    action_id = int.from_bytes(raw[1:9], "big")
    if action_id <= 0 or action_id >= 2**63:
        raise MalformedToken
    return action_id, raw[9:]


async def open_token(session: AsyncSession, settings: Settings, token: str) -> LoadedAction | None:
    """The action of a genuine token, loaded for processing; None for a forged or altered
    one, or when the action is gone. Raises MalformedToken."""
    action_id, mac = parse_token(token)
    fingerprint = await session.scalar(
        select(Supporter.fingerprint)
        .join(Action, Action.supporter_id == Supporter.id)
        .where(Action.id == action_id)
    )
    if fingerprint is None:
        return None
    if not hmac.compare_digest(mac, _mac(settings, action_id, bytes(fingerprint))):
        return None
    loaded = await load_actions_for_processing(session, [action_id])
    return loaded[0] if loaded and loaded[0].supporter is not None else None


# --- who received the data --------------------------------------------------------------------


@dataclass(frozen=True)
class Receiver:
    org_id: int
    title: str
    # some contact of the person at this org still allows emails
    consent: bool


async def list_receivers(session: AsyncSession, fingerprint: bytes) -> list[Receiver]:
    """The orgs holding a contact of the person, by title."""
    rows = await session.execute(
        select(Org.id, Org.title, Contact.communication_consent)
        .join(Contact, Contact.org_id == Org.id)
        .join(Supporter, Supporter.id == Contact.supporter_id)
        .where(Supporter.fingerprint == fingerprint)
    )
    found: dict[int, Receiver] = {}
    for org_id, title, consent in rows.all():
        seen = found.get(org_id)
        found[org_id] = Receiver(
            org_id, title, bool(consent) or (seen is not None and seen.consent)
        )
    return sorted(found.values(), key=lambda r: (r.title.lower(), r.org_id))


# --- the requests -----------------------------------------------------------------------------


@dataclass(slots=True)
class RightsOutcome:
    request: RightsRequest
    changed: bool = False
    # the orgs the request reached (events and audit entries), in id order
    org_ids: list[int] = field(default_factory=list)
    publications: list[Publication] = field(default_factory=list)
    process_action_ids: list[int] = field(default_factory=list)


async def _newest_actions(
    session: AsyncSession, fingerprint: bytes, org_ids: Sequence[int], prefer: LoadedAction
) -> dict[int, int]:
    """For each org, the action its event is about: the link's own when the org holds a
    contact of that signature, else the newest action of a signature it holds."""
    if not org_ids:
        return {}
    rows = await session.execute(
        select(Contact.org_id, func.max(Action.id))
        .join(Supporter, Supporter.id == Contact.supporter_id)
        .join(Action, Action.supporter_id == Supporter.id)
        .where(Supporter.fingerprint == fingerprint, Contact.org_id.in_(org_ids))
        .group_by(Contact.org_id)
    )
    chosen = {
        org_id: action_id
        for org_id, action_id in rows.all()
        if org_id is not None and action_id is not None
    }
    for copy in prefer.contacts:
        if copy.contact.org_id in chosen:
            chosen[copy.contact.org_id] = prefer.action.id
    return chosen


async def _events(
    session: AsyncSession, request: RightsRequest, about: dict[int, int]
) -> list[Publication]:
    """One `supporter.email_status` event per org, from the state just written."""
    if not about:
        return []
    await session.flush()
    session.expire_all()  # bulk statements changed rows the session holds
    loaded = {
        la.action.id: la for la in await load_actions_for_processing(session, [*about.values()])
    }
    publications = []
    for org_id, action_id in sorted(about.items()):
        found = loaded.get(action_id)
        if found is None or found.supporter is None:
            continue
        message = email_status_event(found, org_id)
        message["timestamp"] = iso8601_now()
        message["rightsRequest"] = request.value
        publications.append(
            Publication(
                org_exchange(org_id, "event"), "supporter.email_status", encode_message(message)
            )
        )
    return publications


def _audit(
    session: AsyncSession,
    supporter_id: int,
    outcome: RightsOutcome,
    counts: dict[int, int],
    **details: str,
) -> None:
    for org_id in outcome.org_ids:
        audit.record(
            session,
            actor=audit.supporter_actor(supporter_id),
            action=AUDIT_ACTION,
            org_id=org_id,
            count=counts.get(org_id),
            details={"request": outcome.request.value, **details},
        )


async def _unsubscribe(session: AsyncSession, fingerprint: bytes) -> list[int]:
    """Email status `unsub` on every signature of the person whose status says less; the
    supporter ids changed."""
    now = utcnow()
    result = await session.execute(
        update(Supporter)
        .where(Supporter.fingerprint == fingerprint, Supporter.email_status.not_in(_KEPT_STATUSES))
        .values(email_status=EmailStatus.UNSUB, email_status_changed=now, updated_at=now)
        .returning(Supporter.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())


async def _orgs_holding(session: AsyncSession, supporter_ids: Sequence[int]) -> set[int]:
    if not supporter_ids:
        return set()
    rows = await session.execute(
        select(Contact.org_id).where(
            Contact.supporter_id.in_(supporter_ids), Contact.org_id.is_not(None)
        )
    )
    return {org_id for org_id in rows.scalars().all() if org_id is not None}


async def _withdraw_contacts(
    session: AsyncSession, fingerprint: bytes, *, org_id: int | None, supporter_id: int | None
) -> dict[int, int]:
    """Communication consent off on the person's contacts (of one org, of one signature, or
    all); the number of contacts changed per org."""
    query = (
        select(Contact)
        .join(Supporter, Supporter.id == Contact.supporter_id)
        .where(
            Supporter.fingerprint == fingerprint,
            Contact.org_id.is_not(None),
            Contact.communication_consent.is_(True),
        )
    )
    if org_id is not None:
        query = query.where(Contact.org_id == org_id)
    if supporter_id is not None:
        query = query.where(Contact.supporter_id == supporter_id)
    changed: dict[int, int] = {}
    for contact in (await session.execute(query)).scalars().all():
        contact.communication_consent = False
        assert contact.org_id is not None
        changed[contact.org_id] = changed.get(contact.org_id, 0) + 1
    await session.flush()
    return changed


async def withdraw_consent(
    session: AsyncSession, loaded: LoadedAction, org_id: int | None
) -> RightsOutcome:
    """No more emails from the org `org_id`, or from any org when None (then the person's
    email status becomes `unsub` too, unless it says more already: bounce, spam...)."""
    supporter = loaded.supporter
    assert supporter is not None
    fingerprint, supporter_id = bytes(supporter.fingerprint), supporter.id
    outcome = RightsOutcome(RightsRequest.WITHDRAW)
    counts = await _withdraw_contacts(session, fingerprint, org_id=org_id, supporter_id=None)
    concerned = set(counts)
    if org_id is None:
        unsubscribed = await _unsubscribe(session, fingerprint)
        concerned |= await _orgs_holding(session, unsubscribed)
    if not concerned:
        return outcome
    outcome.changed = True
    outcome.org_ids = sorted(concerned)
    about = await _newest_actions(session, fingerprint, outcome.org_ids, loaded)
    _audit(session, supporter_id, outcome, counts, scope="all" if org_id is None else "org")
    outcome.publications = await _events(session, outcome.request, about)
    return outcome


async def reject_as_not_me(session: AsyncSession, loaded: LoadedAction) -> RightsOutcome:
    """The "it wasn't me" request: the reject link's rejection (supporter and action
    rejected, double opt-in revoked, pending actions handed back to be rejected), and this
    signature's communication consents withdrawn, since the address's owner never gave
    them."""
    supporter = loaded.supporter
    assert supporter is not None
    fingerprint, supporter_id = bytes(supporter.fingerprint), supporter.id
    receivers = sorted({c.contact.org_id for c in loaded.contacts if c.contact.org_id is not None})
    rejected = await reject_supporter(session, loaded)
    counts = await _withdraw_contacts(session, fingerprint, org_id=None, supporter_id=supporter_id)
    outcome = RightsOutcome(RightsRequest.NOT_ME, process_action_ids=rejected.process_action_ids)
    if not (rejected.changed or rejected.publications or counts):
        return outcome
    outcome.changed = True
    outcome.org_ids = receivers or [loaded.org.id]
    _audit(session, supporter_id, outcome, counts)
    # the events rejected.publications holds are replaced by these, which name the request
    outcome.publications = await _events(
        session, outcome.request, {org_id: loaded.action.id for org_id in receivers}
    )
    return outcome


async def erase_person(session: AsyncSession, loaded: LoadedAction) -> RightsOutcome:
    """What `deleteContact` does, for every org holding a contact of the person; then the
    person's cleartext columns cleared on every signature, and the email status `unsub`.
    Fingerprints, areas and actions stay: the counters do not move."""
    supporter = loaded.supporter
    assert supporter is not None
    fingerprint, supporter_id = bytes(supporter.fingerprint), supporter.id
    outcome = RightsOutcome(RightsRequest.ERASE)
    receivers = [r.org_id for r in await list_receivers(session, fingerprint)]
    about = await _newest_actions(session, fingerprint, receivers, loaded)
    counts: dict[int, int] = {}
    for org in (await session.execute(select(Org).where(Org.id.in_(receivers)))).scalars():
        counts[org.id] = await delete_contact(session, org, fingerprint)
    cleared = await session.execute(
        update(Supporter)
        .where(
            Supporter.fingerprint == fingerprint,
            (
                Supporter.first_name.is_not(None)
                | Supporter.last_name.is_not(None)
                | Supporter.email.is_not(None)
                | Supporter.address.is_not(None)
            ),
        )
        .values({name: None for name in _CLEARTEXT})
        .execution_options(synchronize_session=False)
    )
    unsubscribed = await _unsubscribe(session, fingerprint)
    if not (receivers or int(getattr(cleared, "rowcount", 0) or 0) or unsubscribed):
        return outcome
    outcome.changed = True
    outcome.org_ids = sorted(receivers) or [loaded.org.id]
    _audit(session, supporter_id, outcome, counts)
    outcome.publications = await _events(session, outcome.request, about)
    return outcome
