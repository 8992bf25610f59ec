"""Erasure never moves a counter: after `deleteContact` and retention runs of both modes, every
campaign's supporter, org, area and action counts are what they were, over the API too, and a
recount of the counters finds nothing to correct (fingerprints, areas and actions stay)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server.audit import service as audit
from proca_server.kit import base64url
from proca_server.models import Contact, Org
from proca_server.models.counter import CounterOrgPerson, CounterPerson
from proca_server.retention.service import erase, list_candidates, plan_run
from proca_server.stats import campaign_stats, compact, reconcile_campaign
from proca_server.user.service import reset_api_token
from tests.factories import make_user
from tests.graphql_helpers import data, gql
from tests.retention.world import NOW, Retention, fp, make_retention_world

STATS = """query($id: Int!) { actionPage(id: $id) { campaign { stats {
    supporterCount supporterCountByArea { area count } supporterCountByOrg { org { name } count }
    actionCount { actionType count } } } } }"""


async def snapshot(
    session: AsyncSession, client: httpx.AsyncClient, world: Retention
) -> dict[str, Any]:
    await session.rollback()  # end the read snapshot, see fresh data
    seen: dict[str, Any] = {}
    for page in (world.old, world.recent, world.live):
        api = data(await gql(client, STATS, {"id": page.id}))["actionPage"]["campaign"]["stats"]
        seen[f"api {page.campaign}"] = api
        seen[f"counts {page.campaign}"] = await campaign_stats(session, page.campaign_id, max_age=0)
    people = select(CounterPerson.campaign_id, CounterPerson.fingerprint, CounterPerson.area)
    seen["people"] = sorted((await session.execute(people)).all())
    org_people = select(
        CounterOrgPerson.campaign_id, CounterOrgPerson.org_id, CounterOrgPerson.fingerprint
    )
    seen["org people"] = sorted((await session.execute(org_people)).all())
    return seen


async def recount(engine: AsyncEngine, world: Retention) -> None:
    """Fold the pending changes, then recount every campaign: nothing to correct."""
    await compact(engine)
    for campaign_id in world.campaign_ids:
        done = await reconcile_campaign(engine, campaign_id)
        assert done is not None
        assert (done.people_fixed, done.org_people_fixed, done.corrections) == (0, 0, {})
    await compact(engine)


async def test_erasure_and_retention_leave_every_count_as_it_was(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    world = await make_retention_world(session)
    owner = await make_user(session, org=await session.get(Org, world.org.id), role="owner")
    token = await reset_api_token(session, owner)
    await session.commit()
    await recount(engine, world)
    before = await snapshot(session, client, world)
    assert before[f"counts {world.old.campaign}"].supporters == 5
    assert before[f"counts {world.live.campaign}"].by_area == {"IT": 1}

    # GDPR erasure of a person of the live campaign and of one of the recent campaign
    for who in ("cat", "dan"):
        done = data(
            await gql(
                client,
                "mutation($o: String!, $r: String!) { deleteContact(orgName: $o, contactRef: $r) }",
                {"o": world.org.name, "r": base64url.encode(fp(who))},
                token=token,
            )
        )
        assert done["deleteContact"] == "SUCCESS"
    assert await snapshot(session, client, world) == before

    # retention in each mode: the org's contacts of ann and bob, then the partner's of bob
    # and fay, with their cleartext
    for org, mode, anonymised in (
        (world.org, "delete_contacts", 0),
        (world.partner, "remove_pii", 2),
    ):
        async with sessionmaker() as s:
            run = await plan_run(s, org.name, months=None, mode=mode, campaign=None, now=NOW)
        report = await erase(
            sessionmaker, run, await list_candidates(sessionmaker, run), actor=audit.CLI
        )
        assert (report.supporters, report.anonymised, report.complete) == (2, anonymised, True)
        assert await snapshot(session, client, world) == before

    await session.rollback()
    assert world.partner.id not in (await session.scalars(select(Contact.org_id))).all()
    await recount(engine, world)
    assert await snapshot(session, client, world) == before
