"""The org data export at volume: `proca-server export` (in this process and as the real
command) and, with --graphql, the `exportActions` query over HTTP. Prints numbers; nothing
here passes or fails.

A fresh PostgreSQL database (from --pg-url, dropped at the end unless --keep-db), migrated
as `proca-server setup` does, holds:

- the instance org and its sign key, an org with a key made by the key service (its private
  part kept for the run, in a file as an org would keep it) and activated, a campaign, a
  page, 20 tracking sources, an instance admin with an API token;
- --actions actions (default 200,000), each of its own accepted supporter, processed, with
  the org's contact sealed by the project's crypto (`contact.crypto.seal`, the signature's
  own path) to the org's key; every other one with custom fields, every 10th with a
  source. Written with COPY, then VACUUM ANALYZE.

Measured:
- the export function of the command (`export_cli.write_export`) writing CSV with
  decryption to a file, --runs times; then once without the key (contacts left sealed),
  once as JSON lines with the key;
- the real `proca-server export ORG --key FILE -o FILE` in a subprocess, --runs times
  (start-up included);
- with --graphql: `proca-server serve` in a subprocess (one worker, nothing else running
  in it), and `exportActions(limit: 1000)` paged with `start` through every action, --runs
  passes for each of two selections: what a sync client asks for (the proca CLI's export
  fields: contact and keys, custom fields, tracking, page, opt-in; with the time and the
  campaign), and every field of an action (donation included); each page's time, and
  actions/s.

Each line gives the wall time, actions/s, and the CPU time of this process (or the
subprocess, or the server) and of PostgreSQL's backends (not measured for the subprocess,
whose connection comes and goes); "other cores" is the rest of the machine's busy
time over the wall time (other people's work: above ~0.3 the figure is disturbed).

    .venv/bin/python bench/export.py [--actions 200000] [--runs 3] [--graphql]
"""

# A harness: it runs the server and the command by design, with our own arguments.
# ruff: noqa: S603, S608

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from fresh_db import fresh_database  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402
from widget_load import (  # noqa: E402
    Server,
    cpu_seconds,
    machine_busy_seconds,
    port_free,
    postgres_pids,
    wait_quiet,
)

from proca_server import db  # noqa: E402
from proca_server.action.export_cli import write_export  # noqa: E402
from proca_server.action.export_file import ExportRequest  # noqa: E402
from proca_server.config import Settings  # noqa: E402
from proca_server.contact.crypto import OrgKey, SignKey, encode_payload, seal  # noqa: E402
from proca_server.key.service import activate_key, generate_key  # noqa: E402
from proca_server.kit import base64url  # noqa: E402
from proca_server.kit.time import utcnow  # noqa: E402
from proca_server.models import ActionPage, Campaign, Org, Source  # noqa: E402
from proca_server.org.service import ensure_instance_org  # noqa: E402
from proca_server.user.service import create_user, reset_api_token  # noqa: E402

INSTANCE = "instance"
ORG = "bench"
SOURCES = 20


@dataclass
class Meter:
    """Wall time, CPU of a process (this one unless `pid`), PostgreSQL's CPU, other cores."""

    dbname: str
    pid: int | None = None
    wall: float = 0.0
    cpu: float = 0.0
    pg: float = 0.0
    busy: float = 0.0

    def _pg(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in postgres_pids(self.dbname)}

    def _cpu(self) -> float:
        return time.process_time() if self.pid is None else cpu_seconds(self.pid)

    @contextlib.contextmanager
    def measure(self) -> Iterator[Meter]:
        pg0, b0, w0 = self._pg(), machine_busy_seconds(), time.perf_counter()
        c0 = self._cpu() if self.pid is None else 0.0
        yield self
        self.wall = time.perf_counter() - w0
        if self.pid is None:
            self.cpu = self._cpu() - c0
        self.pg = sum(v - pg0.get(pid, 0.0) for pid, v in self._pg().items())
        self.busy = machine_busy_seconds() - b0

    @property
    def other_cores(self) -> float:
        return max(0.0, self.busy - self.cpu - self.pg) / max(self.wall, 1e-9)

    def line(self, what: str, count: int) -> str:
        return (
            f"{what}: {count:,} actions in {self.wall:.2f} s = {count / self.wall:,.0f} "
            f"actions/s; CPU: process {self.cpu:.2f} s, PostgreSQL {self.pg:.2f} s, "
            f"other cores {self.other_cores:.2f}"
        )


