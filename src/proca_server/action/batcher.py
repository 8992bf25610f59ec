"""Group commit for the signature lane: the signatures that arrive together share one round
trip and one commit.

Every statement sent to PostgreSQL over a socket costs a write that wakes the server process,
a commit that waits for the WAL, and a read that wakes this one. The batcher collects the
statements submitted within `window` seconds (or one event-loop turn when it is 0) and sends
each group of identical statements with `fetchmany`: one write, one implicit transaction
(atomic: all rows or none), one commit for the group. At 1,000 signatures a second this took
PostgreSQL's CPU per signature down by a third and the lane's p99 at that rate from over
100 ms to about 20 ms (docs/benchmarks.md).

What a caller of `fetchrow` may see:
- its row, once its group is committed;
- `asyncpg.PostgresError` (the statement was refused) or `OSError` (it could not be sent):
  nothing was written for it. A refused group is retried statement by statement, so that one
  bad row (a page deleted under a cached snapshot, say) fails alone;
- `OutcomeUnknown`: the connection broke with the statement in flight; it may or may not have
  been committed, so it must not be sent again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any

import asyncpg

from proca_server.db import count_if_slow, scrub

# the most statements in one round trip (the rest go in the next group)
MAX_GROUP = 64
# SQLSTATE classes that say the connection or the server went away, not the statement
_CONNECTION_CLASSES = ("08", "57")

_Item = tuple[Sequence[Any], "asyncio.Future[asyncpg.Record]"]


class OutcomeUnknown(Exception):
    """The connection broke while the statement was in flight."""


def _refused(exc: BaseException) -> bool:
    """A statement refused by the server: nothing of it was written."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    state = getattr(exc, "sqlstate", None) or ""
    return not state.startswith(_CONNECTION_CLASSES)


class StatementBatcher:
    def __init__(
        self,
        pool: Callable[[], Awaitable[asyncpg.Pool | None]],
        *,
        window: float = 0.0,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._pool = pool
        self.window = window
        self._max_group = max_group
        self._pending: list[tuple[str, Sequence[Any], asyncio.Future[asyncpg.Record]]] = []
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        # what was sent: groups, statements in them, statements tried again alone
        self.round_trips = 0
        self.statements = 0
        self.retried_alone = 0

    async def fetchrow(self, sql: str, args: Sequence[Any]) -> asyncpg.Record:
        """The statement's one row, once its group is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[asyncpg.Record] = loop.create_future()
        self._pending.append((sql, args, future))
        if len(self._pending) >= self._max_group:
            self._flush()
        elif self._scheduled is None:
            if self.window > 0:
                self._scheduled = loop.call_later(self.window, self._flush)
            else:
                self._scheduled = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        pending, self._pending = self._pending, []
        groups: dict[str, list[_Item]] = {}
        for sql, args, future in pending:
            groups.setdefault(sql, []).append((args, future))
        for sql, items in groups.items():
            task = asyncio.get_running_loop().create_task(self._send(sql, items))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _send(self, sql: str, items: list[_Item]) -> None:
        try:
            pool = await self._pool()
            if pool is None:
                raise OSError("no connection pool")
            connection = await pool.acquire()
        except Exception as exc:
            _fail(items, exc)  # nothing was sent
            return
        try:
            self.round_trips += 1
            self.statements += len(items)
            # a slow round trip counts once in proca_repo_slow_queries, like one statement of
            # the engine (db.count_if_slow)
            started = perf_counter()
            try:
                if len(items) == 1:
                    rows = [await connection.fetchrow(sql, *items[0][0])]
                else:
                    rows = await connection.fetchmany(sql, [args for args, _ in items])
            except Exception as exc:
                count_if_slow(started)
                if not _refused(exc):
                    _fail(items, OutcomeUnknown(_name(exc)))
                elif len(items) == 1:
                    _fail(items, exc)
                else:
                    # nothing of the group was written: each one alone
                    self.retried_alone += len(items)
                    for item in items:
                        await self._alone(connection, sql, item)
                return
            except BaseException:
                _fail(items, OutcomeUnknown("cancelled with the statement in flight"))
                raise
            count_if_slow(started)
        finally:
            await pool.release(connection)
        if len(rows) != len(items):
            # not with the lane's statement (one row each): never leave a caller waiting,
            # nor answer as if its row were known
            _fail(items, OutcomeUnknown(f"{len(rows)} rows for {len(items)} statements"))
            return
        for (_, future), row in zip(items, rows, strict=True):
            if not future.done():
                future.set_result(row)

    @staticmethod
    async def _alone(connection: asyncpg.Connection, sql: str, item: _Item) -> None:
        args, future = item
        started = perf_counter()
        try:
            row = await connection.fetchrow(sql, *args)
        except Exception as exc:
            count_if_slow(started)
            _fail([item], exc if _refused(exc) else OutcomeUnknown(_name(exc)))
            return
        count_if_slow(started)
        if not future.done():
            future.set_result(row)

    async def close(self) -> None:
        if self._pending:
            self._flush()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _name(exc: BaseException) -> str:
    """What of a driver error may go in a log line: its class and SQLSTATE. Its message may
    carry the statement's arguments (asyncpg's "invalid input for query argument $3: '<the
    value>'", PostgreSQL's DETAIL), which are personal data."""
    state = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} (SQLSTATE {state})" if state else type(exc).__name__


def _fail(items: Sequence[_Item], exc: BaseException) -> None:
    if isinstance(exc, asyncpg.PostgresError):
        scrub(exc)  # whoever logs it logs no argument
    for _, future in items:
        if not future.done():
            future.set_exception(exc)
