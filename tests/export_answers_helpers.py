"""What the export tests share: the document selecting every field of an action, an owner's
API token, signatures processed, and the statements a block of code runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.models import Org
from proca_server.user.service import reset_api_token
from tests.factories import make_user
from tests.processing.helpers import Site, action_ids, process, sign

EVERYTHING = """
actionId actionType createdAt customFields fields { key value }
contact { contactRef dupeRank payload nonce publicKey { id public } signKey { id public } }
privacy { optIn givenAt emailStatus emailStatusChanged withConsent }
tracking { source medium campaign content }
donation { schema amount currency payload frequencyUnit }
campaign { name } actionPage { name }
"""
EXPORT = (
    "query($o: String!, $start: Int) { exportActions(orgName: $o, start: $start) { "
    + EVERYTHING
    + " } }"
)


async def owner_token(session: AsyncSession, org_id: int) -> str:
    org = await session.get(Org, org_id)
    assert org is not None
    token = await reset_api_token(session, await make_user(session, org=org, role="owner"))
    await session.commit()
    return token


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def signed(client: httpx.AsyncClient, session: AsyncSession, site: Site, n: int) -> None:
    before = len(await action_ids(session))
    for i in range(n):
        await sign(client, site.page_id, f"p{before + i}@example.org")
    await process(session, (await action_ids(session))[before:])
