"""Engine, sessions and the migration check."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from proca_server.config import Settings


def sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def configure_sqlite(engine: AsyncEngine) -> None:
    # The driver opens a transaction lazily, before the first write: reads before it see the
    # latest commits and a write never fails on a stale read snapshot (SQLITE_BUSY_SNAPSHOT);
    # writers wait for each other up to busy_timeout. The cost: a SAVEPOINT opened before any
    # write would be the outermost transaction, so the code uses no savepoints (checks first).
    event.listen(engine.sync_engine, "connect", sqlite_on_connect)


def ensure_sqlite_dir(sqlalchemy_url: str) -> None:
    """SQLite creates the file but not its folder."""
    url = make_url(sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(settings: Settings, **kwargs: Any) -> AsyncEngine:
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_dir(settings.sqlalchemy_url)
        engine = create_async_engine(url, **kwargs)
        configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", settings.pool_size)
    kwargs.setdefault("max_overflow", settings.pool_size)
    kwargs.setdefault("pool_pre_ping", False)
    return create_async_engine(url, **kwargs)


class _TaskLock:
    """A lock that the task holding it may take again (AsyncSession.scalars calls execute)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    async def __aexit__(self, *_: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


def _serialized(name: str) -> Any:
    method = getattr(AsyncSession, name)

    @functools.wraps(method)
    async def wrapper(self: SerializedAsyncSession, *args: Any, **kwargs: Any) -> Any:
        async with self._io_lock:
            return await method(self, *args, **kwargs)

    return wrapper


class SerializedAsyncSession(AsyncSession):
    """An AsyncSession that several coroutines of one request may share.

    GraphQL resolves sibling fields concurrently, and an AsyncSession must not run two
    operations at once; each operation here waits for the previous one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._io_lock = _TaskLock()


_SERIALIZED = (
    "execute",
    "scalar",
    "scalars",
    "get",
    "get_one",
    "stream",
    "stream_scalars",
    "refresh",
    "run_sync",
    "delete",
    "merge",
    "flush",
    "connection",
    "rollback",
    "commit",
    "close",
)
for _name in _SERIALIZED:
    setattr(SerializedAsyncSession, _name, _serialized(_name))


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, class_=SerializedAsyncSession, expire_on_commit=False, autoflush=False
    )


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work: commit when the block succeeds, roll back when it raises."""
    async with sessionmaker() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def one_of(column: Any, name: str, *, postgres: bool) -> ColumnElement[bool]:
    """`column IN :name`, for statements built once and run with a list as `name`. On
    PostgreSQL it is `column = ANY(:name)`, one array parameter: the statement's text, and
    so its prepared plan in the driver's cache, is the same whatever the number of values
    (an expanding IN list is a new statement for each length)."""
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]
