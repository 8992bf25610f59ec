from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Org
from tests.factories import make_org


async def test_a_savepoint_does_not_commit_the_outer_transaction(session: AsyncSession) -> None:
    async with session.begin_nested():
        await make_org(session, "inner")
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Org)) == 0


async def test_a_rolled_back_savepoint_keeps_the_outer_work(session: AsyncSession) -> None:
    await make_org(session, "outer")
    try:
        async with session.begin_nested():
            await make_org(session, "inner")
            raise RuntimeError("undo inner")
    except RuntimeError:
        pass
    await session.commit()
    names = (await session.execute(select(Org.name))).scalars().all()
    assert names == ["outer"]
