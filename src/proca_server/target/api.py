"""GraphQL: upsertTargets (docs/mail-to-target.md, "Setting it up")."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from proca_server.auth.permissions import Permission
from proca_server.graphql.access import allow, auth_for, load
from proca_server.graphql.context import Context
from proca_server.graphql.enums import OutdatedTargetsEnum
from proca_server.graphql.scalars import Json
from proca_server.models import Campaign
from proca_server.target import service
from proca_server.target.types import PrivateTarget


@strawberry.input(name="TargetEmailInput")
class TargetEmailInput:
    email: str


@strawberry.input(name="TargetInput")
class TargetInput:
    external_id: str
    name: str | None = None
    area: str | None = None
    fields: Json | None = None
    locale: str | None = None
    emails: list[TargetEmailInput] | None = None

    def attrs(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "emails"}
        out["emails"] = None if self.emails is None else [e.email for e in self.emails]
        return out


@strawberry.type
class TargetMutation:
    @strawberry.mutation
    async def upsert_targets(
        self,
        info: Info[Context, None],
        targets: list[TargetInput],
        campaign_id: int,
        outdated_targets: OutdatedTargetsEnum | None = OutdatedTargetsEnum.KEEP,
    ) -> list[PrivateTarget | None]:
        ctx = info.context
        campaign = await load(ctx.session, Campaign, id=campaign_id)
        allow(await auth_for(ctx, campaign.org_id), Permission.CHANGE_CAMPAIGN_SETTINGS)
        outdated = (outdated_targets or OutdatedTargetsEnum.KEEP).value
        rows = await service.upsert_targets(
            ctx.session, campaign, [t.attrs() for t in targets], outdated
        )
        return [PrivateTarget(target=t) for t in rows]
