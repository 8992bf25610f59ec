"""Off the hot path: the compactor folds deltas into totals, the reconciler recounts.

Both are boundaries (they open their own transactions on the engine) and both may run in
every process at once: on PostgreSQL an advisory lock lets one compactor work at a time and
one reconciler per campaign; on SQLite the database's single writer does the same.

Compaction moves deltas into totals in one transaction, so totals + deltas, which is what a
read sums in one snapshot, never changes by it.

Reconciliation of a campaign, in one snapshot (PostgreSQL REPEATABLE READ taken after the
lock; SQLite a write transaction):
1. recount the people (distinct fingerprints, with the area of their newest supporter row
   that has one) and the (org, person) pairs from the counted actions: non-testing, not
   rejected, linked to a supporter that is not rejected; fix the rows of `counter_people` and
   `counter_org_people` that differ;
2. the exact counts are then those rows counted, plus the counted actions per type;
3. append, as deltas, exact minus what totals + deltas say in the same snapshot.
It never rewrites totals: a signature committed after the snapshot keeps its own delta. A
signature of a person whose row the reconciler fixes conflicts with it (serialization
failure), and the reconciliation is retried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import RetryCallState

from proca_server.config import Settings
from proca_server.kit import retry
from proca_server.models.base import UTCDateTime
from proca_server.models.counter import CounterKind
from proca_server.stats.counts import READ_COUNTS, delta_items, sql
from proca_server.stats.record import INSERT_DELTA

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    # to the microsecond (not kit.time's second): the schedule compares changed_at and
    # reconciled_at, which may fall in the same second
    return datetime.now(UTC)


# pg_try_advisory_*lock(namespace, id): the compactor's lock and one per campaign.
LOCK_NAMESPACE_COMPACT = 0x70726F63  # "proc"
LOCK_NAMESPACE_RECONCILE = 0x70726F64
COMPACT_BATCH = 20_000
# serialization failure, deadlock, unique violation: a concurrent signature of a fixed person
_RETRYABLE = {"40001", "40P01", "23505"}

_NOW = bindparam("now", type_=UTCDateTime())

_COMPACT_PG = sql(
    """
WITH taken AS (
    DELETE FROM counter_deltas
    WHERE id IN (SELECT id FROM counter_deltas ORDER BY id LIMIT :batch)
    RETURNING *
), folded AS (
    INSERT INTO counter_totals AS t (campaign_id, kind, key, count)
    SELECT campaign_id, kind, key, SUM(n) FROM (""",
    delta_items("taken"),
    """) AS items
    GROUP BY campaign_id, kind, key HAVING SUM(n) <> 0
    ORDER BY campaign_id, kind, key
    ON CONFLICT (campaign_id, kind, key) DO UPDATE SET count = t.count + excluded.count
), touched AS (
    INSERT INTO counter_campaigns (campaign_id, changed_at)
    SELECT DISTINCT campaign_id, CAST(:now AS timestamp) FROM taken
    ON CONFLICT (campaign_id) DO UPDATE SET changed_at = excluded.changed_at
)
SELECT count(*) FROM taken
""",
).bindparams(_NOW)

# SQLite: the first statement takes the write lock, so the three see the same deltas.
_COMPACT_SQLITE = (
    sql(
        "INSERT INTO counter_totals (campaign_id, kind, key, count) "
        "SELECT campaign_id, kind, key, SUM(n) FROM (",
        delta_items("counter_deltas"),
        ") WHERE true GROUP BY campaign_id, kind, key HAVING SUM(n) <> 0 "
        "ON CONFLICT (campaign_id, kind, key) DO UPDATE "
        "SET count = counter_totals.count + excluded.count",
    ),
    text(
        "INSERT INTO counter_campaigns (campaign_id, changed_at) "
        "SELECT DISTINCT campaign_id, :now FROM counter_deltas WHERE true "
        "ON CONFLICT (campaign_id) DO UPDATE SET changed_at = excluded.changed_at"
    ).bindparams(_NOW),
    text("DELETE FROM counter_deltas"),
)

_ANY_DELTA = text("SELECT 1 FROM counter_deltas LIMIT 1")

# counted actions: not testing, not rejected (2), of a supporter not rejected (2)
_COUNTED = """
counted AS (
    SELECT s.id AS supporter_id, s.fingerprint, s.area, p.org_id
    FROM actions AS a
    JOIN supporters AS s ON s.id = a.supporter_id
    JOIN action_pages AS p ON p.id = a.action_page_id
    WHERE a.campaign_id = :campaign_id AND NOT a.testing
      AND a.processing_status <> 2 AND s.processing_status <> 2
)"""

# The diffs between the exact sets (from the actions) and the counters' (the `known` rows).
# On PostgreSQL as full joins: a growing campaign's rows are newer than the planner's
# statistics, which then expect one row on each side and, for a left join or NOT EXISTS,
# choose a nested loop comparing every pair (seconds for a few thousand supporters); a full
# join cannot be a nested loop. SQLite (whose full join is recent) indexes the CTEs itself.
_PEOPLE_SETS = (
    "WITH ",
    _COUNTED,
    """, ranked AS (
    SELECT fingerprint, area, ROW_NUMBER() OVER (
        PARTITION BY fingerprint
        ORDER BY CASE WHEN area IS NULL THEN 1 ELSE 0 END, supporter_id DESC
    ) AS rn
    FROM counted
), exact AS (
    SELECT fingerprint, area FROM ranked WHERE rn = 1
), known AS (
    SELECT fingerprint, area FROM counter_people WHERE campaign_id = :campaign_id
)
""",
)
_PEOPLE_CHANGED = "(e.area IS NULL) <> (k.area IS NULL) OR e.area <> k.area"
# rows of (fingerprint, counted, its area, known, the known area)
_PEOPLE_DIFF = sql(
    *_PEOPLE_SETS,
    """SELECT e.fingerprint, 1 AS counted, e.area,
       CASE WHEN k.fingerprint IS NULL THEN 0 ELSE 1 END, k.area
