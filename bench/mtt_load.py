"""Mail to target at volume, in one process: the planner against a million queued letters, the
ranking of new letters next to them, and the sender through a real SMTP server. Prints
numbers; nothing here passes or fails.

Each run makes a fresh database (PostgreSQL on --pg-url, dropped at the end unless --keep-db;
or an SQLite file in a temporary folder), migrated as `proca-server setup` does.

--part plan: one campaign with --targets targets (default 1,000) and --letters queued letters
(default 1,000,000, spread evenly over the targets), inserted with one INSERT ... SELECT
(generate_series on PostgreSQL, a recursive CTE on SQLite); `mtt_target_counts` as the ranking
would have left it (queued = the target's letters, planned 0). All letters come from one
supporter's action and share one content: the planner reads neither. Drip window of
--window-days days (default 30) seen at --day (default 29, so every point below still has
letters to plan), `MTT_CYCLE_SECONDS` 180, `MAX_MESSAGES_PER_CYCLE` 99. For each point of
--sent (default 0,500000): the oldest letters of each target, that many in all, are marked
SENT (and counted planned and sent); on PostgreSQL VACUUM ANALYZE (autovacuum's work; the
server never runs ANALYZE on SQLite, nor does this); then --runs successive `plan()` calls,
each a cycle after the last and committed, as the loop's tick makes them. Then --rank-new
(default 10,000) letters of delivered actions of as many new supporters, unranked, are ranked
with `rank_messages` until none is left (--runs times, their ranks and counts undone between
runs; a run longer than --rank-max-seconds is not repeated).

--part send: --targets (default 100) targets with an address, an org whose email backend is
SMTP with implicit TLS (`ssl://127.0.0.1:<port>`, user and password) to an aiosmtpd server in
its own process (a certificate authority made for the run, trusted through SSL_CERT_FILE), and
per run --letters (default 10,000) new letters already planned (due now), one per action of a
new supporter (each its own content). `Sender.send_due(limit=200)` is called until it claims
nothing, after a warm-up batch of 200.

CPU: this process (time.process_time; on SQLite that includes SQLite, which runs in it),
PostgreSQL (this database's backends and the shared auxiliary processes, read from /proc at
the start and the end: parallel query workers come and go in between and are not seen), the
SMTP server process, and "other cores": the rest of the machine's busy time over the wall time
(other people's work; a PostgreSQL parallel query's workers). --wait-quiet N waits up to N s
for an idle machine before each measurement.

--profile N prints cProfile's top N functions, and its self time by layer, of one extra plan()
call or one extra send pass (cProfile inflates the figures: read shares, not times).

    .venv/bin/python bench/mtt_load.py --database postgresql --part plan
    .venv/bin/python bench/mtt_load.py --database sqlite --part send [--profile 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import logging
import multiprocessing
import os
import pstats
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH.parent))  # the tests' TLS helper

from fresh_db import fresh_database  # noqa: E402
from sqlalchemy import bindparam, event, func, insert, select, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402
from tests.tls import TlsFiles, make_tls_files  # noqa: E402
from widget_load import (  # noqa: E402
    cpu_seconds,
    machine_busy_seconds,
    postgres_pids,
    wait_quiet,
)

from proca_server import db  # noqa: E402
from proca_server.config import Settings  # noqa: E402
from proca_server.models import (  # noqa: E402
    Action,
    ActionPage,
    Campaign,
    Message,
    MessageContent,
    Mtt,
    Org,
    Service,
    Supporter,
    Target,
    TargetEmail,
)
from proca_server.models.base import UTCDateTime  # noqa: E402
from proca_server.models.enums import ActionProcessingStatus, SupporterProcessingStatus  # noqa: E402
from proca_server.models.message import SendStatus  # noqa: E402
from proca_server.models.mtt import MttTargetCount  # noqa: E402
from proca_server.mtt.planner import plan, rank_messages  # noqa: E402
from proca_server.mtt.sender import Sender  # noqa: E402

CYCLE_SECONDS = 180
PER_CHUNK = 99
SMTP_USER = "mailer"
SMTP_PASSWORD = "bench-" + secrets.token_hex(8)
ACCEPTED = int(SupporterProcessingStatus.ACCEPTED)
DELIVERED = int(ActionProcessingStatus.DELIVERED)


# --- databases ---------------------------------------------------------------------------


def bench_settings(url: str) -> Settings:
    return Settings(
        DATABASE_URL=url,
        PROCA_ENV="dev",
        LOG_LEVEL="warning",
        PIPELINE="off",
        MTT_ENABLED=False,
        MTT_CYCLE_SECONDS=CYCLE_SECONDS,
        MAX_MESSAGES_PER_CYCLE=PER_CHUNK,
        EMAIL_SRS_KEY="bench-srs-key",
    )


@dataclass
class Counter:
    """Statements and commits on an engine (an executemany counts once)."""

    statements: int = 0
    commits: int = 0

    def attach(self, engine: AsyncEngine) -> None:
        def on_statement(*_: object) -> None:
            self.statements += 1

        def on_commit(*_: object) -> None:
            self.commits += 1

        event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
        event.listen(engine.sync_engine, "commit", on_commit)


@dataclass
class Meter:
    """Wall time and CPU seconds of this process, of PostgreSQL (this database's backends and
    the shared auxiliary processes, not other databases' backends), of a child process and of
    the whole machine."""

    dbname: str | None
    child: int | None = None
    wall: float = 0.0
    cpu: float = 0.0
    pg: float = 0.0
    child_cpu: float = 0.0
    busy: float = 0.0

    def _pg(self) -> dict[int, float]:
        if self.dbname is None:
            return {}
        return {pid: cpu_seconds(pid) for pid in postgres_pids(self.dbname)}

    @contextlib.contextmanager
    def measure(self) -> Iterator[Meter]:
        pg0 = self._pg()
        ch0 = cpu_seconds(self.child) if self.child else 0.0
        b0, c0, w0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
        yield self
        self.wall = time.perf_counter() - w0
        self.cpu = time.process_time() - c0
        self.busy = machine_busy_seconds() - b0
        self.pg = sum(v - pg0.get(pid, 0.0) for pid, v in self._pg().items())
        self.child_cpu = (cpu_seconds(self.child) - ch0) if self.child else 0.0

    @property
    def other_cores(self) -> float:
        """Busy cores not accounted to this process, PostgreSQL or the child."""
        return max(0.0, self.busy - self.cpu - self.pg - self.child_cpu) / max(self.wall, 1e-9)


def pg_dbname(url: str) -> str | None:
    return make_url(url).database if url.startswith("postgresql") else None


def quiet(args: argparse.Namespace) -> None:
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)


def now_param(name: str = "now") -> Any:
    return bindparam(name, type_=UTCDateTime())


@dataclass
class World:
    campaign_id: int
    page_id: int
    mtt_id: int
    targets: list[uuid.UUID] = field(default_factory=list)


async def make_world(
    sessions: async_sessionmaker[AsyncSession],
    *,
    targets: int,
    start: dt.datetime,
    end: dt.datetime,
    smtp_url: str | None,
) -> World:
    async with sessions() as s:
        org = Org(name="bench", title="Bench", email_from="campaigns@org.example")
        s.add(org)
        await s.flush()
        if smtp_url:
            service = Service(
                name="smtp", host=smtp_url, user=SMTP_USER, password=SMTP_PASSWORD, org_id=org.id
            )
        else:
            service = Service(name="preview", org_id=org.id)
        s.add(service)
        await s.flush()
        org.email_backend_id = service.id
        campaign = Campaign(name="bench", title="Bench", org_id=org.id)
        s.add(campaign)
        await s.flush()
        page = ActionPage(name="bench/letters", locale="en", campaign_id=campaign.id, org_id=org.id)
        mtt = Mtt(campaign_id=campaign.id, start_at=start, end_at=end, drip_delivery=True)
        s.add_all([page, mtt])
        await s.flush()
        rows = [
            {
                "id": uuid.uuid4(),
                "name": f"Member {n}",
                "external_id": f"mep{n}",
                "campaign_id": campaign.id,
                "area": "BE",
            }
            for n in range(targets)
        ]
        await s.execute(insert(Target), rows)
        await s.execute(
            insert(TargetEmail),
            [
                {"target_id": r["id"], "email": f"member{n}@parliament.example"}
                for n, r in enumerate(rows)
            ],
        )
        await s.execute(
            insert(MttTargetCount),
            [{"target_id": r["id"], "campaign_id": campaign.id} for r in rows],
        )
        world = World(campaign.id, page.id, mtt.id, [r["id"] for r in rows])
        await s.commit()
    return world


async def analyze(engine: AsyncEngine, postgres: bool) -> None:
    """What autovacuum would have done by then on PostgreSQL. Nothing on SQLite: the server
    never runs ANALYZE there, and statistics taken now would go stale as letters arrive."""
    if postgres:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))


# --- the planner ---------------------------------------------------------------------------


async def bulk_letters(engine: AsyncEngine, world: World, letters: int, postgres: bool) -> None:
    """`letters` ranked, queued letters of one action, target n % targets, in id order."""
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as conn:
        supporter_id = (
            await conn.execute(
                insert(Supporter)
                .values(
                    fingerprint=b"bench-one-writer",
                    campaign_id=world.campaign_id,
                    action_page_id=world.page_id,
                    first_name="Ann",
                    email="ann@people.example",
                    processing_status=SupporterProcessingStatus.ACCEPTED,
                )
                .returning(Supporter.id)
            )
        ).scalar_one()
        action_id = (
            await conn.execute(
                insert(Action)
                .values(
                    action_type="mail2target",
                    campaign_id=world.campaign_id,
                    action_page_id=world.page_id,
                    supporter_id=supporter_id,
                    processing_status=ActionProcessingStatus.DELIVERED,
                )
                .returning(Action.id)
            )
        ).scalar_one()
        content_id = (
            await conn.execute(
                insert(MessageContent)
                .values(subject="Dear {{target.name}}", body="Please vote yes.")
                .returning(MessageContent.id)
            )
        ).scalar_one()
        await conn.execute(
            text(
                "CREATE TEMP TABLE bench_targets AS SELECT row_number() OVER (ORDER BY id) - 1 "
                "AS n, id FROM targets WHERE campaign_id = :c"
            ),
            {"c": world.campaign_id},
        )
        await conn.execute(text("CREATE UNIQUE INDEX bench_targets_n ON bench_targets (n)"))
        if postgres:
            series = "generate_series(0, :letters - 1) AS g(i)"
            prefix = ""
        else:
            series = "g"
            prefix = (
                "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g "
                "WHERE i + 1 < :letters) "
            )
        # the f-string fragments are this file's constants, the values are bound
        await conn.execute(
            text(
                "INSERT INTO messages (action_id, message_content_id, target_id, dupe_rank, "  # noqa: S608
                "send_status, updated_at) "
                f"{prefix}SELECT :action, :content, t.id, 0, 0, :now FROM {series} "
                "JOIN bench_targets t ON t.n = g.i % :targets ORDER BY g.i"
            ).bindparams(now_param()),
            {
                "letters": letters,
                "targets": len(world.targets),
                "action": action_id,
                "content": content_id,
                "now": now,
            },
        )
        await conn.execute(text("DROP TABLE bench_targets"))
        await conn.execute(
            text(
                "UPDATE mtt_target_counts SET queued = (SELECT count(*) FROM messages m "
                "WHERE m.target_id = mtt_target_counts.target_id AND m.dupe_rank = 0) "
                "WHERE campaign_id = :c"
            ),
            {"c": world.campaign_id},
        )


async def mark_sent(engine: AsyncEngine, world: World, sent: int, at: dt.datetime) -> int:
    """The oldest letters of each target, `sent` in all, become SENT; counts follow."""
    per_target = sent // len(world.targets)
    async with engine.begin() as conn:
        done = await conn.execute(
            text(
                "UPDATE messages SET send_status = 1, sent = true, scheduled_at = :at, "
                "sent_at = :at, claimed_until = NULL, attempts = 1, updated_at = :at "
                "FROM (SELECT id, row_number() OVER (PARTITION BY target_id ORDER BY id) AS k "
                "FROM messages WHERE dupe_rank = 0) AS r "
                "WHERE messages.id = r.id AND r.k <= :per_target AND messages.send_status = 0"
            ).bindparams(now_param("at")),
            {"per_target": per_target, "at": at},
        )
        await conn.execute(
            text(
                "UPDATE mtt_target_counts SET "
                "planned = (SELECT count(*) FROM messages m WHERE m.target_id = "
                "mtt_target_counts.target_id AND m.dupe_rank = 0 AND m.scheduled_at IS NOT NULL), "
                "sent = (SELECT count(*) FROM messages m WHERE m.target_id = "
                "mtt_target_counts.target_id AND m.send_status = 1) "
                "WHERE campaign_id = :c"
            ),
            {"c": world.campaign_id},
        )
    return int(getattr(done, "rowcount", 0) or 0)


async def new_unranked(engine: AsyncEngine, world: World, count: int, postgres: bool) -> int:
    """`count` letters of delivered actions of as many new supporters; the highest id before
    them."""
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as conn:
        before = int((await conn.scalar(select(func.max(Message.id)))) or 0)
        max_s = int((await conn.scalar(select(func.max(Supporter.id)))) or 0)
        max_a = int((await conn.scalar(select(func.max(Action.id)))) or 0)
        content = await conn.scalar(select(func.min(MessageContent.id)))
        if postgres:
            source = (
                "SELECT decode(md5(g.i::text || random()::text), 'hex') AS f "
                "FROM generate_series(1, :count) AS g(i)"
            )
        else:
            source = (
                "SELECT randomblob(16) AS f FROM (WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL "
                "SELECT i + 1 FROM g WHERE i < :count) SELECT i FROM g)"
            )
        await conn.execute(
            text(
                "INSERT INTO supporters (fingerprint, campaign_id, action_page_id, first_name, "  # noqa: S608
                "processing_status, inserted_at, updated_at) "
                f"SELECT f, :c, :p, 'Ann', :status, :now, :now FROM ({source}) AS s"
            ).bindparams(now_param()),
            {
                "count": count,
                "c": world.campaign_id,
                "p": world.page_id,
                "now": now,
                "status": ACCEPTED,
            },
        )
        await conn.execute(
            text(
                "INSERT INTO actions (supporter_id, action_type, campaign_id, action_page_id, "
                "processing_status, inserted_at, updated_at) "
                "SELECT id, 'mail2target', :c, :p, :status, :now, :now FROM supporters "
                "WHERE id > :max_s ORDER BY id"
            ).bindparams(now_param()),
            {
                "c": world.campaign_id,
                "p": world.page_id,
                "now": now,
                "max_s": max_s,
                "status": DELIVERED,
            },
        )
        await conn.execute(
            text(
                "CREATE TEMP TABLE bench_targets AS SELECT row_number() OVER (ORDER BY id) - 1 "
                "AS n, id FROM targets WHERE campaign_id = :c"
            ),
            {"c": world.campaign_id},
        )
        await conn.execute(
            text(
                "INSERT INTO messages (action_id, message_content_id, target_id, updated_at) "
                "SELECT a.id, :content, t.id, :now FROM (SELECT id, row_number() OVER "
                "(ORDER BY id) - 1 AS k FROM actions WHERE id > :max_a) AS a "
                "JOIN bench_targets t ON t.n = a.k % :targets ORDER BY a.id"
            ).bindparams(now_param()),
            {"content": content, "now": now, "max_a": max_a, "targets": len(world.targets)},
        )
        await conn.execute(text("DROP TABLE bench_targets"))
    return before


async def unrank(engine: AsyncEngine, after: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE mtt_target_counts SET queued = queued - (SELECT count(*) FROM messages m "
                "WHERE m.target_id = mtt_target_counts.target_id AND m.id > :after "
                "AND m.dupe_rank = 0)"
            ),
            {"after": after},
        )
        await conn.execute(
            text("UPDATE messages SET dupe_rank = NULL WHERE id > :after"), {"after": after}
        )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


LAYERS = (
    ("proca_server", "/proca_server/"),
    ("SQLAlchemy", "/sqlalchemy/"),
    ("asyncpg", "asyncpg"),
    ("aiosqlite/sqlite3", "sqlite"),
    ("aiosmtplib", "/aiosmtplib/"),
    ("email (stdlib)", "/email/"),
    ("ssl", "ssl"),
    ("asyncio", "/asyncio/"),
    ("pystache/templates", "pystache"),
)


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    """cProfile's top functions, and its self time by layer (the file a function is in)."""
    stats = pstats.Stats(profiler)
    layers: dict[str, float] = {}
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        where = filename if filename != "~" else name
        layer = next((label for label, part in LAYERS if part in where), "other")
        if "poll" in name and "epoll" in name:
            layer = "waiting (epoll)"
        layers[layer] = layers.get(layer, 0.0) + row[2]
    total = sum(layers.values())
    print(f"--- self time by layer (cProfile, {total:.1f} s in all)")
    for layer, seconds in sorted(layers.items(), key=lambda kv: -kv[1]):
        print(f"  {layer:<22} {seconds:7.2f} s  {100 * seconds / total:5.1f} %")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        print(f"--- top {top} by {order}")
        print("\n".join(out.getvalue().splitlines()[6:]))


async def explain_waiting(engine: AsyncEngine, world: World, postgres: bool) -> str:
    """How the database reads one target's oldest waiting letters (the planner's query, as
    mtt/repository.py writes it, with this target's values)."""
    query = (
        "SELECT id FROM messages WHERE target_id = :t AND send_status = 0 "
        "AND scheduled_at IS NULL AND dupe_rank = 0 ORDER BY id LIMIT 10"
    )
    target = world.targets[len(world.targets) // 2]
    async with engine.connect() as conn:
        if postgres:
            rows = await conn.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {query}"), {"t": target})
            lines = [r[0] for r in rows]
            scan = next((x.strip(" ->") for x in lines if "Scan" in x), lines[0])
            removed = next((x.strip() for x in lines if "Removed by Filter" in x), "")
            took = next((x.strip() for x in lines if x.startswith("Execution Time")), "")
            return "; ".join(x for x in (scan, removed, took) if x)
        target_value = target.hex
        rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {query}"), {"t": target_value})
        return "; ".join(str(r[-1]) for r in rows)


async def plan_part(args: argparse.Namespace, url: str) -> None:
    postgres = args.database == "postgresql"
    settings = bench_settings(url)
    engine = db.create_engine(settings)
    sessions = db.create_sessionmaker(engine)
    counter = Counter()
    counter.attach(engine)
    letters, targets = args.letters or 1_000_000, args.targets or 1_000
    try:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = now - dt.timedelta(days=args.day)
        end = start + dt.timedelta(days=args.window_days)
        world = await make_world(sessions, targets=targets, start=start, end=end, smtp_url=None)
        t0 = time.perf_counter()
        await bulk_letters(engine, world, letters, postgres)
        loaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        await analyze(engine, postgres)
        print(
            f"{args.database}: {letters:,} letters to {targets:,} targets inserted in "
            f"{loaded:.1f} s (+ {'VACUUM ANALYZE' if postgres else 'no ANALYZE'} "
            f"{time.perf_counter() - t0:.1f} s); drip window {args.window_days} days seen at day "
            f"{args.day}, cycle {CYCLE_SECONDS} s, {PER_CHUNK} letters per 10 targets and cycle"
        )
        print()
        print(
            "| letters sent before | plan() calls | planned per call | ms per call: median "
            "| max | each, in order | commit ms (median) | CPU ms of this process per call "
            "(median) | PostgreSQL CPU ms per call (each) | statements per call | other cores |"
        )
        print("| --- " * 11 + "|")
        cycle = 0
        profiled = False
        plans: list[str] = []
        for point in args.sent:
            t0 = time.perf_counter()
            marked = await mark_sent(engine, world, point, now - dt.timedelta(hours=1))
            await analyze(engine, postgres)
            setup = time.perf_counter() - t0
            plans.append(f"{point:,} sent: {await explain_waiting(engine, world, postgres)}")
            walls, commits, cpus, pgs, planned, statements, others = [], [], [], [], [], [], []
            for _ in range(args.runs + (1 if args.profile and not profiled else 0)):
                cycle += 1
                at = now + dt.timedelta(seconds=CYCLE_SECONDS * cycle)
                profiler = None
                if len(walls) == args.runs:
                    profiler = cProfile.Profile()
                    profiled = True
                quiet(args)
                meter = Meter(pg_dbname(url))
                before = counter.statements
                with meter.measure():
                    async with sessions() as s:
                        if profiler:
                            profiler.enable()
                        report = await plan(s, at, cycle_seconds=CYCLE_SECONDS, per_chunk=PER_CHUNK)
                        c0 = time.perf_counter()
                        await s.commit()
                        took = time.perf_counter() - c0
                        if profiler:
                            profiler.disable()
                if profiler:
                    print(f"(profiled plan() call: {report.planned} planned)")
                    print_profile(profiler, args.profile)
                    continue
                assert report.campaigns == [world.campaign_id], report
                walls.append(meter.wall)
                commits.append(took)
                cpus.append(meter.cpu)
                pgs.append(meter.pg)
                planned.append(report.planned)
                statements.append(counter.statements - before)
                others.append(meter.other_cores)
            print(
                f"| {point:,} ({marked:,} marked, {setup:.0f} s) | {len(walls)} | "
                f"{statistics.median(planned):,.0f} | **{ms(statistics.median(walls))}** | "
                f"{ms(max(walls))} | {', '.join(ms(w) for w in walls)} | "
                f"{ms(statistics.median(commits))} | {ms(statistics.median(cpus))} | "
                f"{', '.join(ms(p) for p in pgs) if postgres else '-'} | "
                f"{statistics.median(statements):,.0f} | {max(others):.2f} |"
            )

        print("\nthe planner's read of one target's waiting letters:")
        for line in plans:
            print(f"  {line}")

        if args.rank_new:
            after = await new_unranked(engine, world, args.rank_new, postgres)
            print()
            print(
                f"ranking {args.rank_new:,} new letters (delivered actions of distinct "
                f"supporters) next to {letters:,} ranked ones, rank_messages() until it ranks "
                "nothing, one commit per call:"
            )
            print()
            print(
                "| run | letters ranked | rank_messages calls | ms in all | CPU ms of this "
                "process | PostgreSQL CPU ms | statements | other cores |"
            )
            print("| --- " * 8 + "|")
            walls = []
            for run in range(1, args.runs + 1):
                quiet(args)
                meter = Meter(pg_dbname(url))
                before = counter.statements
                ranked = calls = 0
                with meter.measure():
                    while True:
                        async with sessions() as s:
                            n = await rank_messages(s, due_now())
                            await s.commit()
                        calls += 1
                        ranked += n
                        if not n:
                            break
                walls.append(meter.wall)
                print(
                    f"| {run} | {ranked:,} | {calls} | **{ms(meter.wall)}** | {ms(meter.cpu)} | "
                    f"{ms(meter.pg) if postgres else '-'} | {counter.statements - before:,} | "
                    f"{meter.other_cores:.2f} |"
                )
                async with sessions() as s:
                    queued = await s.scalar(select(func.sum(MttTargetCount.queued)))
                assert queued == letters + args.rank_new, queued
                await unrank(engine, after)
                if meter.wall > args.rank_max_seconds and run < args.runs:
                    print(f"(a run took over {args.rank_max_seconds:g} s: not repeated)")
                    break
            print(f"\nranking: median {ms(statistics.median(walls))} ms, max {ms(max(walls))} ms")
    finally:
        await engine.dispose()


# --- the sender ----------------------------------------------------------------------------


def make_tls(folder: Path) -> TlsFiles:
    """A CA and a certificate for 127.0.0.1 signed by it (the tests' own, tests/tls.py)."""
    return make_tls_files(folder, "bench CA")


def smtp_server(
    cert: str, key: str, port: int, password: str, received: Synchronized[int], stop: Any
) -> None:
    """An implicit-TLS SMTP server with AUTH that accepts and counts every message (runs in
    its own process, so its CPU is neither counted nor competing on the sender's loop)."""
    import ssl
    import warnings

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with received.get_lock():
                received.value += 1
            return "250 OK"

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (SMTP_USER, password)
        return AuthResult(success=ok, handled=False)

    # aiosmtpd's own deprecation (Session.login_data), once per login
    warnings.simplefilter("ignore", DeprecationWarning)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        ssl_context=context,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        stop.wait()
    finally:
        controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def due_now() -> dt.datetime:
    """A send time already passed for the sender, which reads the clock to the second (as the
    columns keep it; PostgreSQL rounds): planned "now" within the same second would not be due
    yet."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)


async def planned_letters(
    sessions: async_sessionmaker[AsyncSession], world: World, count: int, due: dt.datetime
) -> list[int]:
    """`count` letters of as many new supporters' delivered actions, planned (due at `due`)."""
    tag = secrets.token_hex(3)
    async with sessions() as s:
        supporters = (
            await s.execute(
                insert(Supporter).returning(Supporter.id, sort_by_parameter_order=True),
                [
                    {
                        "fingerprint": secrets.token_bytes(16),
                        "campaign_id": world.campaign_id,
                        "action_page_id": world.page_id,
                        "first_name": "Ann",
                        "last_name": "Writer",
                        "email": f"w{tag}.{i}@people.example",
                        "processing_status": SupporterProcessingStatus.ACCEPTED,
                    }
                    for i in range(count)
                ],
            )
        ).scalars()
        actions = (
            await s.execute(
                insert(Action).returning(Action.id, sort_by_parameter_order=True),
                [
                    {
                        "action_type": "mail2target",
                        "campaign_id": world.campaign_id,
                        "action_page_id": world.page_id,
                        "supporter_id": sid,
                        "processing_status": ActionProcessingStatus.DELIVERED,
                    }
                    for sid in supporters
                ],
            )
        ).scalars()
        action_ids = list(actions)
        contents = (
            await s.execute(
                insert(MessageContent).returning(MessageContent.id, sort_by_parameter_order=True),
                [
                    {
                        "subject": "Dear {{target.name}}",
                        "body": "Please vote yes, {{target.name}}.\n\nRegards",
                    }
                    for _ in action_ids
                ],
            )
        ).scalars()
        rows = [
            {
                "action_id": aid,
                "message_content_id": cid,
                "target_id": world.targets[i % len(world.targets)],
                "dupe_rank": 0,
                "send_status": SendStatus.PENDING,
                "scheduled_at": due,
            }
            for i, (aid, cid) in enumerate(zip(action_ids, contents, strict=True))
        ]
        ids = list(
            (
                await s.execute(
                    insert(Message).returning(Message.id, sort_by_parameter_order=True), rows
                )
            ).scalars()
        )
        per_target: dict[uuid.UUID, int] = {}
        for r in rows:
            per_target[r["target_id"]] = per_target.get(r["target_id"], 0) + 1
        for target_id, n in per_target.items():
            await s.execute(
                update(MttTargetCount)
                .where(MttTargetCount.target_id == target_id)
                .values(queued=MttTargetCount.queued + n, planned=MttTargetCount.planned + n)
            )
        await s.commit()
    return ids


async def send_part(args: argparse.Namespace, url: str, server: dict[str, Any]) -> None:
    postgres = args.database == "postgresql"
    settings = bench_settings(url)
    engine = db.create_engine(settings)
    sessions = db.create_sessionmaker(engine)
    counter = Counter()
    counter.attach(engine)
    letters, targets = args.letters or 10_000, args.targets or 100
    received: Synchronized[int] = server["received"]
    try:
        now = dt.datetime.now(dt.UTC)
        world = await make_world(
            sessions,
            targets=targets,
            start=now - dt.timedelta(days=1),
            end=now + dt.timedelta(days=29),
            smtp_url=server["url"],
        )
        sender = Sender(settings, sessions)
        # a warm-up batch: connections opened, statements compiled, the backend's caches filled
        await planned_letters(sessions, world, 200, due_now())
        while (await sender.send_due(limit=200)).claimed:
            pass
        print(
            f"{args.database}: {targets} targets, {letters:,} planned letters per run (one per "
            "action, each its own supporter and content), SMTP with implicit TLS and AUTH to "
            f"aiosmtpd in another process; Sender.send_due(limit=200) until nothing is claimed"
        )
        print()
        print(
            "| run | sent | s | messages/s | CPU ms per message, this process | PostgreSQL "
            "| SMTP server | statements per message | commits per message | other cores |"
        )
        print("| --- " * 10 + "|")
        rates = []
        for run in range(1, args.runs + 1 + (1 if args.profile else 0)):
            ids = await planned_letters(sessions, world, letters, due_now())
            got0 = received.value
            quiet(args)
            meter = Meter(pg_dbname(url), child=server["pid"])
            s0, k0 = counter.statements, counter.commits
            profiler = cProfile.Profile() if run > args.runs else None
            sent = 0
            with meter.measure():
                if profiler:
                    profiler.enable()
                while True:
                    report = await sender.send_due(limit=200)
                    if not report.claimed:
                        break
                    sent += report.sent
                if profiler:
                    profiler.disable()
            async with sessions() as s:
                stored = await s.scalar(
                    select(func.count()).where(
                        Message.id.in_(ids), Message.send_status == SendStatus.SENT
                    )
                )
            arrived = received.value - got0
            assert sent == letters == stored == arrived, (sent, letters, stored, arrived)
            if profiler:
                print(f"(profiled pass: {sent} sent in {meter.wall:.1f} s)")
                print_profile(profiler, args.profile)
                continue
            rates.append(sent / meter.wall)
            print(
                f"| {run} | {sent:,} | {meter.wall:.1f} | **{sent / meter.wall:,.0f}** | "
                f"{1000 * meter.cpu / sent:.2f} | "
                f"{f'{1000 * meter.pg / sent:.2f}' if postgres else '-'} | "
                f"{1000 * meter.child_cpu / sent:.2f} | "
                f"{(counter.statements - s0) / sent:.1f} | {(counter.commits - k0) / sent:.2f} | "
                f"{meter.other_cores:.2f} |"
            )
        print(f"\nmessages/s: median {statistics.median(rates):,.0f}, min {min(rates):,.0f}")
        async with sessions() as s:
            counted = await s.scalar(select(func.sum(MttTargetCount.sent)))
        print(f"mtt_target_counts.sent in all: {counted:,} (every letter sent, warm-up included)")
    finally:
        await engine.dispose()


@contextlib.contextmanager
def smtp_process() -> Iterator[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="bench_mtt_tls_"))
    tls = make_tls(folder)
    # the backend verifies the server against the default trust store, which this names
    os.environ["SSL_CERT_FILE"] = str(tls.ca)
    context = multiprocessing.get_context("spawn")
    received = context.Value("q", 0)
    stop = context.Event()
    port = free_port()
    process = context.Process(
        target=smtp_server,
        args=(str(tls.cert), str(tls.key), port, SMTP_PASSWORD, received, stop),
        daemon=True,
    )
    process.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError("the SMTP server did not start")
            time.sleep(0.1)
        yield {
            "url": f"ssl://127.0.0.1:{port}",
            "received": received,
            "pid": process.pid,
        }
    finally:
        stop.set()
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join(5)
        shutil.rmtree(folder, ignore_errors=True)


async def run(args: argparse.Namespace, server: dict[str, Any] | None) -> None:
    async with fresh_database(args.database, args.pg_url, args.keep_db, "bench_mtt") as url:
        if server is None:
            await plan_part(args, url)
        else:
            await send_part(args, url, server)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    p.add_argument("--part", choices=("plan", "send"), default="plan")
    p.add_argument("--letters", type=int, help="plan: 1,000,000; send: 10,000 per run")
    p.add_argument("--targets", type=int, help="plan: 1,000; send: 100")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--sent",
        default="0,500000",
        help="plan: letters already sent at each point, ascending",
    )
    p.add_argument("--rank-new", type=int, default=10_000, help="plan: new letters to rank")
    p.add_argument(
        "--rank-max-seconds",
        type=float,
        default=60,
        help="plan: a ranking run longer than this is not repeated",
    )
    p.add_argument("--window-days", type=int, default=30)
    p.add_argument("--day", type=float, default=29.0, help="plan: days into the window")
    p.add_argument("--profile", type=int, default=0, help="print the top N functions")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="before each measurement, wait up to this many seconds for an idle machine",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args()
    args.sent = [int(x) for x in args.sent.split(",") if x]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.part == "send":
        with smtp_process() as server:
            asyncio.run(asyncio.wait_for(run(args, server), timeout=1200))
    else:
        asyncio.run(asyncio.wait_for(run(args, None), timeout=1200))


if __name__ == "__main__":
    main()
