"""Actions from the widget: addAction and linkActions, and what they share with
addActionContact (whose steps are in signature.py): the page snapshots and sources cache, the
action's checks, donation and mail-to-target rows, the linking of earlier anonymous actions.

One transaction each: validate everything first, then write supporter, contacts and action,
so invalid input leaves no row behind."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action import store
from proca_server.action.fields import check_fields
from proca_server.action.tracking import SourceKey
from proca_server.donation import currencies
from proca_server.donation.reports import payment_ids
from proca_server.errors import BadArgument, NotFound
from proca_server.kit import base64url, storable
from proca_server.kit.cache import Cache
from proca_server.kit.time import utcnow
from proca_server.models import (
    Action,
    ActionPage,
    Campaign,
    Donation,
    Message,
    MessageContent,
    Mtt,
    Org,
    Source,
    Supporter,
    Target,
)
from proca_server.models.enums import ContactSchema, DonationFrequencyUnit, DonationSchema
from proca_server.org.templates import check_mustache
from proca_server.service import storage
from proca_server.stats import record as counters

CURRENCY_RE = re.compile(r"[A-Z]{3}")
MAX_SUBJECT = 1280
MAX_BODY = 10240
MAX_AMOUNT = 2**31 - 1  # donations.amount is a 32-bit integer


@dataclass(frozen=True)
class PageSnap:
    id: int
    org_id: int
    campaign_id: int
    delivery: bool


@dataclass(frozen=True)
class CampaignSnap:
    id: int
    org_id: int | None
    force_delivery: bool
    contact_schema: ContactSchema
    has_mtt: bool


@dataclass(frozen=True)
class OrgSnap:
    id: int
    high_security: bool


@dataclass(frozen=True)
class PageContext:
    """What a signature needs of its page, campaign and page owner org: a snapshot, cached
    per process for PAGE_TTL seconds (settings changes show up that late at most)."""

    page: PageSnap
    campaign: CampaignSnap
    org: OrgSnap  # the page owner


PAGE_TTL = 2.0
PAGE_CACHE_SIZE = 10_000
SOURCE_CACHE_SIZE = 10_000
MISSING = -1


@dataclass(frozen=True)
class DonationInput:
    payload: dict[str, Any]
    schema: DonationSchema | None = None
    amount: int | None = None
    currency: str | None = None
    frequency_unit: DonationFrequencyUnit | None = None


@dataclass(frozen=True)
class MttInput:
    targets: Sequence[str]
    subject: str | None = None
    body: str | None = None
    files: Sequence[str] | None = None


@dataclass(frozen=True)
class ActionData:
    action_type: str
    fields: dict[str, Any]
    testing: bool = False
    donation: DonationInput | None = None
    mtt: MttInput | None = None


ACTION_TYPE_RE = re.compile(r"^[\w-]+$")


class PageCache:
    """What a signature reads again and again, cached in this process for one database:
    page snapshots (`PageContext`) for `page_ttl` seconds, and the ids of sources rows for
    good (they are shared and never change or go away). The app builds one
    (`state.page_cache`), shared by the general path (through the GraphQL context) and the
    signature lane."""

    def __init__(
        self,
        *,
        page_ttl: float = PAGE_TTL,
        max_pages: int = PAGE_CACHE_SIZE,
        max_sources: int = SOURCE_CACHE_SIZE,
    ) -> None:
        self.pages: Cache[int, PageContext] = Cache(max_pages, page_ttl)
        self.sources: Cache[SourceKey, int] = Cache(max_sources)

    @property
    def page_ttl(self) -> float:
        return self.pages.ttl or 0.0

    def clear(self) -> None:
        self.pages.clear()
        self.sources.clear()

    def cached_page(self, page_id: int) -> tuple[PageContext, float] | None:
        """The page's snapshot and its age in seconds if this process has a fresh one;
        None otherwise."""
        return self.pages.get_aged(page_id)

    async def load_page(self, session: AsyncSession, page_id: int) -> PageContext:
        cached = self.pages.get(page_id)
        if cached is not None:
            return cached
        return await self.reload_page(session, page_id)

    async def reload_page(self, session: AsyncSession, page_id: int) -> PageContext:
        """The page's snapshot from the database, cached anew (NotFound drops it)."""
        loaded_at = time.monotonic()
        try:
            page = await read_page(session, page_id)
        except NotFound:
            self.pages.pop(page_id)
            raise
        self.pages.put(page_id, page, at=loaded_at)
        return page

    def cached_source(self, key: SourceKey | None) -> int | None:
        """The sources row id for `key` from the cache (None for no tracking); `MISSING`
        when it is not cached."""
        if key is None:
            return None
        found = self.sources.get(key)
        return MISSING if found is None else found

    async def source_id(self, session: AsyncSession, key: SourceKey | None) -> int | None:
        """The shared sources row for this tracking tuple, inserted once and never updated
        (an update on a shared row on every signature would serialize them all)."""
        if key is None:
            return None
        cached = self.sources.get(key)
        if cached is not None:
            return cached
        found_id, committed = await _source_id(session, key)
        # Only a row that was there before this transaction is known to survive it.
        if found_id is not None and committed:
            self.sources.put(key, found_id)
        return found_id

    async def fill_source(self, session: AsyncSession, key: SourceKey) -> None:
        """Cache the sources row for `key`, inserting it first if there is none, in a
        transaction of its own (`session` is not used for anything else): what a burst of
        signatures with new tracking waits for, once, rather than each taking the general
        path. A row inserted alone is shared like any other and never goes away (the
        signature that asked for it may still be refused by the database: the tracking tuple
        stays, as it would for the next signature with it)."""
        found_id, committed = await _source_id(session, key)
        if found_id is not None and not committed:
            await session.commit()
        if found_id is not None:
            self.sources.put(key, found_id)


