"""GraphQL: the export queries (docs/export.md) and GDPR erasure."""

from __future__ import annotations

from time import perf_counter

import strawberry
from strawberry.types import Info

from proca_server.action import export
from proca_server.action.types import ActionType, action_view, load_batch, selected_names
from proca_server.audit.api import audit_change, audit_read
from proca_server.auth.permissions import Permission
from proca_server.errors import BadArgument
from proca_server.graphql.access import allow, auth_for
from proca_server.graphql.context import Context
from proca_server.graphql.enums import StatusEnum
from proca_server.graphql.scalars import DateTime
from proca_server.kit import base64url
from proca_server.metrics import EXPORT_ACTIONS_COUNT, EXPORT_ACTIONS_TIME
from proca_server.org.service import access_org
from proca_server.supporter.fingerprint import email_fingerprint

Ctx = Info[Context, None]


async def _export(
    info: Ctx, org_name: str, criteria: export.ExportFilter, *, metered: bool = False
) -> list[ActionType | None]:
    """`metered`: an exportActions (or actions) call, counted in proca_export_actions and
    timed in proca_export_actions_seconds (up to the rows; their fields resolve after)."""
    started = perf_counter()
    ctx = info.context
    org = await access_org(ctx.session, org_name)
    allow(await auth_for(ctx, org.id), Permission.EXPORT_CONTACTS)
    rows = await export.export_actions(ctx.session, org, criteria)
    audit_read(ctx, info.field_name, org.id, count=len(rows), details=_audit_details(criteria))
    if metered:
        EXPORT_ACTIONS_COUNT.labels(org_id=str(org.id)).inc(len(rows))
        EXPORT_ACTIONS_TIME.labels(org_id=str(org.id)).observe(perf_counter() - started)
    selected = selected_names(info.selected_fields[0].selections) if info.selected_fields else set()
    batch = await load_batch(ctx, rows, selected)
    return [action_view(row, batch, selected) for row in rows]


def _audit_details(criteria: export.ExportFilter) -> dict[str, object]:
    # the parameters of the read, never who was looked up (an email lookup is only flagged)
    details: dict[str, object] = {
        "campaignName": criteria.campaign_name,
        "campaignId": criteria.campaign_id,
        "start": criteria.start,
        "after": criteria.after.isoformat() if criteria.after else None,
        "limit": criteria.limit,
        "onlyOptIn": criteria.only_opt_in,
        "onlyDoubleOptIn": criteria.only_double_opt_in,
        "includeTesting": criteria.include_testing,
    }
    if criteria.fingerprint is not None:
        details["byEmail"] = True
    return {k: v for k, v in details.items() if v is not None}


def _criteria(
    campaign_name: str | None,
    campaign_id: int | None,
    start: int | None,
    after: DateTime | None,
    limit: int | None,
    only_opt_in: bool | None,
    only_double_opt_in: bool | None,
    include_testing: bool | None,
    **extra: object,
) -> export.ExportFilter:
    return export.ExportFilter(
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        start=start,
        after=after,
        limit=limit,
        only_opt_in=True if only_opt_in is None else only_opt_in,
        only_double_opt_in=bool(only_double_opt_in),
        include_testing=bool(include_testing),
        **extra,  # type: ignore[arg-type]
    )


async def _actions(
    info: Ctx,
    org_name: str,
    campaign_name: str | None = None,
    campaign_id: int | None = None,
    start: int | None = None,
    after: DateTime | None = None,
    limit: int | None = None,
    only_opt_in: bool | None = None,
    only_double_opt_in: bool | None = None,
    include_testing: bool | None = None,
) -> list[ActionType | None]:
    criteria = _criteria(
        campaign_name,
        campaign_id,
        start,
        after,
        limit,
        only_opt_in,
        only_double_opt_in,
        include_testing,
    )
    return await _export(info, org_name, criteria, metered=True)


@strawberry.type
class ActionQuery:
    # exportActions is the deprecated name of the same query
    actions: list[ActionType | None] = strawberry.field(resolver=_actions)
    export_actions: list[ActionType | None] = strawberry.field(
        resolver=_actions, deprecation_reason="use actions"
    )

    @strawberry.field
    async def contacts(
        self,
        info: Ctx,
        org_name: str,
        campaign_name: str | None = None,
        campaign_id: int | None = None,
        start: int | None = None,
        after: DateTime | None = None,
        limit: int | None = None,
        only_opt_in: bool | None = None,
        only_double_opt_in: bool | None = None,
        include_testing: bool | None = None,
        email: str | None = None,
    ) -> list[ActionType | None]:
        fingerprint = None
        if email is not None and email.strip():
            fingerprint = email_fingerprint(info.context.settings.fingerprint_seed, email)
        return await _export(
            info,
            org_name,
            _criteria(
                campaign_name,
                campaign_id,
                start,
                after,
                limit,
                only_opt_in,
                only_double_opt_in,
                include_testing,
                with_consent_only=True,
                fingerprint=fingerprint,
            ),
        )


@strawberry.type
class ActionMutation:
    @strawberry.mutation
    async def delete_contact(self, info: Ctx, org_name: str, contact_ref: str) -> StatusEnum:
        ctx = info.context
        org = await access_org(ctx.session, org_name)
        allow(await auth_for(ctx, org.id), Permission.DELETE_CONTACTS)
        try:
            fingerprint = base64url.decode(contact_ref)
        except ValueError as exc:
            raise BadArgument("Cannot decode from Base64url", field="contactRef") from exc
        deleted = await export.delete_contact(ctx.session, org, fingerprint)
        audit_change(ctx, "deleteContact", org.id, count=deleted)
        return StatusEnum.SUCCESS
