"""Campaign counters: deduplicated supporters per campaign, org and area, actions per type,
extra supporters; the write path, the cached read path, compaction and reconciliation."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server import db
from proca_server.config import Settings
from proca_server.models import Action, ActionPage, Campaign, Org, Supporter
from proca_server.models.counter import (
    CounterCampaign,
    CounterDelta,
    CounterKind,
    CounterOrgPerson,
    CounterPerson,
    CounterTotal,
)
from proca_server.models.enums import (
    ActionProcessingStatus,
    CampaignStatus,
    SupporterProcessingStatus,
)
from proca_server.stats import (
    CampaignCounts,
    campaign_stats,
    compact,
    reconcile_campaign,
    reconcile_due,
    record_action,
    record_link,
)
from proca_server.stats.counts import clear_caches
from proca_server.stats.maintenance import background, running
from tests.factories import World, make_org, make_page, make_world
from tests.graphql_helpers import data, gql


def fp(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


async def sign(
    session: AsyncSession,
    page: ActionPage,
    person: str | None,
    *,
    area: str | None = None,
    action_type: str = "petition",
    testing: bool = False,
    commit: bool = True,
) -> Action:
    """What addActionContact does to the tables, with the counters' call (None: an action
    not linked to a supporter yet, as addAction stores it)."""
    supporter = None
    if person is not None:
        supporter = Supporter(
            fingerprint=fp(person),
            campaign_id=page.campaign_id,
            action_page_id=page.id,
            area=area,
        )
        session.add(supporter)
        await session.flush()
    action = Action(
        action_type=action_type,
        campaign_id=page.campaign_id,
        action_page_id=page.id,
        supporter_id=supporter.id if supporter else None,
        ref=fp(person) if person else None,
        testing=testing,
    )
    session.add(action)
    await session.flush()
    await record_action(
        session,
        campaign_id=page.campaign_id,
        org_id=page.org_id,
        action_page_id=page.id,
        action_type=action_type,
        fingerprint=fp(person) if person else None,
        area=area,
        testing=testing,
    )
    if commit:
        await session.commit()
    return action


async def counts(session: AsyncSession, campaign_id: int) -> CampaignCounts:
    return await campaign_stats(session, campaign_id, max_age=0)


@dataclass
class Partnered:
    world: World
    partner: Org
    partner_page: ActionPage


@pytest.fixture
async def partnered(session: AsyncSession) -> Partnered:
    world = await make_world(session)
    partner = await make_org(session)
    partner_page = await make_page(session, world.campaign, partner)
    await session.commit()
    return Partnered(world, partner, partner_page)


@pytest.fixture
async def no_cached_counts() -> AsyncIterator[None]:
    clear_caches()
    yield
    clear_caches()


async def test_the_same_person_twice_counts_once(session: AsyncSession) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann")
    await sign(session, world.page, "ann")
    await sign(session, world.page, "bob")
    got = await counts(session, world.campaign.id)
    assert got.supporters == 2
    assert got.by_org == {world.org.id: 2}
    assert got.by_action_type == {"petition": 3}


async def test_supporters_per_org_and_by_others(
    session: AsyncSession, partnered: Partnered
) -> None:
    lead, partner = partnered.world.org.id, partnered.partner.id
    await sign(session, partnered.world.page, "ann")
    await sign(session, partnered.partner_page, "ann")
    await sign(session, partnered.partner_page, "bob")
    got = await counts(session, partnered.world.campaign.id)
    # ann counts once in the campaign, once for each org she signed with
    assert got.supporters == 2
    assert got.by_org == {lead: 1, partner: 2}
    assert got.supporters_by_others(lead) == 1
    assert got.supporters_by_others(partner) == 0
    assert got.supporters_by_others(None) == 2


async def test_area_follows_the_latest_signature(session: AsyncSession) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann", area="DE")
    await sign(session, world.page, "bob", area="DE")
    assert (await counts(session, world.campaign.id)).by_area == {"DE": 2}
    await sign(session, world.page, "ann", area="FR")
    assert (await counts(session, world.campaign.id)).by_area == {"DE": 1, "FR": 1}
    # a signature without an area keeps the person where they were
    await sign(session, world.page, "ann")
    await sign(session, world.page, "cid")
    got = await counts(session, world.campaign.id)
    assert got.by_area == {"DE": 1, "FR": 1}
    assert got.supporters == 3


async def test_action_counts_per_type_include_unlinked_actions(session: AsyncSession) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann")
    await sign(session, world.page, "ann", action_type="share")
    await sign(session, world.page, None, action_type="share")
    got = await counts(session, world.campaign.id)
    assert got.by_action_type == {"petition": 1, "share": 2}
    assert got.supporters == 1


async def test_a_linked_action_counts_its_person(
    session: AsyncSession, partnered: Partnered
) -> None:
    page = partnered.partner_page
    await sign(session, page, None, action_type="share")
    assert (await counts(session, page.campaign_id)).supporters == 0
    await record_link(
        session, campaign_id=page.campaign_id, org_id=page.org_id, fingerprint=fp("ann"), area="IT"
    )
    await session.commit()
    got = await counts(session, page.campaign_id)
    assert (got.supporters, got.by_org, got.by_area) == (1, {page.org_id: 1}, {"IT": 1})
    assert got.by_action_type == {"share": 1}
    # linking more of ann's actions changes nothing
    await record_link(
        session, campaign_id=page.campaign_id, org_id=page.org_id, fingerprint=fp("ann"), area="IT"
    )
    await session.commit()
    assert await counts(session, page.campaign_id) == got


async def test_testing_actions_are_not_counted(session: AsyncSession) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann", testing=True, area="DE")
    assert await counts(session, world.campaign.id) == CampaignCounts()
    assert await session.scalar(select(func.count()).select_from(CounterDelta)) == 0


async def test_extra_supporters_add_to_the_total_and_their_org(
    session: AsyncSession, partnered: Partnered
) -> None:
    world = partnered.world
    await sign(session, world.page, "ann", area="DE")
    await session.execute(
        update(ActionPage).where(ActionPage.id == world.page.id).values(extra_supporters=100)
    )
    await session.execute(
        update(ActionPage)
        .where(ActionPage.id == partnered.partner_page.id)
        .values(extra_supporters=50)
    )
    await session.commit()
    got = await counts(session, world.campaign.id)
    assert got.supporters == 151
    assert got.by_org == {world.org.id: 101, partnered.partner.id: 50}
    assert got.by_area == {"DE": 1}
    assert got.by_action_type == {"petition": 1}


async def test_campaign_stats_over_the_api(
    client: httpx.AsyncClient, session: AsyncSession, partnered: Partnered
) -> None:
    world = partnered.world
    await sign(session, world.page, "ann", area="DE")
    await sign(session, partnered.partner_page, "bob", area="FR", action_type="share")
    await sign(session, partnered.partner_page, "bob", area="FR")
    await session.execute(
        update(ActionPage).where(ActionPage.id == world.page.id).values(extra_supporters=10)
    )
    await session.commit()
    query = """query($id: Int!, $org: String!) { actionPage(id: $id) { campaign { stats {
        supporterCount supporterCountByOthers(orgName: $org)
        supporterCountByArea { area count } supporterCountByOrg { org { name } count }
        actionCount { actionType count } } } } }"""
    body = data(await gql(client, query, {"id": world.page.id, "org": world.org.name}))
    stats = body["actionPage"]["campaign"]["stats"]
    assert stats == {
        "supporterCount": 12,
        "supporterCountByOthers": 1,
        "supporterCountByArea": [{"area": "DE", "count": 1}, {"area": "FR", "count": 1}],
        "supporterCountByOrg": [
            {"org": {"name": world.org.name}, "count": 11},
            {"org": {"name": partnered.partner.name}, "count": 1},
        ],
        "actionCount": [
            {"actionType": "petition", "count": 2},
            {"actionType": "share", "count": 1},
        ],
    }
    unknown = data(await gql(client, query, {"id": world.page.id, "org": "nobody"}))
    assert unknown["actionPage"]["campaign"]["stats"]["supporterCountByOthers"] == 12


async def test_a_signature_shows_within_one_second_and_cached_reads_skip_the_database(
    session: AsyncSession, engine: AsyncEngine, no_cached_counts: None
) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann")
    assert (await campaign_stats(session, world.campaign.id, max_age=0.5)).supporters == 1
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        for _ in range(50):
            await campaign_stats(session, world.campaign.id, max_age=0.5)
        assert statements == []  # served from the process's cache
        await sign(session, world.page, "bob")
        statements.clear()
        signed_at = time.monotonic()
        while (await campaign_stats(session, world.campaign.id, max_age=0.5)).supporters != 2:
            assert time.monotonic() - signed_at < 1.0, "not visible within one second"
            await asyncio.sleep(0.02)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    # one load for the whole wait (the others shared it or hit the cache)
    assert 1 <= sum("counter_totals" in s for s in statements) <= 2


async def test_reads_load_on_their_own_connection_then_hit_the_cache(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    no_cached_counts: None,
) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann")
    await session.commit()
    campaign_id = world.campaign.id
    # Every pooled connection held by a request that reads a counter: each load must use the
    # connection its request holds (a load wanting another one would wait on the pool forever).
    holders = [sessionmaker() for _ in range(15)]  # the smallest pool here (SQLite) is 5 + 10
    try:
        for s in holders:
            await s.connection()
        got_all = await asyncio.wait_for(
            asyncio.gather(*(campaign_stats(s, campaign_id, max_age=0.5) for s in holders)),
            timeout=20,
        )
    finally:
        for s in holders:
            await s.close()
    assert {c.supporters for c in got_all} == {1}
    loads: list[str] = []

    def seen(*args: Any) -> None:
        if "counter_totals" in args[2]:
            loads.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        got = await asyncio.gather(
            *(campaign_stats(session, world.campaign.id, max_age=0.5) for _ in range(20))
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert {c.supporters for c in got} == {1}
    assert loads == []  # served from the cache the loads above filled


async def test_the_same_person_signing_concurrently_counts_once(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    partnered: Partnered,
) -> None:
    pages = [partnered.world.page, partnered.partner_page]

    async def one(i: int) -> None:
        async with sessionmaker() as s:
            for k in range(3):
                await sign(s, pages[(i + k) % 2], "ann", area="DE" if (i + k) % 3 else "FR")

    await asyncio.gather(*(one(i) for i in range(8)))
    got = await counts(session, partnered.world.campaign.id)
    assert got.supporters == 1
    assert got.by_org == {partnered.world.org.id: 1, partnered.partner.id: 1}
    assert sum(got.by_area.values()) == 1
    assert got.by_action_type == {"petition": 24}
    await reconcile_campaign(engine, partnered.world.campaign.id)
    assert (await counts(session, partnered.world.campaign.id)).supporters == 1


def exact(signatures: list[tuple[ActionPage, str, str | None, str]]) -> CampaignCounts:
    """What the counts must be, computed here from the signatures made."""
    people: dict[str, str | None] = {}
    orgs: dict[int, set[str]] = {}
    types: dict[str, int] = {}
    for page, person, area, action_type in signatures:
        people[person] = area or people.get(person)
        orgs.setdefault(page.org_id, set()).add(person)
        types[action_type] = types.get(action_type, 0) + 1
    areas: dict[str, int] = {}
    for area in people.values():
        if area:
            areas[area] = areas.get(area, 0) + 1
    return CampaignCounts(
        supporters=len(people),
        by_org={o: len(p) for o, p in sorted(orgs.items())},
        by_area=dict(sorted(areas.items())),
        by_action_type=dict(sorted(types.items())),
    )


async def random_signatures(
    session: AsyncSession, pages: list[ActionPage], n: int, seed: int
) -> list[tuple[ActionPage, str, str | None, str]]:
    rng = random.Random(seed)
    made = []
    for _ in range(n):
        page = rng.choice(pages)
        person = f"p{rng.randrange(n // 2)}"
        area = rng.choice(["DE", "FR", "IT", None])
        action_type = rng.choice(["petition", "share"])
        await sign(session, page, person, area=area, action_type=action_type, commit=False)
        made.append((page, person, area, action_type))
    await session.commit()
    return made


async def test_compaction_keeps_the_counts_and_empties_the_deltas(
    session: AsyncSession, partnered: Partnered, engine: AsyncEngine
) -> None:
    pages = [partnered.world.page, partnered.partner_page]
    campaign_id = partnered.world.campaign.id
    made = await random_signatures(session, pages, 80, seed=1)
    before = await counts(session, campaign_id)
    assert before == exact(made)
    assert await compact(engine) > 0
    assert await session.scalar(select(func.count()).select_from(CounterDelta)) == 0
    assert await counts(session, campaign_id) == before
    made += await random_signatures(session, pages, 40, seed=2)
    assert await compact(engine) > 0
    assert await compact(engine) == 0
    assert await counts(session, campaign_id) == exact(made)
    # and a reconciliation finds nothing to correct
    outcome = await reconcile_campaign(engine, campaign_id)
    assert outcome is not None
    assert (outcome.people_fixed, outcome.org_people_fixed, outcome.corrections) == (0, 0, {})


async def test_compaction_in_small_batches(
    session: AsyncSession, engine: AsyncEngine, backend: str
) -> None:
    world = await make_world(session)
    made = await random_signatures(session, [world.page], 30, seed=3)
    await compact(engine, batch=7)
    assert await session.scalar(select(func.count()).select_from(CounterDelta)) == 0
    assert await counts(session, world.campaign.id) == exact(made)
    changed = await session.scalar(
        select(CounterCampaign.changed_at).where(CounterCampaign.campaign_id == world.campaign.id)
    )
    assert changed is not None


async def test_reconciliation_fixes_a_corrupted_total(
    session: AsyncSession, engine: AsyncEngine, partnered: Partnered
) -> None:
    campaign_id = partnered.world.campaign.id
    made = await random_signatures(
        session, [partnered.world.page, partnered.partner_page], 40, seed=4
    )
    await compact(engine)
    await session.execute(
        update(CounterTotal)
        .where(CounterTotal.campaign_id == campaign_id, CounterTotal.kind == CounterKind.SUPPORTERS)
        .values(count=999)
    )
    await session.execute(
        update(CounterTotal)
        .where(CounterTotal.campaign_id == campaign_id, CounterTotal.kind == CounterKind.ACTIONS)
        .values(count=CounterTotal.count + 5)
    )
    await session.commit()
    assert (await counts(session, campaign_id)).supporters == 999
    outcome = await reconcile_campaign(engine, campaign_id)
    assert outcome is not None and outcome.corrections
    assert await counts(session, campaign_id) == exact(made)
    await compact(engine)
    assert await counts(session, campaign_id) == exact(made)


async def test_reconciliation_restores_a_lost_dedupe_key(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann", area="DE")
    await session.execute(delete(CounterPerson))
    await session.execute(delete(CounterOrgPerson))
    await session.commit()
    await reconcile_campaign(engine, world.campaign.id)
    assert await session.scalar(select(func.count()).select_from(CounterPerson)) == 1
    await sign(session, world.page, "ann")  # known again: not counted twice
    got = await counts(session, world.campaign.id)
    assert (got.supporters, got.by_org, got.by_area) == (1, {world.org.id: 1}, {"DE": 1})


async def test_reconciliation_drops_rejected_supporters_who_count_again_when_they_sign(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_world(session)
    await sign(session, world.page, "ann", area="DE")
    rejected = await sign(session, world.page, "bob", area="FR")
    await session.execute(
        update(Supporter)
        .where(Supporter.id == rejected.supporter_id)
        .values(processing_status=SupporterProcessingStatus.REJECTED)
    )
    await session.execute(
        update(Action)
        .where(Action.id == rejected.id)
        .values(processing_status=ActionProcessingStatus.REJECTED)
    )
    await session.commit()
    assert (await counts(session, world.campaign.id)).supporters == 2  # until reconciled
    await reconcile_campaign(engine, world.campaign.id)
    got = await counts(session, world.campaign.id)
    assert (got.supporters, got.by_area, got.by_action_type) == (1, {"DE": 1}, {"petition": 1})
    await sign(session, world.page, "bob", area="FR")  # a new, genuine signature
    got = await counts(session, world.campaign.id)
    assert (got.supporters, got.by_org, got.by_area) == (
        2,
        {world.org.id: 2},
        {"DE": 1, "FR": 1},
    )


async def test_reconciliation_counts_rows_written_without_the_counters(
    session: AsyncSession, engine: AsyncEngine, partnered: Partnered
) -> None:
    """A database taken over from the original server has supporters but no counters."""
    page, partner_page = partnered.world.page, partnered.partner_page
    for i, (where, person, area) in enumerate(
        [(page, "ann", "DE"), (partner_page, "ann", "FR"), (page, "bob", None), (page, "bob", "IT")]
    ):
        supporter = Supporter(
            fingerprint=fp(person), campaign_id=page.campaign_id, action_page_id=where.id, area=area
        )
        session.add(supporter)
        await session.flush()
        session.add(
            Action(
                action_type="petition" if i else "share",
                campaign_id=page.campaign_id,
                action_page_id=where.id,
                supporter_id=supporter.id,
            )
        )
    session.add(Action(action_type="share", campaign_id=page.campaign_id, action_page_id=page.id))
    session.add(
        Action(
            action_type="share", campaign_id=page.campaign_id, action_page_id=page.id, testing=True
        )
    )
    await session.commit()
    assert await counts(session, page.campaign_id) == CampaignCounts()
    await reconcile_campaign(engine, page.campaign_id)
    got = await counts(session, page.campaign_id)
    assert got.supporters == 2
    assert got.by_org == {page.org_id: 2, partner_page.org_id: 1}
    assert got.by_area == {"FR": 1, "IT": 1}  # each person's newest area
    assert got.by_action_type == {"petition": 3, "share": 2}


async def test_reconcile_due_picks_new_live_and_changed_campaigns(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_world(session)
    closed = world.campaign
    await session.execute(
        update(Campaign).where(Campaign.id == closed.id).values(status=CampaignStatus.CLOSED)
    )
    live = await make_world(session)
    await session.commit()
    assert set(await reconcile_due(engine, 3600)) == {closed.id, live.campaign.id}
    assert await reconcile_due(engine, 3600) == []
    # a long interval later: the live campaign is due, the closed one only once it changed
    assert await reconcile_due(engine, 0) == [live.campaign.id]
    await sign(session, world.page, "ann")
    await compact(engine)
    assert set(await reconcile_due(engine, 0)) == {closed.id, live.campaign.id}


async def test_two_processes_read_the_same_counts(
    session: AsyncSession,
    engine: AsyncEngine,
    settings: Settings,
    partnered: Partnered,
    no_cached_counts: None,
) -> None:
    other = db.create_engine(settings)
    other_sessions = db.create_sessionmaker(other)
    try:
        campaign_id = partnered.world.campaign.id
        async with other_sessions() as elsewhere:
            await sign(elsewhere, partnered.partner_page, "ann", area="DE")
        await sign(session, partnered.world.page, "ann", area="FR")
        await sign(session, partnered.world.page, "bob")
        async with other_sessions() as elsewhere:
            theirs = await campaign_stats(elsewhere, campaign_id, max_age=0.5)
        ours = await campaign_stats(session, campaign_id, max_age=0.5)
        assert theirs == ours
        assert (ours.supporters, ours.by_area) == (2, {"FR": 1})
        # both compact at once: one folds, nothing is counted twice
        await asyncio.gather(compact(other), compact(engine))
        async with other_sessions() as elsewhere:
            assert await counts(elsewhere, campaign_id) == ours
    finally:
        await other.dispose()


async def test_signatures_during_compaction_and_reconciliation_are_kept(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    partnered: Partnered,
) -> None:
    pages = [partnered.world.page, partnered.partner_page]
    campaign_id = partnered.world.campaign.id
    made: list[tuple[ActionPage, str, str | None, str]] = []
    stop = asyncio.Event()

    async def signer(k: int) -> None:
        rng = random.Random(k)
        async with sessionmaker() as s:
            for _ in range(25):
                page, person = rng.choice(pages), f"p{rng.randrange(15)}"
                area = rng.choice(["DE", "FR", None])
                await sign(s, page, person, area=area)
                made.append((page, person, area, "petition"))

    async def maintainer() -> None:
        while not stop.is_set():
            await compact(engine)
            await reconcile_campaign(engine, campaign_id)
            await asyncio.sleep(0.01)

    background = asyncio.create_task(maintainer())
    await asyncio.gather(*(signer(k) for k in range(4)))
    stop.set()
    await background
    got = await counts(session, campaign_id)
    want = exact(made)
    # concurrent signatures of one person may leave their area to the next reconciliation
    assert (got.supporters, got.by_org, got.by_action_type) == (
        want.supporters,
        want.by_org,
        want.by_action_type,
    )
    await reconcile_campaign(engine, campaign_id)
    await compact(engine)
    assert (await counts(session, campaign_id)).supporters == want.supporters
    assert sum((await counts(session, campaign_id)).by_area.values()) == sum(want.by_area.values())


async def test_the_background_tasks_compact_and_reconcile(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_world(session)
    campaign_id = world.campaign.id
    async with running(engine, compact_every=0.05, reconcile_every=0.1, first_reconcile_after=0):
        await sign(session, world.page, "ann")
        deadline = time.monotonic() + 5
        while True:
            pending = await session.scalar(select(func.count()).select_from(CounterDelta))
            reconciled = await session.scalar(
                select(CounterCampaign.reconciled_at).where(
                    CounterCampaign.campaign_id == campaign_id
                )
            )
            await session.rollback()
            if pending == 0 and reconciled is not None:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    assert (await counts(session, campaign_id)).supporters == 1


async def test_the_background_tasks_can_be_turned_off(engine: AsyncEngine) -> None:
    before = len(asyncio.all_tasks())
    async with background(engine, Settings(STATS_BACKGROUND="false")):
        assert len(asyncio.all_tasks()) == before
    async with background(engine, Settings(STATS_COMPACT_MS="50", SYNC_INTERVAL="0")):
        assert len(asyncio.all_tasks()) == before + 1  # the compactor only


def test_cache_settings() -> None:
    assert Settings(PROCA_ENV="dev").stats_cache_ttl == 0.5
    assert Settings(PROCA_ENV="test").stats_cache_ttl == 0
    assert Settings(PROCA_ENV="test", STATS_CACHE_MS="250").stats_cache_ttl == 0.25
    assert Settings(STATS_CACHE_MS="").stats_cache_ttl == 0.5
    off = Settings(STATS_BACKGROUND="false", SYNC_INTERVAL="0")
    assert (off.stats_background, off.sync_interval) == (False, 0)


def test_the_statuses_the_counting_sql_relies_on() -> None:
    # the SQL of stats/ writes these values literally
    assert ActionProcessingStatus.REJECTED == SupporterProcessingStatus.REJECTED == 2
    assert CampaignStatus.LIVE == 1
    assert [int(k) for k in CounterKind] == [0, 1, 2, 3]


async def test_the_full_join_diffs_find_what_the_portable_ones_find(
    session: AsyncSession, engine: AsyncEngine, partnered: Partnered
) -> None:
    """PostgreSQL reconciles with full joins (no pairwise nested loop when its statistics
    are behind a growing campaign); they must find the same differences as the portable
    statements: people to add, to move to another area and to drop, org people to add and
    to drop."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the full-join diffs are PostgreSQL's")
    from proca_server.stats import maintenance

    page, partner_page = partnered.world.page, partnered.partner_page
    for person, area in (("ann", "DE"), ("bob", "FR"), ("cid", None), ("dee", "IT")):
        await sign(session, page, person, area=area)
    await sign(session, partner_page, "bob", area="FR")
    campaign_id = page.campaign_id
    await session.execute(delete(CounterPerson).where(CounterPerson.fingerprint == fp("ann")))
    await session.execute(
        update(CounterPerson).where(CounterPerson.fingerprint == fp("bob")).values(area="PL")
    )
    await session.execute(
        update(CounterPerson).where(CounterPerson.fingerprint == fp("cid")).values(area="ES")
    )
    session.add(CounterPerson(campaign_id=campaign_id, fingerprint=fp("eve"), area="SE", seen=1))
    await session.execute(
        delete(CounterOrgPerson).where(
            CounterOrgPerson.org_id == partner_page.org_id,
            CounterOrgPerson.fingerprint == fp("bob"),
        )
    )
    session.add(
        CounterOrgPerson(campaign_id=campaign_id, org_id=page.org_id, fingerprint=fp("eve"))
    )
    await session.commit()
    key = {"campaign_id": campaign_id}
    async with engine.connect() as conn:
        found = {}
        for name in ("_PEOPLE_DIFF", "_PEOPLE_DIFF_PG", "_ORG_DIFF", "_ORG_DIFF_PG"):
            rows = (await conn.execute(getattr(maintenance, name), key)).all()
            found[name] = sorted(
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows
            )
    assert found["_PEOPLE_DIFF_PG"] == found["_PEOPLE_DIFF"]
    assert found["_ORG_DIFF_PG"] == found["_ORG_DIFF"]
    people = {
        (fingerprint, counted, area) for fingerprint, counted, area, *_ in found["_PEOPLE_DIFF"]
    }
    assert people == {
        (fp("ann"), 1, "DE"),  # to add
        (fp("bob"), 1, "FR"),  # to move back
        (fp("cid"), 1, None),  # to move to no area
        (fp("eve"), 0, None),  # to drop
    }
    assert {(org, f, c) for org, f, c in found["_ORG_DIFF"]} == {
        (partner_page.org_id, fp("bob"), 1),
        (page.org_id, fp("eve"), 0),
    }