async def read_page(session: AsyncSession, page_id: int) -> PageContext:
    """The page's snapshot as the database has it now."""
    row = (
        await session.execute(
            select(
                ActionPage.id,
                ActionPage.org_id,
                ActionPage.campaign_id,
                ActionPage.delivery,
                Campaign.org_id,
                Campaign.force_delivery,
                Campaign.contact_schema,
                Org.high_security,
                select(Mtt.id).where(Mtt.campaign_id == Campaign.id).exists(),
            )
            .join(Campaign, Campaign.id == ActionPage.campaign_id)
            .join(Org, Org.id == ActionPage.org_id)
            .where(ActionPage.id == page_id)
        )
    ).first()
    if row is None:
        # the field name is in the message; the path is the mutation's alone (as the widget
        # has always been answered)
        raise NotFound(f"action_page_id: Cannot find Action Page with id={page_id}")
    return PageContext(
        PageSnap(row[0], row[1], row[2], row[3]),
        CampaignSnap(row[2], row[4], row[5], row[6], bool(row[8])),
        OrgSnap(row[1], row[7]),
    )


LINK_NOT_FOUND = "ActionPage or contact not found"
"""linkActions' one answer for a missing page, an unreadable contactRef or no such contact."""


def decode_ref(ref: str, field: str | None = None) -> bytes:
    """A contact reference from base64url; an error names `field` in its path when given
    (the contactRef argument's errors name it in their message alone)."""
    try:
        decoded = base64url.decode(ref)
    except ValueError as exc:
        raise BadArgument("contact_ref: Cannot decode from Base64url", field=field) from exc
    if not decoded:
        raise BadArgument("contact_ref: Cannot decode from Base64url", field=field)
    return decoded


def check_action(data: ActionData) -> None:
    if not ACTION_TYPE_RE.match(data.action_type):
        raise BadArgument("has invalid format", field="actionType")
    # customFields came through the Json scalar, which refuses this already; the deprecated
    # key/value list merged into them did not
    problem = storable.json_problem(data.fields)
    if problem is not None:
        raise BadArgument(problem, field="customFields")
    check_fields(data.fields)


