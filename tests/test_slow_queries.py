"""`proca_repo_slow_queries`: a statement of the app's engine that runs longer than
db.SLOW_QUERY_SECONDS counts once, whether it succeeds or fails (a statement timeout).
SQLite has no sleep: the tests give its connection one, a function of their own."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proca_server import db

THRESHOLD = 0.05
SLOW = 0.2


def slow_queries() -> float:
    return REGISTRY.get_sample_value("proca_repo_slow_queries_total") or 0.0


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return 1


def _sleep_then_fail(seconds: float) -> int:
    time.sleep(seconds)
    raise ValueError("too slow")


@pytest.fixture
def lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "SLOW_QUERY_SECONDS", THRESHOLD)


@pytest.fixture
async def conn(engine: AsyncEngine, backend: str) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        if backend == "sqlite":
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.create_function("test_sleep", 1, _sleep)
            await raw.create_function("test_sleep_then_fail", 1, _sleep_then_fail)
        yield connection


def sleep(backend: str) -> str:
    return "SELECT pg_sleep(:s)" if backend == "postgresql" else "SELECT test_sleep(:s)"


@pytest.mark.usefixtures("lowered")
async def test_a_statement_over_the_threshold_counts_once(
    conn: AsyncConnection, backend: str
) -> None:
    before = slow_queries()
    await conn.execute(text("SELECT 1"))
    assert slow_queries() == before
    await conn.execute(text(sleep(backend)), {"s": SLOW})
    assert slow_queries() == before + 1
    await conn.execute(text("SELECT 1"))
    assert slow_queries() == before + 1


@pytest.mark.usefixtures("lowered")
async def test_a_slow_statement_that_fails_counts_too(conn: AsyncConnection, backend: str) -> None:
    before = slow_queries()
    if backend == "postgresql":
        await conn.execute(text(f"SET LOCAL statement_timeout = {int(SLOW * 1000)}"))
        statement = "SELECT pg_sleep(5)"
    else:
        statement = f"SELECT test_sleep_then_fail({SLOW})"
    with pytest.raises(DBAPIError):
        await conn.execute(text(statement))
    assert slow_queries() == before + 1


async def test_at_the_default_threshold_a_short_sleep_is_not_slow(
    conn: AsyncConnection, backend: str
) -> None:
    assert db.SLOW_QUERY_SECONDS == 10.0
    before = slow_queries()
    await conn.execute(text(sleep(backend)), {"s": SLOW})
    assert slow_queries() == before