FROM exact AS e LEFT JOIN known AS k ON k.fingerprint = e.fingerprint
WHERE k.fingerprint IS NULL OR """,
    _PEOPLE_CHANGED,
    """
UNION ALL
SELECT k.fingerprint, 0, NULL, 1, k.area FROM known AS k
WHERE NOT EXISTS (SELECT 1 FROM exact AS e WHERE e.fingerprint = k.fingerprint)
""",
)
_PEOPLE_DIFF_PG = sql(
    *_PEOPLE_SETS,
    """SELECT COALESCE(e.fingerprint, k.fingerprint),
       CASE WHEN e.fingerprint IS NULL THEN 0 ELSE 1 END, e.area,
       CASE WHEN k.fingerprint IS NULL THEN 0 ELSE 1 END, k.area
FROM exact AS e FULL JOIN known AS k ON k.fingerprint = e.fingerprint
WHERE e.fingerprint IS NULL OR k.fingerprint IS NULL OR """,
    _PEOPLE_CHANGED,
)

_ORG_SETS = (
    "WITH ",
    _COUNTED,
    """, exact AS (
    SELECT DISTINCT org_id, fingerprint FROM counted
), known AS (
    SELECT org_id, fingerprint FROM counter_org_people WHERE campaign_id = :campaign_id
)
""",
)
# rows of (org id, fingerprint, counted)
_ORG_DIFF = sql(
    *_ORG_SETS,
    """SELECT e.org_id, e.fingerprint, 1 FROM exact AS e
WHERE NOT EXISTS (
    SELECT 1 FROM known AS k WHERE k.org_id = e.org_id AND k.fingerprint = e.fingerprint
)
UNION ALL
SELECT k.org_id, k.fingerprint, 0 FROM known AS k
WHERE NOT EXISTS (
    SELECT 1 FROM exact AS e WHERE e.org_id = k.org_id AND e.fingerprint = k.fingerprint
)
""",
)
_ORG_DIFF_PG = sql(
    *_ORG_SETS,
    """SELECT COALESCE(e.org_id, k.org_id), COALESCE(e.fingerprint, k.fingerprint),
       CASE WHEN e.fingerprint IS NULL THEN 0 ELSE 1 END
