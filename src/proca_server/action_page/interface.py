"""The `ActionPage` interface, and who sees a page's private view (graphql/views.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Self

import strawberry
from graphql import GraphQLAbstractType, GraphQLResolveInfo
from strawberry.types import Info

from proca_server.auth.permissions import Permission
from proca_server.campaign.interface import CampaignInterface, campaign_view
from proca_server.graphql.access import auth_for
from proca_server.graphql.context import Context
from proca_server.graphql.executor import SharedInAnswer
from proca_server.graphql.scalars import Json
from proca_server.graphql.views import implementation
from proca_server.models import ActionPage
from proca_server.org.interface import OrgInterface, org_of, org_view

Ctx = Info[Context, None]
DEFAULT_JOURNEY = ["Petition", "Share"]


@strawberry.interface(name="ActionPage")
class ActionPageInterface(SharedInAnswer):
    page: strawberry.Private[ActionPage]
    # plain values, not resolver methods: an answer may hold a page per action (exportActions),
    # and graphql-core and Strawberry resolve a plain field several times faster
    id: int
    name: str
    locale: str
    live: bool
    # the view chosen by `page_view`: PrivateActionPage, else PublicActionPage
    private: strawberry.Private[bool] = False

    @classmethod
    def of(cls, page: ActionPage, *, private: bool = False) -> Self:
        return cls(
            page=page,
            id=page.id,
            name=page.name,
            locale=page.locale,
            live=page.live,
            private=private,
        )

    @classmethod
    def resolve_type(
        cls, obj: Any, info: GraphQLResolveInfo[Any], type_: GraphQLAbstractType
    ) -> str:
        return implementation(obj, "PublicActionPage", "PrivateActionPage")

    @strawberry.field
    def config(self) -> Json:
        return Json(self.page.config or {})

    @strawberry.field
    def thank_you_template(self) -> str | None:
        return self.page.thank_you_template

    @strawberry.field
    async def thank_you_template_ref(self, info: Ctx) -> str | None:
        name = self.page.thank_you_template
        if not name:
            return None
        return await info.context.loaders.template_ref.load((self.page.org_id, name)) or name

    @strawberry.field(deprecation_reason="use config")  # type: ignore[untyped-decorator]
    def journey(self) -> list[str]:
        journey = (self.page.config or {}).get("journey")
        if isinstance(journey, list) and all(isinstance(s, str) for s in journey):
            return journey
        return list(DEFAULT_JOURNEY)

    @strawberry.field
    async def campaign(self, info: Ctx) -> CampaignInterface:
        ctx = info.context
        campaign = await ctx.loaders.campaign.load(self.page.campaign_id)
        assert campaign is not None  # a page always has its campaign (a foreign key)
        return await campaign_view(ctx, campaign)

    @strawberry.field
    async def org(self, info: Ctx) -> OrgInterface:
        ctx = info.context
        return await org_view(ctx, await org_of(ctx, self.page.org_id))


async def page_view(ctx: Context, page: ActionPage) -> ActionPageInterface:
    """Private for staff of the page's org or of the campaign's lead org, and admins."""
    auth = await auth_for(ctx, page.org_id)
    if auth is None:
        return ActionPageInterface.of(page)
    if auth.staffer is not None or auth.can(Permission.INSTANCE_OWNER):
        return ActionPageInterface.of(page, private=True)
    campaign = await ctx.loaders.campaign.load(page.campaign_id)
    if campaign is not None and campaign.org_id != page.org_id:
        lead = await auth_for(ctx, campaign.org_id)
        if lead is not None and lead.staffer is not None:
            return ActionPageInterface.of(page, private=True)
    return ActionPageInterface.of(page)


async def page_views(ctx: Context, pages: Iterable[ActionPage]) -> list[ActionPageInterface]:
    # together, so that what each view needs is looked up once for all the pages
    return list(await asyncio.gather(*(page_view(ctx, page) for page in pages)))
