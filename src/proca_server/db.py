"""Engine, sessions and the migration check."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from proca_server.config import Settings
from proca_server.errors import BadArgument
from proca_server.kit.storable import dumps_for_sqlite, text_problem
from proca_server.metrics import SLOW_QUERIES

# a statement running longer is counted in proca_repo_slow_queries
SLOW_QUERY_SECONDS = 10.0


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
    # aiosqlite logs every call with its parameters at DEBUG: never, whatever the root level
    driver_log = logging.getLogger("aiosqlite")
    if driver_log.level < logging.INFO:  # NOTSET included
        driver_log.setLevel(logging.INFO)


def ensure_sqlite_dir(sqlalchemy_url: str) -> None:
    """SQLite creates the file but not its folder."""
    url = make_url(sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def missing_sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file the settings name when it does not exist yet (opening it would create
    it, and its folder): a command that needs a migrated database refuses before."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).expanduser()
    return None if path.exists() else path


def create_engine(settings: Settings, **kwargs: Any) -> AsyncEngine:
    url = make_url(settings.sqlalchemy_url)
    # Statement parameters are personal data (emails, names): never in an error's text, so
    # never in a log line.
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_dir(settings.sqlalchemy_url)
        kwargs.setdefault("json_serializer", dumps_for_sqlite)
        engine = create_async_engine(url, **kwargs)
        configure_sqlite(engine)
    else:
        kwargs.setdefault("pool_size", settings.pool_size)
        kwargs.setdefault("max_overflow", settings.pool_size)
        kwargs.setdefault("pool_pre_ping", False)
        engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "handle_error", _scrub_error)
    event.listen(engine.sync_engine, "before_cursor_execute", _refuse_unstorable)
    listen_for_slow_queries(engine)
    return engine


def count_if_slow(started: float) -> None:
    """Count a statement started at `started` (perf_counter) when it ran too long."""
    if perf_counter() - started > SLOW_QUERY_SECONDS:
        SLOW_QUERIES.inc()


def listen_for_slow_queries(engine: AsyncEngine) -> None:
    # one perf_counter() before and one after each statement; a statement that fails (a
    # statement_timeout, a cancel) is timed too, in handle_error
    event.listen(engine.sync_engine, "before_cursor_execute", _start_statement)
    event.listen(engine.sync_engine, "after_cursor_execute", _end_statement)
    event.listen(engine.sync_engine, "handle_error", _end_failed_statement)


def _start_statement(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    if context is not None:
        context.proca_started = perf_counter()


def _end_statement(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    started = getattr(context, "proca_started", None)
    if started is not None:
        context.proca_started = None  # an error while fetching its rows counts it no more
        count_if_slow(started)


def _end_failed_statement(context: ExceptionContext) -> None:
    execution = context.execution_context
    started = getattr(execution, "proca_started", None)
    if started is not None:
        execution.proca_started = None  # type: ignore[union-attr]
        count_if_slow(started)


def _refuse_unstorable(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """The last net under every input: a string with a NUL or a lone surrogate reaches no
    database (PostgreSQL refuses the first, no UTF-8 encoder takes the second, SQLite would
    store or match what PostgreSQL cannot), so every lookup and write behaves the same on both:
    a `bad_arg` error. Signature input is refused earlier, naming its field."""
    # parameters: a row (tuple or dict) or rows of them, depending on the dialect and the
    # execution style; array parameters are lists
    pending = [parameters]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if problem := text_problem(value):
                raise BadArgument(f"A value {problem}")
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend(value)


# A PostgreSQL error carries values of the statement too: its DETAIL ("Key (email)=(...)
# already exists", "Failing row contains (...)") and HINT, the message of a data exception
# (SQLSTATE class 22: 'invalid input syntax for type uuid: "..."'), and asyncpg's "invalid
# input for query argument $3: '<the value>'". They are cut from the driver's exception and
# from SQLAlchemy's, which repeat its message, before SQLAlchemy raises; what stays for the
# log is the error's class, SQLSTATE, constraint, table and column names and the statement's
# text. (SQLite's messages carry no values.)
_QUERY_ARGUMENT = re.compile(r"invalid input for query argument \$\d+")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def safe_message(error: asyncpg.PostgresError) -> str:
    """The message of a driver error without the statement's values."""
    text = str(error.args[0]) if error.args else ""
    argument = _QUERY_ARGUMENT.match(text)
    if argument is not None:
        return argument.group()
    if error.sqlstate and error.sqlstate.startswith("22"):
        return f"data exception (SQLSTATE {error.sqlstate})"
    return text


def scrub(error: asyncpg.PostgresError) -> str:
    """Cut the statement's values from the driver error; its message without them."""
    message = safe_message(error)
    error.args = (message,)
    error.detail = error.hint = None
    return message


def _scrub_error(context: ExceptionContext) -> None:
    adapted = context.original_exception
    driver = next((e for e in _chain(adapted) if isinstance(e, asyncpg.PostgresError)), None)
    if driver is None:
        return
    message = scrub(driver)
    if adapted is not driver:
        adapted.args = (message,)
    wrapper = context.sqlalchemy_exception
    if wrapper is not None:
        # as DBAPIError builds it
        wrapper.args = (f"({type(adapted).__module__}.{type(adapted).__name__}) {message}",)


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
