"""The retention cleanup at volume, in one process: a dry run and a real run of each mode over
an org with a million supporters. Prints numbers; nothing here passes or fails.

Each run makes a fresh database (PostgreSQL on --pg-url, dropped at the end unless --keep-db;
or, with --database sqlite, an SQLite file in a temporary folder), migrated as
`proca-server setup` does, and seeds it with bulk INSERT ... SELECT statements
(generate_series on PostgreSQL, a recursive CTE on SQLite), then VACUUM ANALYZE (PostgreSQL)
or ANALYZE (SQLite):

- an org, a partner org, a campaign closed 30 months ago and a live one, a page on each;
- --supporters supporters (default 1,000,000 on PostgreSQL, 100,000 on SQLite) who signed
  the old campaign 30 months ago: one supporter row with its cleartext, one action, one
  contact of the org each; every 10th also a contact of the partner (its cleartext stays in
  remove_pii mode); every 100th signed the live campaign last week too (a second supporter
  row, action and contact of the org: protected, never erased).

Then, per mode (delete_contacts, then remove_pii after the org's contacts are put back):
the dry run (`retention.service.count`), and the real run: the list of candidates
(`list_candidates`) and the batches (`erase`, --batch supporters per transaction). Rates are
rows per second of wall time: supporters examined (the org's contacts) for the dry run,
supporters erased for the real run. CPU: this process, PostgreSQL (this database's backends
and the shared auxiliary processes), and "other cores": the rest of the machine's busy time
over the wall time (other people's work: a figure above ~0.3 means a disturbed measurement).
--wait-quiet N waits up to N s for an idle machine before each measurement.

    .venv/bin/python bench/retention.py                      # PostgreSQL, 1,000,000
    .venv/bin/python bench/retention.py --database sqlite    # 100,000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from fresh_db import fresh_database  # noqa: E402
from sqlalchemy import bindparam, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402
from widget_load import (  # noqa: E402
    cpu_seconds,
    machine_busy_seconds,
    postgres_pids,
    wait_quiet,
)

from proca_server import db  # noqa: E402
from proca_server.audit import service as audit  # noqa: E402
from proca_server.config import Settings  # noqa: E402
from proca_server.kit.time import months_before, utcnow  # noqa: E402
from proca_server.models import (  # noqa: E402
    Action,
    ActionPage,
    Campaign,
    Contact,
    Org,
    Supporter,
)
from proca_server.models.base import UTCDateTime  # noqa: E402
from proca_server.models.enums import CampaignStatus  # noqa: E402
from proca_server.retention.service import (  # noqa: E402
    count,
    erase,
    list_candidates,
    plan_run,
)


@dataclass
class Meter:
    dbname: str | None
    wall: float = 0.0
    cpu: float = 0.0
    pg: float = 0.0
    busy: float = 0.0

    def _pg(self) -> dict[int, float]:
        if self.dbname is None:
            return {}
        return {pid: cpu_seconds(pid) for pid in postgres_pids(self.dbname)}

    @contextlib.contextmanager
    def measure(self) -> Iterator[Meter]:
        pg0, c0, w0 = self._pg(), time.process_time(), time.perf_counter()
        b0 = machine_busy_seconds()
        yield self
        self.wall = time.perf_counter() - w0
        self.cpu = time.process_time() - c0
        self.pg = sum(v - pg0.get(pid, 0.0) for pid, v in self._pg().items())
        self.busy = machine_busy_seconds() - b0

    @property
    def other_cores(self) -> float:
        """Busy cores not accounted to this process or PostgreSQL: other people's work."""
        return max(0.0, self.busy - self.cpu - self.pg) / max(self.wall, 1e-9)


@dataclass
class World:
    org: str
    org_id: int
    partner_id: int
    old_page: int
    old_campaign: int
    live_page: int
    live_campaign: int


async def make_world(sessions: async_sessionmaker[AsyncSession]) -> World:
    now = utcnow()
    async with sessions() as s:
        org, partner = Org(name="bench", title="Bench"), Org(name="partner", title="Partner")
        s.add_all([org, partner])
        await s.flush()
        old = Campaign(
            name="old",
            title="Old",
            org_id=org.id,
            status=CampaignStatus.CLOSED,
            end_date=months_before(now, 30).date(),
        )
        live = Campaign(name="live", title="Live", org_id=org.id)
        s.add_all([old, live])
        await s.flush()
        old_page = ActionPage(name="bench/old", locale="en", campaign_id=old.id, org_id=org.id)
        live_page = ActionPage(name="bench/live", locale="en", campaign_id=live.id, org_id=org.id)
        s.add_all([old_page, live_page])
        await s.flush()
        world = World(org.name, org.id, partner.id, old_page.id, old.id, live_page.id, live.id)
        await s.commit()
    return world


