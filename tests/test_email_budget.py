from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.service import budget
from tests.factories import make_world
from tests.graphql_helpers import data, gql


async def test_budget_is_spent_atomically_and_reset(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    org_id = world.org.id
    assert await budget.try_consume(session, org_id, 5, 3)
    assert not await budget.try_consume(session, org_id, 5, 3)  # 6 > 5: refused, not counted
    assert await budget.try_consume(session, org_id, 5, 2)
    assert await budget.used(session, org_id) == 5
    assert await budget.try_consume(session, org_id, None, 100)  # no budget: unlimited
    await session.commit()

    done = data(
        await gql(
            client,
            "mutation($o: String!) { resetTransactionalEmailBudget(orgName: $o) }",
            {"o": world.org.name},
            token=world.tokens["owner"],
        )
    )
    assert done["resetTransactionalEmailBudget"] == "SUCCESS"
    await session.rollback()
    assert await budget.used(session, org_id) == 0
