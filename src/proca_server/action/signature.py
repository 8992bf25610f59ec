"""A signature — the widget's addActionContact — from its input to the hand-off of its action.

This module owns what a signature is and does. Its steps, in the order they run:

  page       `PageCache.load_page`: the page with its campaign and owner org (a snapshot;
             its contact schema is what the contact is validated by)
  validate   `validated_contact` (the contact, by the campaign's contact schema),
             `tracking.source_key` (UTM tracking and the Referer), `service.check_action`
  receivers  `receivers`: the orgs that get a copy of the contact, with their consents
  seal       `seal_contacts`: each receiver's copy, encrypted for its key
  rows       `signature_rows`: supporter, contacts, action and the counters' change
  store      `store.insert_signature`: one statement on PostgreSQL
  hand off   `hand_off`: the action to the processing pipeline, once committed

Two paths run them:
- `record_signature`, the general path: every signature, through the GraphQL resolvers
  (widget_api.py), in the mutation's transaction. It also does what only it does: donations,
  mail-to-target letters, the linking of earlier actions (contactRef), the captcha, and (in
  graphql/transactions.py) the idempotency key.
- `plain_statement`, the signature lane's (lane.py): a plain signature carried out from this
  process's caches alone, up to the statement that stores it (`store.pg_signature`, the same
  text), which the lane sends on its own connection pool before it hands the action off.

Which signatures are plain is one rule, `general_path_reason`, which `plain_statement` asks
first: a signature is plain when nothing of it needs the general path, and a part of the input
the plain steps do not name (PLAIN_INPUT, PLAIN_ACTION) is the general path's by default.
docs/adr/0002-signature-fast-path.md says why the lane exists and what keeps the paths equal;
tests/test_signature_lane.py and tests/test_widget_direct.py compare their answers and rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, NamedTuple

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action import captcha, service, store
from proca_server.action.service import ActionData, Created, PageCache, PageContext
from proca_server.action.tracking import source_key
from proca_server.action.velocity import SignatureVelocity
from proca_server.config import Settings
from proca_server.contact.crypto import KeyRing, SealedContact, seal_for_org
from proca_server.contact.keyrings import keyring_for
from proca_server.contact.schemas import ValidatedContact, validate_contact
from proca_server.errors import ProcaError
from proca_server.kit.time import utcnow
from proca_server.metrics import ACTIONS_RECEIVED
from proca_server.models import AuditLog
from proca_server.processing.events import AfterCommit
from proca_server.processing.handoff import Pipeline
from proca_server.supporter.privacy import Consent, consents

# --- the input --------------------------------------------------------------------------------


@dataclass(slots=True)
class SignatureInput:
    """A signature as the steps take it (widget_api.py maps addActionContact's arguments);
    not changed once made (not frozen only because a frozen dataclass is several times
    slower to make, and the signature lane makes one per request)."""

    page_id: int
    action: ActionData
    contact: Mapping[str, Any]  # as contact/schemas.py `validate_contact` reads it
    opt_in: bool | None
    lead_opt_in: bool | None
    tracking: dict[str, str | None] | None
    # the reference of this person's earlier anonymous actions, to attach to them
    contact_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """What the request tells of the one who signs: the client's address (the velocity
    limits), the Referer (the page's location) and the GraphQL extensions (a captcha code)."""

    address: str | None
    referer: str | None
    extensions: dict[str, Any]


# --- which signatures are plain ------------------------------------------------------------------

# What the plain steps carry out. Any other field of a SignatureInput or of its ActionData is the
# general path's alone whenever it is given (not None): a donation, a letter, a contactRef, and
# whatever is added later, until the plain steps do its work and it is named here.
PLAIN_INPUT = frozenset({"page_id", "action", "contact", "opt_in", "lead_opt_in", "tracking"})
PLAIN_ACTION = frozenset({"action_type", "fields", "testing"})
_GENERAL_INPUT = tuple(f.name for f in fields(SignatureInput) if f.name not in PLAIN_INPUT)
_GENERAL_ACTION = tuple(f.name for f in fields(ActionData) if f.name not in PLAIN_ACTION)

GeneralPathReason = Literal["captcha", "idempotency", "input"]


def general_path_reason(
    settings: Settings, signature: SignatureInput, *, idempotency_key: bool
) -> GeneralPathReason | None:
    """Why this signature needs the general path; None when it is plain (the signature lane
    may take it). "captcha": a captcha is configured, which the general path verifies (and
    audits); "idempotency": the request has an idempotency key, reserved in the mutation's
    transaction; "input": the input holds more than the plain steps carry out."""
    if captcha.enabled(settings):
        return "captcha"
    if idempotency_key:
        return "idempotency"
    for name in _GENERAL_INPUT:
        if getattr(signature, name) is not None:
            return "input"
    action = signature.action
    for name in _GENERAL_ACTION:
        if getattr(action, name) is not None:
            return "input"
    return None


# --- the steps ---------------------------------------------------------------------------------


def signature_keyring(settings: Settings) -> KeyRing:
    """This process's keys, which seal the contacts."""
    return keyring_for(settings.org_name, require_encryption=settings.require_encryption)


def validated_contact(
    settings: Settings, page: PageContext, contact: Mapping[str, Any]
) -> ValidatedContact:
    """The contact checked and normalised by the campaign's contact schema, with the
    person's fingerprint (BadArgument names the field)."""
    return validate_contact(
        page.campaign.contact_schema,
        contact,
        seed=settings.fingerprint_seed,
        today=utcnow().date(),
    )


def receivers(page: PageContext, opt_in: bool | None, lead_opt_in: bool | None) -> list[Consent]:
    """The orgs that get a copy of the contact, with their consents (supporter/privacy.py)."""
    campaign = page.campaign
    return consents(
        page_org_id=page.page.org_id,
        lead_org_id=campaign.org_id if campaign.org_id is not None else page.page.org_id,
        page_delivery=page.page.delivery,
        force_delivery=campaign.force_delivery,
        opt_in=opt_in,
        lead_opt_in=lead_opt_in,
    )


Sealed = list[tuple[Consent, SealedContact]]


async def seal_contacts(
    keyring: KeyRing, session: AsyncSession, receiving: Sequence[Consent], contact: ValidatedContact
) -> Sealed:
    """Each receiver's copy of the contact, its keys loaded as needed."""
    return [
        (consent, await seal_for_org(keyring, session, consent.org_id, contact.payload))
        for consent in receiving
    ]


# an entry of this process's caches the plain steps read: ("page", page id), ("keys", org id)
# or ("source", SourceKey)
CacheEntry = tuple[str, Hashable]


def seal_contacts_cached(
    keyring: KeyRing,
    receiving: Sequence[Consent],
    contact: ValidatedContact,
    refresh: Callable[[CacheEntry], object],
    missing: Callable[[CacheEntry], None],
) -> Sealed | None:
    """`seal_contacts` from the keys this process holds alone: None when one is missing or
    stale (then `missing(("keys", org id))`) or a copy would be cleartext the keyring does
    not allow; `refresh(("keys", org id))` for a key past half its life."""
    sealed = []
    for consent in receiving:
        copy = keyring.cached_seal(consent.org_id, contact.payload)
        if copy is None:
            if not keyring.holds(consent.org_id):
                missing(("keys", consent.org_id))
            return None
        if keyring.ageing(consent.org_id):
            refresh(("keys", consent.org_id))
        sealed.append((consent, copy))
    return sealed


def _cleartext(contact: ValidatedContact, page: PageContext) -> dict[str, Any]:
    """Which personal fields stay readable on the supporter row: the area only for a
    high-security org; everything for a campaign with MTT (letters go as the supporter);
    otherwise email, first name and area."""
    if page.org.high_security:
        return {"area": contact.area}
    if page.campaign.has_mtt:
        return {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "address": contact.address,
            "area": contact.area,
        }
    return {"email": contact.email, "first_name": contact.first_name, "area": contact.area}


def signature_rows(
    page: PageContext,
    contact: ValidatedContact,
    action: ActionData,
    source_row: int | None,
    sealed: Sealed,
) -> tuple[store.SupporterRow, list[store.ContactRow], store.ActionRow, store.Counted | None]:
    """The rows of a signature (the store's arguments but the time), from its checked input
    and the sealed copy of the contact for each receiver."""
    supporter = store.SupporterRow(
        fingerprint=contact.fingerprint,
        campaign_id=page.campaign.id,
        action_page_id=page.page.id,
        source_id=source_row,
        **_cleartext(contact, page),
    )
    contacts = [
        store.ContactRow(
            org_id=consent.org_id,
            payload=copy.payload,
            crypto_nonce=copy.crypto_nonce,
            public_key_id=copy.public_key_id,
            sign_key_id=copy.sign_key_id,
            communication_consent=consent.communication,
            delivery_consent=consent.delivery,
        )
        for consent, copy in sealed
    ]
    row = service.action_row(page, action, source_row, with_consent=True)
    counted = None if action.testing else store.Counted(page.page.org_id, contact.area)
    return supporter, contacts, row, counted


# ACTIONS_RECEIVED by mutation name, looked up once (a `labels` call takes a lock)
_RECEIVED: dict[str, Counter] = {}


def hand_off(pipeline: Pipeline, action_ids: list[int], received: str | None) -> Awaitable[None]:
    """Committed actions go to processing (the sweeper redoes it should this process die
    first); `received` counts the new action by its mutation's name. Await the result (the
    pipeline's own coroutine: no frame of this function's on the lane's hot path)."""
    if received is not None:
        counter = _RECEIVED.get(received)
        if counter is None:
            counter = _RECEIVED[received] = ACTIONS_RECEIVED.labels(kind=received)
        counter.inc()
    return pipeline.after_commit([], action_ids)


def hand_off_after_commit(
    after_commit: AfterCommit, pipeline: Pipeline, action_ids: list[int], received: str | None
) -> None:
    """`hand_off` once the transaction commits."""
    if not action_ids:
        return

    async def handed_off() -> None:
        await hand_off(pipeline, action_ids, received)

    after_commit.append(handed_off)


# --- the general path ----------------------------------------------------------------------------


async def record_signature(
    session: AsyncSession,
    after_commit: AfterCommit,
    pipeline: Pipeline,
    signature: SignatureInput,
    sender: Sender,
    *,
    settings: Settings,
    page_cache: PageCache,
    velocity: SignatureVelocity,
) -> Created:
    """Every step in the session's transaction (the caller commits, and the action is handed
    off after that). The first step that fails gives the answer, so their order is the order
    of the answers' errors."""
    page = await page_cache.load_page(session, signature.page_id)
    link_ref = service.decode_ref(signature.contact_ref) if signature.contact_ref else None
    captcha_meta = await captcha.verify(settings, sender.extensions)
    contact = validated_contact(settings, page, signature.contact)
    velocity.admit(sender.address, contact.email)
    source = source_key(signature.tracking, sender.referer)
    action = signature.action
    service.check_action(action)
    donation = service.donation_row(action.donation) if action.donation else None
    mtt = await service.mtt_rows(session, page.campaign, action.mtt) if action.mtt else None
    source_row = await page_cache.source_id(session, source)
    receiving = receivers(page, signature.opt_in, signature.lead_opt_in)
    sealed = await seal_contacts(signature_keyring(settings), session, receiving, contact)
    rows = signature_rows(page, contact, action, source_row, sealed)
    supporter_id, action_id = await store.insert_signature(session, *rows, utcnow())
    await service.attach_donation_and_mtt(session, action_id, donation, mtt)
    linked: list[int] = []
    if link_ref is not None:
        linked = await service.attach_earlier_actions(
            session, [link_ref], supporter_id, contact.fingerprint, contact.area
        )
    if captcha_meta:
        session.add(
            AuditLog(
                actor_id=str(supporter_id),
                resource="captcha_actions",
                resource_id=str(action_id),
                changeset=captcha_meta,
            )
        )
    hand_off_after_commit(after_commit, pipeline, [action_id, *linked], "addActionContact")
    return Created(action_id, supporter_id, contact.fingerprint, contact.first_name, tuple(linked))


# --- the signature lane's way -------------------------------------------------------------------


class PlainStatement(NamedTuple):
    """A plain signature's statement and its arguments (asyncpg's), and what the lane needs
    besides to admit it and answer."""

    sql: str
    arguments: list[Any]
    fingerprint: bytes
    first_name: str | None
    email: str | None


PlainFallback = Literal[GeneralPathReason, "invalid", "cache"]


def plain_statement(
    settings: Settings,
    page_cache: PageCache,
    signature: SignatureInput,
    referer: str | None,
    *,
    idempotency_key: bool,
    refresh: Callable[[CacheEntry], object],
    missing: Callable[[CacheEntry], None],
) -> PlainStatement | PlainFallback:
    """The steps up to the store, from this process's caches alone, for a signature the
    general path would store as it is; otherwise why not: a reason of `general_path_reason`,
    "invalid" (the general path refuses it, and answers why) or "cache" (the page, its
    sources row or a key is not cached here, named to `missing`: the caller may load it and
    try again, or leave the signature to the general path, which loads it). `refresh(("page",
    id))` and `refresh(("keys", org id))` ask for an entry past half its life to be reloaded
    in the background."""
    reason = general_path_reason(settings, signature, idempotency_key=idempotency_key)
    if reason is not None:
        return reason
    cached = page_cache.cached_page(signature.page_id)
    if cached is None:
        missing(("page", signature.page_id))
        return "cache"
    page, age = cached
    if age > page_cache.page_ttl / 2:
        refresh(("page", signature.page_id))
    try:
        contact = validated_contact(settings, page, signature.contact)
        source = source_key(signature.tracking, referer)
        service.check_action(signature.action)
    except ProcaError:
        return "invalid"
    receiving = receivers(page, signature.opt_in, signature.lead_opt_in)
    sealed = seal_contacts_cached(signature_keyring(settings), receiving, contact, refresh, missing)
    if sealed is None:
        return "cache"
    # after the keys: a sources row is filled (inserted) for a signature the keys do not refuse
    source_row = page_cache.cached_source(source)
    if source_row == service.MISSING and source is not None:
        missing(("source", source))
        return "cache"
    rows = signature_rows(page, contact, signature.action, source_row, sealed)
    sql, arguments = store.pg_signature(*rows, utcnow())
    return PlainStatement(sql, arguments, contact.fingerprint, contact.first_name, contact.email)