FROM exact AS e FULL JOIN known AS k ON k.org_id = e.org_id AND k.fingerprint = e.fingerprint
WHERE e.fingerprint IS NULL OR k.fingerprint IS NULL
""",
)

_ADD_PERSON = text(
    "INSERT INTO counter_people (campaign_id, fingerprint, area, prev_area, seen) "
    "VALUES (:campaign_id, :fingerprint, :area, NULL, 1)"
)
_MOVE_PERSON = text(
    "UPDATE counter_people SET prev_area = area, area = :area "
    "WHERE campaign_id = :campaign_id AND fingerprint = :fingerprint"
)
_DROP_PERSON = text(
    "DELETE FROM counter_people WHERE campaign_id = :campaign_id AND fingerprint = :fingerprint"
)
_ADD_ORG_PERSON = text(
    "INSERT INTO counter_org_people (campaign_id, org_id, fingerprint) "
    "VALUES (:campaign_id, :org_id, :fingerprint)"
)
_DROP_ORG_PERSON = text(
    "DELETE FROM counter_org_people "
    "WHERE campaign_id = :campaign_id AND org_id = :org_id AND fingerprint = :fingerprint"
)

# kinds as in CounterKind; actions rejected (2) do not count
_EXACT_COUNTS = text(
    """
SELECT 0 AS kind, '' AS key, COUNT(*) AS n
FROM counter_people WHERE campaign_id = :campaign_id
UNION ALL
SELECT 1, CAST(org_id AS VARCHAR), COUNT(*)
FROM counter_org_people WHERE campaign_id = :campaign_id GROUP BY org_id
UNION ALL
SELECT 2, area, COUNT(*)
FROM counter_people WHERE campaign_id = :campaign_id AND area IS NOT NULL GROUP BY area
UNION ALL
SELECT 3, action_type, COUNT(*)
FROM actions
WHERE campaign_id = :campaign_id AND NOT testing
  AND processing_status <> 2
GROUP BY action_type
"""
)

# live campaigns: status 1
_DUE = text(
    """
SELECT c.id FROM campaigns AS c
LEFT JOIN counter_campaigns AS k ON k.campaign_id = c.id
WHERE k.reconciled_at IS NULL
   OR (k.reconciled_at <= :cutoff
       AND (c.status = 1 OR k.changed_at > k.reconciled_at))
ORDER BY c.id
"""
).bindparams(bindparam("cutoff", type_=UTCDateTime()))

_RECONCILED_AT = text(
    "SELECT reconciled_at FROM counter_campaigns WHERE campaign_id = :campaign_id"
).columns(reconciled_at=UTCDateTime())

_MARK_RECONCILED = text(
    "INSERT INTO counter_campaigns (campaign_id, reconciled_at) VALUES (:campaign_id, :now) "
    "ON CONFLICT (campaign_id) DO UPDATE SET reconciled_at = excluded.reconciled_at"
).bindparams(_NOW)


async def compact(engine: AsyncEngine, *, batch: int = COMPACT_BATCH) -> int:
    """Fold the pending deltas of every campaign into the totals; the number folded.
    0 when there was nothing to do or another process holds the compactor's lock."""
    async with engine.connect() as conn:
        if await conn.scalar(_ANY_DELTA) is None:
            return 0
    if engine.dialect.name != "postgresql":
        async with engine.begin() as conn:
            fold, touch, delete = _COMPACT_SQLITE
            await conn.execute(fold)
            await conn.execute(touch, {"now": utcnow()})
            result = await conn.execute(delete)
            return int(result.rowcount)
    folded = 0
    while True:
        async with engine.begin() as conn:
            locked = await conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:ns, 0)"), {"ns": LOCK_NAMESPACE_COMPACT}
            )
            if not locked:
                return folded
            taken = int(await conn.scalar(_COMPACT_PG, {"batch": batch, "now": utcnow()}) or 0)
        folded += taken
        if taken < batch:
            return folded


@dataclass(frozen=True)
class Reconciliation:
    """What a reconciliation changed: key rows fixed, and the correction appended per
    (kind, key) (exact minus what the counters said)."""

    people_fixed: int
    org_people_fixed: int
    corrections: dict[tuple[int, str], int]


