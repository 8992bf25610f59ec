"""GraphQL types of exported actions (the `Action` type; docs/export.md)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from proca_server.campaign.types import CustomFieldType
from proca_server.graphql.context import Context
from proca_server.graphql.enums import EmailStatusEnum
from proca_server.graphql.scalars import Json, NaiveDateTime
from proca_server.kit import base64url
from proca_server.models import (
    Action,
    ActionPage,
    Campaign,
    Contact,
    Donation,
    PublicKey,
    Source,
    Supporter,
)
from proca_server.models import enums as m
from proca_server.org.types import KeyIdsType

if TYPE_CHECKING:
    from proca_server.action_page.types import ActionPageInterface
    from proca_server.campaign.types import CampaignInterface

CampaignRef = Annotated["CampaignInterface", strawberry.lazy("proca_server.campaign.types")]
ActionPageRef = Annotated["ActionPageInterface", strawberry.lazy("proca_server.action_page.types")]
Ctx = Info[Context, None]


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
class TrackingType:
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


async def _key(ctx: Context, key_id: int | None) -> KeyIdsType | None:
    if key_id is None:
        return None
    key = await ctx.session.get(PublicKey, key_id)
    return KeyIdsType(id=key.id, public=base64url.encode(key.public)) if key else None


@strawberry.type(name="Action")
class ActionType:
    action: strawberry.Private[Action]
    supporter: strawberry.Private[Supporter]
    contact_row: strawberry.Private[Contact]

    @strawberry.field
    def action_id(self) -> int:
        return self.action.id

    @strawberry.field
    def created_at(self) -> NaiveDateTime:
        return NaiveDateTime(self.action.inserted_at)

    @strawberry.field
    def action_type(self) -> str:
        return self.action.action_type

    @strawberry.field
    def custom_fields(self) -> Json:
        return Json(self.action.fields or {})

    @strawberry.field(deprecation_reason="use customFields")  # type: ignore[untyped-decorator]
    def fields(self) -> list[CustomFieldType]:
        return [CustomFieldType(key=k, value=str(v)) for k, v in (self.action.fields or {}).items()]

    @strawberry.field
    async def contact(self, info: Ctx) -> ContactType:
        row = self.contact_row
        payload = row.payload or b""
        encrypted = row.crypto_nonce is not None
        return ContactType(
            contact_ref=strawberry.ID(base64url.encode(self.supporter.fingerprint)),
            dupe_rank=self.supporter.dupe_rank or 0,
            payload=base64url.encode(payload) if encrypted else payload.decode("utf-8"),
            nonce=base64url.encode(row.crypto_nonce) if row.crypto_nonce else None,
            public_key=await _key(info.context, row.public_key_id),
            sign_key=await _key(info.context, row.sign_key_id),
        )

    @strawberry.field
    def privacy(self) -> ConsentType:
        s = self.supporter
        return ConsentType(
            opt_in=self.contact_row.communication_consent,
            given_at=NaiveDateTime(self.contact_row.inserted_at),
            email_status=EmailStatusEnum.of(s.email_status),
            email_status_changed=(
                NaiveDateTime(s.email_status_changed) if s.email_status_changed else None
            ),
            with_consent=self.action.with_consent,
        )

    @strawberry.field
    async def tracking(self, info: Ctx) -> TrackingType | None:
        if self.action.source_id is None:
            return None
        source = await info.context.session.get(Source, self.action.source_id)
        if source is None:
            return None
        return TrackingType(
            source=source.source,
            medium=source.medium,
            campaign=source.campaign,
            content=source.content,
        )

    @strawberry.field
    async def donation(self, info: Ctx) -> DonationType | None:
        result = await info.context.session.execute(
            select(Donation).where(Donation.action_id == self.action.id).limit(1)
        )
        d = result.scalar_one_or_none()
        if d is None:
            return None
        return DonationType(
            schema=DonationSchemaEnum.STRIPE_PAYMENT_INTENT
            if d.schema is m.DonationSchema.STRIPE_PAYMENT_INTENT
            else None,
            amount=d.amount,
            currency=d.currency,
            payload=Json(d.payload),
            frequency_unit=DonationFrequencyUnitEnum[d.frequency_unit.name],
        )

    @strawberry.field
    async def campaign(self, info: Ctx) -> CampaignRef:
        from proca_server.campaign.types import campaign_view

        ctx = info.context
        campaign = await ctx.session.get(Campaign, self.action.campaign_id)
        assert campaign is not None
        return await campaign_view(ctx, campaign)

    @strawberry.field
    async def action_page(self, info: Ctx) -> ActionPageRef:
        from proca_server.action_page.types import page_view

        ctx = info.context
        page = await ctx.session.get(ActionPage, self.action.action_page_id)
        assert page is not None
        return await page_view(ctx, page)
