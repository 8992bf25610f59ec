"""Latency of the pipeline: from a signature's request to its message in `cus.N.deliver`.

Serves proca-server (`--api-workers` uvicorn processes) on a fresh PostgreSQL database with
RabbitMQ (`PIPELINE=embedded` in the server, or `--handoff` for the server plus one
`proca-server worker`), sends signatures with wrk (bench/wrk/add_action_contact.lua, paced at
--rate per second for --duration seconds from --connections connections, each request's
wall-clock time written into its action's customFields), consumes the org's `cus.N.deliver`
queue in this process (aiormq, acknowledgements 50 at a time) and reports, per action, its
arrival time minus its request's time (after --warmup seconds of the same load, not
measured): p50/p90/p99/max, by window of sending time
(BENCH_WINDOW seconds, default 5), how many of the stored actions arrived, the CPU cores used
by the server, PostgreSQL, RabbitMQ, this driver (the consumer) and wrk's share in "other".
Reports numbers; decides nothing.

    .venv/bin/python bench/pipeline_load.py --rate 1000 --duration 30 --api-workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.delivery import CpuWatch, DeliveryConsumer, percentile
from bench.widget_load import psql, run_wrk
from tests.clients.harness import free_port
from tests.conftest import create_pg_database, drop_pg_database
from tests.factories import make_campaign, make_key, make_org, make_page
from tests.pipeline.conftest import delete_org_entities

from proca_server import db
from proca_server.broker.rabbitmq import RabbitBroker
from proca_server.broker.topology import OrgConfig, org_topology
from proca_server.config import Settings

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "add_action_contact.lua"
WINDOW = float(os.environ.get("BENCH_WINDOW", "5"))
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@contextlib.asynccontextmanager
async def serve(workdir: Path, url: str, workers: int) -> AsyncIterator[tuple[str, int]]:
    """`proca-server setup`, then `serve --workers N`; the API's URL once it answers, and
    the server's process id."""
    env = {**os.environ, "DATABASE_URL": url, "PROCA_DATA_DIR": str(workdir / "data")}
    command = [sys.executable, "-m", "proca_server"]
    setup = await asyncio.create_subprocess_exec(
        *command, "setup", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if await setup.wait() != 0:
        raise SystemExit("proca-server setup failed")
    port = free_port()
    with (workdir / "server.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *command, "serve", "--port", str(port), "--workers", str(workers),
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=api_url) as client:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"the server did not start; see {workdir / 'server.log'}")
        await asyncio.sleep(2 * workers)  # every worker process started
        yield api_url, proc.pid
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def main(
    rate: float,
    duration: float,
    handoff: bool,
    api_workers: int,
    connections: int,
    warmup: float,
) -> None:
    name, url = await create_pg_database()
    org_id = 1_900_000_000 + secrets.randbelow(10**7)
    # the settings of bench/widget_load.py: no access log line per request
    os.environ.update(
        {
            "AMQP_URL": AMQP_URL,
            "PIPELINE": "handoff" if handoff else "embedded",
            "PROCA_ENV": "dev",
            "FINGERPRINT_SEED": "bench",
            "LOG_LEVEL": "warning",
            # one load generator is one address (see bench/widget_load.py)
            "SIGNATURE_LIMIT_PER_ADDRESS": "1000000000",
        }
    )
    workdir = Path(tempfile.mkdtemp(prefix="pipeline-load-"))
    worker: asyncio.subprocess.Process | None = None
    drain_log: asyncio.Task[bytes] | None = None
    try:
        async with serve(workdir, url, api_workers) as (api_url, server_pid):
            engine = db.create_engine(Settings(DATABASE_URL=url))
            async with db.create_sessionmaker(engine)() as session:
                org = await make_org(session, id=org_id, custom_action_deliver=True)
                await make_key(session, org)
                page_id = (await make_page(session, await make_campaign(session, org), org)).id
                await session.commit()
            await engine.dispose()
            env = {**os.environ, "DATABASE_URL": url, "PROCA_DATA_DIR": str(workdir / "data")}
            if handoff:
                worker = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "proca_server", "worker", env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                assert worker.stderr is not None
                while b"worker running" not in await worker.stderr.readline():
                    if worker.returncode is not None:
                        raise SystemExit("the worker stopped")
                # keep reading its log so that it never blocks on a full pipe
                drain_log = asyncio.create_task(worker.stderr.read())
            # the server applied topologies at its start, before the org existed
            broker = await RabbitBroker.connect(AMQP_URL)
            await broker.apply_topology(org_topology(OrgConfig(org_id, custom_action_deliver=True)))
            await broker.close()
            consumer = DeliveryConsumer(AMQP_URL, f"cus.{org_id}.deliver")
            await consumer.start()
            threads = 2

            async def load(seconds: float, run: str) -> dict[str, Any]:
                return await asyncio.to_thread(
                    run_wrk,
                    WRK_SCRIPT,
                    f"{api_url}/api?id={page_id}",
                    threads=threads,
                    connections=connections,
                    duration=seconds,
                    timeout_s=10,
                    env={
                        "BENCH_PAGE": str(page_id),
                        "BENCH_RUN": run,
                        "BENCH_RATE": str(rate),
                        "BENCH_THREADS": str(threads),
                        "BENCH_STAMP": "1",
                    },
                )

            async def drained(stored: int) -> None:
                await consumer.wait_for(stored, 120)  # up to two minutes for the stragglers

            if warmup > 0:
                # as a deployment is warm when a spike comes: pools open, caches filled
                await load(warmup, f"w{int(time.time())}")
                await drained(int(psql(url, "SELECT count(*) FROM actions").strip()))
            before = int(psql(url, "SELECT count(*) FROM actions").strip())
            watch = CpuWatch(
                {"server": [server_pid] + ([worker.pid] if worker is not None else [])}
            )
            watch.begin()
            first_sent = time.time()
            children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            result = await load(duration, f"p{int(first_sent)}")
            children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wrk_cpu = (children1.ru_utime + children1.ru_stime) - (
                children0.ru_utime + children0.ru_stime
            )
            total = int(psql(url, "SELECT count(*) FROM actions").strip())
            stored = total - before
            await drained(total)
            cores = watch.end(wrk_cpu)
            await consumer.close()
            async with httpx.AsyncClient(base_url=api_url) as http:
                exposition = (await http.get("/metrics")).text
            took = result["duration_us"] / 1e6
            http_latency = result["latency_us"]
            print(
                f"offered {rate:g}/s for {duration:g}s from {connections} connections (wrk): "
                f"{result['ok']} answered ok in {took:.1f}s ({result['ok'] / took:.0f}/s), "
                f"{result['requests'] - result['ok']} not ok, {stored} actions stored; "
                f"HTTP answer p50 {http_latency['p50'] / 1000:.1f} ms, "
                f"p99 {http_latency['p99'] / 1000:.1f} ms"
            )
            latencies, measured, messages = consumer.window(first_sent)
            print(
                f"arrived in cus.N.deliver: {measured} of {stored} actions"
                f" ({messages} messages, {messages - measured} duplicates)"
            )
            if latencies:
                p50, p90, p99, top = (percentile(latencies, p) for p in (50, 90, 99, 100))
                print(
                    f"latency request -> queue: p50 {p50:.3f}s p90 {p90:.3f}s"
                    f" p99 {p99:.3f}s max {top:.3f}s"
                )
                windows: dict[int, list[float]] = {}
                timeline = [
                    (sent, arrived - sent)
                    for sent, arrived in zip(consumer.sent, consumer.arrived, strict=True)
                    if sent >= first_sent
                ]
                for sent_at, latency in timeline:
                    windows.setdefault(int((sent_at - first_sent) // WINDOW), []).append(latency)
                print(
                    f"by {WINDOW:g} s of sending (p50/p99 s): "
                    + ", ".join(
                        f"{WINDOW * w:g}-{WINDOW * (w + 1):g}: "
                        f"{percentile(v, 50):.3f}/{percentile(v, 99):.3f}"
                        for w, v in sorted(windows.items())
                    )
                )
            figures = {
                line.split()[0]: float(line.split()[1])
                for line in exposition.splitlines()
                if line.startswith("proca_processing_batch_") and " " in line
            }
            batches = figures.get("proca_processing_batch_actions_count", 0.0)
            if batches:
                print(
                    f"processing (one process's /metrics): {batches:.0f} batches, "
                    f"{figures['proca_processing_batch_actions_sum'] / batches:.1f} actions and "
                    f"{1000 * figures['proca_processing_batch_seconds_sum'] / batches:.1f} ms "
                    "per batch on average"
                )
            print(
                "CPU cores from the first send to the last arrival: "
                + ", ".join(f"{k} {v}" for k, v in cores.items())
            )
    finally:
        if worker is not None and worker.returncode is None:
            worker.terminate()
            if drain_log is not None:
                drain_log.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.wait(), 20)
        with contextlib.suppress(Exception):
            await delete_org_entities(org_id)
        await drop_pg_database(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--handoff", action="store_true", help="process in a worker process")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=100, help="wrk connections")
    parser.add_argument(
        "--warmup", type=float, default=5, help="seconds at the same rate before measuring"
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.rate, args.duration, args.handoff, args.api_workers, args.connections, args.warmup
        )
    )
