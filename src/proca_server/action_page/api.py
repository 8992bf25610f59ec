"""GraphQL: action page queries and mutations."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from proca_server.action_page import service
from proca_server.action_page.events import page_upserted
from proca_server.action_page.interface import ActionPageInterface, page_view
from proca_server.auth.permissions import Permission
from proca_server.graphql.access import allow, auth_for, load, one_identifier
from proca_server.graphql.context import Context
from proca_server.graphql.enums import StatusEnum
from proca_server.graphql.scalars import Json
from proca_server.models import ActionPage, Campaign
from proca_server.org.service import access_org

Ctx = Info[Context, None]


@strawberry.input(name="ActionPageInput")
class ActionPageInput:
    name: str | None = None
    locale: str | None = None
    thank_you_template: str | None = None
    supporter_confirm_template: str | None = None
    duplicate_template: str | None = None
    extra_supporters: int | None = None
    config: Json | None = None
    delivery: bool | None = None

    def attrs(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@strawberry.type(name="LaunchActionPageResult")
class LaunchActionPageResult:
    status: StatusEnum


async def _page_access(ctx: Context, page: ActionPage) -> None:
    allow(await auth_for(ctx, page.org_id), Permission.MANAGE_ACTION_PAGES)


@strawberry.type
class ActionPageQuery:
    @strawberry.field
    async def action_page(
        self, info: Ctx, id: int | None = None, name: str | None = None, url: str | None = None
    ) -> ActionPageInterface:
        ctx = info.context
        column, value = one_identifier(id=id, name=name, url=url)
        page = await load(ctx.session, ActionPage, **{"id" if column == "id" else "name": value})
        return await page_view(ctx, page)


@strawberry.type
class ActionPageMutation:
    @strawberry.mutation
    async def add_action_page(
        self, info: Ctx, org_name: str, campaign_name: str, input: ActionPageInput
    ) -> ActionPageInterface:
        ctx = info.context
        # both named entities are loaded before the permission is checked, as in the original
        org = await access_org(ctx.session, org_name)
        campaign = await load(ctx.session, Campaign, name=campaign_name)
        allow(await auth_for(ctx, org.id), Permission.MANAGE_ACTION_PAGES)
        page = await service.add_action_page(ctx.session, org, campaign, input.attrs())
        page_upserted(ctx.session, ctx.after_commit, page)
        return await page_view(ctx, page)

    @strawberry.mutation
    async def update_action_page(
        self, info: Ctx, input: ActionPageInput, id: int | None = None, name: str | None = None
    ) -> ActionPageInterface:
        ctx = info.context
        page = await load(ctx.session, ActionPage, id=id, name=name)
        await _page_access(ctx, page)
        await service.update_action_page(ctx.session, page, input.attrs())
        page_upserted(ctx.session, ctx.after_commit, page)
        return await page_view(ctx, page)

    @strawberry.mutation
    async def copy_action_page(
        self, info: Ctx, org_name: str, name: str, from_name: str
    ) -> ActionPageInterface:
        ctx = info.context
        org = await access_org(ctx.session, org_name)
        source = await load(ctx.session, ActionPage, name=from_name)
        allow(await auth_for(ctx, org.id), Permission.MANAGE_ACTION_PAGES)
        page = await service.copy_action_page(ctx.session, org, name, source)
        page_upserted(ctx.session, ctx.after_commit, page)
        return await page_view(ctx, page)

    @strawberry.mutation
    async def copy_campaign_action_page(
        self, info: Ctx, org_name: str, name: str, from_campaign_name: str
    ) -> ActionPageInterface:
        ctx = info.context
        org = await access_org(ctx.session, org_name)
        campaign = await load(ctx.session, Campaign, name=from_campaign_name)
        allow(await auth_for(ctx, org.id), Permission.MANAGE_ACTION_PAGES)
        source = await service.newest_lead_page(ctx.session, campaign)
        page = await service.copy_action_page(ctx.session, org, name, source)
        page_upserted(ctx.session, ctx.after_commit, page)
        return await page_view(ctx, page)

    @strawberry.mutation
    async def launch_action_page(
        self, info: Ctx, name: str, message: str | None = None
    ) -> LaunchActionPageResult:
        ctx = info.context
        page = await load(ctx.session, ActionPage, name=name)
        auth = allow(await auth_for(ctx, page.org_id), Permission.MANAGE_ACTION_PAGES)
        campaign = await ctx.session.get(Campaign, page.campaign_id)
        assert campaign is not None
        lead = await auth_for(ctx, campaign.org_id)
        if lead is not None and (lead.staffer is not None or lead.can(Permission.INSTANCE_OWNER)):
            page.live = True
            await ctx.session.flush()
            page_upserted(ctx.session, ctx.after_commit, page)
            return LaunchActionPageResult(status=StatusEnum.SUCCESS)
        from proca_server.confirm.service import Notify, request_launch

        notify = Notify(ctx.settings, ctx.after_commit, ctx.pipeline)
        await request_launch(ctx.session, notify, auth.user, campaign, page, message)
        return LaunchActionPageResult(status=StatusEnum.CONFIRMING)

    @strawberry.mutation
    async def delete_action_page(
        self, info: Ctx, id: int | None = None, name: str | None = None
    ) -> StatusEnum:
        ctx = info.context
        page = await load(ctx.session, ActionPage, id=id, name=name)
        await _page_access(ctx, page)
        await service.delete_action_page(ctx.session, page)
        return StatusEnum.SUCCESS