@dataclass
class World:
    org_id: int
    campaign_id: int
    page_id: int
    source_ids: list[int]
    org_key: OrgKey
    sign_key: SignKey
    private: bytes
    token: str


async def make_world(sessions: async_sessionmaker[AsyncSession]) -> World:
    async with db.transaction(sessions) as s:
        instance = await ensure_instance_org(s, INSTANCE)
        assert instance.key is not None and instance.key.private is not None
        sign = SignKey(instance.key.id, instance.org.id, instance.key.public, instance.key.private)
        org = Org(name=ORG, title="Bench")
        s.add(org)
        await s.flush()
        key, private = await generate_key(s, org, "bench key", keep_private=False)
        await activate_key(s, org, key.id)
        campaign = Campaign(name="bench-campaign", title="Bench", org_id=org.id)
        s.add(campaign)
        await s.flush()
        page = ActionPage(
            name="bench.example.org/sign", locale="en", campaign_id=campaign.id, org_id=org.id
        )
        sources = [
            Source(source=f"source{i}", medium="email", campaign=f"mailing{i}", content="")
            for i in range(SOURCES)
        ]
        s.add_all([page, *sources])
        await s.flush()
        admin = await create_user(s, "bench-admin@example.org", admin=True)
        token = await reset_api_token(s, admin.user)
        return World(
            org_id=org.id,
            campaign_id=campaign.id,
            page_id=page.id,
            source_ids=[x.id for x in sources],
            org_key=OrgKey(key.id, org.id, bytes(key.public)),
            sign_key=sign,
            private=private,
            token=token,
        )


def _records(world: World, n: int) -> tuple[list[tuple[Any, ...]], ...]:
    now = utcnow().replace(tzinfo=None)
    supporters, actions, contacts = [], [], []
    for i in range(1, n + 1):
        at = now - timedelta(seconds=n - i)
        email = f"supporter{i}@example.org"
        payload = {
            "firstName": "Ann" if i % 2 else "Jean-Luc",
            "lastName": f"Lee{i}",
            "email": email,
            "phone": "+49 30 1234567" if i % 3 == 0 else None,
            "country": "DE",
            "postcode": "10115",
            "area": "DE",
        }
        sealed = seal(
            encode_payload({k: v for k, v in payload.items() if v is not None}),
            world.org_key,
            world.sign_key,
        )
        source = world.source_ids[i % SOURCES] if i % 10 == 0 else None
        fields = '{"comment": "keep it up", "newsletter": "yes"}' if i % 2 == 0 else "{}"
        # processed, accepted, opted in, as the pipeline leaves a signature
        supporters.append(
            (i, secrets.token_bytes(32), world.campaign_id, world.page_id, 3, 0, at, at)
        )
        actions.append(
            (
                i,
                i,
                "petition",
                world.campaign_id,
                world.page_id,
                source,
                fields,
                4,
                False,
                True,
                at,
                at,
            )
        )
        contacts.append(
            (
                i,
                i,
                world.org_id,
                sealed.payload,
                sealed.crypto_nonce,
                sealed.public_key_id,
                sealed.sign_key_id,
                True,
                True,
                ["email"],
                at,
                at,
            )
        )
    return supporters, actions, contacts


async def seed(url: str, world: World, n: int) -> float:
    started = time.perf_counter()
    supporters, actions, contacts = _records(world, n)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            # the rows are consistent by construction: no foreign-key trigger per row
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.copy_records_to_table(
                "supporters",
                columns=[
                    "id",
                    "fingerprint",
                    "campaign_id",
                    "action_page_id",
                    "processing_status",
                    "email_status",
                    "inserted_at",
                    "updated_at",
                ],
                records=supporters,
            )
            await conn.copy_records_to_table(
                "actions",
                columns=[
                    "id",
                    "supporter_id",
                    "action_type",
                    "campaign_id",
                    "action_page_id",
                    "source_id",
                    "fields",
                    "processing_status",
                    "testing",
                    "with_consent",
                    "inserted_at",
                    "updated_at",
                ],
                records=actions,
            )
            await conn.copy_records_to_table(
                "contacts",
                columns=[
                    "id",
                    "supporter_id",
                    "org_id",
                    "payload",
                    "crypto_nonce",
                    "public_key_id",
                    "sign_key_id",
                    "communication_consent",
                    "delivery_consent",
                    "communication_scopes",
                    "inserted_at",
                    "updated_at",
                ],
                records=contacts,
            )
            for table in ("supporters", "actions", "contacts"):
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


