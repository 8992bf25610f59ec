"""GraphQL: campaign queries and mutations."""

from __future__ import annotations

from datetime import date
from typing import Any

import strawberry
from strawberry.types import Info

from proca_server.action_page.api import ActionPageInput
from proca_server.action_page.events import page_upserted
from proca_server.auth.permissions import Permission
from proca_server.campaign import repository, service
from proca_server.campaign.interface import CampaignInterface, campaign_view, campaign_views
from proca_server.errors import BadArgument
from proca_server.graphql.access import allow, auth_for, load, one_identifier
from proca_server.graphql.context import Context
from proca_server.graphql.enums import CampaignStatusEnum, ContactSchemaEnum, StatusEnum
from proca_server.graphql.scalars import Date, DateTime, Json
from proca_server.models import Campaign, Org
from proca_server.org.service import access_org
from proca_server.processing import events
from proca_server.processing.handoff import org_changed_after_commit

Ctx = Info[Context, None]
UNSET: Any = strawberry.UNSET


@strawberry.input(name="CampaignMttInput")
class CampaignMttInput:
    start_at: DateTime | None = None
    end_at: DateTime | None = None
    message_template: str | None = None
    test_email: str | None = None
    cc_contacts: list[str | None] | None = None
    cc_sender: bool | None = None
    drip_delivery: bool | None = None


@strawberry.input(name="CampaignInput")
class CampaignInput:
    name: str | None = None
    external_id: int | None = None
    title: str | None = None
    contact_schema: ContactSchemaEnum | None = None
    status: CampaignStatusEnum | None = None
    config: Json | None = None
    start: Date | None = UNSET
    end: Date | None = UNSET
    action_pages: list[ActionPageInput] | None = None
    mtt: CampaignMttInput | None = None
    supporter_confirm: bool | None = UNSET
    supporter_confirm_template: str | None = UNSET
    action_confirm: bool | None = UNSET

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if value is strawberry.UNSET:
                continue
            if (key == "contact_schema" and value is not None) or (
                key == "status" and value is not None
            ):
                value = value.model()
            elif key == "action_pages" and value is not None:
                value = [page.attrs() for page in value]
            elif key == "mtt" and value is not None:
                value = {k: v for k, v in vars(value).items() if v is not None}
                if "cc_contacts" in value:
                    value["cc_contacts"] = [c for c in value["cc_contacts"] if c]
            out[key] = value
        for key in ("start", "end"):
            if key in out and out[key] is not None and not isinstance(out[key], date):
                raise BadArgument("is not a date", field=key)
        return out


async def _campaign_access(ctx: Context, campaign: Campaign, *perms: Permission) -> None:
    allow(await auth_for(ctx, campaign.org_id), *perms)


@strawberry.type
class CampaignQuery:
    @strawberry.field
    async def campaign(
        self, info: Ctx, id: int | None = None, name: str | None = None
    ) -> CampaignInterface | None:
        ctx = info.context
        campaign = await load(ctx.session, Campaign, id=id, name=name)
        return await campaign_view(ctx, campaign)

    @strawberry.field
    async def campaigns(
        self,
        info: Ctx,
        title: str | None = None,
        name: str | None = None,
        id: int | None = None,
    ) -> list[CampaignInterface]:
        ctx = info.context
        found = await repository.list_campaigns(ctx.session, id=id, name=name, title_like=title)
        return await campaign_views(ctx, found)


def _confirm_changed(ctx: Context, attrs: dict[str, Any], org_id: int | None) -> None:
    # whether any campaign of the org asks for supporter confirmation decides a binding of the
    # org's topology (broker/topology.py)
    if "supporter_confirm" in attrs:
        org_changed_after_commit(ctx.pipeline, ctx.after_commit, org_id)


async def _campaign_updated(ctx: Context, campaign: Campaign, lead: Org | None = None) -> None:
    publications = await events.campaign_updated(ctx.session, campaign, lead)
    events.publish_after_commit(ctx.pipeline, ctx.after_commit, publications)


@strawberry.type
class CampaignMutation:
    @strawberry.mutation
    async def add_campaign(
        self, info: Ctx, org_name: str, input: CampaignInput
    ) -> CampaignInterface:
        ctx = info.context
        org = await access_org(ctx.session, org_name)
        allow(await auth_for(ctx, org.id), Permission.MANAGE_CAMPAIGNS)
        attrs = input.attrs()
        campaign = await service.add_campaign(ctx.session, org, attrs)
        _confirm_changed(ctx, attrs, campaign.org_id)
        return await campaign_view(ctx, campaign)

    @strawberry.mutation
    async def upsert_campaign(
        self, info: Ctx, org_name: str, input: CampaignInput
    ) -> CampaignInterface:
        ctx = info.context
        org = await access_org(ctx.session, org_name)
        allow(await auth_for(ctx, org.id), Permission.MANAGE_CAMPAIGNS)
        attrs = input.attrs()
        campaign, pages = await service.upsert_campaign(ctx.session, org, attrs)
        for page in pages:
            page_upserted(ctx.session, ctx.after_commit, page)
        _confirm_changed(ctx, attrs, campaign.org_id)
        await _campaign_updated(ctx, campaign, org)
        return await campaign_view(ctx, campaign)

    @strawberry.mutation
    async def update_campaign(
        self, info: Ctx, input: CampaignInput, id: int | None = None, name: str | None = None
    ) -> CampaignInterface:
        ctx = info.context
        campaign = await load(ctx.session, Campaign, id=id, name=name)
        await _campaign_access(
            ctx, campaign, Permission.MANAGE_CAMPAIGNS, Permission.CHANGE_CAMPAIGN_SETTINGS
        )
        attrs = input.attrs()
        attrs.pop("action_pages", None)
        await service.update_campaign(ctx.session, campaign, attrs)
        _confirm_changed(ctx, attrs, campaign.org_id)
        await _campaign_updated(ctx, campaign)
        return await campaign_view(ctx, campaign)

    @strawberry.mutation
    async def update_campaign_processing(
        self,
        info: Ctx,
        name: str | None = None,
        supporter_confirm: bool | None = UNSET,
        supporter_confirm_template: str | None = UNSET,
        action_confirm: bool | None = UNSET,
    ) -> CampaignInterface:
        ctx = info.context
        campaign = await load(ctx.session, Campaign, name=name)
        await _campaign_access(ctx, campaign, Permission.CHANGE_CAMPAIGN_SETTINGS)
        given = {
            "supporter_confirm": supporter_confirm,
            "supporter_confirm_template": supporter_confirm_template,
            "action_confirm": action_confirm,
        }
        await service.update_campaign(
            ctx.session, campaign, {k: v for k, v in given.items() if v is not strawberry.UNSET}
        )
        org_changed_after_commit(ctx.pipeline, ctx.after_commit, campaign.org_id)
        await _campaign_updated(ctx, campaign)
        return await campaign_view(ctx, campaign)

    @strawberry.mutation
    async def delete_campaign(
        self,
        info: Ctx,
        id: int | None = None,
        name: str | None = None,
        external_id: int | None = None,
    ) -> StatusEnum:
        ctx = info.context
        column, value = one_identifier(id=id, name=name, external_id=external_id)
        campaign = await load(ctx.session, Campaign, **{column: value})
        await _campaign_access(ctx, campaign, Permission.MANAGE_CAMPAIGNS)
        await service.delete_campaign(ctx.session, campaign)
        return StatusEnum.SUCCESS