def donation_row(data: DonationInput) -> Donation:
    payload = dict(data.payload)
    amount, currency = data.amount, data.currency
    if data.schema is DonationSchema.STRIPE_PAYMENT_INTENT:
        amount = payload.get("amount")
        currency = payload.get("currency")
        if isinstance(amount, bool) or not isinstance(amount, int) or not isinstance(currency, str):
            raise BadArgument(
                "a Stripe payment intent payload must carry amount and currency",
                field="payload",
            )
    if amount is None:
        raise BadArgument("can't be blank", field="amount")
    if amount <= 0:
        raise BadArgument("must be greater than 0", field="amount")
    if amount > MAX_AMOUNT:
        raise BadArgument(f"must be at most {MAX_AMOUNT}", field="amount")
    currency = (currency or "EUR").upper()
    if not CURRENCY_RE.fullmatch(currency):
        raise BadArgument("is not a currency code", field="currency")
    if not currencies.exists(currency):
        raise BadArgument("does not exist", field="currency")
    # the Stripe payment the donation is followed by (donation/reports.py)
    payment_id, subscription_id = payment_ids(payload)
    return Donation(
        schema=data.schema,
        payload=payload,
        amount=amount,
        currency=currency,
        frequency_unit=data.frequency_unit or DonationFrequencyUnit.ONE_OFF,
        payment_id=payment_id,
        subscription_id=subscription_id,
    )


async def mtt_rows(
    session: AsyncSession, campaign: CampaignSnap, mtt: MttInput
) -> tuple[MessageContent, list[Message]]:
    if not campaign.has_mtt:
        raise BadArgument("Campaign does not support MTT", field="mtt")
    subject, body = mtt.subject or "", mtt.body or ""
    if len(subject) > MAX_SUBJECT:
        raise BadArgument(f"should be at most {MAX_SUBJECT} character(s)", field="subject")
    if len(body) > MAX_BODY:
        raise BadArgument(f"should be at most {MAX_BODY} character(s)", field="body")
    for text, field in ((subject, "subject"), (body, "body")):
        problem = storable.text_problem(text)
        if problem is not None:
            raise BadArgument(problem, field=field)
    check_mustache(subject, "subject")
    check_mustache(body, "body")
    files = list(mtt.files or [])
    for name in files:
        problem = storage.key_problem(name)
        if problem is not None:
            raise BadArgument(problem, field="files")
    if files:
        # the sender reads them from the lead org's storage: without one they would be lost
        service = await storage.get_storage_service(session, campaign.org_id)
        if service is None:
            raise BadArgument(
                "cannot be attached: the campaign's org has no storage backend", field="files"
            )
        for name in files:
            problem = storage.bucket_problem(service, name)
            if problem is not None:
                raise BadArgument(problem, field="files")
    try:
        ids = [uuid.UUID(t) for t in mtt.targets]
    except ValueError as exc:
        raise BadArgument("is not a target id", field="targets") from exc
    found = set(
        (
            await session.execute(
                select(Target.id).where(Target.id.in_(ids), Target.campaign_id == campaign.id)
            )
        )
        .scalars()
        .all()
    )
    if not ids or found != set(ids):
        raise BadArgument("unknown target", field="targets")
    content = MessageContent(subject=subject, body=body)
    return content, [Message(target_id=t, files=files) for t in ids]


async def _source_id(session: AsyncSession, key: SourceKey) -> tuple[int | None, bool]:
    values = {
        "source": key.source,
        "medium": key.medium,
        "campaign": key.campaign,
        "content": key.content,
        "location": key.location,
    }
    where = [getattr(Source, k) == v for k, v in values.items()]
    found = await session.scalar(select(Source.id).where(*where))
    if found is not None:
        return int(found), True
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    await session.execute(
        insert(Source)
        .values(**values, inserted_at=now, updated_at=now)
        .on_conflict_do_nothing(
            index_elements=["source", "medium", "campaign", "content", "location"]
        )
    )
    return int(await session.scalar(select(Source.id).where(*where)) or 0) or None, False


@dataclass(frozen=True)
class Created:
    action_id: int
    supporter_id: int | None
    fingerprint: bytes | None
    first_name: str | None
    # earlier anonymous actions attached to the supporter by this one
    linked_action_ids: tuple[int, ...] = ()