def log(message: str) -> None:
    print(message, flush=True)


async def bench_in_process(
    sessions: async_sessionmaker[AsyncSession],
    world: World,
    folder: Path,
    args: argparse.Namespace,
    dbname: str,
) -> list[float]:
    keys = {"bench.key": world.private}
    runs: list[tuple[str, str, dict[str, bytes]]] = [("csv", "csv, decrypted", keys)] * args.runs
    runs += [("csv", "csv, sealed (no key)", {}), ("jsonl", "jsonl, decrypted", keys)]
    rates = []
    for fmt, label, private_keys in runs:
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        request = ExportRequest(org=ORG, private_keys=private_keys)
        target = folder / f"export.{fmt}"
        meter = Meter(dbname)
        with meter.measure(), target.open("w", encoding="utf-8", newline="") as out:
            result = await write_export(sessions, request, fmt, out, progress=False)  # type: ignore[arg-type]
        size = target.stat().st_size
        log(meter.line(f"  in process, {label}", result.count) + f"; {size / 1e6:.0f} MB")
        if label == "csv, decrypted":
            rates.append(result.count / meter.wall)
    return rates


def bench_command(
    url: str, world: World, folder: Path, args: argparse.Namespace, dbname: str, n: int
) -> list[float]:
    key_file = folder / "bench.key"
    key_file.write_text(base64url.encode(world.private) + "\n")
    key_file.chmod(0o600)
    target = folder / "command.csv"
    env = {**os.environ, "DATABASE_URL": url, "ORG_NAME": INSTANCE, "LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "proca_server", "export", ORG, "--key", str(key_file)]
    command += ["-o", str(target)]
    rates = []
    for _ in range(args.runs):
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        meter = Meter(dbname, pid=-1)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with meter.measure():
            proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(f"export failed: {proc.stderr.strip()}")
        meter.cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        log(meter.line("  proca-server export --key, csv", n) + f" ({proc.stderr.strip()})")
        rates.append(n / meter.wall)
    return rates


# what a sync client asks for (the fields of the proca CLI's export, with the time, custom
# fields and campaign), and every field of an action
SELECTIONS = {
    "sync client": """actionId actionType createdAt customFields
  contact { contactRef payload nonce publicKey { id public } signKey { id public } }
  fields { key value } tracking { source medium campaign content }
  campaign { name } actionPage { id name } privacy { optIn }""",
    "every field": """actionId actionType createdAt customFields fields { key value }
  contact { contactRef dupeRank payload nonce publicKey { id public } signKey { id public } }
  privacy { optIn givenAt emailStatus emailStatusChanged withConsent }
  tracking { source medium campaign content }
  campaign { name } actionPage { name }
  donation { amount currency }""",
}


def query(selection: str) -> str:
    return (
        "query ($org: String!, $start: Int) { exportActions(orgName: $org, start: $start, "
        "limit: 1000) { " + selection + " } }"
    )


def bench_graphql(
    url: str, world: World, folder: Path, args: argparse.Namespace, dbname: str
) -> dict[str, list[float]]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ORG_NAME": INSTANCE,
        "PROCA_ENV": "dev",
        "LOG_LEVEL": "warning",
        # nothing else in the server's process while it is measured
        "PIPELINE": "off",
        "STATS_BACKGROUND": "false",
        "HOUSEKEEPING_INTERVAL": "0",
        "MTT_ENABLED": "false",
    }
    if not port_free(args.port):
        raise RuntimeError(f"port {args.port} is in use")
    server = Server(sys.executable, env, args.port, 1, folder)
    server.start()
    rates: dict[str, list[float]] = {}
    try:
        pid = server.worker_pids()[0]
        api = f"http://127.0.0.1:{args.port}/api"
        headers = {"Authorization": f"Bearer {world.token}"}
        with httpx.Client(timeout=60) as client:

            def page(text: str, start: int | None) -> list[dict[str, Any]]:
                answer = client.post(
                    api,
                    json={"query": text, "variables": {"org": ORG, "start": start}},
                    headers=headers,
                ).json()
                if answer.get("errors"):
                    raise RuntimeError(str(answer["errors"])[:500])
                return answer["data"]["exportActions"]  # type: ignore[no-any-return]

            for label, selection in SELECTIONS.items():
                text = query(selection)
                page(text, None)  # warm up: first connections, compiled statements
                for _ in range(args.runs):
                    if args.wait_quiet:
                        wait_quiet(args.wait_quiet)
                    times: list[float] = []
                    count, start = 0, None
                    meter = Meter(dbname, pid=pid)
                    spy = profiler(args.profile, pid, label) if _ == 0 else None
                    cpu0 = cpu_seconds(pid)
                    with meter.measure():
                        while True:
                            t0 = time.perf_counter()
                            rows = page(text, start)
                            times.append(time.perf_counter() - t0)
                            if not rows:
                                break
                            count += len(rows)
                            start = rows[-1]["actionId"] + 1
                    meter.cpu = cpu_seconds(pid) - cpu0
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(timeout=60)
                    full = sorted(times[:-1])  # the last page is empty
                    log(
                        meter.line(f"  exportActions limit 1000 over HTTP, {label}", count)
                        + f"; a page: median {statistics.median(full) * 1000:.0f} ms, "
                        f"p90 {full[int(len(full) * 0.9)] * 1000:.0f} ms, "
                        f"max {full[-1] * 1000:.0f} ms"
                    )
                    rates.setdefault(label, []).append(count / meter.wall)
    finally:
        server.stop()
    return rates


