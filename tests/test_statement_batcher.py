"""The signature lane's group commit (action/batcher.py) on a real PostgreSQL: statements of
the same moment share a round trip, a refused group is retried statement by statement, and
a connection that breaks mid-flight is reported as such, never as "nothing written"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY

from proca_server import db
from proca_server.action.batcher import OutcomeUnknown, StatementBatcher
from tests.conftest import create_pg_database, drop_pg_database, skip_without_pg

INSERT = "INSERT INTO t (v) VALUES ($1::int) RETURNING id, v"


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    skip_without_pg()
    name, url = await create_pg_database()
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        await pool.execute("CREATE TABLE t (id serial PRIMARY KEY, v int CHECK (v >= 0))")
        yield pool
    finally:
        await pool.close()
        await drop_pg_database(name)


def batcher_of(pool: asyncpg.Pool, **kw: float) -> StatementBatcher:
    async def get() -> asyncpg.Pool:
        return pool

    return StatementBatcher(get, **kw)  # type: ignore[arg-type]


async def test_statements_of_one_window_go_in_one_round_trip(pool: asyncpg.Pool) -> None:
    batcher = batcher_of(pool, window=0.05)
    rows = await asyncio.gather(*(batcher.fetchrow(INSERT, [v]) for v in range(20)))
    assert [r["v"] for r in rows] == list(range(20))
    assert (batcher.round_trips, batcher.statements) == (1, 20)
    assert await pool.fetchval("SELECT count(*) FROM t") == 20
    # later statements make their own group; without a window, those of one loop turn
    now = batcher_of(pool)
    rows = await asyncio.gather(*(now.fetchrow(INSERT, [v]) for v in range(3)))
    assert [r["v"] for r in rows] == [0, 1, 2] and now.round_trips == 1


async def test_a_group_is_at_most_max_group_statements(pool: asyncpg.Pool) -> None:
    batcher = StatementBatcher(batcher_of(pool)._pool, window=10.0, max_group=8)
    rows = await asyncio.wait_for(
        asyncio.gather(*(batcher.fetchrow(INSERT, [v]) for v in range(16))), 5
    )
    assert len(rows) == 16
    assert (batcher.round_trips, batcher.statements) == (2, 16)


async def test_a_refused_statement_fails_alone_and_nothing_of_it_is_written(
    pool: asyncpg.Pool,
) -> None:
    batcher = batcher_of(pool, window=0.05)
    values = [1, 2, -1, 3, -5, 4]  # the check constraint refuses the negative ones
    outcomes = await asyncio.gather(
        *(batcher.fetchrow(INSERT, [v]) for v in values), return_exceptions=True
    )
    for value, outcome in zip(values, outcomes, strict=True):
        if value < 0:
            assert isinstance(outcome, asyncpg.CheckViolationError)
        else:
            assert not isinstance(outcome, BaseException) and outcome["v"] == value
    assert batcher.retried_alone == 6
    stored = [r["v"] for r in await pool.fetch("SELECT v FROM t ORDER BY id")]
    assert stored == [1, 2, 3, 4]


async def test_a_connection_broken_in_flight_is_an_unknown_outcome(pool: asyncpg.Pool) -> None:
    batcher = batcher_of(pool, window=0.01)
    slow = "SELECT pg_sleep(2), $1::int AS v"
    pending = [asyncio.create_task(batcher.fetchrow(slow, [v])) for v in range(3)]
    for _ in range(100):
        pids = await pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(2)%'"
        )
        if pids:
            break
        await asyncio.sleep(0.02)
    assert pids
    await pool.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(o, OutcomeUnknown) for o in outcomes), outcomes
    # the pool replaces the broken connection
    assert (await batcher.fetchrow(INSERT, [7]))["v"] == 7


async def test_without_a_pool_nothing_is_sent(pool: asyncpg.Pool) -> None:
    async def none() -> None:
        return None

    batcher = StatementBatcher(none)
    with pytest.raises(OSError):
        await batcher.fetchrow(INSERT, [1])
    assert batcher.round_trips == 0


async def test_a_slow_round_trip_counts_as_one_slow_query(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SLOW_QUERY_SECONDS", 0.05)

    def slow_queries() -> float:
        return REGISTRY.get_sample_value("proca_repo_slow_queries_total") or 0.0

    batcher = batcher_of(pool)
    before = slow_queries()
    await batcher.fetchrow(INSERT, [1])
    assert slow_queries() == before
    sleep = "SELECT pg_sleep($1::float8)::text AS slept, 1 AS v"
    await asyncio.gather(*(batcher.fetchrow(sleep, [0.2]) for _ in range(3)))
    assert batcher.round_trips == 2
    assert slow_queries() == before + 1