PG_SEED = [
    # supporters of the old campaign; `address` keeps the seed number for the joins below
    """INSERT INTO supporters (fingerprint, campaign_id, action_page_id, first_name, last_name,
        email, address, area, processing_status, email_status, inserted_at, updated_at)
    SELECT decode(md5('p' || g) || md5('q' || g), 'hex'), :old_campaign, :old_page,
        'Ann', 'Lee', 'p' || g || '@example.org', g::text, 'DE', 3, 0, :long_ago, :long_ago
    FROM generate_series(1, :n) AS g""",
    # every 100th also signed the live campaign last week
    """INSERT INTO supporters (fingerprint, campaign_id, action_page_id, first_name, last_name,
        email, address, area, processing_status, email_status, inserted_at, updated_at)
    SELECT fingerprint, :live_campaign, :live_page, first_name, last_name, email, address,
        area, 3, 0, :lately, :lately
    FROM supporters WHERE address::bigint % 100 = 0""",
    """INSERT INTO actions (supporter_id, action_type, campaign_id, action_page_id,
        processing_status, testing, with_consent, fields, inserted_at, updated_at)
    SELECT id, 'petition', campaign_id, action_page_id, 4, false, true, '{}', inserted_at,
        inserted_at
    FROM supporters""",
    """INSERT INTO contacts (supporter_id, org_id, payload, communication_consent,
        communication_scopes, delivery_consent, inserted_at, updated_at)
    SELECT id, :org_id, convert_to(repeat('x', 300), 'UTF8'), true, '{email}', true,
        inserted_at, inserted_at
    FROM supporters""",
    """INSERT INTO contacts (supporter_id, org_id, payload, communication_consent,
        communication_scopes, delivery_consent, inserted_at, updated_at)
    SELECT id, :partner_id, convert_to(repeat('x', 300), 'UTF8'), true, '{email}', true,
        inserted_at, inserted_at
    FROM supporters WHERE campaign_id = :old_campaign AND address::bigint % 10 = 0""",
]

SQLITE_SEED = [
    """WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < :n)
    INSERT INTO supporters (fingerprint, campaign_id, action_page_id, first_name, last_name,
        email, address, area, processing_status, email_status, inserted_at, updated_at)
    SELECT randomblob(32), :old_campaign, :old_page, 'Ann', 'Lee', 'p' || g || '@example.org',
        g, 'DE', 3, 0, :long_ago, :long_ago
    FROM seq""",
    """INSERT INTO supporters (fingerprint, campaign_id, action_page_id, first_name, last_name,
        email, address, area, processing_status, email_status, inserted_at, updated_at)
    SELECT fingerprint, :live_campaign, :live_page, first_name, last_name, email, address,
        area, 3, 0, :lately, :lately
    FROM supporters WHERE CAST(address AS INTEGER) % 100 = 0""",
    """INSERT INTO actions (supporter_id, action_type, campaign_id, action_page_id,
        processing_status, testing, with_consent, fields, inserted_at, updated_at)
    SELECT id, 'petition', campaign_id, action_page_id, 4, 0, 1, '{}', inserted_at, inserted_at
    FROM supporters""",
    """INSERT INTO contacts (supporter_id, org_id, payload, communication_consent,
        communication_scopes, delivery_consent, inserted_at, updated_at)
    SELECT id, :org_id, zeroblob(300), 1, '["email"]', 1, inserted_at, inserted_at
    FROM supporters""",
    """INSERT INTO contacts (supporter_id, org_id, payload, communication_consent,
        communication_scopes, delivery_consent, inserted_at, updated_at)
    SELECT id, :partner_id, zeroblob(300), 1, '["email"]', 1, inserted_at, inserted_at
    FROM supporters
    WHERE campaign_id = :old_campaign AND CAST(address AS INTEGER) % 10 = 0""",
]

PG_PUT_BACK = """INSERT INTO contacts (supporter_id, org_id, payload, communication_consent,
    communication_scopes, delivery_consent, inserted_at, updated_at)
SELECT s.id, :org_id, convert_to(repeat('x', 300), 'UTF8'), true, '{email}', true,
    s.inserted_at, s.inserted_at
FROM supporters AS s
WHERE NOT EXISTS (SELECT 1 FROM contacts AS c WHERE c.supporter_id = s.id AND c.org_id = :org_id)"""

SQLITE_PUT_BACK = """INSERT INTO contacts (supporter_id, org_id, payload, communication_consent,
    communication_scopes, delivery_consent, inserted_at, updated_at)
SELECT s.id, :org_id, zeroblob(300), 1, '["email"]', 1, s.inserted_at, s.inserted_at
FROM supporters AS s
WHERE NOT EXISTS (SELECT 1 FROM contacts AS c WHERE c.supporter_id = s.id AND c.org_id = :org_id)"""


TIMES = ("long_ago", "lately")


