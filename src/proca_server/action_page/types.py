"""GraphQL types of action pages (widgets): the public and private views. The interface and
who sees which view: action_page/interface.py."""

from __future__ import annotations

import calendar
from datetime import timedelta

import strawberry
from strawberry.types import Info

from proca_server.action_page.interface import ActionPageInterface, page_view, page_views
from proca_server.graphql.context import Context
from proca_server.graphql.enums import ActionPageStatusEnum
from proca_server.kit.time import utcnow

Ctx = Info[Context, None]


@strawberry.type(name="PublicActionPage")
class PublicActionPage(ActionPageInterface):
    pass


@strawberry.type(name="PrivateActionPage")
class PrivateActionPage(ActionPageInterface):
    @strawberry.field
    def extra_supporters(self) -> int:
        return self.page.extra_supporters

    @strawberry.field
    def delivery(self) -> bool:
        return self.page.delivery

    @strawberry.field
    def supporter_confirm_template(self) -> str | None:
        return self.page.supporter_confirm_template

    @strawberry.field
    def duplicate_template(self) -> str | None:
        return self.page.duplicate_template

    @strawberry.field
    async def location(self, info: Ctx) -> str | None:
        return await info.context.loaders.page_location.load(self.page.id)

    @strawberry.field
    async def status(self, info: Ctx) -> ActionPageStatusEnum | None:
        now = utcnow()
        last = await info.context.loaders.page_last_action_at.load(self.page.id)
        if last is None or now - last > timedelta(days=365):
            return ActionPageStatusEnum.STANDBY
        days_in_month = calendar.monthrange(now.year, now.month)[1]
        if now - last <= timedelta(hours=24 * days_in_month):
            return ActionPageStatusEnum.ACTIVE
        return ActionPageStatusEnum.STALLED


__all__ = [
    "ActionPageInterface",
    "PrivateActionPage",
    "PublicActionPage",
    "page_view",
    "page_views",
]
