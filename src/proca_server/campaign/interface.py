"""The `Campaign` interface (with its stats and public actions), and who sees a campaign's
private view (graphql/views.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from typing import Any, Self

import strawberry
from graphql import GraphQLAbstractType, GraphQLResolveInfo
from strawberry.types import Info

from proca_server.auth.permissions import Permission
from proca_server.campaign import repository
from proca_server.graphql.access import auth_for
from proca_server.graphql.context import Context
from proca_server.graphql.enums import CampaignStatusEnum, ContactSchemaEnum
from proca_server.graphql.executor import SharedInAnswer
from proca_server.graphql.scalars import Date, Json, NaiveDateTime
from proca_server.graphql.views import implementation
from proca_server.models import Campaign
from proca_server.org.interface import OrgInterface, org_of, org_view, org_views
from proca_server.org.repository import get_org_by_name
from proca_server.stats.counts import CampaignCounts, campaign_stats
from proca_server.target.types import TargetInterface, target_view

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
        ctx = info.context
        by_org = (await self.counts(info)).by_org
        orgs = await ctx.loaders.org.load_many(list(by_org))
        # an org deleted since is left out; the next reconciliation drops it
        found = [org for org in orgs if org is not None]
        views = await org_views(ctx, found)
        return [
            OrgCount(org=view, count=by_org[org.id]) for org, view in zip(found, views, strict=True)
        ]

    @strawberry.field
    async def supporter_count_by_others(self, info: Ctx, org_name: str) -> int:
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


def public_fields(campaign: Campaign, action_type: str) -> list[str]:
    keys = []
    for entry in campaign.public_actions or []:
        kind, _, key = entry.partition(":")
        if kind == action_type and key:
            keys.append(key)
    return keys


@strawberry.interface(name="Campaign")
class CampaignInterface(SharedInAnswer):
    campaign: strawberry.Private[Campaign]
    # plain values, not resolver methods: an answer may hold a campaign per action
    # (exportActions), and graphql-core and Strawberry resolve a plain field several times faster
    id: int
    external_id: int | None
    name: str
    title: str
    # the view chosen by `campaign_view`: PrivateCampaign, else PublicCampaign
    private: strawberry.Private[bool] = False

    @classmethod
    def of(cls, campaign: Campaign, *, private: bool = False) -> Self:
        return cls(
            campaign=campaign,
            id=campaign.id,
            external_id=campaign.external_id,
            name=campaign.name,
            title=campaign.title,
            private=private,
        )

    @classmethod
    def resolve_type(
        cls, obj: Any, info: GraphQLResolveInfo[Any], type_: GraphQLAbstractType
    ) -> str:
        return implementation(obj, "PublicCampaign", "PrivateCampaign")

    @strawberry.field
    def status(self) -> CampaignStatusEnum:
        return CampaignStatusEnum.of(self.campaign.status)

    @strawberry.field
    def contact_schema(self) -> ContactSchemaEnum:
        return ContactSchemaEnum.of(self.campaign.contact_schema)

    @strawberry.field
    def config(self) -> Json:
        return Json(self.campaign.config or {})

    @strawberry.field
    def start(self) -> Date | None:
        return Date(self.campaign.start_date) if self.campaign.start_date else None

    @strawberry.field
    def end(self) -> Date | None:
        return Date(self.campaign.end_date) if self.campaign.end_date else None

    @strawberry.field
    def campaign_processing(self) -> CampaignProcessing | None:
        return CampaignProcessing(
            supporter_confirm=self.campaign.supporter_confirm,
            supporter_confirm_template=self.campaign.supporter_confirm_template,
            action_confirm=self.campaign.action_confirm,
        )

    @strawberry.field
    def stats(self) -> CampaignStats:
        return CampaignStats(campaign=self.campaign)

    @strawberry.field
    async def org(self, info: Ctx) -> OrgInterface:
        ctx = info.context
        return await org_view(ctx, await org_of(ctx, self.campaign.org_id))

    # the widgets' feed of recent actions: one campaign at a time, not batched
    @strawberry.field
    async def actions(self, info: Ctx, action_type: str, limit: int = 10) -> PublicActionsResult:
        keys = public_fields(self.campaign, action_type)
        if not keys:
            return PublicActionsResult(field_keys=[], list=[])
        limit = max(0, min(limit, MAX_PUBLIC_ACTIONS))
        rows = await repository.list_public_actions(
            info.context.session, self.campaign.id, action_type, limit
        )
        items: list[ActionCustomFields | None] = [
            ActionCustomFields(
                action_id=action.id,
                action_type=action.action_type,
                inserted_at=NaiveDateTime(action.inserted_at),
                area=area,
                custom_fields=Json({k: action.fields[k] for k in keys if k in action.fields}),
            )
            for action, area in rows
        ]
        return PublicActionsResult(field_keys=keys, list=items)

    @strawberry.field
    async def targets(self, info: Ctx) -> list[TargetInterface | None] | None:
        ctx = info.context
        return [
            target_view(ctx, t) for t in await ctx.loaders.campaign_targets.load(self.campaign.id)
        ]


async def campaign_view(ctx: Context, campaign: Campaign) -> CampaignInterface:
    """Private for the lead org's staff and instance admins."""
    auth = await auth_for(ctx, campaign.org_id)
    private = auth is not None and (auth.staffer is not None or auth.can(Permission.INSTANCE_OWNER))
    return CampaignInterface.of(campaign, private=private)


async def campaign_views(ctx: Context, campaigns: Iterable[Campaign]) -> list[CampaignInterface]:
    # together, so that the caller's memberships of all the lead orgs are looked up at once
    return list(await asyncio.gather(*(campaign_view(ctx, c) for c in campaigns)))
