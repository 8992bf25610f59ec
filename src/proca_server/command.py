"""What every `proca-server` command shares: the settings it runs with, the event loop, a
transaction (or sessions) on a migrated database, and the one-line failure.

The commands of each domain (campaign/cli.py, key/cli.py, ...) import these at the top;
`proca_server.cli` registers those commands, so the helpers cannot live there."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import db, error_reporting
from proca_server.config import Settings, get_settings
from proca_server.errors import UserInputError
from proca_server.migrations.migrate import is_up_to_date

T = TypeVar("T")


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def settings() -> Settings:
    s = get_settings()
    s.check()
    # every command that reads the settings reports its crashes (SENTRY_DSN)
    error_reporting.start(s, "cli")
    return s


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def in_transaction(s: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on a migrated database."""
    engine = db.create_engine(s)
    try:
        if not await is_up_to_date(engine):
            raise UserInputError("the database is not migrated: run `proca-server setup`")
        async with db.transaction(db.create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


async def with_database(
    s: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """Run `work`, which opens its own transactions, on a migrated database."""
    engine = db.create_engine(s)
    try:
        if not await is_up_to_date(engine):
            raise UserInputError("the database is not migrated: run `proca-server setup`")
        return await work(db.create_sessionmaker(engine))
    finally:
        await engine.dispose()
