"""A failed SQL statement puts none of its parameters in a log line, at any level: not in the
message, not in its arguments, not in the formatted exception (SQLAlchemy's parameters,
PostgreSQL's DETAIL, asyncpg's "invalid input for query argument")."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.action.batcher import OutcomeUnknown, StatementBatcher
from proca_server.action.lane import SignatureLane
from proca_server.app_state import state_of
from tests.conftest import create_pg_database, drop_pg_database, skip_without_pg
from tests.factories import make_user, make_world
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, warm_up, widget_post

EMAIL = "leak.person@example.org"
FIRST, LAST = "Zebulon", "Quixley"
PERSONAL = (EMAIL, FIRST, LAST)
FORMATTER = logging.Formatter("%(name)s %(levelname)s %(message)s")


def leaks(records: Sequence[logging.LogRecord], secrets: Sequence[str]) -> list[str]:
    """The log records that carry any of `secrets`, formatted."""
    found = []
    for record in records:
        shown = "\n".join((FORMATTER.format(record), repr(record.msg), repr(record.args)))
        if any(secret.lower() in shown.lower() for secret in secrets):
            found.append(shown)
    return found


@pytest.fixture
async def refused_person(engine: AsyncEngine, backend: str) -> AsyncIterator[None]:
    """The database refuses a supporter with EMAIL: a constraint on PostgreSQL (whose DETAIL
    then quotes the whole row), a trigger on SQLite."""
    if backend == "postgresql":
        add = (
            "ALTER TABLE supporters ADD CONSTRAINT test_refuse_person "
            f"CHECK (email IS NULL OR email <> '{EMAIL}')"
        )
        drop = "ALTER TABLE supporters DROP CONSTRAINT test_refuse_person"
    else:
        add = (
            "CREATE TRIGGER test_refuse_person BEFORE INSERT ON supporters "
            f"WHEN NEW.email = '{EMAIL}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        drop = "DROP TRIGGER test_refuse_person"
    async with engine.begin() as conn:
        await conn.execute(text(add))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(drop))


async def test_a_failed_signature_insert_logs_no_personal_data(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    backend: str,
    refused_person: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await make_world(session, roles=())
    page = world.page.id
    # on PostgreSQL the signature lane takes the request first, then the general path
    await warm_up(client, page, "warm@example.org")
    lane: SignatureLane = state_of(app).signature_lane
    taken = lane.answered
    caplog.set_level(logging.DEBUG)  # every logger, SQLAlchemy's statements included
    variables = signature(page, EMAIL)
    variables["contact"].update(firstName=FIRST, lastName=LAST)
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert body["errors"][0]["extensions"]["code"] == "internal"
    assert lane.answered == taken
    failures = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert failures, "the failed insert is logged"
    if backend == "postgresql":
        assert any("signature lane" in r.getMessage() for r in caplog.records)
    assert leaks(caplog.records, PERSONAL) == []


async def test_sql_errors_on_the_app_engine_carry_no_parameters(
    session: AsyncSession, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    # statements on the engine the app, the workers and the CLI share: a unique email again
    # (PostgreSQL's DETAIL quotes the key), and a value PostgreSQL cannot read
    await make_user(session, EMAIL)
    await session.commit()
    log = logging.getLogger("tests.log_privacy")
    failing = [
        ("INSERT INTO users (email, hashed_password, perms, inserted_at, updated_at) "
         "VALUES (:e, :p, 0, '2026-01-01', '2026-01-01')", {"e": EMAIL, "p": FIRST}),
    ]  # fmt: skip
    if backend == "postgresql":
        failing.append(("SELECT CAST(:v AS integer)", {"v": LAST}))
    for statement, params in failing:
        try:
            await session.execute(text(statement), params)
        except Exception:
            log.exception("statement failed")
        else:
            raise AssertionError("the statement should fail")
        await session.rollback()
    assert len(caplog.records) == len(failing)
    assert leaks(caplog.records, PERSONAL) == []


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    skip_without_pg()
    name, url = await create_pg_database()
    pool = await asyncpg.create_pool(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await pool.execute(
            f"CREATE TABLE t (id serial PRIMARY KEY, email text CHECK (email <> '{EMAIL}'))"
        )
        yield pool
    finally:
        await pool.close()
        await drop_pg_database(name)


async def test_the_lanes_batcher_hands_out_errors_without_arguments(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    async def get() -> asyncpg.Pool:
        return pool

    batcher = StatementBatcher(get)
    insert = "INSERT INTO t (email) VALUES ($1) RETURNING id"
    log = logging.getLogger("tests.log_privacy")
    for argument in (EMAIL, f"{FIRST}\ud800"):  # refused by the server; not encodable
        with pytest.raises(asyncpg.PostgresError) as refused:
            await batcher.fetchrow(insert, [argument])
        log.error("refused", exc_info=refused.value)

    class Broken:
        """A connection that breaks with the statement in flight."""

        async def fetchrow(self, *_: object) -> None:
            raise ConnectionResetError(f"lost while sending {EMAIL}")

    class BrokenPool:
        async def acquire(self) -> Broken:
            return Broken()

        async def release(self, _: object) -> None:
            return None

    async def broken() -> BrokenPool:
        return BrokenPool()

    with pytest.raises(OutcomeUnknown) as unknown:
        await StatementBatcher(broken).fetchrow(insert, [EMAIL])
    log.error("unknown", exc_info=unknown.value)
    assert len(caplog.records) == 3
    assert leaks(caplog.records, PERSONAL) == []
