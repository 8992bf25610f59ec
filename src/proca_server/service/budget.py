"""The transactional email budget: an org's transactional backend is used while
the emails sent since the last reset, plus the batch, stay within the service's budget;
then emails fall back to the org's ordinary backend."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import utcnow
from proca_server.models.email_budget import TransactionalEmailUsage


async def _ensure_row(session: AsyncSession, org_id: int) -> None:
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(TransactionalEmailUsage)
        .values(org_id=org_id, sent=0, reset_at=utcnow())
        .on_conflict_do_nothing(index_elements=["org_id"])
    )


async def try_consume(session: AsyncSession, org_id: int, budget: int | None, count: int) -> bool:
    """Count `count` emails against the budget if they fit; False when they would not.
    A null budget is unlimited. The check and the increment are one statement, so several
    processes cannot overspend."""
    await _ensure_row(session, org_id)
    query = update(TransactionalEmailUsage).where(TransactionalEmailUsage.org_id == org_id)
    if budget is not None:
        query = query.where(TransactionalEmailUsage.sent + count <= budget)
    result = await session.execute(
        query.values(sent=TransactionalEmailUsage.sent + count).returning(
            TransactionalEmailUsage.sent
        )
    )
    return result.first() is not None


async def used(session: AsyncSession, org_id: int) -> int:
    value = await session.scalar(
        select(TransactionalEmailUsage.sent).where(TransactionalEmailUsage.org_id == org_id)
    )
    return int(value or 0)


async def reset(session: AsyncSession, org_id: int) -> None:
    await _ensure_row(session, org_id)
    await session.execute(
        update(TransactionalEmailUsage)
        .where(TransactionalEmailUsage.org_id == org_id)
        .values(sent=0, reset_at=utcnow())
    )