async def attach_earlier_actions(
    session: AsyncSession,
    refs: Sequence[bytes],
    supporter_id: int,
    fingerprint: bytes,
    area: str | None,
) -> list[int]:
    """Attach earlier anonymous actions to this supporter, and count the person for them;
    the ids of the actions attached."""
    linked = (
        await session.execute(
            update(Action)
            .where(Action.ref.in_(list(refs)), Action.supporter_id.is_(None))
            .values(supporter_id=supporter_id)
            .returning(Action.id, Action.campaign_id, Action.action_page_id, Action.testing)
        )
    ).all()
    for _, campaign_id, page_id, testing in linked:
        page = await session.get(ActionPage, page_id)
        if campaign_id is None or page is None:
            continue
        await counters.record_link(
            session,
            campaign_id=campaign_id,
            org_id=page.org_id,
            fingerprint=fingerprint,
            area=area,
            testing=testing,
        )
    return [int(row[0]) for row in linked]


def action_row(
    page: PageContext,
    data: ActionData,
    source: int | None,
    *,
    with_consent: bool,
    ref: bytes | None = None,
) -> store.ActionRow:
    return store.ActionRow(
        action_type=data.action_type,
        fields=data.fields,
        testing=data.testing,
        campaign_id=page.campaign.id,
        action_page_id=page.page.id,
        source_id=source,
        with_consent=with_consent,
        ref=ref,
    )


async def attach_donation_and_mtt(
    session: AsyncSession,
    action_id: int,
    donation: Donation | None,
    mtt: tuple[MessageContent, list[Message]] | None,
) -> None:
    """The donation and mail-to-target rows of a new action."""
    if donation is not None:
        donation.action_id = action_id
        session.add(donation)
    if mtt is not None:
        content, messages = mtt
        session.add(content)
        await session.flush()
        for message in messages:
            message.action_id = action_id
            message.message_content_id = content.id
            session.add(message)
    if donation is not None or mtt is not None:
        await session.flush()


async def find_supporter(
    session: AsyncSession, org_id: int, fingerprint: bytes
) -> Supporter | None:
    """The newest supporter with this fingerprint on any page of the org."""
    result = await session.execute(
        select(Supporter)
        .join(ActionPage, ActionPage.id == Supporter.action_page_id)
        .where(Supporter.fingerprint == fingerprint, ActionPage.org_id == org_id)
        .order_by(Supporter.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def add_action(
    session: AsyncSession,
    cache: PageCache,
    page: PageContext,
    data: ActionData,
    ref: bytes,
    source: SourceKey | None,
) -> Created:
    """Attach to the org's supporter with this contactRef, or keep it unlinked under `ref`."""
    check_action(data)
    supporter = await find_supporter(session, page.page.org_id, ref)
    if data.mtt is not None and supporter is None:
        raise BadArgument("contact_ref: Cannot find contact for MTT action")
    donation = donation_row(data.donation) if data.donation else None
    mtt = await mtt_rows(session, page.campaign, data.mtt) if data.mtt else None
    source_row = await cache.source_id(session, source)
    action_id = await store.insert_action(
        session,
        action_row(page, data, source_row, with_consent=False, ref=None if supporter else ref),
        supporter.id if supporter else None,
        utcnow(),
    )
    await attach_donation_and_mtt(session, action_id, donation, mtt)
    await counters.record_action(
        session,
        campaign_id=page.campaign.id,
        org_id=page.page.org_id,
        action_page_id=page.page.id,
        action_type=data.action_type,
        fingerprint=supporter.fingerprint if supporter else None,
        area=supporter.area if supporter else None,
        testing=data.testing,
    )
    return Created(action_id, supporter.id if supporter else None, ref, None)


async def link_actions(
    session: AsyncSession, page: PageContext, ref: bytes, link_refs: Sequence[bytes]
) -> tuple[Supporter, list[int]]:
    supporter = await find_supporter(session, page.page.org_id, ref)
    if supporter is None:
        raise NotFound(LINK_NOT_FOUND)
    linked: list[int] = []
    if link_refs:
        linked = await attach_earlier_actions(
            session, link_refs, supporter.id, supporter.fingerprint, supporter.area
        )
    return supporter, linked
