"""CPU per processed action, in one process: the pipeline's own cost, without HTTP.

Creates a fresh PostgreSQL database (setup + bench/seed.py, the org set to deliver to its
`cus.N.deliver` queue), stores --actions signatures through the app (httpx ASGI transport,
no pipeline running), then hands them to a `PipelineRuntime` on RabbitMQ (TEST_AMQP_URL, or
--embedded for the database queue) in batches, as the processor does after ingest, and prints
the actions per second, the CPU time of this process per action, and PostgreSQL's and
RabbitMQ's CPU per action (from /proc). With --profile N it prints cProfile's top N functions.
Purges the org's queues and drops the database at the end.

    .venv/bin/python bench/processing_cpu.py [--actions 5000] [--batch 50] [--profile 30]
"""

# A harness: it runs psql and the setup commands by design, with our own arguments.

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from sql_per_request import seeded_database, signature  # noqa: E402
from widget_load import cpu_by_name  # noqa: E402

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def run(page: int, actions: int, batch: int, embedded: bool, profile: int) -> None:
    import httpx
    from sqlalchemy import text

    from proca_server.app import create_app
    from proca_server.app_state import state_of
    from proca_server.broker.embedded import EmbeddedBroker
    from proca_server.broker.rabbitmq import RabbitBroker
    from proca_server.config import get_settings
    from proca_server.processing.runtime import PipelineRuntime, RuntimeOptions

    os.environ["PIPELINE"] = "off"
    settings = get_settings()
    app = create_app(settings)
    headers = {"Content-Type": "application/json", "Referer": "https://campaign.example.org/sign"}
    async with app.router.lifespan_context(app):
        sessionmaker = state_of(app).sessionmaker
        async with sessionmaker() as session:
            await session.execute(text("UPDATE orgs SET custom_action_deliver = true"))
            org_id = (await session.execute(text("SELECT org_id FROM action_pages"))).scalar()
            await session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            tag = f"p{int(time.time())}"
            for i in range(actions):
                body = json.dumps(signature(page, f"{tag}-{i}@bench.example.org"))
                r = await client.post(f"/api?id={page}", content=body, headers=headers)
                assert r.status_code == 200 and b'"errors"' not in r.content, r.text[:300]
        async with sessionmaker() as session:
            ids = list(
                (await session.execute(text("SELECT id FROM actions ORDER BY id"))).scalars()
            )
        print(f"stored {len(ids)} actions")
        if embedded:
            broker = EmbeddedBroker(sessionmaker)
        else:
            broker = await RabbitBroker.connect(AMQP_URL)
        options = RuntimeOptions(run_workers=False, batch_size=batch, sweep_interval=3600)
        runtime = PipelineRuntime(settings, sessionmaker, broker, options)
        await runtime.start()
        warm, rest = ids[:batch], ids[batch:]
        await runtime.process(warm)
        profiler = cProfile.Profile() if profile else None
        pg0, mq0 = cpu_by_name(("postgres",)), cpu_by_name(("beam.smp",))
        c0, w0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        done = 0
        for start in range(0, len(rest), batch):
            done += await runtime.process(rest[start : start + batch])
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - w0
        cpu = time.process_time() - c0
        pg, mq = cpu_by_name(("postgres",)) - pg0, cpu_by_name(("beam.smp",)) - mq0
        n = max(done, 1)
        print(
            f"processed {done} of {len(rest)} in {wall:.2f} s = {done / wall:.0f} actions/s "
            f"(batches of {batch}, {'embedded queue' if embedded else 'RabbitMQ'})"
        )
        print(
            f"CPU per action: this process {1000 * cpu / n:.3f} ms, "
            f"PostgreSQL {1000 * pg / n:.3f} ms, RabbitMQ {1000 * mq / n:.3f} ms"
        )
        await runtime.stop()
        if not embedded:
            assert isinstance(broker, RabbitBroker)
            channel = await broker.connection.channel()  # type: ignore[attr-defined]
            for name in (f"cus.{org_id}.deliver",):
                queue = await channel.declare_queue(name, passive=True)
                await queue.purge()
                await queue.delete(if_unused=False, if_empty=False)
        await broker.close()
        if profiler:
            for order in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(profile)
                print(f"--- top {profile} by {order}")
                print("\n".join(out.getvalue().splitlines()[6:]))
    await state_of(app).engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--actions", type=int, default=5000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--embedded", action="store_true", help="the database queue, not RabbitMQ")
    p.add_argument("--profile", type=int, default=0, help="print the top N functions")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args()
    with seeded_database(args.pg_url, "bench_proc", keep=args.keep_db) as page:
        asyncio.run(
            asyncio.wait_for(
                run(page, args.actions, args.batch, args.embedded, args.profile), timeout=900
            )
        )


if __name__ == "__main__":
    main()
