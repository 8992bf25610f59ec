"""What would caching the parsed and validated GraphQL documents save? (a measurement, not a fix)

Runs the app in this process (like bench/sql_per_request.py) against a fresh database and
measures CPU time per request (this process: app + httpx client) for signatures and counter
reads, first without, then with Strawberry's ParserCache and ValidationCache extensions on the
schema object (changed *in this process only*; src/ is not changed; since commit fe38ef5 the
schema has them, and the first measurement takes them out). The widget sends the
same document text every time, so both caches always hit.

    .venv/bin/python bench/whatif_graphql_cache.py [--requests 1000]
"""

# A load harness: it runs psql, wrk, pgbench and the server by design, with our own arguments.

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from sql_per_request import COUNT, seeded_database, signature  # noqa: E402


async def measure(page: int, requests: int, tag: str, caches: bool) -> dict[str, float]:
    """The figures of one app whose schema runs with (`caches`) or without the parser and
    validation caches."""
    import httpx
    from strawberry.extensions import ParserCache, ValidationCache

    from proca_server.app import create_app
    from proca_server.app_state import state_of
    from proca_server.config import get_settings

    app = create_app(get_settings())
    schema = state_of(app).schemas.full
    without = tuple(e for e in schema.extensions if not _is_cache(e))
    schema.extensions = without
    if caches:
        parser, validation = ParserCache(maxsize=128), ValidationCache(maxsize=128)
        schema.extensions = (*without, lambda: parser, lambda: validation)
    headers = {"Content-Type": "application/json", "Referer": "https://campaign.example.org/sign"}
    out: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def sign(i: int) -> None:
                body = json.dumps(signature(page, f"{tag}-{i}@bench.example.org"))
                r = await client.post(f"/api?id={page}", content=body, headers=headers)
                assert r.status_code == 200 and b'"errors"' not in r.content, r.text[:300]

            params = {"query": COUNT, "variables": json.dumps({"actionPage": page})}

            async def get() -> None:
                r = await client.get("/api", params=params)
                assert r.status_code == 200 and b"supporterCount" in r.content, r.text[:300]

            for i in range(30):  # warm-up
                await sign(-i - 1)
                await get()
            c0, w0 = time.process_time(), time.perf_counter()
            for i in range(requests):
                await sign(i)
            out["signature_cpu_ms"] = 1000 * (time.process_time() - c0) / requests
            out["signature_wall_ms"] = 1000 * (time.perf_counter() - w0) / requests
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(requests):
                await get()
            out["get_cpu_ms"] = 1000 * (time.process_time() - c0) / requests
            out["get_wall_ms"] = 1000 * (time.perf_counter() - w0) / requests
    await state_of(app).engine.dispose()
    return out


def _is_cache(extension: Any) -> bool:
    from strawberry.extensions import ParserCache, ValidationCache

    kinds = (ParserCache, ValidationCache)
    if isinstance(extension, type):
        return issubclass(extension, kinds)
    if isinstance(extension, kinds):
        return True
    try:  # a factory: see what it makes
        return isinstance(extension(), kinds)
    except TypeError:
        return False


async def run(page: int, requests: int) -> None:
    from proca_server.graphql.schema import build_schema

    had_caches = any(_is_cache(e) for e in build_schema().extensions)
    base = await measure(page, requests, "base", caches=False)
    cached = await measure(page, requests, "cached", caches=True)
    print(
        f"{requests} sequential requests of each kind, CPU of this process per request "
        f"(the schema {'already has' if had_caches else 'has no'} document caches; "
        "measured without and with them):"
    )
    for key in ("signature_cpu_ms", "signature_wall_ms", "get_cpu_ms", "get_wall_ms"):
        print(
            f"  {key:18} without {base[key]:6.2f}   with parser+validation cache "
            f"{cached[key]:6.2f}   saved {100 * (1 - cached[key] / base[key]):5.1f}%"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432")
    args = p.parse_args()
    with seeded_database(args.pg_url, "bench_whatif") as page:
        asyncio.run(asyncio.wait_for(run(page, args.requests), timeout=600))


if __name__ == "__main__":
    main()
