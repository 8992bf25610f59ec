"""The campaign counters in process, against PostgreSQL: what `record_action` adds to a
signature's transaction, how fast `campaign_stats` answers, what compaction and
reconciliation cost. Prints numbers; nothing here passes or fails.

Creates a fresh database on the server of --pg-url (migrated, seeded with a campaign and two
pages of two orgs) and drops it afterwards (unless --keep-db).

Write runs (--clients concurrent sessions for --seconds each; 10% of the signatures are a
repeat of an earlier person, areas among 20):
- rows: a supporter and an action inserted, then commit (a signature's core rows);
- rows+counters: the same plus `record_action` (one statement on PostgreSQL);
- rows+hot-row: the same as rows plus an update of one shared row (the pattern avoided);
- counters only: `record_action` alone in a transaction.

    .venv/bin/python bench/counters.py [--clients 16] [--seconds 5] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server import db
from proca_server.config import Settings
from proca_server.migrations.migrate import upgrade
from proca_server.models import Action, ActionPage, Campaign, Org, Supporter
from proca_server.models.counter import CounterDelta
from proca_server.stats import (
    campaign_stats,
    compact,
    reconcile_campaign,
    record_action,
)

AREAS = [f"A{i:02d}" for i in range(20)]


class World:
    def __init__(self, campaign_id: int, pages: list[tuple[int, int]]) -> None:
        self.campaign_id = campaign_id
        self.pages = pages  # (page id, org id)
        self.people: list[bytes] = []


async def seed(sessions: async_sessionmaker[AsyncSession], name: str = "bench") -> World:
    async with db.transaction(sessions) as session:
        orgs = [Org(name=f"{name}{i}", title=f"Bench {i}") for i in range(2)]
        session.add_all(orgs)
        await session.flush()
        campaign = Campaign(name=name, title="Bench", org_id=orgs[0].id)
        session.add(campaign)
        await session.flush()
        pages = [
            ActionPage(name=f"{name}/{i}", locale="en", campaign_id=campaign.id, org_id=o.id)
            for i, o in enumerate(orgs)
        ]
        session.add_all(pages)
        await session.flush()
        return World(campaign.id, [(p.id, p.org_id) for p in pages])


def person(world: World, rng: random.Random) -> bytes:
    if world.people and rng.random() < 0.1:
        return rng.choice(world.people)
    fingerprint = rng.randbytes(32)
    world.people.append(fingerprint)
    return fingerprint


async def signature_rows(
    session: AsyncSession, world: World, page: tuple[int, int], fingerprint: bytes, area: str
) -> None:
    supporter_id = await session.scalar(
        insert(Supporter)
        .values(
            fingerprint=fingerprint,
            campaign_id=world.campaign_id,
            action_page_id=page[0],
            area=area,
            first_name="Ann",
        )
        .returning(Supporter.id)
    )
    await session.execute(
        insert(Action).values(
            action_type="petition",
            campaign_id=world.campaign_id,
            action_page_id=page[0],
            supporter_id=supporter_id,
            with_consent=True,
        )
    )


async def counters(
    session: AsyncSession, world: World, page: tuple[int, int], fingerprint: bytes, area: str
) -> None:
    await record_action(
        session,
        campaign_id=world.campaign_id,
        org_id=page[1],
        action_page_id=page[0],
        action_type="petition",
        fingerprint=fingerprint,
        area=area,
        testing=False,
    )


async def hot_row(session: AsyncSession, world: World) -> None:
    await session.execute(
        text("UPDATE bench_hot SET n = n + 1 WHERE campaign_id = :c"), {"c": world.campaign_id}
    )


Step = Callable[[AsyncSession, World, tuple[int, int], bytes, str], Awaitable[None]]


async def write_run(
    sessions: async_sessionmaker[AsyncSession],
    world: World,
    steps: list[Step],
    clients: int,
    seconds: float,
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        rng = random.Random(k)  # noqa: S311 - test data
        while time.perf_counter() < deadline:
            page = rng.choice(world.pages)
            fingerprint, area = person(world, rng), rng.choice(AREAS)
            started = time.perf_counter()
            async with sessions() as session:
                for step in steps:
                    await step(session, world, page, fingerprint, area)
                await session.commit()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def describe(latencies: list[float]) -> str:
    latencies = sorted(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1] if len(latencies) >= 100 else latencies[-1]
    return f"mean {ms(statistics.fmean(latencies))}, p99 {ms(p99)}"


async def read_latency(engine: AsyncEngine, world: World, n: int) -> list[float]:
    sessions = db.create_sessionmaker(engine)
    out = []
    async with sessions() as session:
        for _ in range(n):
            started = time.perf_counter()
            await campaign_stats(session, world.campaign_id, max_age=0)
            out.append(time.perf_counter() - started)
    return out


async def cached_reads(engine: AsyncEngine, world: World, seconds: float) -> float:
    sessions = db.create_sessionmaker(engine)
    done = 0
    async with sessions() as session:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(100):
                await campaign_stats(session, world.campaign_id, max_age=0.5)
            done += 100
    return done / (time.perf_counter() - started)


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(CounterDelta)) or 0)


async def bench(url: str, clients: int, seconds: float) -> None:
    settings = Settings(DATABASE_URL=url, POOL_SIZE=str(clients), PROCA_ENV="test")
    engine = db.create_engine(settings)
    sessions = db.create_sessionmaker(engine)
    try:
        world = await seed(sessions)
        # Only `world` gets rows and counters that agree; the other runs write to campaigns of
        # their own (the reconciliation measured below would rightly correct them).
        plain = await seed(sessions, "plain")
        bare = await seed(sessions, "bare")
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE bench_hot (campaign_id bigint PRIMARY KEY, n int)")
            )
            await conn.execute(
                text("INSERT INTO bench_hot VALUES (:c, 0)"), {"c": plain.campaign_id}
            )
        print(
            f"PostgreSQL, {clients} concurrent sessions in one Python process, {seconds:g} s each"
        )

        async def hot(s: AsyncSession, w: World, *_: object) -> None:
            await hot_row(s, w)

        runs: list[tuple[str, World, list[Step]]] = [
            ("rows", plain, [signature_rows]),
            ("rows+counters", world, [signature_rows, counters]),
            ("rows+hot-row", plain, [signature_rows, hot]),
            ("counters only", bare, [counters]),
        ]
        for name, where, steps in runs:
            await compact(engine)
            rate, latencies = await write_run(sessions, where, steps, clients, seconds)
            print(f"  write {name:<14} {rate:8.0f} tx/s   {describe(latencies)}")

        await compact(engine)
        print(
            f"  read uncached, 0 pending deltas: {describe(await read_latency(engine, world, 300))}"
        )
        await write_run(sessions, world, [signature_rows, counters], clients, 1.0)
        backlog = await pending(engine)
        lat = await read_latency(engine, world, 300)
        print(f"  read uncached, {backlog} pending deltas: {describe(lat)}")
        started = time.perf_counter()
        folded = await compact(engine)
        print(f"  compaction of {folded} deltas: {ms(time.perf_counter() - started)}")
        print(
            f"  read cached (max_age 0.5 s): {await cached_reads(engine, world, 2.0):,.0f} reads/s"
        )

        async with engine.connect() as conn:
            people = await conn.scalar(
                text("SELECT count(*) FROM counter_people WHERE campaign_id = :c"),
                {"c": world.campaign_id},
            )
            actions = await conn.scalar(select(func.count()).select_from(Action))
        started = time.perf_counter()
        outcome = await reconcile_campaign(engine, world.campaign_id)
        took = time.perf_counter() - started
        fixed = outcome.corrections if outcome else None
        print(
            f"  reconciliation of {people} people / {actions} actions: {ms(took)} "
            f"(corrections: {fixed or 'none'})"
        )
        async with sessions() as session:
            counts = await campaign_stats(session, world.campaign_id, max_age=0)
        print(f"  counts: {counts.supporters} supporters, {dict(counts.by_action_type)} actions")
    finally:
        await engine.dispose()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a server and a database to connect to for CREATE DATABASE",
    )
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args()

    admin = args.pg_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"bench_counters_{os.getpid()}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade, Settings(DATABASE_URL=url).sqlalchemy_url)
        await bench(url, args.clients, args.seconds)
    finally:
        if args.keep_db:
            print(f"kept database {name}")
        else:
            conn = await asyncpg.connect(admin)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
