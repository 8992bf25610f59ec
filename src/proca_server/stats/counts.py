"""The counters' read path: a campaign's counts are its totals (as of the last compaction)
plus its pending deltas plus its pages' `extra_supporters`, read in one statement (one
snapshot) and kept per process for at most `max_age` seconds."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from proca_server.kit.cache import Cache
from proca_server.models.counter import CounterKind

EXTRA_SUPPORTERS = 4  # a pseudo-kind of READ_COUNTS: the pages' extra_supporters per org
MAX_CACHED_CAMPAIGNS = 10_000


def sql(*parts: str) -> TextClause:
    """A statement joined from constant parts of this package (never from input)."""
    return text("".join(parts))


def delta_items(source: str) -> str:
    """The rows of `source` (counter_deltas, or a CTE of its rows: a constant) as
    (campaign_id, kind, key, n) rows; kinds as in CounterKind, 0 supporters, 1 org supporters
    (key: the org id), 2 area supporters, 3 actions."""
    return (
        f"SELECT campaign_id, 0 AS kind, '' AS key, supporters AS n FROM {source} "  # noqa: S608
        f"WHERE supporters <> 0 "
        f"UNION ALL SELECT campaign_id, 1, CAST(org_id AS VARCHAR), org_supporters FROM {source} "
        f"WHERE org_supporters <> 0 AND org_id IS NOT NULL "
        f"UNION ALL SELECT campaign_id, 2, area, area_supporters FROM {source} "
        f"WHERE area_supporters <> 0 AND area IS NOT NULL "
        f"UNION ALL SELECT campaign_id, 2, left_area, -1 FROM {source} "
        f"WHERE left_area IS NOT NULL "
        f"UNION ALL SELECT campaign_id, 3, action_type, actions FROM {source} "
        f"WHERE actions <> 0 AND action_type IS NOT NULL"
    )


READ_COUNTS = sql(
    "WITH d AS (SELECT * FROM counter_deltas WHERE campaign_id = :campaign_id) "
    "SELECT kind, key, SUM(n) FROM ("
    "SELECT kind, key, count AS n FROM counter_totals WHERE campaign_id = :campaign_id "
    "UNION ALL SELECT kind, key, n FROM (",
    delta_items("d"),
    ") AS items "
    "UNION ALL SELECT 4, CAST(org_id AS VARCHAR), extra_supporters FROM action_pages "
    "WHERE campaign_id = :campaign_id AND extra_supporters <> 0"
    ") AS t GROUP BY kind, key",
)


@dataclass(frozen=True)
class CampaignCounts:
    """A campaign's counters. `supporters` and `by_org` include the pages' extra_supporters
    (`by_org` the ones of the org's own pages); `by_area` and `by_action_type` do not."""

    supporters: int = 0
    by_org: Mapping[int, int] = field(default_factory=dict)
    by_area: Mapping[str, int] = field(default_factory=dict)
    by_action_type: Mapping[str, int] = field(default_factory=dict)

    def supporters_by_others(self, org_id: int | None) -> int:
        return self.supporters - (self.by_org.get(org_id, 0) if org_id is not None else 0)


def counts_from_rows(rows: Any) -> CampaignCounts:
    supporters = 0
    by_org: dict[int, int] = {}
    by_area: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for kind, key, n in rows:
        n = int(n)
        if kind == CounterKind.SUPPORTERS:
            supporters += n
        elif kind in (CounterKind.ORG_SUPPORTERS, EXTRA_SUPPORTERS):
            by_org[int(key)] = by_org.get(int(key), 0) + n
            if kind == EXTRA_SUPPORTERS:
                supporters += n
        elif kind == CounterKind.AREA_SUPPORTERS:
            by_area[key] = n
        elif kind == CounterKind.ACTIONS:
            by_type[key] = n
    return CampaignCounts(
        supporters=supporters,
        by_org={k: v for k, v in sorted(by_org.items()) if v},
        by_area={k: v for k, v in sorted(by_area.items()) if v},
        by_action_type={k: v for k, v in sorted(by_type.items()) if v},
    )


async def load_counts(conn: AsyncConnection | AsyncSession, campaign_id: int) -> CampaignCounts:
    """The counts as the database has them now (no cache)."""
    result = await conn.execute(READ_COUNTS, {"campaign_id": campaign_id})
    return counts_from_rows(result.all())


@dataclass
class _Load:
    started_at: float
    task: asyncio.Task[CampaignCounts]


class CountsCache:
    """Counts per campaign for one database, shared by the requests of this process.

    A read gets counts loaded no earlier than `max_age` seconds before it; concurrent reads of
    a campaign share one load (it runs on its own connection, so a cancelled request does not
    cancel it for the others)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # each read says how old it may take them: kept until pushed out, not for a fixed time
        self._entries: Cache[int, CampaignCounts] = Cache(MAX_CACHED_CAMPAIGNS)
        self._loads: dict[int, _Load] = {}

    async def get(self, campaign_id: int, max_age: float) -> CampaignCounts:
        fresh = self._entries.get(campaign_id, max_age)
        if fresh is not None:
            return fresh
        now = time.monotonic()
        load = self._loads.get(campaign_id)
        if load is None or load.started_at < now - max_age or load.task.done():
            load = _Load(now, asyncio.ensure_future(self._load(campaign_id, now)))
            load.task.add_done_callback(_retrieve)
            self._loads[campaign_id] = load
        return await asyncio.shield(load.task)

    def clear(self) -> None:
        self._entries.clear()

    def fresh(self, campaign_id: int, max_age: float) -> CampaignCounts | None:
        return self._entries.get(campaign_id, max_age)

    def store(self, campaign_id: int, started_at: float, counts: CampaignCounts) -> None:
        """Keep counts whose load started at `started_at`, unless newer ones are kept."""
        previous = self._entries.stored_at(campaign_id)
        if previous is None or previous < started_at:
            self._entries.put(campaign_id, counts, at=started_at)

    async def _load(self, campaign_id: int, started_at: float) -> CampaignCounts:
        try:
            async with self._engine.connect() as conn:
                counts = await load_counts(conn, campaign_id)
        finally:
            current = self._loads.get(campaign_id)
            if current is not None and current.started_at == started_at:
                del self._loads[campaign_id]
        self.store(campaign_id, started_at, counts)
        return counts


def _retrieve(task: asyncio.Task[CampaignCounts]) -> None:
    # Every waiter may have been cancelled; a failed load must not warn "never retrieved".
    if not task.cancelled():
        task.exception()


_caches: weakref.WeakKeyDictionary[Engine, CountsCache] = weakref.WeakKeyDictionary()


def cache_for(engine: AsyncEngine) -> CountsCache:
    cache = _caches.get(engine.sync_engine)
    if cache is None:
        cache = _caches[engine.sync_engine] = CountsCache(engine)
    return cache


def clear_caches() -> None:
    for cache in list(_caches.values()):
        cache.clear()


async def campaign_stats(
    session: AsyncSession, campaign_id: int, *, max_age: float = 0.5
) -> CampaignCounts:
    """The campaign's counts, at most `max_age` seconds old (plus the time of one query).

    Reads never scan actions or supporters: one indexed statement over the campaign's totals,
    its pending deltas and its pages, at most once per `max_age` per process and campaign."""
    bind = session.bind
    if not isinstance(bind, AsyncEngine):
        return await load_counts(session, campaign_id)
    cache = cache_for(bind)
    fresh = cache.fresh(campaign_id, max_age)
    if fresh is not None:
        return fresh
    # Load on the request's own connection: a load needing a connection of its own could wait
    # forever for a pool that requests waiting on it have emptied.
    started_at = time.monotonic()
    counts = await load_counts(session, campaign_id)
    cache.store(campaign_id, started_at, counts)
    return counts
