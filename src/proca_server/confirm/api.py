"""GraphQL: accepting and rejecting confirms, and inviting users to an org."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from proca_server.action_page.interface import ActionPageInterface, page_view
from proca_server.auth.permissions import Permission
from proca_server.campaign.interface import CampaignInterface, campaign_view
from proca_server.confirm import service
from proca_server.confirm.service import Acceptor, ConfirmOutcome, Notify, Verb
from proca_server.confirm.types import ConfirmType
from proca_server.graphql.access import allow, allow_staffer, auth_for, require_user
from proca_server.graphql.context import Context
from proca_server.graphql.enums import StatusEnum
from proca_server.org.api import OrgUserInput
from proca_server.org.interface import OrgInterface, org_view
from proca_server.org.service import access_org, assignable_role

Ctx = Info[Context, None]


@strawberry.input(name="ConfirmInput")
class ConfirmInput:
    code: str
    email: str | None = None
    object_id: int | None = None


@strawberry.type(name="ConfirmResult")
class ConfirmResult:
    status: StatusEnum
    action_page: ActionPageInterface | None = None
    campaign: CampaignInterface | None = None
    org: OrgInterface | None = None
    message: str | None = None


async def _result(ctx: Context, outcome: ConfirmOutcome) -> ConfirmResult:
    return ConfirmResult(
        status=StatusEnum(outcome.status),
        action_page=await page_view(ctx, outcome.action_page) if outcome.action_page else None,
        campaign=await campaign_view(ctx, outcome.campaign) if outcome.campaign else None,
        org=await org_view(ctx, outcome.org) if outcome.org else None,
        message=outcome.message,
    )


async def _run(
    ctx: Context, verb: Verb, confirm: ConfirmInput, acceptor: Acceptor
) -> ConfirmResult:
    outcome = await service.run_confirm(
        ctx.session,
        ctx.after_commit,
        ctx.pipeline,
        verb,
        confirm.code,
        email=confirm.email,
        object_id=confirm.object_id,
        acceptor=acceptor,
    )
    # memberships may have changed (add_staffer): forget the ones looked up so far
    ctx.staffers.clear()
    return await _result(ctx, outcome)


async def _org_acceptor(ctx: Context, name: str) -> Acceptor:
    org = await access_org(ctx.session, name)
    auth = allow_staffer(await auth_for(ctx, org.id))
    return Acceptor(auth.user, auth.staffer)


@strawberry.type
class ConfirmMutation:
    @strawberry.mutation
    async def accept_org_confirm(
        self, info: Ctx, name: str, confirm: ConfirmInput
    ) -> ConfirmResult:
        ctx = info.context
        return await _run(ctx, Verb.ACCEPT, confirm, await _org_acceptor(ctx, name))

    @strawberry.mutation
    async def reject_org_confirm(
        self, info: Ctx, name: str, confirm: ConfirmInput
    ) -> ConfirmResult:
        ctx = info.context
        return await _run(ctx, Verb.REJECT, confirm, await _org_acceptor(ctx, name))

    @strawberry.mutation
    async def accept_user_confirm(self, info: Ctx, confirm: ConfirmInput) -> ConfirmResult:
        ctx = info.context
        return await _run(ctx, Verb.ACCEPT, confirm, Acceptor(require_user(ctx)))

    @strawberry.mutation
    async def reject_user_confirm(self, info: Ctx, confirm: ConfirmInput) -> ConfirmResult:
        ctx = info.context
        return await _run(ctx, Verb.REJECT, confirm, Acceptor(require_user(ctx)))

    @strawberry.mutation
    async def invite_org_user(
        self, info: Ctx, org_name: str, input: OrgUserInput, message: str | None = None
    ) -> ConfirmType:
        ctx = info.context
        org = await access_org(ctx.session, org_name)
        auth = allow(await auth_for(ctx, org.id), Permission.CHANGE_ORG_USERS)
        bits = assignable_role(auth.perms, auth.staffer, input.role)
        notify = Notify(ctx.settings, ctx.after_commit, ctx.pipeline)
        confirm = await service.invite_staffer(
            ctx.session, notify, org, auth.user, input.email, bits, message
        )
        return ConfirmType.of(confirm)
