"""GraphQL types of campaigns: the public and private views, stats, processing, MTT."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from proca_server.auth.permissions import Permission
from proca_server.graphql.access import auth_for
from proca_server.graphql.context import Context
from proca_server.graphql.enums import CampaignStatusEnum, ContactSchemaEnum
from proca_server.graphql.scalars import Date, DateTime, Json, NaiveDateTime
from proca_server.models import Action, ActionPage, Campaign, Confirm, Mtt, Supporter, User
from proca_server.models.enums import ConfirmOperation
from proca_server.org.types import OrgInterface, org_of, org_view
from proca_server.stats.counts import CampaignCounts, campaign_stats

if TYPE_CHECKING:
    from proca_server.action_page.types import ActionPageInterface, PrivateActionPage
    from proca_server.confirm.types import ConfirmType
    from proca_server.target.types import TargetInterface
    from proca_server.user.api import UserType

ActionPageRef = Annotated["ActionPageInterface", strawberry.lazy("proca_server.action_page.types")]
PrivateActionPageRef = Annotated[
    "PrivateActionPage", strawberry.lazy("proca_server.action_page.types")
]
TargetRef = Annotated["TargetInterface", strawberry.lazy("proca_server.target.types")]
ConfirmRef = Annotated["ConfirmType", strawberry.lazy("proca_server.confirm.types")]
UserRef = Annotated["UserType", strawberry.lazy("proca_server.user.api")]

Ctx = Info[Context, None]
MAX_PUBLIC_ACTIONS = 100


@strawberry.type(name="AreaCount")
class AreaCount:
    area: str
    count: int


@strawberry.type(name="ActionTypeCount")
class ActionTypeCount:
    action_type: str
    count: int


@strawberry.type(name="OrgCount")
class OrgCount:
    org: OrgInterface
    count: int


@strawberry.type(name="CampaignStats")
class CampaignStats:
    """Served from the counters (stats/counts.py): no scan, no query when cached."""

    campaign: strawberry.Private[Campaign]
    # sibling fields of one stats object share one read
    read: strawberry.Private[CampaignCounts | None] = None
    reading: strawberry.Private[asyncio.Lock] = dataclasses.field(default_factory=asyncio.Lock)

    async def counts(self, info: Ctx) -> CampaignCounts:
        async with self.reading:
            if self.read is None:
                ctx = info.context
                self.read = await campaign_stats(
                    ctx.session, self.campaign.id, max_age=ctx.settings.stats_cache_ttl
                )
            return self.read

    @strawberry.field
    async def supporter_count(self, info: Ctx) -> int:
        return (await self.counts(info)).supporters

    @strawberry.field
    async def supporter_count_by_area(self, info: Ctx) -> list[AreaCount]:
        counts = await self.counts(info)
        return [AreaCount(area=a, count=n) for a, n in counts.by_area.items()]

    @strawberry.field
    async def supporter_count_by_org(self, info: Ctx) -> list[OrgCount]:
        from proca_server.models import Org

        ctx = info.context
        out = []
        for org_id, n in (await self.counts(info)).by_org.items():
            org = await ctx.session.get(Org, org_id)
            if org is not None:  # deleted since; the next reconciliation drops it
                out.append(OrgCount(org=await org_view(ctx, org), count=n))
        return out

    @strawberry.field
    async def supporter_count_by_others(self, info: Ctx, org_name: str) -> int:
        from proca_server.org.repository import get_org_by_name

        org = await get_org_by_name(info.context.session, org_name)
        counts = await self.counts(info)
        return counts.supporters_by_others(org.id if org is not None else None)

    @strawberry.field
    async def action_count(self, info: Ctx) -> list[ActionTypeCount]:
        counts = await self.counts(info)
        return [ActionTypeCount(action_type=t, count=n) for t, n in counts.by_action_type.items()]


@strawberry.type(name="CampaignProcessing")
class CampaignProcessing:
    supporter_confirm: bool | None
    supporter_confirm_template: str | None
    action_confirm: bool | None


@strawberry.type(name="CampaignMtt")
class CampaignMttType:
    start_at: DateTime
    end_at: DateTime
    message_template: str | None
    test_email: str | None
    cc_contacts: list[str | None] | None
    cc_sender: bool | None
    drip_delivery: bool | None


@strawberry.type(name="CustomField")
class CustomFieldType:
    key: str
    value: str


@strawberry.type(name="ActionCustomFields")
class ActionCustomFields:
    action_id: int
    action_type: str
    inserted_at: NaiveDateTime
    area: str | None
    custom_fields: Json

    @strawberry.field(deprecation_reason="use customFields")  # type: ignore[untyped-decorator]
    def fields(self) -> list[CustomFieldType]:
        return [CustomFieldType(key=k, value=str(v)) for k, v in dict(self.custom_fields).items()]  # type: ignore[call-overload]


@strawberry.type(name="PublicActionsResult")
class PublicActionsResult:
    field_keys: list[str] | None
    list: list[ActionCustomFields | None] | None


@strawberry.type(name="Partnership")
class Partnership:
    org: OrgInterface
    action_pages: list[ActionPageRef]
    launch_requests: list[ConfirmRef]
    launch_requesters: list[UserRef]


def public_fields(campaign: Campaign, action_type: str) -> list[str]:
    keys = []
    for entry in campaign.public_actions or []:
        kind, _, key = entry.partition(":")
        if kind == action_type and key:
            keys.append(key)
    return keys


@strawberry.interface(name="Campaign")
class CampaignInterface:
    m: strawberry.Private[Campaign]

    @strawberry.field
    def id(self) -> int:
        return self.m.id

    @strawberry.field
    def external_id(self) -> int | None:
        return self.m.external_id

    @strawberry.field
    def name(self) -> str:
        return self.m.name

    @strawberry.field
    def title(self) -> str:
        return self.m.title

    @strawberry.field
    def status(self) -> CampaignStatusEnum:
        return CampaignStatusEnum.of(self.m.status)

    @strawberry.field
    def contact_schema(self) -> ContactSchemaEnum:
        return ContactSchemaEnum.of(self.m.contact_schema)

    @strawberry.field
    def config(self) -> Json:
        return Json(self.m.config or {})

    @strawberry.field
    def start(self) -> Date | None:
        return Date(self.m.start_date) if self.m.start_date else None

    @strawberry.field
    def end(self) -> Date | None:
        return Date(self.m.end_date) if self.m.end_date else None

    @strawberry.field
    def campaign_processing(self) -> CampaignProcessing | None:
        return CampaignProcessing(
            supporter_confirm=self.m.supporter_confirm,
            supporter_confirm_template=self.m.supporter_confirm_template,
            action_confirm=self.m.action_confirm,
        )

    @strawberry.field
    def stats(self) -> CampaignStats:
        return CampaignStats(campaign=self.m)

    @strawberry.field
    async def org(self, info: Ctx) -> OrgInterface:
        ctx = info.context
        return await org_view(ctx, await org_of(ctx, self.m.org_id))

    @strawberry.field
    async def actions(self, info: Ctx, action_type: str, limit: int = 10) -> PublicActionsResult:
        keys = public_fields(self.m, action_type)
        if not keys:
            return PublicActionsResult(field_keys=[], list=[])
        limit = max(0, min(limit, MAX_PUBLIC_ACTIONS))
        rows = await info.context.session.execute(
            select(Action, Supporter.area)
            .outerjoin(Supporter, Supporter.id == Action.supporter_id)
            .where(
                Action.campaign_id == self.m.id,
                Action.action_type == action_type,
                Action.testing.is_(False),
            )
            .order_by(Action.id.desc())
            .limit(limit)
        )
        items: list[ActionCustomFields | None] = [
            ActionCustomFields(
                action_id=action.id,
                action_type=action.action_type,
                inserted_at=NaiveDateTime(action.inserted_at),
                area=area,
                custom_fields=Json({k: action.fields[k] for k in keys if k in action.fields}),
            )
            for action, area in rows.all()
        ]
        return PublicActionsResult(field_keys=keys, list=items)

    @strawberry.field
    async def targets(self, info: Ctx) -> list[TargetRef | None] | None:
        from proca_server.target.types import targets_of_campaign

        return list(await targets_of_campaign(info.context, self.m.id))


@strawberry.type(name="PublicCampaign")
class PublicCampaign(CampaignInterface):
    pass


@strawberry.type(name="PrivateCampaign")
class PrivateCampaign(CampaignInterface):
    @strawberry.field
    def force_delivery(self) -> bool:
        return self.m.force_delivery

    @strawberry.field
    async def action_pages(self, info: Ctx) -> list[PrivateActionPageRef]:
        from proca_server.action_page.types import PrivateActionPage

        pages = await pages_of_campaign(info.context, self.m.id)
        return [PrivateActionPage(m=p) for p in pages]

    @strawberry.field
    async def mtt(self, info: Ctx) -> CampaignMttType | None:
        result = await info.context.session.execute(select(Mtt).where(Mtt.campaign_id == self.m.id))
        mtt = result.scalar_one_or_none()
        if mtt is None:
            return None
        return CampaignMttType(
            start_at=DateTime(mtt.start_at),
            end_at=DateTime(mtt.end_at),
            message_template=mtt.message_template,
            test_email=mtt.test_email,
            cc_contacts=list(mtt.cc_contacts or []),
            cc_sender=mtt.cc_sender,
            drip_delivery=mtt.drip_delivery,
        )

    @strawberry.field
    async def partnerships(self, info: Ctx) -> list[Partnership] | None:
        from proca_server.action_page.types import page_view
        from proca_server.confirm.types import ConfirmType
        from proca_server.user.api import UserType

        ctx = info.context
        pages = await pages_of_campaign(ctx, self.m.id)
        by_org: dict[int, list[ActionPage]] = {}
        for page in pages:
            if page.org_id != self.m.org_id:
                by_org.setdefault(page.org_id, []).append(page)
        out = []
        for org_id, org_pages in by_org.items():
            page_ids = [p.id for p in org_pages]
            confirms = (
                (
                    await ctx.session.execute(
                        select(Confirm)
                        .where(
                            Confirm.operation == ConfirmOperation.LAUNCH_PAGE,
                            Confirm.subject_id == self.m.id,
                            Confirm.object_id.in_(page_ids),
                            Confirm.charges > 0,
                        )
                        .order_by(Confirm.id)
                    )
                )
                .scalars()
                .all()
            )
            creator_ids = sorted({c.creator_id for c in confirms if c.creator_id})
            creators: Sequence[User] = (
                (await ctx.session.execute(select(User).where(User.id.in_(creator_ids))))
                .scalars()
                .all()
                if creator_ids
                else []
            )
            out.append(
                Partnership(
                    org=await org_view(ctx, await org_of(ctx, org_id)),
                    action_pages=[await page_view(ctx, p) for p in org_pages],
                    launch_requests=[ConfirmType.of(c) for c in confirms],
                    launch_requesters=[UserType.from_model(u) for u in creators],
                )
            )
        return out


async def pages_of_campaign(ctx: Context, campaign_id: int) -> Sequence[ActionPage]:
    result = await ctx.session.execute(
        select(ActionPage).where(ActionPage.campaign_id == campaign_id).order_by(ActionPage.id)
    )
    return result.scalars().all()


async def campaign_view(ctx: Context, campaign: Campaign) -> CampaignInterface:
    """Private for the lead org's staff and instance admins."""
    auth = await auth_for(ctx, campaign.org_id)
    if auth is not None and (auth.staffer is not None or auth.can(Permission.INSTANCE_OWNER)):
        return PrivateCampaign(m=campaign)
    return PublicCampaign(m=campaign)
