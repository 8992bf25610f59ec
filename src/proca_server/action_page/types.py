"""GraphQL types of action pages (widgets): the public and private views."""

from __future__ import annotations

import calendar
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from proca_server.auth.permissions import Permission
from proca_server.graphql.access import auth_for
from proca_server.graphql.context import Context
from proca_server.graphql.enums import ActionPageStatusEnum
from proca_server.graphql.scalars import Json
from proca_server.kit.time import utcnow
from proca_server.models import Action, ActionPage, Campaign, EmailTemplate, Source
from proca_server.org.types import OrgInterface, org_of, org_view

if TYPE_CHECKING:
    from proca_server.campaign.types import CampaignInterface

CampaignRef = Annotated["CampaignInterface", strawberry.lazy("proca_server.campaign.types")]

Ctx = Info[Context, None]
DEFAULT_JOURNEY = ["Petition", "Share"]


@strawberry.interface(name="ActionPage")
class ActionPageInterface:
    m: strawberry.Private[ActionPage]

    @strawberry.field
    def id(self) -> int:
        return self.m.id

    @strawberry.field
    def name(self) -> str:
        return self.m.name

    @strawberry.field
    def locale(self) -> str:
        return self.m.locale

    @strawberry.field
    def live(self) -> bool:
        return self.m.live

    @strawberry.field
    def config(self) -> Json:
        return Json(self.m.config or {})

    @strawberry.field
    def thank_you_template(self) -> str | None:
        return self.m.thank_you_template

    @strawberry.field
    async def thank_you_template_ref(self, info: Ctx) -> str | None:
        name = self.m.thank_you_template
        if not name:
            return None
        result = await info.context.session.execute(
            select(EmailTemplate.external_id)
            .where(EmailTemplate.org_id == self.m.org_id, EmailTemplate.name == name)
            .order_by(EmailTemplate.id)
            .limit(1)
        )
        return result.scalar_one_or_none() or name

    @strawberry.field(deprecation_reason="use config")  # type: ignore[untyped-decorator]
    def journey(self) -> list[str]:
        journey = (self.m.config or {}).get("journey")
        if isinstance(journey, list) and all(isinstance(s, str) for s in journey):
            return journey
        return list(DEFAULT_JOURNEY)

    @strawberry.field
    async def campaign(self, info: Ctx) -> CampaignRef:
        from proca_server.campaign.types import campaign_view

        ctx = info.context
        campaign = await ctx.session.get(Campaign, self.m.campaign_id)
        assert campaign is not None
        return await campaign_view(ctx, campaign)

    @strawberry.field
    async def org(self, info: Ctx) -> OrgInterface:
        ctx = info.context
        return await org_view(ctx, await org_of(ctx, self.m.org_id))


@strawberry.type(name="PublicActionPage")
class PublicActionPage(ActionPageInterface):
    pass


@strawberry.type(name="PrivateActionPage")
class PrivateActionPage(ActionPageInterface):
    @strawberry.field
    def extra_supporters(self) -> int:
        return self.m.extra_supporters

    @strawberry.field
    def delivery(self) -> bool:
        return self.m.delivery

    @strawberry.field
    def supporter_confirm_template(self) -> str | None:
        return self.m.supporter_confirm_template

    @strawberry.field
    def duplicate_template(self) -> str | None:
        return self.m.duplicate_template

    @strawberry.field
    async def location(self, info: Ctx) -> str | None:
        result = await info.context.session.execute(
            select(Source.location)
            .join(Action, Action.source_id == Source.id)
            .where(Action.action_page_id == self.m.id, Source.location != "")
            .order_by(Action.id.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    @strawberry.field
    async def status(self, info: Ctx) -> ActionPageStatusEnum | None:
        now = utcnow()
        result = await info.context.session.execute(
            select(Action.inserted_at)
            .where(Action.action_page_id == self.m.id)
            .order_by(Action.id.desc())
            .limit(1)
        )
        last = result.scalar_one_or_none()
        if last is None or now - last > timedelta(days=365):
            return ActionPageStatusEnum.STANDBY
        days_in_month = calendar.monthrange(now.year, now.month)[1]
        if now - last <= timedelta(hours=24 * days_in_month):
            return ActionPageStatusEnum.ACTIVE
        return ActionPageStatusEnum.STALLED


async def page_view(ctx: Context, page: ActionPage) -> ActionPageInterface:
    """Private for staff of the page's org or of the campaign's lead org, and admins."""
    auth = await auth_for(ctx, page.org_id)
    if auth is None:
        return PublicActionPage(m=page)
    if auth.staffer is not None or auth.can(Permission.INSTANCE_OWNER):
        return PrivateActionPage(m=page)
    campaign = await ctx.session.get(Campaign, page.campaign_id)
    if campaign is not None and campaign.org_id != page.org_id:
        lead = await auth_for(ctx, campaign.org_id)
        if lead is not None and lead.staffer is not None:
            return PrivateActionPage(m=page)
    return PublicActionPage(m=page)
