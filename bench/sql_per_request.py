"""SQL statements per widget request, counted in process with SQLAlchemy event hooks.

Creates a fresh PostgreSQL database (setup + bench/seed.py), runs the ASGI app in this process
(lifespan included) through httpx's ASGI transport, sends signatures (addActionContact, unique
emails) and counter reads (GET), and prints per request kind: statements, transactions and
their wall time in the driver (measured around each cursor execute, so it includes the round
trip to PostgreSQL), grouped by statement. Then drops the database.

    .venv/bin/python bench/sql_per_request.py [--signatures 300] [--concurrency 1] [--gets 100]

With --concurrency > 1 the timings include waiting for PostgreSQL under that many concurrent
transactions (and for this one process's CPU, which then is the bottleneck).
"""

# A load harness: it runs psql, wrk, pgbench and the server by design, with our own arguments.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from widget_load import psql  # noqa: E402

ADD_ACTION_CONTACT = (
    "mutation addActionContact($action: ActionInput!, $actionPage: Int!, "
    "$contact: ContactInput!, $contactRef: ID, $privacy: ConsentInput!, "
    "$tracking: TrackingInput) { addActionContact(actionPageId: $actionPage, "
    "action: $action, contact: $contact, contactRef: $contactRef, privacy: $privacy, "
    "tracking: $tracking) { contactRef firstName } }"
)
COUNT = (
    "query getCount($actionPage: Int!) { actionPage(id: $actionPage) "
    "{ campaign { stats { supporterCount } } } }"
)


def signature(page: int, email: str) -> dict[str, Any]:
    return {
        "query": ADD_ACTION_CONTACT,
        "operationName": "addActionContact",
        "variables": {
            "actionPage": page,
            "action": {"actionType": "petition", "customFields": json.dumps({"comment": "hi"})},
            "contact": {
                "firstName": "Ann",
                "lastName": "Lee",
                "email": email,
                "phone": "",
                "address": {"country": "FR", "postcode": ""},
            },
            "privacy": {"optIn": True},
            "tracking": {
                "source": "newsletter",
                "medium": "email",
                "campaign": "spring",
                "content": "",
                "location": "https://campaign.example.org/sign",
            },
        },
    }


