"""The file export of an org's actions (`proca-server export`, docs/export.md).

The actions are those of the `actions` query with the same filters (`export.scoped` decides
which), read in one snapshot and in constant memory:

1. `plan_export` finds the org and the campaign, checks the private keys given against the
   org's keys, and makes one cheap pass: the count of actions per campaign and page (the
   total for the progress bar, and the names of the campaigns and pages) and, for CSV, the
   custom field names found in the actions (the `field:NAME` columns).
2. `stream_export` reads the actions in batches keyset-paged on their id, loading the
   sources (tracking) and sign keys as batches meet them, and turns each row into an
   `ExportRow`: its contact opened with the org's private key (crypto.ContactOpener), or in
   clear, or left sealed, which `status` says.

Nothing here logs a contact or a key, or puts one into an exception."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    func,
    select,
    true,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.export import ExportFilter, scoped
from proca_server.audit import service as audit
from proca_server.campaign.service import get_campaign_by_name
from proca_server.contact.crypto import ContactOpener, SealBroken, public_of
from proca_server.errors import UserInputError
from proca_server.kit import base64url
from proca_server.models import Action, ActionPage, Campaign, Contact, PublicKey, Source, Supporter
from proca_server.models.enums import ContactSchema, EmailStatus
from proca_server.org.repository import get_org_by_name, list_keys

BATCH = 5000

# The contact's columns, by the campaign's contact schema, in the keys' order in the payload
# (contact/schemas.py writes them; a nested key is `outer.inner`). Keys outside these go to
# the `contactOther` column, so nothing in a payload is left out.
SCHEMA_COLUMNS: Mapping[ContactSchema, tuple[str, ...]] = {
    ContactSchema.BASIC: (
        "firstName",
        "lastName",
        "email",
        "phone",
        "country",
        "postcode",
        "address.region",
        "address.locality",
        "address.street",
        "address.streetNumber",
        "area",
    ),
    ContactSchema.POPULAR_INITIATIVE: (
        "firstName",
        "lastName",
        "birthDate",
        "email",
        "postcode",
        "locality",
        "region",
    ),
    ContactSchema.ECI: (
        "firstName",
        "lastName",
        "birthDate",
        "country",
        "postcode",
        "city",
        "street",
        "streetNumber",
        "area",
        "nationality.country",
        "nationality.documentType",
        "nationality.documentNumber",
    ),
}

# What `ExportRow.status` says of the contact
DECRYPTED = "decrypted"
CLEAR = "clear"
ERASED = "erased"
UNREADABLE = "unreadable"


def sealed_to(key_id: int | None) -> str:
    return f"sealed to key {key_id}"


@dataclass(frozen=True)
class ExportRequest:
    org: str
    campaign: str | None = None
    start: int | None = None
    since: datetime | None = None
    include_testing: bool = False
    all_consents: bool = False
    # where each key came from (a file name, for the messages) -> the 32-byte private key
    private_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    def criteria(self, campaign_id: int | None) -> ExportFilter:
        return ExportFilter(
            campaign_id=campaign_id,
            start=self.start,
            after=self.since,
            only_opt_in=not self.all_consents,
            include_testing=self.include_testing,
        )

    def audit_details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "campaignName": self.campaign,
            "start": self.start,
            "after": self.since.isoformat() if self.since else None,
            "onlyOptIn": not self.all_consents,
            "includeTesting": self.include_testing,
            "decrypted": bool(self.private_keys),
        }
        return {k: v for k, v in details.items() if v is not None}


@dataclass(frozen=True)
class Tracking:
    source: str
    medium: str
    campaign: str
    content: str
    location: str


@dataclass(slots=True)
class ExportRow:
    action_id: int
    created_at: datetime
    action_type: str
    campaign_id: int | None
    campaign: str | None
    action_page_id: int
    action_page: str | None
    contact_ref: str
    # the contact's data when opened or in clear, else None (see status)
    contact: dict[str, Any] | None
    status: str
    # payload, nonce, public key id, sign key id of a contact left sealed
    sealed: tuple[str, str, int | None, int | None] | None
    opt_in: bool | None
    with_consent: bool
    email_status: str
    email_status_changed: datetime | None
    tracking: Tracking | None
    fields: dict[str, Any]


@dataclass
class ExportPlan:
    org_id: int
    org_name: str
    criteria: ExportFilter
    total: int
    campaigns: dict[int, str]
    pages: dict[int, str]
    contact_columns: tuple[str, ...]
    field_names: tuple[str, ...]
    opener: ContactOpener | None = field(repr=False)
    counts: Counter[str] = field(default_factory=Counter)


async def plan_export(
    session: AsyncSession, request: ExportRequest, *, with_field_names: bool
) -> ExportPlan:
    """Check the request (UserInputError, one line, on an unknown org or campaign or a key
    that is not the org's) and make the first pass."""
    org = await get_org_by_name(session, request.org)
    if org is None:
        raise UserInputError(f"no org named {request.org}")
    campaign_id = None
    if request.campaign is not None:
        campaign = await get_campaign_by_name(session, request.campaign)
        if campaign is None:
            raise UserInputError(f"no campaign named {request.campaign}")
        campaign_id = campaign.id
    opener = await _opener(session, org.id, org.name, request.private_keys)
    criteria = request.criteria(campaign_id)

    per_page = (
        await session.execute(
            scoped(
                org.id, criteria, Action.campaign_id, Action.action_page_id, func.count()
            ).group_by(Action.campaign_id, Action.action_page_id)
        )
    ).all()
    campaign_ids = {c for c, _, _ in per_page if c is not None}
    page_ids = {p for _, p, _ in per_page}
    campaigns = (
        (
            await session.execute(
                select(Campaign.id, Campaign.name, Campaign.contact_schema).where(
                    Campaign.id.in_(campaign_ids)
                )
            )
        ).all()
        if campaign_ids
        else []
    )
    pages = (
        (
            await session.execute(
                select(ActionPage.id, ActionPage.name).where(ActionPage.id.in_(page_ids))
            )
        ).all()
        if page_ids
        else []
    )
    schemas = {ContactSchema.BASIC} if not campaigns else {c.contact_schema for c in campaigns}
    return ExportPlan(
        org_id=org.id,
        org_name=org.name,
        criteria=criteria,
        total=sum(n for _, _, n in per_page),
        campaigns={c.id: c.name for c in campaigns},
        pages={p.id: p.name for p in pages},
        contact_columns=contact_columns(schemas),
        field_names=await _field_names(session, org.id, criteria) if with_field_names else (),
        opener=opener,
    )


def contact_columns(schemas: set[ContactSchema]) -> tuple[str, ...]:
    columns: dict[str, None] = {}
    for schema in sorted(schemas):
        for name in SCHEMA_COLUMNS[ContactSchema.ECI if schema is ContactSchema.IT_CI else schema]:
            columns[name] = None
    return tuple(columns)


async def _opener(
    session: AsyncSession, org_id: int, org_name: str, private_keys: Mapping[str, bytes]
) -> ContactOpener | None:
    if not private_keys:
        return None
    keys = await list_keys(session, org_id)
    by_public = {bytes(k.public): k.id for k in keys}
    held: dict[int, bytes] = {}
    for where, private in private_keys.items():
        key_id = by_public.get(public_of(private))
        if key_id is None:
            active = next((k.id for k in keys if k.active), None)
            known = f"its active key is {active}" if active else "it has no active key"
            raise UserInputError(
                f"the private key in {where} is not one of org {org_name}'s keys ({known})"
            )
        held[key_id] = private
    return ContactOpener(held)


async def _field_names(
    session: AsyncSession, org_id: int, criteria: ExportFilter
) -> tuple[str, ...]:
    if session.get_bind().dialect.name == "postgresql":
        keys = scoped(org_id, criteria, func.jsonb_object_keys(Action.fields).label("key"))
        keys = keys.where(func.jsonb_typeof(Action.fields) == "object")
        query = select(keys.subquery().c.key).distinct()
    else:
        each = func.json_each(Action.fields).table_valued("key")
        # SQLite lets a table-valued function read the tables joined before it
        query = (
            scoped(org_id, criteria, each.c.key)
            .join(each, true())
            .where(func.json_type(Action.fields) == "object")
            .distinct()
        )
    return tuple(sorted(str(k) for k in (await session.scalars(query)).all()))


# Read without the models' type conversions (aware datetimes, enums, parsed JSON): the hot
# loop converts only what it writes.
_COLUMNS = (
    Action.id,
    type_coerce(Action.inserted_at, DateTime()),
    Action.action_type,
    Action.campaign_id,
    Action.action_page_id,
    Action.source_id,
    Action.with_consent,
    cast(Action.fields, Text()),
    Supporter.fingerprint,
    type_coerce(Supporter.email_status, Integer()),
    type_coerce(Supporter.email_status_changed, DateTime()),
    Contact.payload,
    Contact.crypto_nonce,
    Contact.public_key_id,
    Contact.sign_key_id,
    Contact.communication_consent,
)
_SOURCE, _SIGN_KEY = 5, 14  # their places in a row

_EMAIL_STATUS = {status.value: status.name for status in EmailStatus}
_decode_json = json.JSONDecoder().decode

Fetch = Callable[[int], Awaitable[Sequence[Sequence[Any]]]]


async def stream_export(
    session: AsyncSession, plan: ExportPlan, *, batch: int = BATCH
) -> AsyncGenerator[list[ExportRow], None]:
    """The plan's actions in id order, a batch at a time; `plan.counts` counts the contacts
    by status as they go.

    The next batch is asked for before this one is decoded, so the database runs its query
    while this process decrypts (it is sent, and its answer read, at the generator's next
    await: between batches nothing else may use the session)."""
    sources: dict[int, Tracking] = {}
    query = (
        scoped(plan.org_id, plan.criteria, *_COLUMNS)
        .where(Action.id > bindparam("after_id", 0))
        .order_by(Action.id)
        .limit(batch)
    )
    fetch = await _fetcher(session, query)
    ahead: asyncio.Task[Sequence[Sequence[Any]]] | None = None
    try:
        rows = await fetch(0)
        while rows:
            await _load_sources(session, sources, {r[_SOURCE] for r in rows} - {None})
            if plan.opener is not None:
                await _load_sign_keys(session, plan.opener, {r[_SIGN_KEY] for r in rows} - {None})
            if len(rows) == batch:
                ahead = asyncio.ensure_future(fetch(rows[-1][0]))
                await asyncio.sleep(0)  # let it send the query
            yield _rows(plan, sources, rows)
            if ahead is None:
                return
            rows, ahead = await ahead, None
    finally:
        if ahead is not None:  # the caller stopped midway
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead


async def _fetcher(session: AsyncSession, query: Select[Any]) -> Fetch:
    """A batch of rows after an action id. On PostgreSQL straight from asyncpg, in the
    session's transaction (the statement compiled by SQLAlchemy's dialect, as it would send
    it): the rows skip SQLAlchemy's result layer, a third of the time a row costs there."""
    connection = await session.connection()
    if connection.dialect.driver != "asyncpg":

        async def through_sqlalchemy(after_id: int) -> Sequence[Sequence[Any]]:
            rows: Sequence[Sequence[Any]] = (
                await connection.execute(query, {"after_id": after_id})
            ).all()
            return rows

        return through_sqlalchemy
    driver: Any = (await connection.get_raw_connection()).driver_connection
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = {name: _driver_value(v) for name, v in compiled.construct_params().items()}
    names = tuple(compiled.positiontup or ())
    sql = compiled.string

    async def through_asyncpg(after_id: int) -> Sequence[Sequence[Any]]:
        params["after_id"] = after_id
        rows: Sequence[Sequence[Any]] = await driver.fetch(sql, *(params[n] for n in names))
        return rows

    return through_asyncpg


def _driver_value(value: Any) -> Any:
    # what the models' column types do to the values `scoped` binds (UTCDateTime, IntEnum)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, enum.IntEnum):
        return int(value)
    return value


async def _load_sources(session: AsyncSession, sources: dict[int, Tracking], ids: set[int]) -> None:
    missing = ids - sources.keys()
    if not missing:
        return
    found = await session.execute(
        select(
            Source.id,
            Source.source,
            Source.medium,
            Source.campaign,
            Source.content,
            Source.location,
        ).where(Source.id.in_(missing))
    )
    for id_, *values in found.all():
        sources[id_] = Tracking(*values)


async def _load_sign_keys(session: AsyncSession, opener: ContactOpener, ids: set[int]) -> None:
    missing = {i for i in ids if not opener.knows_sign_key(i)}
    if not missing:
        return
    found = dict(
        (
            await session.execute(
                select(PublicKey.id, PublicKey.public).where(PublicKey.id.in_(missing))
            )
        ).all()
    )
    for key_id in missing:
        opener.add_sign_key(key_id, bytes(found.get(key_id) or b""))


def _rows(
    plan: ExportPlan, sources: Mapping[int, Tracking], rows: Sequence[Any]
) -> list[ExportRow]:
    # the hot loop: locals only, no call that is not needed
    opener, counts = plan.opener, plan.counts
    campaigns, pages = plan.campaigns, plan.pages
    out = []
    for (
        action_id,
        created_at,
        action_type,
        campaign_id,
        page_id,
        source_id,
        with_consent,
        fields,
        fingerprint,
        email_status,
        email_status_changed,
        payload,
        nonce,
        public_key_id,
        sign_key_id,
        opt_in,
    ) in rows:
        contact, status, sealed = _contact(opener, payload, nonce, public_key_id, sign_key_id)
        counts[status] += 1
        out.append(
            ExportRow(
                action_id,
                created_at,
                action_type,
                campaign_id,
                campaigns.get(campaign_id),
                page_id,
                pages.get(page_id),
                base64url.encode(fingerprint),
                contact,
                status,
                sealed,
                opt_in,
                with_consent,
                _EMAIL_STATUS[email_status],
                email_status_changed,
                sources.get(source_id),
                _fields(fields),
            )
        )
    return out


def _fields(value: str | dict[str, Any] | None) -> dict[str, Any]:
    # JSON text on SQLite; the PostgreSQL driver decodes jsonb itself
    if isinstance(value, dict):
        return value
    if not value or value == "{}":
        return {}
    parsed = _decode_json(value)
    return parsed if isinstance(parsed, dict) else {}


def _contact(
    opener: ContactOpener | None,
    payload: bytes | None,
    nonce: bytes | None,
    public_key_id: int | None,
    sign_key_id: int | None,
) -> tuple[dict[str, Any] | None, str, tuple[str, str, int | None, int | None] | None]:
    if payload is None:
        return None, ERASED, None
    if nonce is None:
        try:
            return _parse(payload), CLEAR, None
        except ValueError:
            return None, UNREADABLE, None
    if opener is not None and public_key_id is not None and opener.holds(public_key_id):
        try:
            clear = opener.open(payload, nonce, public_key_id, sign_key_id or 0)
            return _parse(clear), DECRYPTED, None
        except (SealBroken, ValueError):
            status = UNREADABLE
    else:
        status = sealed_to(public_key_id)
    return (
        None,
        status,
        (base64url.encode(payload), base64url.encode(nonce), public_key_id, sign_key_id),
    )


def _parse(data: bytes) -> dict[str, Any]:
    value = _decode_json(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("a contact is a JSON object")
    return value


AUDIT_ACTION = "export"


def record_export(
    session: AsyncSession,
    plan: ExportPlan,
    request: ExportRequest,
    fmt: str,
    *,
    count: int,
    complete: bool,
) -> None:
    """The export's audit entry: its filters and how many actions it read, never a contact."""
    audit.record(
        session,
        actor=audit.CLI,
        action=AUDIT_ACTION,
        org_id=plan.org_id,
        count=count,
        details={**request.audit_details(), "format": fmt, "complete": complete},
    )