def profiler(folder: Path | None, pid: int, label: str) -> subprocess.Popen[bytes] | None:
    """py-spy recording the server during the first pass of a selection (--profile DIR)."""
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"export-{label.replace(' ', '-')}.txt"
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summary(label: str, rates: list[float]) -> str:
    if not rates:
        return f"{label}: -"
    return (
        f"{label}: median {statistics.median(rates):,.0f} actions/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}, {len(rates)} runs)"
    )


async def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    async with fresh_database("postgresql", args.pg_url, args.keep_db, "bench_export") as url:
        settings = Settings(DATABASE_URL=url, PROCA_ENV="dev", LOG_LEVEL="warning")
        engine = db.create_engine(settings)
        sessions = db.create_sessionmaker(engine)
        dbname = make_url(url).database or ""
        try:
            world = await make_world(sessions)
            took = await seed(url, world, args.actions)
            if args.keep_db:
                kept = Path(tempfile.mkdtemp(prefix="bench_export_key_")) / "bench.key"
                kept.write_text(base64url.encode(world.private) + "\n")
                kept.chmod(0o600)
                log(f"kept the org's private key in {kept}")
            async with engine.connect() as conn:
                size = await conn.scalar(text("SELECT pg_database_size(current_database())"))
            log(
                f"seeded {args.actions:,} actions with sealed contacts in {took:.1f} s "
                f"(database {int(size or 0) / 1e6:.0f} MB); machine: {os.cpu_count()} cores"
            )
            with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
                folder = Path(tmp)
                in_process = await bench_in_process(sessions, world, folder, args, dbname)
                command = bench_command(url, world, folder, args, dbname, args.actions)
                graphql = bench_graphql(url, world, folder, args, dbname) if args.graphql else {}
            log(summary("export in process, csv, decrypted", in_process))
            log(summary("proca-server export, csv, decrypted", command))
            for label, rates in graphql.items():
                log(summary(f"exportActions, limit 1000, HTTP, {label}", rates))
            log(f"total {time.perf_counter() - started:.0f} s")
        finally:
            await engine.dispose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--actions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--graphql", action="store_true", help="Also the exportActions query.")
    parser.add_argument("--port", type=int, default=4089)
    parser.add_argument("--wait-quiet", type=float, default=0.0)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        help="With --graphql: record the server with py-spy (pip install py-spy) during the "
        "first pass of each selection, into this folder (bench/profile_report.py reads it).",
    )
    return parser.parse_args()


if __name__ == "__main__":
    # the migrations and the commands read it from the environment; nothing here is kept
    os.environ.setdefault("SECRET_KEY_BASE", "bench-" + "b" * 58)
    asyncio.run(main(parse_args()))
