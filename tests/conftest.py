"""Test databases: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from TEST_POSTGRES_URL (default: the local server, database `test`); each
run creates a fresh database and drops it afterwards. Without PostgreSQL the PostgreSQL half
is skipped with a one-line reason, except under CI=true, where that is an error."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server.action.lane import SignatureLane
from proca_server.app import create_app
from proca_server.app_state import state_of
from proca_server.auth import passwords
from proca_server.config import Settings
from proca_server.contact.keyrings import forget_keyrings
from proca_server.migrations.migrate import upgrade
from proca_server.models import Base

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# bcrypt's lowest cost for the hashes the tests make (the server's is 12, a quarter of a
# second each): the same algorithm and checks, without minutes of hashing
TEST_WORK_FACTOR = 4


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _admin_connect(connect_timeout: float = 60) -> asyncpg.Connection:
    """A connection to make and drop the test databases from: the URL's database, or, on a
    stock server where it does not exist, the server's `postgres` database."""
    try:
        return await asyncpg.connect(_pg_dsn(PG_ADMIN_URL), timeout=connect_timeout)
    except asyncpg.InvalidCatalogNameError:
        fallback = make_url(_pg_dsn(PG_ADMIN_URL)).set(database="postgres")
        return await asyncpg.connect(
            fallback.render_as_string(hide_password=False), timeout=connect_timeout
        )


async def _pg_reachable() -> str | None:
    try:
        conn = await _admin_connect(connect_timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    await conn.close()
    return None


_pg_problem: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _pg_problem
    passwords.WORK_FACTOR = TEST_WORK_FACTOR
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistUnits(), "proca-xdist-units")
    _pg_problem = asyncio.run(_pg_reachable())
    if _pg_problem and IN_CI:
        raise pytest.UsageError(
            f"CI=true but PostgreSQL at {PG_ADMIN_URL} is unreachable ({_pg_problem})"
        )


# Whole directories of end-to-end tests (served processes, real RabbitMQ journeys, fault
# injection, the Proca CLIs, a browser): `pytest -m "not slow"` leaves them out. A slow module
# elsewhere says so itself (`pytestmark = pytest.mark.slow`), a slow test with the decorator.
SLOW_DIRECTORIES = frozenset({"clients", "pipeline"})
TESTS_DIR = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            directory = item.path.relative_to(TESTS_DIR).parts[0]
        except ValueError:
            continue
        if directory in SLOW_DIRECTORIES:
            item.add_marker(pytest.mark.slow)


# The tests that declare and consume queues on the shared RabbitMQ: their queue names follow
# org ids, which every xdist worker's databases hand out from 1, and some read the global
# `system.deliver`. Under `pytest -n` they run in one worker, one after the other; every
# other test is a unit of its own, handed to whichever worker is free.
RABBITMQ_TESTS = (
    "tests/pipeline/",
    "tests/broker/test_rabbitmq.py",
    "tests/email/test_worker_broker.py",
)


def xdist_unit(nodeid: str) -> str:
    """The unit of work a test belongs to under `pytest -n`."""
    return "rabbitmq" if nodeid.startswith(RABBITMQ_TESTS) else nodeid


class XdistUnits:
    """Registered when pytest-xdist (the dev extra) is loaded: under `-n` with the default
    `--dist load`, xdist's scheduler of scopes, the scopes being `xdist_unit`s (`--dist
    loadgroup` does not group on pytest 9: it puts the group into the node id, which pytest 9
    no longer reads)."""

    @staticmethod
    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "load":
            return None
        from xdist.scheduler import LoadScopeScheduling

        class Units(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return xdist_unit(nodeid)

        return Units(config, log)


def pg_available() -> bool:
    return _pg_problem is None


def skip_without_pg() -> None:
    if _pg_problem:
        pytest.skip(f"PostgreSQL not available at {PG_ADMIN_URL}: {_pg_problem}")


async def create_pg_database() -> tuple[str, str]:
    name = f"proca_test_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await _admin_connect()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(PG_ADMIN_URL).set(database=name)
    return name, url.render_as_string(hide_password=False)


async def drop_pg_database(name: str) -> None:
    conn = await _admin_connect()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated database of each kind, for the whole run."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "proca.db"
        url = f"sqlite:///{path}"
        await asyncio.to_thread(upgrade, Settings(DATABASE_URL=url).sqlalchemy_url)
        yield url
        return
    skip_without_pg()
    name, url = await create_pg_database()
    try:
        await asyncio.to_thread(upgrade, Settings(DATABASE_URL=url).sqlalchemy_url)
        yield url
    finally:
        await drop_pg_database(name)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        DATABASE_URL=database_url,
        PROCA_DATA_DIR=str(tmp_path_factory.mktemp("data")),
        PROCA_ENV="test",
        # processing in the background would race tests that read what a request stored;
        # the pipeline's own tests start a runtime where they need one
        PIPELINE="off",
        # nor may letters be planned and sent behind a test's back
        MTT_ENABLED=False,
        # nor campaigns closed, nor contacts erased (tests/retention call the loop's tick)
        HOUSEKEEPING_INTERVAL=0,
        # one app serves every test, from one address: tests of the limits set their own
        SIGNATURE_LIMIT_PER_ADDRESS=0,
        SIGNATURE_LIMIT_PER_EMAIL=0,
        LOGIN_MAX_FAILURES_PER_ADDRESS=0,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await state_of(application).signature_lane.close()
    await state_of(application).engine.dispose()


@pytest.fixture(scope="session")
def engine(app: FastAPI) -> AsyncEngine:
    return state_of(app).engine


@pytest.fixture(scope="session")
def sessionmaker(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    return state_of(app).sessionmaker


@pytest.fixture
async def session(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> AsyncIterator[AsyncSession]:
    """A session for arranging and checking data; every table is emptied after the test."""
    async with sessionmaker() as s:
        yield s
    # process-wide caches must not carry one test's rows into the next
    forget_keyrings()
    state = state_of(app)
    state.page_cache.clear()
    state.response_cache.clear()
    state.key_sets.clear()
    await empty_tables(engine)


async def empty_tables(engine: AsyncEngine) -> None:
    """Delete every row, children first, in one round trip to the database (a script on the
    driver's connection: asyncpg runs it as one transaction, SQLite's executescript commits)."""
    script = ";".join(
        str(delete(t).compile(dialect=engine.dialect))
        for t in reversed(Base.metadata.sorted_tables)
    )
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        if engine.dialect.name == "sqlite":
            await driver.executescript(script)
        else:
            await driver.execute(script)


@pytest.fixture
async def client(app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
async def lane(app: FastAPI, backend: str) -> AsyncIterator[SignatureLane]:
    """The app's signature lane (PostgreSQL only: skipped on SQLite), enabled again after."""
    if backend != "postgresql":
        pytest.skip("the signature lane runs on PostgreSQL only")
    lane: SignatureLane = state_of(app).signature_lane
    assert lane.enabled
    yield lane
    lane.enabled = True


@pytest.fixture(scope="session")
def repo_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent
