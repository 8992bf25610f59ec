"""CPU time per widget request, in one process, and where it goes.

Runs the app in this process (httpx ASGI transport, lifespan included) against a fresh
PostgreSQL database (setup + bench/seed.py), sends sequential signatures (addActionContact,
unique emails) and counter reads (GET), and prints the CPU time of this process per request
(app + the httpx client) and the wall time. CPU time of one process barely depends on what
else the machine runs, so it compares commits better than a load test on a shared machine.
With --profile N it also prints cProfile's top N functions (by own time and by cumulative time)
for each kind of request.

    .venv/bin/python bench/cpu_per_request.py [--requests 1000] [--profile 25]
"""

# A harness: it runs psql and the setup commands by design, with our own arguments.

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from sql_per_request import COUNT, seeded_database, signature  # noqa: E402

CALLERS: list[str] = []
FILTERS: list[str] = []
GENERIC: list[bool] = []


class _ServerClock:
    """ASGI wrapper adding up the CPU time spent inside the app (requests are sequential, so
    this is the server's share, without the client's)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cpu = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        c0 = time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.cpu += time.process_time() - c0


SERVER: list[_ServerClock] = []


async def _timed(
    name: str, requests: int, call: Callable[[int], Awaitable[None]], profile: int
) -> None:
    s0 = SERVER[0].cpu
    profiler = cProfile.Profile() if profile else None
    c0, w0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(requests):
        await call(i)
    if profiler:
        profiler.disable()
    cpu = 1000 * (time.process_time() - c0) / requests
    wall = 1000 * (time.perf_counter() - w0) / requests
    in_app = 1000 * (SERVER[0].cpu - s0) / requests
    note = " (under cProfile: inflated)" if profiler else ""
    print(
        f"{name}: {requests} sequential requests, CPU {cpu:.3f} ms (in the app {in_app:.3f} ms), "
        f"wall {wall:.3f} ms{note}"
    )
    if profiler:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats(order)
            stats.print_stats(*FILTERS, profile)
            print(f"--- {name}, top {profile} by {order}")
            print("\n".join(out.getvalue().splitlines()[6:]))
        for pattern in CALLERS:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).print_callers(pattern)
            print(f"--- {name}, callers of {pattern}")
            print("\n".join(out.getvalue().splitlines()[6:]))


async def run(page: int, requests: int, profile: int) -> None:
    import httpx

    from proca_server.app import create_app
    from proca_server.app_state import state_of
    from proca_server.config import get_settings

    app = create_app(get_settings())
    server = _ServerClock(app)
    SERVER[:] = [server]
    headers = {"Content-Type": "application/json", "Referer": "https://campaign.example.org/sign"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            tag = f"r{int(time.time())}"

            async def sign(i: int) -> None:
                body = json.dumps(signature(page, f"{tag}-{i}@bench.example.org"))
                r = await client.post(f"/api?id={page}", content=body, headers=headers)
                assert r.status_code == 200 and b'"errors"' not in r.content, r.text[:300]

            params = {"query": COUNT, "variables": json.dumps({"actionPage": page})}

            async def get(_: int) -> None:
                r = await client.get("/api", params=params)
                assert r.status_code == 200 and b"supporterCount" in r.content, r.text[:300]

            for i in range(50):  # warm-up
                await sign(-i - 1)
                await get(i)
            await _timed("addActionContact", requests, sign, 0)
            await _timed("counter GET", requests, get, 0)
            if GENERIC:
                from proca_server.action import widget_api

                for round_, direct in enumerate((False, True, False, True)):
                    widget_api.DIRECT_RESOLVERS = direct
                    label = "direct" if direct else "generic"
                    first = (2 + round_) * requests  # every signature its own email

                    async def sign_from(i: int, first: int = first) -> None:
                        await sign(first + i)

                    await _timed(f"addActionContact ({label} resolvers)", requests, sign_from, 0)
            if profile:
                await _timed("addActionContact", requests, lambda i: sign(requests + i), profile)
                await _timed("counter GET", requests, get, profile)
    await state_of(app).engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--profile", type=int, default=0, help="print the top N functions")
    p.add_argument(
        "--callers",
        action="append",
        default=[],
        help="with --profile: print the callers of the functions matching this regular expression",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        help="with --profile: only functions whose file:line(name) matches this regular expression",
    )
    p.add_argument(
        "--compare-resolvers",
        action="store_true",
        help="also time signatures "
        "through Strawberry's generic resolvers and the direct ones, alternately",
    )
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    args = p.parse_args()
    CALLERS.extend(args.callers)
    FILTERS.extend(args.only)
    if args.compare_resolvers:
        GENERIC.append(True)
    with seeded_database(args.pg_url, "bench_cpu") as page:
        asyncio.run(asyncio.wait_for(run(page, args.requests, args.profile), timeout=900))


if __name__ == "__main__":
    main()
