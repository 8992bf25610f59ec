"""The server in the shape production runs it: throughput and delivery, a spike, the counter,
a database holding a long history, and memory over a soak. Reports numbers; decides nothing.

The shape: a fresh PostgreSQL database, `proca_server setup` (with an instance admin whose
API token reads exportActions), bench/seed.py (an org with an active key, so contacts are
really encrypted, a campaign and a page; the org has a delivery queue, `cus.N.deliver`, and
an id no other run on the shared RabbitMQ uses), `proca_server serve --workers 2` with
PIPELINE=handoff (the API processes store each signature and hand its action over) and one
`proca_server worker` processing the actions into RabbitMQ. This process consumes
`cus.N.deliver` (bench/delivery.py) and notes for each message the time from the request's
send (wrk writes it into the action's customFields; the message's createdAt is to the second
only) to its arrival. Load comes from wrk with bench/wrk/*.lua (bench/widget_load.py runs it).

The server's environment is this program's, over which its own settings win: PROCA_ENV=prod
(with bench secrets), LOG_LEVEL=info (the server's default), ACCESS_LOG=false unless
--access-log, the signature velocity limit per address lifted (one load generator is one
address). Other settings (SIGNATURE_BATCH_MS, POOL_SIZE, STATS_*, ...) pass through.

Phases (--phases; production, spike, counter and soak share one shape, in that order; growth
makes two shapes of its own). Before the first measured phase of a shape, --warmup seconds of
signatures, not measured. Each load phase ends with the wait for its deliveries
(--drain-limit).

  production  addActionContact at --connections for --duration s: signatures/s, HTTP
              p50/p99; actions stored, answered ok, delivered to cus.N.deliver, delivery
              latency p50/p99/max, when the last one arrived; CPU cores per process group.
              Then PostgreSQL's own ceiling in the same run (bench/pg_ceiling.py
              --scripts signature_counters --group 10: the server's write set, ten
              signatures per transaction) and the ratio.
  spike       --spike-connections for --spike-duration s: non-2xx, GraphQL and socket errors,
              p99, deliveries.
  counter     the widget's counter query over GET at --get-connections for --get-duration s.
  soak        signatures paced at --soak-rate per s for --soak s; RSS of each API worker, of
              uvicorn's main process and of the worker every --rss-interval s: first, last,
              max.
  growth      an empty database, then one seeded with --seed-actions actions in
              --seed-campaigns campaigns of --seed-orgs orgs (each action of its own
              supporter, with a 300-byte sealed contact of the org, processed; written by
              INSERT ... SELECT over generate_series in chunks, the secondary indexes dropped
              for the load and rebuilt, the counters' tables filled to agree, VACUUM
              ANALYZE; --seed-live of the campaigns stay live, the others are closed). On
              each: the production phase's signatures and deliveries (no ceiling), the
              counter GET, --export-pages pages of exportActions (limit 1000, the fields a
              sync client asks for) of the bench org, the counters' reconciliation of the
              bench campaign and (seeded) of one seeded campaign, twice each; then the two
              side by side.

    .venv/bin/python bench/production.py                       # every phase: about an hour
    .venv/bin/python bench/production.py --phases production --duration 30
    .venv/bin/python bench/production.py --phases spike
    .venv/bin/python bench/production.py --phases growth --seed-actions 10000000
    .venv/bin/python bench/production.py --phases soak --soak 600 --soak-rate 1000
"""

# A load harness: it runs psql, wrk, pgbench and the server by design, with our own arguments.
# ruff: noqa: S603, S608

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from nacl.public import PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.delivery import CpuWatch, DeliveryConsumer, percentile
from bench.export import SELECTIONS
from bench.export import query as export_query
from bench.widget_load import (
    WRK_ADD,
    WRK_GET,
    Server,
    describe,
    log,
    port_free,
    psql,
    run_wrk,
    setup_and_seed,
    wait_quiet,
)
from tests.pipeline.conftest import delete_org_entities

from proca_server import db
from proca_server.broker.rabbitmq import RabbitBroker
from proca_server.broker.topology import OrgConfig, org_topology
from proca_server.config import Settings
from proca_server.models import ActionPage, Campaign, Org, PublicKey
from proca_server.models.enums import CampaignStatus
from proca_server.stats import reconcile_campaign

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ADMIN_EMAIL = "bench-admin@example.org"
ORG_NAME = "benchorg"  # bench/seed.py's
PHASES = ["production", "spike", "counter", "soak", "growth"]
SHARED_SHAPE = ["production", "spike", "counter", "soak"]


# --- a worker process -----------------------------------------------------------------


class Worker:
    """`proca_server worker`, its log in a file."""

    def __init__(self, python: str, env: dict[str, str], log_path: Path) -> None:
        self.python, self.env, self.log_path = python, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, limit: float = 60) -> None:
        cmd = [self.python, "-m", "proca_server", "worker"]
        log(f"  $ {' '.join(cmd)}")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + limit
        while b"worker running" not in self.log_path.read_bytes():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start in time")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# --- the shape ------------------------------------------------------------------------


@dataclass
class Seeded:
    actions: int
    campaigns: list[int]  # ids
    org_ids: list[int]
    seconds: float
    size_bytes: int


