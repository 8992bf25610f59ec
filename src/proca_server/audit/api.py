"""GraphQL side of the audit trail: the entries a resolver writes for what its caller read or
changed, and `PrivateOrg.auditLog`, the org's trail for its owners and instance admins.

A mutation's entry goes in the mutation's own transaction (graphql/transactions.py). A read's
entry goes in the document's session too, and is also kept on the context: when a field of
the document fails, the document's writes roll back, and graphql/execute.py writes the read
entries again, since the data was read (and answered) all the same."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from proca_server.audit import repository, service
from proca_server.auth.permissions import Permission
from proca_server.graphql.access import allow, auth_for, require_user
from proca_server.graphql.context import Context
from proca_server.graphql.scalars import DateTime, Json
from proca_server.models import AuditLog

Ctx = Info[Context, None]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def audit_change(
    ctx: Context,
    action: str,
    org_id: int,
    *,
    resource_id: str | int = "",
    count: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """An entry for a change made by the caller, written with the mutation."""
    service.record(
        ctx.session,
        actor=service.user_actor(require_user(ctx).id),
        action=action,
        org_id=org_id,
        resource_id=resource_id,
        count=count,
        details=details,
    )


def audit_read(
    ctx: Context,
    action: str,
    org_id: int,
    *,
    count: int,
    details: Mapping[str, Any] | None = None,
) -> None:
    """An entry for personal data the caller read; kept even when the document fails."""
    entry: dict[str, Any] = {
        "actor": service.user_actor(require_user(ctx).id),
        "action": action,
        "org_id": org_id,
        "count": count,
        "details": dict(details or {}),
    }
    service.record(ctx.session, **entry)
    ctx.audited_reads.append(entry)


@strawberry.type(name="AuditEntry")
class AuditEntryType:
    id: strawberry.ID
    # `user:<id>`, `cli`, `system` or `supporter:<id>`
    actor: str
    action: str
    resource_id: str
    # how many rows were read or changed, when that is known
    count: int | None
    details: Json
    inserted_at: DateTime

    @classmethod
    def of(cls, entry: AuditLog) -> AuditEntryType:
        details = dict(entry.changeset or {})
        count = details.pop("count", None)
        return cls(
            id=strawberry.ID(str(entry.id)),
            actor=entry.actor_id,
            action=entry.resource,
            resource_id=entry.resource_id,
            count=count if isinstance(count, int) else None,
            details=Json(details),
            inserted_at=DateTime(entry.inserted_at),
        )


async def audit_log(
    ctx: Context, org_id: int, since: datetime | None, limit: int | None
) -> list[AuditEntryType]:
    """The org's entries, newest first: for its owners and instance admins only."""
    allow(await auth_for(ctx, org_id), Permission.ORG_OWNER)
    wanted = DEFAULT_LIMIT if limit is None else max(0, min(limit, MAX_LIMIT))
    entries = await repository.list_entries(ctx.session, org_id=org_id, since=since, limit=wanted)
    return [AuditEntryType.of(e) for e in entries]
