"""SQL of the audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import AuditLog, Org

# resources that are not audit entries of staff or supporters (signature metadata)
NOT_ENTRIES = ("captcha_actions",)


async def list_entries(
    session: AsyncSession,
    *,
    org_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> Sequence[AuditLog]:
    """Newest first."""
    query = select(AuditLog).where(AuditLog.resource.not_in(NOT_ENTRIES))
    if org_id is not None:
        query = query.where(AuditLog.org_id == org_id)
    if since is not None:
        query = query.where(AuditLog.inserted_at >= since)
    query = query.order_by(AuditLog.inserted_at.desc(), AuditLog.id).limit(limit)
    return (await session.scalars(query)).all()


async def org_names(session: AsyncSession, org_ids: Iterable[int]) -> dict[int, str]:
    """The names of the orgs that still exist among `org_ids`."""
    wanted = set(org_ids)
    if not wanted:
        return {}
    rows = await session.execute(select(Org.id, Org.name).where(Org.id.in_(wanted)))
    return {org_id: name for org_id, name in rows.tuples()}