@dataclass
class Shape:
    label: str
    url: str
    ids: dict[str, int]  # org, campaign, page
    api: str
    token: str
    server: Server
    worker: Worker | None
    consumer: DeliveryConsumer
    seeded: Seeded | None = None
    warm: bool = False
    runs: int = 0
    report: dict[str, Any] = field(default_factory=dict)

    def stored(self) -> int:
        """Actions of the bench campaign."""
        campaign = self.ids["campaign"]
        return int(psql(self.url, f"SELECT count(*) FROM actions WHERE campaign_id = {campaign}"))

    async def settled(self, limit: float = 30) -> int:
        """Actions of the bench campaign once the requests cut off when wrk stopped are
        stored: the count unchanged over a second (at most `limit` s)."""
        deadline = time.monotonic() + limit
        count = self.stored()
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            count, previous = self.stored(), count
            if count == previous:
                break
        return count

    def groups(self) -> dict[str, list[int]]:
        assert self.server.proc is not None
        groups = {"api": [self.server.proc.pid]}
        if self.worker is not None and self.worker.proc is not None:
            groups["worker"] = [self.worker.proc.pid]
        return groups


def server_env(args: argparse.Namespace, url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "AMQP_URL": AMQP_URL,
        "PIPELINE": args.pipeline,
        "PROCA_ENV": args.env,
        "LOG_LEVEL": args.log_level,
        "ACCESS_LOG": "true" if args.access_log else "false",
        "SECRET_KEY_BASE": "bench-" + "b" * 58,
        "FINGERPRINT_SEED": "bench",
        "EMAIL_WEBHOOK_SECRET": "bench",
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "SIGNATURE_LIMIT_PER_ADDRESS": "1000000000",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("SIGNATURE_LIMIT_")})
    if args.pool_size:
        env["POOL_SIZE"] = str(args.pool_size)
    return env


