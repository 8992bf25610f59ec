"""GraphQL types of campaigns: the public and private views, partnerships, MTT. The
interface and who sees which view: campaign/interface.py."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from proca_server.action_page.interface import ActionPageInterface, page_views
from proca_server.action_page.types import PrivateActionPage
from proca_server.campaign.interface import (
    CampaignInterface,
    CustomFieldType,
    campaign_view,
    campaign_views,
)
from proca_server.confirm.types import ConfirmType
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import DateTime
from proca_server.models import ActionPage
from proca_server.org.interface import OrgInterface, org_views, orgs_of
from proca_server.user.api import UserType

Ctx = Info[Context, None]


@strawberry.type(name="CampaignMtt")
class CampaignMttType:
    start_at: DateTime
    end_at: DateTime
    message_template: str | None
    test_email: str | None
    cc_contacts: list[str | None] | None
    cc_sender: bool | None
    drip_delivery: bool | None


@strawberry.type(name="Partnership")
class Partnership:
    org: OrgInterface
    action_pages: list[ActionPageInterface]
    launch_requests: list[ConfirmType]
    launch_requesters: list[UserType]


@strawberry.type(name="PublicCampaign")
class PublicCampaign(CampaignInterface):
    pass


@strawberry.type(name="PrivateCampaign")
class PrivateCampaign(CampaignInterface):
    @strawberry.field
    def force_delivery(self) -> bool:
        return self.campaign.force_delivery

    @strawberry.field
    async def action_pages(self, info: Ctx) -> list[PrivateActionPage]:
        pages = await info.context.loaders.campaign_pages.load(self.campaign.id)
        return [PrivateActionPage.of(p) for p in pages]

    @strawberry.field
    async def mtt(self, info: Ctx) -> CampaignMttType | None:
        mtt = await info.context.loaders.campaign_mtt.load(self.campaign.id)
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
        """The partner orgs' pages in the campaign, by org, with their launch requests."""
        ctx = info.context
        loaders = ctx.loaders
        by_org: dict[int, list[ActionPage]] = {}
        for page in await loaders.campaign_pages.load(self.campaign.id):
            if page.org_id != self.campaign.org_id:
                by_org.setdefault(page.org_id, []).append(page)
        if not by_org:
            return []
        requests = await loaders.launch_requests.load(self.campaign.id)
        orgs = await orgs_of(ctx, list(by_org))
        org_answers = await org_views(ctx, orgs)
        partner_pages = [page for pages in by_org.values() for page in pages]
        page_answers = dict(zip(partner_pages, await page_views(ctx, partner_pages), strict=True))
        creator_ids = sorted({c.creator_id for c in requests if c.creator_id})
        creators = {u.id: u for u in await loaders.user.load_many(creator_ids) if u is not None}
        out = []
        for org, org_answer in zip(orgs, org_answers, strict=True):
            org_pages = by_org[org.id]
            page_ids = {p.id for p in org_pages}
            confirms = [c for c in requests if c.object_id in page_ids]
            requesters = sorted({c.creator_id for c in confirms if c.creator_id})
            out.append(
                Partnership(
                    org=org_answer,
                    action_pages=[page_answers[p] for p in org_pages],
                    launch_requests=[ConfirmType.of(c) for c in confirms],
                    launch_requesters=[
                        UserType.from_model(creators[i]) for i in requesters if i in creators
                    ],
                )
            )
        return out


__all__ = [
    "CampaignInterface",
    "CampaignMttType",
    "CustomFieldType",
    "Partnership",
    "PrivateCampaign",
    "PublicCampaign",
    "campaign_view",
    "campaign_views",
]
