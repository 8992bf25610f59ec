"""GraphQL types of exported actions (the `Action` type; docs/export.md)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Row
from strawberry.types.nodes import SelectedField, Selection

from proca_server.action import export
from proca_server.campaign.types import CustomFieldType
from proca_server.graphql.context import Context
from proca_server.graphql.enums import EmailStatusEnum
from proca_server.graphql.executor import SharedInAnswer
from proca_server.graphql.scalars import Json, NaiveDateTime
from proca_server.kit import base64url
from proca_server.models import Donation
from proca_server.models import enums as m
from proca_server.org.types import KeyIdsType

if TYPE_CHECKING:
    from proca_server.action_page.types import ActionPageInterface
    from proca_server.campaign.types import CampaignInterface

CampaignRef = Annotated["CampaignInterface", strawberry.lazy("proca_server.campaign.types")]
ActionPageRef = Annotated["ActionPageInterface", strawberry.lazy("proca_server.action_page.types")]


@strawberry.enum(name="DonationSchema")
class DonationSchemaEnum(enum.Enum):
    STRIPE_PAYMENT_INTENT = "stripe_payment_intent"


@strawberry.enum(name="DonationFrequencyUnit")
class DonationFrequencyUnitEnum(enum.Enum):
    ONE_OFF = "one_off"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    DAILY = "daily"


@strawberry.type(name="Contact")
class ContactType:
    contact_ref: strawberry.ID
    dupe_rank: int
    payload: str
    nonce: str | None
    public_key: KeyIdsType | None
    sign_key: KeyIdsType | None


@strawberry.type(name="Consent")
class ConsentType:
    opt_in: bool | None
    given_at: NaiveDateTime
    email_status: EmailStatusEnum
    email_status_changed: NaiveDateTime | None
    with_consent: bool


@strawberry.type(name="Tracking")
class TrackingType(SharedInAnswer):
    source: str
    medium: str
    campaign: str
    content: str


@strawberry.type(name="Donation")
class DonationType:
    schema: DonationSchemaEnum | None
    amount: int
    currency: str
    payload: Json
    frequency_unit: DonationFrequencyUnitEnum


@dataclass
class ExportBatch:
    """What the actions of one answer share, loaded once for all of them by `load_batch`:
    one query per kind (keys, sources, donations, campaigns, pages) rather than one per
    action, and only the kinds the document selects. The fields of each action then resolve
    without a query (and without an await, which graphql-core pays per field)."""

    keys: dict[int, KeyIdsType] = field(default_factory=dict)
    tracking: dict[int, TrackingType] = field(default_factory=dict)
    donations: dict[int, DonationType] = field(default_factory=dict)
    campaigns: dict[int, CampaignInterface] = field(default_factory=dict)
    pages: dict[int, ActionPageInterface] = field(default_factory=dict)


def selected_names(selections: list[Selection]) -> set[str]:
    """The names of the fields selected on an object, fragments included."""
    names: set[str] = set()
    for selection in selections:
        if isinstance(selection, SelectedField):
            names.add(selection.name)
        else:  # a fragment spread or an inline fragment
            names |= selected_names(selection.selections)
    return names


async def load_batch(ctx: Context, rows: Sequence[Row[Any]], selected: set[str]) -> ExportBatch:
    """The batch for `rows` of `export.export_actions`."""
    from proca_server.action_page.types import page_view
    from proca_server.campaign.types import campaign_view

    session = ctx.session
    batch = ExportBatch()
    if "contact" in selected:
        ids = _ids(r.public_key_id for r in rows) | _ids(r.sign_key_id for r in rows)
        for key in await export.list_keys_by_id(session, ids):
            batch.keys[key.id] = KeyIdsType(id=key.id, public=base64url.encode(key.public))
    if "tracking" in selected:
        ids = _ids(r.source_id for r in rows)
        for source in await export.list_sources_by_id(session, ids):
            batch.tracking[source.id] = TrackingType(
                source=source.source,
                medium=source.medium,
                campaign=source.campaign,
                content=source.content,
            )
    if "donation" in selected:
        found = await export.list_donations(session, [r.action_id for r in rows])
        for d in found:
            batch.donations.setdefault(d.action_id, _donation(d))
    if "campaign" in selected:
        ids = _ids(r.campaign_id for r in rows)
        for campaign in await export.list_campaigns_by_id(session, ids):
            batch.campaigns[campaign.id] = await campaign_view(ctx, campaign)
    if "actionPage" in selected:
        ids = _ids(r.action_page_id for r in rows)
        for page in await export.list_pages_by_id(session, ids):
            batch.pages[page.id] = await page_view(ctx, page)
    return batch


def _ids(values: Iterable[int | None]) -> set[int]:
    return {v for v in values if v is not None}


def _donation(d: Donation) -> DonationType:
    return DonationType(
        schema=DonationSchemaEnum.STRIPE_PAYMENT_INTENT
        if d.schema is m.DonationSchema.STRIPE_PAYMENT_INTENT
        else None,
        amount=d.amount,
        currency=d.currency,
        payload=Json(d.payload),
        frequency_unit=DonationFrequencyUnitEnum[d.frequency_unit.name],
    )


@strawberry.type(name="Action")
class ActionType:
    """An exported action. Its fields are plain values set by `action_view` (a field with a
    resolver method costs graphql-core and Strawberry several times more per action, and an
    answer holds up to thousands of actions); the campaign and page are those `load_batch`
    loaded, when the document selects them."""

    action_id: int
    created_at: NaiveDateTime
    action_type: str
    custom_fields: Json
    fields: list[CustomFieldType] = strawberry.field(deprecation_reason="use customFields")
    contact: ContactType
    privacy: ConsentType
    tracking: TrackingType | None
    donation: DonationType | None
    campaign: CampaignRef
    action_page: ActionPageRef


def action_view(row: Sequence[Any], batch: ExportBatch, selected: set[str]) -> ActionType:
    """The Action answer of a row of `export.export_actions`, with `batch` loaded for the
    same `selected` fields."""
    # unpacked in `export.EXPORTED`'s order (a Row's attributes by name cost more)
    (
        action_id,
        created_at,
        action_type,
        fields,
        with_consent,
        campaign_id,
        action_page_id,
        source_id,
        fingerprint,
        dupe_rank,
        email_status,
        email_status_changed,
        payload,
        nonce,
        public_key_id,
        sign_key_id,
        opt_in,
        given_at,
    ) = row
    fields = fields or {}
    payload = payload or b""
    keys = batch.keys
    return ActionType(
        action_id=action_id,
        created_at=NaiveDateTime(created_at),
        action_type=action_type,
        custom_fields=Json(fields),
        fields=[CustomFieldType(key=k, value=str(v)) for k, v in fields.items()]
        if "fields" in selected
        else [],
        contact=ContactType(
            contact_ref=strawberry.ID(base64url.encode(fingerprint)),
            dupe_rank=dupe_rank or 0,
            payload=base64url.encode(payload) if nonce is not None else payload.decode(),
            nonce=base64url.encode(nonce) if nonce else None,
            public_key=keys.get(public_key_id) if public_key_id is not None else None,
            sign_key=keys.get(sign_key_id) if sign_key_id is not None else None,
        ),
        privacy=ConsentType(
            opt_in=opt_in,
            given_at=NaiveDateTime(given_at),
            email_status=EmailStatusEnum.of(email_status),
            email_status_changed=(
                NaiveDateTime(email_status_changed) if email_status_changed else None
            ),
            with_consent=with_consent,
        ),
        tracking=batch.tracking.get(source_id) if source_id is not None else None,
        donation=batch.donations.get(action_id),
        # None only where the document does not select them (never answered)
        campaign=batch.campaigns.get(campaign_id) if campaign_id else None,  # type: ignore[arg-type]
        action_page=batch.pages.get(action_page_id),  # type: ignore[arg-type]
    )