def normalise(statement: str) -> str:
    s = re.sub(r"\s+", " ", statement).strip()
    s = re.sub(r"\$\d+(::\w+(\[\])?)?", "?", s)
    return s[:160]


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.stmts: dict[str, list[float]] = defaultdict(list)
        self.events: dict[str, int] = defaultdict(int)
        self.total_time = 0.0

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event

        sync = engine.sync_engine

        @event.listens_for(sync, "before_cursor_execute")
        def before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            conn.info.setdefault("bench_t0", []).append(time.perf_counter())

        @event.listens_for(sync, "after_cursor_execute")
        def after(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            dt = time.perf_counter() - conn.info["bench_t0"].pop()
            self.stmts[normalise(statement)].append(dt)
            self.total_time += dt

        for name in ("begin", "commit", "rollback"):

            def hook(conn: Any, _name: str = name) -> None:
                self.events[_name] += 1

            event.listen(sync, name, hook)

        def checkout(*_: Any) -> None:
            self.events["pool_checkout"] += 1

        def connect(*_: Any) -> None:
            self.events["pool_new_connection"] += 1

        event.listen(sync.pool, "checkout", checkout)
        event.listen(sync.pool, "connect", connect)

    def report(self, title: str, requests: int, wall: float) -> None:
        n_stmts = sum(len(v) for v in self.stmts.values())
        print(
            f"\n== {title}: {requests} requests in {wall:.2f}s ({requests / wall:.0f}/s in one "
            f"process), {n_stmts / requests:.2f} statements per request, "
            f"{1000 * self.total_time / requests:.2f} ms in statements per request"
        )
        print(
            "   per request: "
            + ", ".join(f"{k} {v / requests:.2f}" for k, v in sorted(self.events.items()))
        )
        print("   per request   mean ms   p95 ms  statement")
        for stmt, times in sorted(self.stmts.items(), key=lambda kv: -sum(kv[1])):
            times_sorted = sorted(times)
            p95 = times_sorted[min(len(times_sorted) - 1, int(0.95 * len(times_sorted)))]
            print(
                f"   {len(times) / requests:11.2f} {1000 * sum(times) / len(times):9.2f} "
                f"{1000 * p95:8.2f}  {stmt}"
            )


async def run(args: argparse.Namespace, page: int) -> None:
    import httpx

    from proca_server.app import create_app
    from proca_server.app_state import state_of
    from proca_server.config import get_settings

    app = create_app(get_settings())
    rec = Recorder()
    rec.attach(state_of(app).engine)
    headers = {
        "Content-Type": "application/json",
        "Referer": "https://campaign.example.org/sign",
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def sign(i: int, tag: str) -> None:
                body = json.dumps(signature(page, f"{tag}-{i}@bench.example.org"))
                r = await client.post(f"/api?id={page}", content=body, headers=headers)
                if r.status_code != 200 or b'"errors"' in r.content:
                    raise RuntimeError(f"{r.status_code} {r.text[:300]}")

            # warm-up: prepared statements, caches, key ring
            for i in range(20):
                await sign(i, "warm")
            rec.reset()
            sem = asyncio.Semaphore(args.concurrency)

            async def limited(i: int) -> None:
                async with sem:
                    await sign(i, "sig")

            t0 = time.perf_counter()
            await asyncio.gather(*(limited(i) for i in range(args.signatures)))
            rec.report(
                f"addActionContact (concurrency {args.concurrency})",
                args.signatures,
                time.perf_counter() - t0,
            )

            rec.reset()
            params = {"query": COUNT, "variables": json.dumps({"actionPage": page})}
            t0 = time.perf_counter()
            for _ in range(args.gets):
                r = await client.get("/api", params=params)
                if r.status_code != 200 or b"supporterCount" not in r.content:
                    raise RuntimeError(f"{r.status_code} {r.text[:300]}")
            rec.report("GET counter (sequential)", args.gets, time.perf_counter() - t0)


@contextlib.contextmanager
def seeded_database(pg_url: str, prefix: str, *, keep: bool = False) -> Iterator[int]:
    """A fresh PostgreSQL database set up as `proca-server setup` and bench/seed.py leave it,
    made the app's (DATABASE_URL and the bench settings in this process's environment);
    yields the seeded page's id, drops the database afterwards unless `keep`."""
    dbname = f"{prefix}_{int(time.time())}_{os.getpid()}"
    admin = pg_url.rstrip("/") + "/postgres"
    os.environ.update(
        DATABASE_URL=pg_url.rstrip("/") + "/" + dbname,
        PROCA_ENV="dev",
        FINGERPRINT_SEED="bench",
        LOG_LEVEL="warning",
        # one client sends every signature: the velocity check runs, its limit is never met
        SIGNATURE_LIMIT_PER_ADDRESS="1000000000",
    )
    psql(admin, f'CREATE DATABASE "{dbname}"')
    try:
        subprocess.run(
            [sys.executable, "-m", "proca_server", "setup"],
            cwd=ROOT,
            check=True,
            timeout=120,
            capture_output=True,
        )
        seeded = subprocess.run(
            [sys.executable, str(BENCH / "seed.py")],
            cwd=ROOT,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
        yield int(json.loads(seeded.stdout.strip().splitlines()[-1])["page"])
    finally:
        if not keep:
            psql(admin, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--signatures", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--gets", type=int, default=100)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--keep-db", action="store_true")
    args = p.parse_args()

    with seeded_database(args.pg_url, "bench_sql", keep=args.keep_db) as page:
        asyncio.run(asyncio.wait_for(run(args, page), timeout=600))


if __name__ == "__main__":
    main()