@contextlib.asynccontextmanager
async def open_shape(args: argparse.Namespace, label: str, seed: bool) -> AsyncIterator[Shape]:
    admin = args.pg_url.rstrip("/") + "/postgres"
    dbname = f"bench_prod_{label}_{int(time.time())}_{os.getpid()}"
    url = args.pg_url.rstrip("/") + "/" + dbname
    logdir = args.logdir / label
    logdir.mkdir(parents=True, exist_ok=True)
    # an id no other run on the shared RabbitMQ uses; seeded orgs follow it
    org_id = 1_900_000_000 + secrets.randbelow(10**6) * 100
    org_ids = [org_id]
    env = server_env(args, url)
    log(f"{label}: database {dbname}, org {org_id} (cus.{org_id}.deliver), logs in {logdir}")
    psql(admin, f'CREATE DATABASE "{dbname}"')
    server: Server | None = None
    worker: Worker | None = None
    consumer: DeliveryConsumer | None = None
    try:
        seed_env = {**env, "BENCH_ORG_ID": str(org_id), "BENCH_DELIVER": "1"}
        ids = await asyncio.to_thread(setup_and_seed, args.python, seed_env)
        token = await asyncio.to_thread(admin_token, args.python, env)
        seeded = None
        if seed:
            seeded = await asyncio.wait_for(
                seed_history(url, args, first_org_id=org_id + 1), args.seed_limit
            )
            org_ids += seeded.org_ids
        server = Server(args.python, env, args.port, args.api_workers, logdir)
        await asyncio.to_thread(server.start, 120)
        if args.pipeline == "handoff":
            worker = Worker(args.python, env, logdir / "worker.log")
            await asyncio.to_thread(worker.start)
        # the processes applied every org's topology at their start; once more, to be sure
        broker = await RabbitBroker.connect(AMQP_URL)
        await broker.apply_topology(org_topology(OrgConfig(org_id, custom_action_deliver=True)))
        await broker.close()
        consumer = DeliveryConsumer(AMQP_URL, f"cus.{org_id}.deliver")
        await consumer.start()
        shape = Shape(
            label=label,
            url=url,
            ids=ids,
            api=f"http://127.0.0.1:{args.port}",
            token=token,
            server=server,
            worker=worker,
            consumer=consumer,
            seeded=seeded,
        )
        yield shape
    finally:
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.close()
        if worker is not None:
            await asyncio.to_thread(worker.stop)
        if server is not None:
            await asyncio.to_thread(server.stop)
            print(f"  [{label}] {log_summary(server.log_path, 'server')}", flush=True)
        if worker is not None:
            print(f"  [{label}] {log_summary(worker.log_path, 'worker')}", flush=True)
        for org in org_ids:
            with contextlib.suppress(Exception):
                await delete_org_entities(org)
        if args.keep_db:
            log(f"kept database {dbname}")
        else:
            psql(admin, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def admin_token(python: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [python, "-m", "proca_server", "user", "token", ADMIN_EMAIL],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"user token failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def log_summary(path: Path, what: str) -> str:
    """Lines of a log by level (plain or JSON lines, as PROCA_ENV=prod writes them)."""
    lines = path.read_text(errors="replace").splitlines()

    def level(name: str) -> int:
        marks = (f" {name.upper()} ", f'"level": "{name}"')
        return sum(1 for line in lines if any(mark in line for mark in marks))

    def having(text: str) -> int:
        return sum(1 for line in lines if text in line)

    return (
        f"{what} log: {len(lines)} lines, {level('error')} error, {level('warning')} warning, "
        f"{level('info')} info; {having('unroutable')} 'unroutable', "
        f"{having('too many clients')} 'too many clients', {having('QueuePool limit')} "
        f"connection-pool timeouts ({path})"
    )


# --- a history: actions in many campaigns --------------------------------------------

# a sealed contact's size and a nonce, as in bench/pgbench/signature.sql
PAYLOAD = "decode(repeat('5f3a9c0e7d21b4e8', 37) || '5f3a9c0e', 'hex')"
NONCE = "decode('000102030405060708090a0b0c0d0e0f1011121314151617', 'hex')"
AREAS = (
    "(ARRAY['DE','FR','IT','ES','PL','NL','BE','AT','SE','PT','CZ','DK','FI','IE','HU','RO',"
    "'GR','SK','BG','HR'])[1 + g % 20]"
)
HISTORY_DAYS = 730


async def history_world(
    url: str, args: argparse.Namespace, first_org_id: int
) -> list[tuple[int, int, int, int]]:
    """The seeded orgs (each with an active key), campaigns and a page each: (campaign,
    page, org, key) per campaign."""
    engine = db.create_engine(Settings(DATABASE_URL=url))
    try:
        async with db.transaction(db.create_sessionmaker(engine)) as s:
            orgs = [
                Org(id=first_org_id + k, name=f"seedorg{k}", title=f"Seed org {k}")
                for k in range(args.seed_orgs)
            ]
            s.add_all(orgs)
            await s.flush()
            keys = [
                PublicKey(
                    name="seed key",
                    public=bytes(PrivateKey.generate().public_key),
                    private=None,
                    active=True,
                    org_id=org.id,
                )
                for org in orgs
            ]
            campaigns = [
                Campaign(
                    name=f"seed-campaign-{j}",
                    title=f"Seed campaign {j}",
                    org_id=orgs[j % len(orgs)].id,
                    status=CampaignStatus.LIVE if j < args.seed_live else CampaignStatus.CLOSED,
                )
                for j in range(args.seed_campaigns)
            ]
            s.add_all([*keys, *campaigns])
            await s.flush()
            pages = [
                ActionPage(
                    name=f"seed{j}.example.org/sign",
                    locale="en",
                    campaign_id=c.id,
                    org_id=c.org_id,
                )
                for j, c in enumerate(campaigns)
            ]
            s.add_all(pages)
            await s.flush()
            return [
                (c.id, p.id, orgs[j % len(orgs)].id, keys[j % len(orgs)].id)
                for j, (c, p) in enumerate(zip(campaigns, pages, strict=True))
            ]
    finally:
        await engine.dispose()


def history_rows(n: int, m: int, sign_key: int, lo: int, hi: int) -> list[str]:
    """The statements writing actions lo..hi of n (each with its supporter, contact and
    counter rows), spread over m campaigns in id order and over HISTORY_DAYS."""
    start = (datetime.now(UTC) - timedelta(days=HISTORY_DAYS)).replace(tzinfo=None)
    step = HISTORY_DAYS * 86400 / n
    rows = (
        f"(SELECT g, date_trunc('second', TIMESTAMP '{start.isoformat()}' "
        f"+ make_interval(secs => g * {step})) AS ts "
        f"FROM generate_series({lo}::bigint, {hi}) AS g) AS s "
        f"JOIN bench_seed_map AS m ON m.idx = (s.g - 1) * {m} / {n}"
    )
    fingerprint = "sha256(int8send(g))"
    return [
        "INSERT INTO supporters (id, fingerprint, campaign_id, action_page_id, first_name, email, "
        "area, processing_status, email_status, inserted_at, updated_at) "
        f"SELECT g, {fingerprint}, m.campaign_id, m.page_id, 'Ann', 'seed' || g || "
        f"'@example.org', {AREAS}, 3, 0, ts, ts FROM {rows}",
        "INSERT INTO actions (id, supporter_id, with_consent, action_type, fields, campaign_id, "
        "action_page_id, processing_status, testing, inserted_at, updated_at) "
        "SELECT g, g, true, 'petition', CASE WHEN g % 2 = 0 "
        """THEN '{"comment": "keep it up"}'::jsonb ELSE '{}'::jsonb END, """
        f"m.campaign_id, m.page_id, 4, false, ts, ts FROM {rows}",
        "INSERT INTO contacts (id, supporter_id, payload, crypto_nonce, public_key_id, "
        "sign_key_id, communication_consent, communication_scopes, delivery_consent, org_id, "
        f"inserted_at, updated_at) SELECT g, g, {PAYLOAD}, {NONCE}, m.key_id, {sign_key}, true, "
        f"ARRAY['email'], true, m.org_id, ts, ts FROM {rows}",
        "INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen) "
        f"SELECT m.campaign_id, {fingerprint}, {AREAS}, NULL, 1 FROM {rows}",
        "INSERT INTO counter_org_people (campaign_id, org_id, fingerprint) "
        f"SELECT m.campaign_id, m.org_id, {fingerprint} FROM {rows}",
    ]


# the counts of the seeded campaigns, as the counters' tables hold them once compacted
COUNTER_TOTALS = """
INSERT INTO counter_totals (campaign_id, kind, key, count)
SELECT p.campaign_id, 0, '', count(*) FROM counter_people AS p
  JOIN bench_seed_map AS m ON m.campaign_id = p.campaign_id GROUP BY p.campaign_id
UNION ALL
SELECT o.campaign_id, 1, CAST(o.org_id AS VARCHAR), count(*) FROM counter_org_people AS o
  JOIN bench_seed_map AS m ON m.campaign_id = o.campaign_id GROUP BY o.campaign_id, o.org_id
UNION ALL
SELECT p.campaign_id, 2, p.area, count(*) FROM counter_people AS p
  JOIN bench_seed_map AS m ON m.campaign_id = p.campaign_id
  WHERE p.area IS NOT NULL GROUP BY p.campaign_id, p.area
UNION ALL
SELECT a.campaign_id, 3, a.action_type, count(*) FROM actions AS a
  JOIN bench_seed_map AS m ON m.campaign_id = a.campaign_id
  WHERE NOT a.testing AND a.processing_status <> 2 GROUP BY a.campaign_id, a.action_type
"""
COUNTER_CAMPAIGNS = """
INSERT INTO counter_campaigns (campaign_id, changed_at, reconciled_at)
SELECT campaign_id, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM bench_seed_map
"""


async def seed_history(url: str, args: argparse.Namespace, first_org_id: int) -> Seeded:
    started = time.perf_counter()
    n = args.seed_actions
    world = await history_world(url, args, first_org_id)
    conn = await asyncpg.connect(url)
    try:

        async def step(what: str, sql: str) -> None:
            t0 = time.perf_counter()
            await conn.execute(sql)
            log(f"  seed: {what} in {time.perf_counter() - t0:.1f} s")

        await conn.execute(
            "CREATE TABLE bench_seed_map (idx int PRIMARY KEY, campaign_id bigint, "
            "page_id bigint, org_id bigint, key_id bigint)"
        )
        await conn.copy_records_to_table(
            "bench_seed_map", records=[(j, *row) for j, row in enumerate(world)]
        )
        sign_key = await conn.fetchval(
            "SELECT id FROM public_keys WHERE private IS NOT NULL ORDER BY id LIMIT 1"
        )
        # bulk load: the secondary indexes are rebuilt afterwards, faster than kept up
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename IN ('supporters', 'actions', 'contacts') "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        # the rows are consistent by construction: no foreign-key trigger per row
        await conn.execute("SET session_replication_role = replica")
        t0 = time.perf_counter()
        for lo in range(1, n + 1, args.seed_chunk):
            hi = min(n, lo + args.seed_chunk - 1)
            async with conn.transaction():
                for sql in history_rows(n, len(world), int(sign_key), lo, hi):
                    await conn.execute(sql)
            rate = hi / (time.perf_counter() - t0)
            log(f"  seed: {hi:,} of {n:,} actions ({rate:,.0f}/s)")
        await conn.execute("RESET session_replication_role")
        for table in ("supporters", "actions", "contacts"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for index in indexes:
            await step(f"index {index['indexname']}", index["indexdef"])
        await step("counter totals", COUNTER_TOTALS)
        await step("counter campaigns", COUNTER_CAMPAIGNS)
        await conn.execute("DROP TABLE bench_seed_map")
        await step("VACUUM ANALYZE", "VACUUM ANALYZE")
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()
    seconds = time.perf_counter() - started
    log(f"  seed: {n:,} actions in {len(world):,} campaigns in {seconds:.0f} s")
    return Seeded(
        actions=n,
        campaigns=[row[0] for row in world],
        org_ids=sorted({row[2] for row in world}),
        seconds=seconds,
        size_bytes=size,
    )


# --- measurements ---------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def http_lines(name: str, result: dict[str, Any]) -> list[str]:
    """wrk's figures: answers, rate, latency percentiles, statuses, errors, failed samples."""
    return describe(name, {k: v for k, v in result.items() if k != "cpu_cores"})


def cores_line(cores: dict[str, float]) -> str:
    flag = "  ** other processes were busy: figures disturbed **" if cores["other"] > 0.3 else ""
    return "    CPU cores: " + ", ".join(f"{k} {v}" for k, v in cores.items()) + flag


async def quiet(args: argparse.Namespace) -> None:
    if args.wait_quiet > 0:
        await asyncio.to_thread(wait_quiet, args.wait_quiet)


async def signatures(
    shape: Shape,
    args: argparse.Namespace,
    name: str,
    *,
    connections: int,
    duration: float,
    rate: float = 0,
    timeout_s: float = 10,
    measured: bool = True,
) -> dict[str, Any]:
    """addActionContact with wrk, then the wait for the deliveries of what was stored."""
    shape.runs += 1
    env = {
        "BENCH_PAGE": str(shape.ids["page"]),
        "BENCH_RUN": f"p{os.getpid()}{shape.label[0]}{int(time.time())}r{shape.runs}",
        "BENCH_STAMP": "1",
    }
    if rate > 0:
        env.update(BENCH_RATE=str(rate), BENCH_THREADS=str(args.threads))
    if measured:
        await quiet(args)
    before = shape.stored()
    t0 = time.time()
    result = await wrk_on(
        shape,
        args,
        WRK_ADD,
        connections=connections,
        duration=duration,
        timeout_s=timeout_s,
        env=env,
    )
    t1 = time.time()
    cores = result["cpu_cores"]
    total = await shape.settled()
    complete = await shape.consumer.wait_for(total, args.drain_limit)
    latencies, delivered, messages = shape.consumer.window(t0, t1)
    last = shape.consumer.last_arrival(t0, t1)
    result.update(
        stored=total - before,
        delivered=delivered,
        messages=messages,
        all_delivered=complete,
        last_delivery_after_load_s=round(last - t1, 2) if last else None,
    )
    if latencies:
        result["delivery_s"] = {
            f"p{p}": round(percentile(latencies, p), 3) for p in (50, 90, 99, 100)
        }
    if not measured:
        return result
    lines = http_lines(name, result)
    errors = result["requests"] - result["ok"]
    socket_errors = sum(result["socket_errors"].values())
    lines.append(
        f"    errors: {errors} answers not ok (non-2xx or GraphQL errors), {socket_errors} "
        f"socket errors"
    )
    lines.append(
        f"    stored {result['stored']} actions (with those of the requests cut off when wrk "
        f"stopped), answered ok {result['ok']}, delivered to cus.N.deliver {delivered} "
        f"({messages - delivered} duplicates)"
        + ("" if complete else f"  ** not all delivered within {args.drain_limit:g} s **")
    )
    if latencies:
        d = result["delivery_s"]
        lines.append(
            f"    delivery, request sent -> message received, s: p50 {d['p50']:.3f}  "
            f"p90 {d['p90']:.3f}  p99 {d['p99']:.3f}  max {d['p100']:.3f}; last one "
            f"{result['last_delivery_after_load_s']} s after the load ended"
        )
    lines.append(cores_line(cores))
    print("\n".join(lines), flush=True)
    return result


async def warm_up(shape: Shape, args: argparse.Namespace) -> None:
    """As a deployment is warm when load comes: pools open, caches filled."""
    if shape.warm or args.warmup <= 0:
        return
    log(f"{shape.label}: warm-up")
    await signatures(
        shape,
        args,
        "warm-up",
        connections=args.connections,
        duration=args.warmup,
        measured=False,
    )
    shape.warm = True


async def wrk_on(
    shape: Shape,
    args: argparse.Namespace,
    script: Path,
    *,
    connections: int,
    duration: float,
    timeout_s: float,
    env: dict[str, str],
) -> dict[str, Any]:
    """One wrk run against the shape's page, with the cores each group of processes used
    (`cpu_cores`, wrk's own included)."""
    watch = CpuWatch(shape.groups())
    watch.begin()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = await asyncio.to_thread(
        run_wrk,
        script,
        f"{shape.api}/api?id={shape.ids['page']}",
        threads=args.threads,
        connections=connections,
        duration=duration,
        timeout_s=timeout_s,
        env=env,
    )
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_cores"] = watch.end(
        children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime
    )
    return result


async def counter(shape: Shape, args: argparse.Namespace) -> dict[str, Any]:
    await quiet(args)
    result = await wrk_on(
        shape,
        args,
        WRK_GET,
        connections=args.get_connections,
        duration=args.get_duration,
        timeout_s=10,
        env={"BENCH_PAGE": str(shape.ids["page"])},
    )
    lines = http_lines(f"counter GET at {args.get_connections} connections", result)
    lines.append(cores_line(result["cpu_cores"]))
    print("\n".join(lines), flush=True)
    return result


async def ceiling(args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """bench/pg_ceiling.py in a subprocess: its figures for the one script."""
    out = args.logdir / f"pg_ceiling_{int(time.time())}.json"
    cmd = [
        args.python,
        str(BENCH / "pg_ceiling.py"),
        "--scripts",
        args.ceiling_script,
        "--group",
        str(args.ceiling_group),
        "--clients",
        str(args.ceiling_clients),
        "--duration",
        str(int(duration)),
        "--wait-quiet",
        str(args.wait_quiet),
        "--pg-url",
        args.pg_url,
        "--python",
        args.python,
        "--json",
        str(out),
    ]
    log(f"  $ {' '.join(cmd)}")
    done = await asyncio.to_thread(
        subprocess.run,
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=duration + args.wait_quiet + 300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg_ceiling failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())[0]
    return result


async def export_pages(shape: Shape, args: argparse.Namespace) -> dict[str, Any]:
    """exportActions (limit 1000) of the bench org, page after page from its first action:
    at most --export-pages pages, after one page not measured."""
    document = export_query(SELECTIONS["sync client"])
    headers = {"Authorization": f"Bearer {shape.token}"}
    async with httpx.AsyncClient(base_url=shape.api, timeout=args.export_timeout) as client:

        async def page(start: int | None) -> list[dict[str, Any]]:
            answer = (
                await client.post(
                    "/api",
                    json={"query": document, "variables": {"org": ORG_NAME, "start": start}},
                    headers=headers,
                )
            ).json()
            if answer.get("errors"):
                raise RuntimeError(str(answer["errors"])[:500])
            rows: list[dict[str, Any]] = answer["data"]["exportActions"]
            return rows

        await quiet(args)
        await page(None)
        times, count, start = [], 0, None
        for _ in range(args.export_pages):
            t0 = time.perf_counter()
            rows = await page(start)
            if not rows:
                break
            times.append(time.perf_counter() - t0)
            count += len(rows)
            start = rows[-1]["actionId"] + 1
    result: dict[str, Any] = {"pages": len(times), "actions": count}
    if times:
        result.update(
            page_median_s=statistics.median(times),
            page_max_s=max(times),
            actions_per_s=count / sum(times),
        )
        print(
            f"  exportActions (limit 1000, a sync client's fields), the bench org: "
            f"{len(times)} pages, {count} actions; a page: median {ms(result['page_median_s'])}"
            f" ms, max {ms(result['page_max_s'])} ms; {result['actions_per_s']:,.0f} actions/s",
            flush=True,
        )
    else:
        print("  exportActions: no processed actions to export", flush=True)
    return result


async def reconciliation(
    shape: Shape, args: argparse.Namespace, campaign_id: int, what: str
) -> dict[str, Any]:
    """The counters' reconciliation of one campaign in this process: twice, unless the first
    took a minute or more; each at most --reconcile-limit s. While the server's own
    maintenance is reconciling the campaign (it holds the campaign's lock), wait for it and
    try again: only the runs that did the work are timed."""
    count = f"SELECT count(*) FROM actions WHERE campaign_id = {campaign_id}"
    actions = int(psql(shape.url, count))
    engine = db.create_engine(Settings(DATABASE_URL=shape.url))
    took: list[float] = []
    outcomes: list[str] = []
    waits = 0
    deadline = time.monotonic() + args.reconcile_limit
    try:
        while len(took) < 2:
            t0 = time.perf_counter()
            try:
                outcome = await asyncio.wait_for(
                    reconcile_campaign(engine, campaign_id), args.reconcile_limit
                )
            except TimeoutError:
                outcomes.append(f"stopped after {args.reconcile_limit:g} s")
                break
            if outcome is None:
                waits += 1
                if time.monotonic() > deadline:
                    outcomes.append("the server's maintenance held it for the whole limit")
                    break
                await asyncio.sleep(0.5)
                continue
            took.append(time.perf_counter() - t0)
            outcomes.append(f"corrections: {outcome.corrections or 'none'}")
            if took[-1] >= 60:
                break
    finally:
        await engine.dispose()
    runs = [f"{ms(t)} ms ({o})" for t, o in zip(took, outcomes, strict=False)]
    runs += outcomes[len(took) :]  # the one stopped by the limit
    waited = f" (after waiting {waits} time(s) for the server's own run)" if waits else ""
    print(
        f"  reconciliation of {what} ({actions:,} actions){waited}: {'; then '.join(runs)}",
        flush=True,
    )
    return {"actions": actions, "seconds": took, "outcomes": outcomes, "waits": waits}


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def soak(shape: Shape, args: argparse.Namespace) -> dict[str, Any]:
    assert shape.server.proc is not None
    processes = {f"api worker {pid}": pid for pid in shape.server.worker_pids()}
    processes["uvicorn main"] = shape.server.proc.pid
    if shape.worker is not None and shape.worker.proc is not None:
        processes["worker"] = shape.worker.proc.pid
    samples: dict[str, list[int]] = {name: [] for name in processes}

    async def sample() -> None:
        while True:
            for name, pid in processes.items():
                kb = rss_kb(pid)
                if kb is not None:
                    samples[name].append(kb)
            await asyncio.sleep(args.rss_interval)

    sampler = asyncio.create_task(sample())
    try:
        result = await signatures(
            shape,
            args,
            f"soak at {args.soak_rate:g}/s",
            connections=args.connections,
            duration=args.soak,
            rate=args.soak_rate,
        )
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    for name, kb in samples.items():
        if kb:
            print(
                f"    RSS {name}: first {kb[0] / 1024:.0f} MB, last {kb[-1] / 1024:.0f} MB, "
                f"max {max(kb) / 1024:.0f} MB ({len(kb)} samples, every {args.rss_interval:g} s)",
                flush=True,
            )
    result["rss_kb"] = samples
    return result


# --- phases ---------------------------------------------------------------------------


async def limited(what: str, limit: float, work: Awaitable[Any]) -> Any:
    try:
        return await asyncio.wait_for(work, limit)
    except TimeoutError:
        print(f"  ** {what}: stopped after its time limit of {limit:.0f} s **", flush=True)
        return None


def describe_shape(args: argparse.Namespace, shape: Shape) -> str:
    return (
        f"== the shape: {args.api_workers} API processes, PIPELINE={args.pipeline}"
        f"{', a worker process' if shape.worker else ''}, PROCA_ENV={args.env}, "
        f"LOG_LEVEL={args.log_level}, ACCESS_LOG={str(args.access_log).lower()}"
    )


def margin(args: argparse.Namespace) -> float:
    """Seconds a phase may take beyond its load: the wait for quiet and for deliveries."""
    return float(args.drain_limit + args.wait_quiet + 120)


async def sustained(shape: Shape, args: argparse.Namespace) -> dict[str, Any] | None:
    """addActionContact flat out at --connections for --duration s, within its time limit."""
    result: dict[str, Any] | None = await limited(
        "signatures",
        args.duration + margin(args),
        signatures(
            shape,
            args,
            f"addActionContact at {args.connections} connections",
            connections=args.connections,
            duration=args.duration,
        ),
    )
    return result


async def shared_phases(args: argparse.Namespace, phases: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with open_shape(args, "production", seed=False) as shape:
        print(describe_shape(args, shape), flush=True)
        await warm_up(shape, args)
        if "production" in phases:
            print("== production", flush=True)
            flat_out = await sustained(shape, args)
            report["production"] = flat_out
            duration = args.ceiling_duration or args.duration
            top = await limited("ceiling", duration + margin(args) + 300, ceiling(args, duration))
            report["ceiling"] = top
            if top:
                print(
                    f"  PostgreSQL's ceiling, same run ({top['script']}, {top['clients']} "
                    f"clients, {top['duration_s']} s): {top['signatures_per_s']:,} signatures/s, "
                    f"{top['tps']:.0f} transactions/s, latency p99 "
                    f"{(top['latency_ms'] or {}).get('p99')} ms",
                    flush=True,
                )
                if flat_out:
                    ratio = flat_out["ok_rate"] / max(top["signatures_per_s"], 1)
                    report["ratio"] = ratio
                    print(
                        f"  ratio: {flat_out['ok_rate']:,.0f} / {top['signatures_per_s']:,} = "
                        f"{100 * ratio:.0f} % of the ceiling",
                        flush=True,
                    )
        if "spike" in phases:
            print(f"== spike: {args.spike_connections} connections", flush=True)
            report["spike"] = await limited(
                "spike",
                args.spike_duration + args.spike_timeout + margin(args),
                signatures(
                    shape,
                    args,
                    f"addActionContact at {args.spike_connections} connections",
                    connections=args.spike_connections,
                    duration=args.spike_duration,
                    timeout_s=args.spike_timeout,
                ),
            )
        if "counter" in phases:
            print("== counter", flush=True)
            report["counter"] = await limited(
                "counter", args.get_duration + margin(args), counter(shape, args)
            )
        if "soak" in phases:
            print(f"== soak: {args.soak:g} s at {args.soak_rate:g} signatures/s", flush=True)
            report["soak"] = await limited("soak", args.soak + margin(args), soak(shape, args))
    return report


async def growth(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for label, seed in (("empty", False), ("seeded", True)):
        async with open_shape(args, label, seed=seed) as shape:
            if shape.seeded:
                s = shape.seeded
                print(
                    f"== growth, seeded: {s.actions:,} actions in {len(s.campaigns):,} "
                    f"campaigns of {len(s.org_ids)} orgs, written in {s.seconds:.0f} s; "
                    f"database {s.size_bytes / 1e9:.1f} GB",
                    flush=True,
                )
            else:
                print("== growth, empty database", flush=True)
            print(describe_shape(args, shape), flush=True)
            await warm_up(shape, args)
            r: dict[str, Any] = {}
            r["signatures"] = await sustained(shape, args)
            r["counter"] = await limited(
                "counter", args.get_duration + margin(args), counter(shape, args)
            )
            r["export"] = await limited(
                "exportActions",
                args.export_pages * args.export_timeout + margin(args),
                export_pages(shape, args),
            )
            r["reconcile_bench"] = await limited(
                "reconciliation",
                2 * args.reconcile_limit + 60,
                reconciliation(shape, args, shape.ids["campaign"], "the bench campaign"),
            )
            if shape.seeded:
                campaign = shape.seeded.campaigns[len(shape.seeded.campaigns) // 2]
                r["reconcile_seeded"] = await limited(
                    "reconciliation",
                    2 * args.reconcile_limit + 60,
                    reconciliation(shape, args, campaign, "a seeded campaign"),
                )
                r["seeded"] = {
                    "actions": shape.seeded.actions,
                    "campaigns": len(shape.seeded.campaigns),
                    "seconds": shape.seeded.seconds,
                    "size_bytes": shape.seeded.size_bytes,
                }
            report[label] = r
    print_growth(report)
    return report


def print_growth(report: dict[str, Any]) -> None:
    def pick(label: str, *path: str) -> float | None:
        value: Any = report.get(label)
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None

    rows: list[tuple[str, tuple[str, ...], float]] = [
        ("signatures/s (answered ok)", ("signatures", "ok_rate"), 1),
        ("signature p99, ms", ("signatures", "latency_us", "p99"), 1e-3),
        ("delivery p99, s", ("signatures", "delivery_s", "p99"), 1),
        ("last delivery after the load, s", ("signatures", "last_delivery_after_load_s"), 1),
        ("counter GET/s", ("counter", "ok_rate"), 1),
        ("counter GET p99, ms", ("counter", "latency_us", "p99"), 1e-3),
        ("exportActions page, median ms", ("export", "page_median_s"), 1e3),
        ("reconciliation, bench campaign, ms", ("reconcile_bench", "seconds"), 1e3),
        ("reconciliation, a seeded campaign, ms", ("reconcile_seeded", "seconds"), 1e3),
    ]
    print("== growth: empty vs seeded", flush=True)
    for name, path, scale in rows:
        if path[-1] == "seconds":  # the second, warm run of the reconciliation
            values = []
            for label in ("empty", "seeded"):
                got = report.get(label, {}).get(path[0])
                values.append(got["seconds"][-1] * scale if got and got["seconds"] else None)
        else:
            values = [
                None if (v := pick(label, *path)) is None else v * scale
                for label in ("empty", "seeded")
            ]
        empty, seeded = values
        change = (
            f"{100 * (seeded - empty) / empty:+.1f} %"
            if empty is not None and seeded is not None and empty
            else ""
        )
        cells = ["-" if v is None else f"{v:,.1f}" for v in values]
        print(f"  {name:<40} {cells[0]:>12} {cells[1]:>12}  {change}", flush=True)


# --- main -----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    venv_python = ROOT / ".venv" / "bin" / "python"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, of {','.join(PHASES)}"
    )
    p.add_argument("--duration", type=float, default=30, help="seconds of sustained signatures")
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--warmup", type=float, default=5, help="seconds, once per shape")
    p.add_argument("--api-workers", type=int, default=2, help="serve --workers")
    p.add_argument(
        "--pipeline",
        choices=["handoff", "embedded"],
        default="handoff",
        help="handoff: API processes plus a `proca_server worker`; embedded: no worker",
    )
    p.add_argument("--env", choices=["prod", "dev"], default="prod", help="PROCA_ENV")
    p.add_argument("--log-level", default="info", help="the server's LOG_LEVEL")
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the server's access log, a line per request (ACCESS_LOG; default off)",
    )
    p.add_argument("--pool-size", type=int, default=0, help="POOL_SIZE (default: the server's)")
    p.add_argument(
        "--drain-limit", type=float, default=120, help="seconds to wait for the deliveries"
    )
    p.add_argument("--ceiling-script", default="signature_counters")
    p.add_argument("--ceiling-group", type=int, default=10, help="signatures per transaction")
    p.add_argument("--ceiling-clients", type=int, default=16)
    p.add_argument("--ceiling-duration", type=float, default=0, help="default: --duration")
    p.add_argument("--spike-connections", type=int, default=500)
    p.add_argument("--spike-duration", type=float, default=15)
    p.add_argument("--spike-timeout", type=float, default=10, help="wrk's --timeout, seconds")
    p.add_argument("--get-connections", type=int, default=100)
    p.add_argument("--get-duration", type=float, default=15)
    p.add_argument("--soak", type=float, default=600, help="seconds")
    p.add_argument("--soak-rate", type=float, default=1000, help="signatures per second")
    p.add_argument("--rss-interval", type=float, default=10, help="seconds")
    p.add_argument("--seed-actions", type=int, default=10_000_000)
    p.add_argument("--seed-campaigns", type=int, default=1000)
    p.add_argument("--seed-orgs", type=int, default=10)
    p.add_argument("--seed-live", type=int, default=10, help="seeded campaigns left live")
    p.add_argument("--seed-chunk", type=int, default=500_000, help="actions per transaction")
    p.add_argument("--seed-limit", type=float, default=7200, help="seconds for the seeding")
    p.add_argument("--export-pages", type=int, default=10)
    p.add_argument(
        "--reconcile-limit", type=float, default=600, help="seconds for one reconciliation"
    )
    p.add_argument("--export-timeout", type=float, default=120, help="seconds per page")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=30,
        help="before each measured phase wait up to this many seconds for an idle machine",
    )
    p.add_argument("--port", type=int, default=4871)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--python", default=str(venv_python) if venv_python.exists() else sys.executable)
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    args = p.parse_args()
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if args.seed_campaigns < 1 or args.seed_orgs < 1 or args.seed_actions < args.seed_campaigns:
        p.error("--seed-actions >= --seed-campaigns >= 1 and --seed-orgs >= 1")
    return args


async def main(args: argparse.Namespace) -> dict[str, Any]:
    phases = [x for x in args.phases.split(",") if x]
    args.logdir = Path(tempfile.mkdtemp(prefix="proca-production-"))
    log(f"logs in {args.logdir}; load average {os.getloadavg()}; {os.cpu_count()} cores")
    started = time.monotonic()
    report: dict[str, Any] = {"phases": phases}
    if any(phase in SHARED_SHAPE for phase in phases):
        report.update(await shared_phases(args, phases))
    if "growth" in phases:
        report["growth"] = await growth(args)
    print(f"total {time.monotonic() - started:.0f} s", flush=True)
    return report


def run() -> None:
    args = parse_args()
    for tool in ("wrk", "psql"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    if not port_free(args.port):
        sys.exit(f"port {args.port} is in use")
    report = asyncio.run(main(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    run()