async def seed(engine: AsyncEngine, world: World, n: int, postgres: bool) -> float:
    now = utcnow()
    params: dict[str, object] = {
        "n": n,
        "old_campaign": world.old_campaign,
        "old_page": world.old_page,
        "live_campaign": world.live_campaign,
        "live_page": world.live_page,
        "org_id": world.org_id,
        "partner_id": world.partner_id,
        "long_ago": months_before(now, 31),
        "lately": now - timedelta(days=7),
    }
    started = time.perf_counter()
    for statement in PG_SEED if postgres else SQLITE_SEED:
        names = [k for k in params if f":{k}" in statement]
        query = text(statement).bindparams(
            *(bindparam(k, type_=UTCDateTime()) for k in names if k in TIMES)
        )
        async with engine.begin() as conn:
            if postgres:
                # the rows are made consistent here: no foreign-key trigger per row
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(query, {k: params[k] for k in names})
    await analyze(engine, postgres)
    return time.perf_counter() - started


async def put_back(engine: AsyncEngine, world: World, postgres: bool) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(PG_PUT_BACK if postgres else SQLITE_PUT_BACK), {"org_id": world.org_id}
        )
    await analyze(engine, postgres)


async def analyze(engine: AsyncEngine, postgres: bool) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE" if postgres else "ANALYZE"))


def log(message: str) -> None:
    print(message, flush=True)


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}/s" if seconds > 0 else "-"


def cpu(meter: Meter) -> str:
    pg = f", PostgreSQL {meter.pg:.1f} s" if meter.dbname else ""
    return f"CPU: this process {meter.cpu:.1f} s{pg}, other cores {meter.other_cores:.2f}"


async def bench_mode(
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    world: World,
    mode: str,
    args: argparse.Namespace,
    dbname: str | None,
) -> None:
    async with sessions() as s:
        planned = await plan_run(s, world.org, months=None, mode=mode, campaign=None, now=utcnow())
        examined = int(
            await s.scalar(
                text("SELECT count(*) FROM contacts WHERE org_id = :o"), {"o": world.org_id}
            )
            or 0
        )
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    meter = Meter(dbname)
    with meter.measure():
        async with sessions() as s:
            counts = await count(s, planned)
    log(
        f"{mode} dry run: {counts.contacts:,} contacts of {counts.supporters:,} supporters "
        f"({counts.unshared:,} unshared) found among {examined:,} in {meter.wall:.1f} s: "
        f"{rate(examined, meter.wall)} examined; {cpu(meter)}"
    )
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    listing, batches = Meter(dbname), Meter(dbname)
    with listing.measure():
        candidates = await list_candidates(sessions, planned)
    with batches.measure():
        report = await erase(sessions, planned, candidates, actor=audit.CLI, batch_size=args.batch)
    total = listing.wall + batches.wall
    log(
        f"{mode} real run: {report.contacts:,} contacts of {report.supporters:,} supporters "
        f"deleted, {report.anonymised:,} cleared, in {total:.1f} s: "
        f"{rate(report.supporters, total)} supporters "
        f"(listing {len(candidates):,} in {listing.wall:.1f} s, {cpu(listing)}; "
        f"batches of {args.batch} in {batches.wall:.1f} s, "
        f"{rate(report.supporters, batches.wall)}, {cpu(batches)})"
    )


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    postgres = args.database == "postgresql"
    n = args.supporters or (1_000_000 if postgres else 100_000)
    async with fresh_database(args.database, args.pg_url, args.keep_db, "bench_retention") as url:
        settings = Settings(DATABASE_URL=url, PROCA_ENV="dev", LOG_LEVEL="warning")
        engine = db.create_engine(settings)
        sessions = db.create_sessionmaker(engine)
        dbname = make_url(url).database if postgres else None
        try:
            world = await make_world(sessions)
            took = await seed(engine, world, n, postgres)
            async with engine.connect() as conn:
                rows = {
                    model.__tablename__: int(
                        await conn.scalar(select(func.count()).select_from(model)) or 0
                    )
                    for model in (Supporter, Action, Contact)
                }
            log(
                f"seeded {', '.join(f'{v:,} {k}' for k, v in rows.items())} in {took:.1f} s "
                f"({args.database})"
            )
            await bench_mode(sessions, engine, world, "delete_contacts", args, dbname)
            took = time.perf_counter()
            await put_back(engine, world, postgres)
            log(f"the org's contacts put back in {time.perf_counter() - took:.1f} s")
            await bench_mode(sessions, engine, world, "remove_pii", args, dbname)
            log(f"total {time.perf_counter() - started:.0f} s")
        finally:
            await engine.dispose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--supporters", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--wait-quiet", type=float, default=0.0)
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    # the migrations read it from the environment; nothing here is kept
    os.environ.setdefault("SECRET_KEY_BASE", "bench-" + "b" * 58)
    asyncio.run(main(parse_args()))