async def reconcile_campaign(engine: AsyncEngine, campaign_id: int) -> Reconciliation | None:
    """Make the campaign's counters exact (see the module's docstring); None when another
    process is reconciling it."""
    async for attempt in retry.COUNTER_RECONCILE.retrying(
        DBAPIError,
        when=_contended,
        log=log,
        what="counters: reconciling a campaign",
        level=logging.DEBUG,
    ):
        with attempt:
            started_at = utcnow()
            async with _snapshot(engine, campaign_id) as conn:
                if conn is None:
                    return None
                outcome = await _reconcile(conn, campaign_id)
    async with engine.begin() as conn:
        await conn.execute(
            _MARK_RECONCILED,
            {"campaign_id": campaign_id, "now": started_at},
        )
    return outcome


def _contended(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and _sqlstate(exc) in _RETRYABLE


async def reconcile_due(engine: AsyncEngine, interval: float) -> list[int]:
    """Reconcile the campaigns due: never reconciled, or reconciled more than `interval`
    seconds ago and live or changed since. The ids reconciled."""
    started = utcnow()
    cutoff = started - timedelta(seconds=interval)
    async with engine.connect() as conn:
        due = [int(i) for i in (await conn.scalars(_DUE, {"cutoff": cutoff})).all()]
    done = []
    for campaign_id in due:
        # another process may have reconciled it since the list was read
        async with engine.connect() as conn:
            since = await conn.scalar(_RECONCILED_AT, {"campaign_id": campaign_id})
        if since is not None and since >= started:
            continue
        if await reconcile_campaign(engine, campaign_id) is not None:
            done.append(campaign_id)
    return done


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return str(code) if code else None


@asynccontextmanager
async def _snapshot(engine: AsyncEngine, campaign_id: int) -> AsyncIterator[AsyncConnection | None]:
    """A write transaction whose reads all see one snapshot, taken after the campaign's
    reconciliation lock (so two reconcilers never both correct the same state)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            lock = {"ns": LOCK_NAMESPACE_RECONCILE, "id": campaign_id % 2**31}
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:ns, :id)"), lock)
            await conn.commit()
            if not got:
                yield None
                return
            try:
                await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn
            finally:
                await _unlock(conn, lock)
        else:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(DBAPIError):  # SQLite may have rolled back already
                    await conn.exec_driver_sql("ROLLBACK")
                raise
            await conn.exec_driver_sql("COMMIT")


async def _unlock(conn: AsyncConnection, lock: dict[str, int]) -> None:
    try:
        if conn.in_transaction():
            await conn.rollback()
        await conn.execute(text("SELECT pg_advisory_unlock(:ns, :id)"), lock)
        await conn.commit()
    except BaseException:
        # a session lock must not stay on a pooled connection
        await conn.invalidate()
        raise


async def _reconcile(conn: AsyncConnection, campaign_id: int) -> Reconciliation:
    key = {"campaign_id": campaign_id}
    pg = conn.dialect.name == "postgresql"
    people = (await conn.execute(_PEOPLE_DIFF_PG if pg else _PEOPLE_DIFF, key)).all()
    add, move, drop = [], [], []
    for fingerprint, counted, area, known, _known_area in people:
        row = {**key, "fingerprint": bytes(fingerprint), "area": area}
        if not counted:
            drop.append(row)
        elif known:
            move.append(row)
        else:
            add.append(row)
    for statement, rows in ((_DROP_PERSON, drop), (_MOVE_PERSON, move), (_ADD_PERSON, add)):
        if rows:
            await conn.execute(statement, rows)
    org_people = (await conn.execute(_ORG_DIFF_PG if pg else _ORG_DIFF, key)).all()
    org_add = [
        {**key, "org_id": org_id, "fingerprint": bytes(fp)} for org_id, fp, c in org_people if c
    ]
    org_drop = [
        {**key, "org_id": org_id, "fingerprint": bytes(fp)} for org_id, fp, c in org_people if not c
    ]
    for statement, rows in ((_DROP_ORG_PERSON, org_drop), (_ADD_ORG_PERSON, org_add)):
        if rows:
            await conn.execute(statement, rows)

    exact = _by_kind((await conn.execute(_EXACT_COUNTS, key)).all())
    said = _by_kind(
        (k, key_, n)
        for k, key_, n in (await conn.execute(READ_COUNTS, key)).all()
        if k in tuple(CounterKind)
    )
    corrections = {
        dim: exact.get(dim, 0) - said.get(dim, 0)
        for dim in exact.keys() | said.keys()
        if exact.get(dim, 0) != said.get(dim, 0)
    }
    if corrections:
        await conn.execute(
            INSERT_DELTA, [_correction(campaign_id, dim, n) for dim, n in corrections.items()]
        )
    return Reconciliation(len(people), len(org_people), corrections)


def _by_kind(rows: Any) -> dict[tuple[int, str], int]:
    return {(int(kind), str(key)): int(n) for kind, key, n in rows if int(n)}


def _correction(campaign_id: int, dim: tuple[int, str], n: int) -> dict[str, Any]:
    kind, key = dim
    row: dict[str, Any] = {
        "campaign_id": campaign_id,
        "action_type": None,
        "actions": 0,
        "supporters": 0,
        "org_id": None,
        "org_supporters": 0,
        "area": None,
        "area_supporters": 0,
        "left_area": None,
    }
    if kind == CounterKind.SUPPORTERS:
        row["supporters"] = n
    elif kind == CounterKind.ORG_SUPPORTERS:
        row["org_id"], row["org_supporters"] = int(key), n
    elif kind == CounterKind.AREA_SUPPORTERS:
        row["area"], row["area_supporters"] = key, n
    else:
        row["action_type"], row["actions"] = key, n
    return row


async def _every(
    seconds: float, job: Callable[[], Awaitable[object]], name: str, stop: asyncio.Event
) -> None:
    """Run `job` every `seconds` until `stop` is set; after failures, on the backoff of
    `retry.COUNTER_ROUNDS` from twice the period."""

    async def pause(delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    def failed(state: RetryCallState) -> None:
        failures = state.attempt_number
        if failures == 1 or failures % 100 == 0:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning("counters: %s failed (%d in a row)", name, failures, exc_info=error)

    rounds = retry.COUNTER_ROUNDS.starting_at(2 * seconds).retrying(
        Exception, log=log, what=name, sleep=pause, until=stop.is_set, after_failure=failed
    )
    while not stop.is_set():
        try:
            async for attempt in rounds:
                with attempt:
                    if not stop.is_set():
                        await job()
        except Exception:
            if retry.cancelling() or not stop.is_set():
                raise  # a cancellation a driver turned into an error: still a cancellation
            return  # stopped while failing
        await pause(seconds)


@asynccontextmanager
async def running(
    engine: AsyncEngine,
    *,
    compact_every: float,
    reconcile_every: float,
    first_reconcile_after: float = 5.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[None]:
    """Run the compactor (every `compact_every` s) and the reconciler (every
    `reconcile_every` s, none when 0) in this process while the block runs. On exit they
    finish the round in progress (cancelled after `stop_timeout` s)."""
    stop = asyncio.Event()

    async def reconcile_later() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), first_reconcile_after)
        # due a little early, so that a campaign is not left for a second period
        due_after = reconcile_every * 0.9
        await _every(reconcile_every, lambda: reconcile_due(engine, due_after), "reconcile", stop)

    tasks = [
        asyncio.create_task(_every(compact_every, lambda: compact(engine), "compaction", stop))
    ]
    if reconcile_every > 0:
        tasks.append(asyncio.create_task(reconcile_later()))
    try:
        yield
    finally:
        stop.set()
        # Stop between rounds rather than cancel a transaction midway (the drivers do not all
        # take a cancellation well); cancel only what does not finish in time.
        _, late = await asyncio.wait(tasks, timeout=stop_timeout)
        for task in late:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@asynccontextmanager
async def background(engine: AsyncEngine, settings: Settings) -> AsyncIterator[None]:
    """The app's counters maintenance, as the settings say (STATS_BACKGROUND, ...)."""
    if not settings.stats_background:
        yield
        return
    async with running(
        engine,
        compact_every=settings.stats_compact_ms / 1000,
        reconcile_every=settings.sync_interval / 1000,
    ):
        yield
