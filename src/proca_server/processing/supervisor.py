"""The supervisor: every org's broker topology, and one consumer per worker queue (ARCHITECTURE.md,
"Processing pipeline and broker").

At start the topology of every org is applied, and again for one org when its processing
settings change (`org_changed`, called after the mutation's commit, and heard through the
pubsub in worker processes). Each `wrk.N.*` queue of an org's topology with a built-in worker
gets a consumer, restarted when the org's topology changes and resynced every minute."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker.base import Broker, Consumer
from proca_server.broker.topology import load_org_topology, queue_org_id
from proca_server.config import Settings
from proca_server.kit.once import Once
from proca_server.models import Org
from proca_server.pubsub import PubSub
from proca_server.workers import WorkerDeps
from proca_server.workers.registry import batch_handler_for

log = logging.getLogger(__name__)

RESYNC_INTERVAL = 60.0
# the pubsub topic (PostgreSQL NOTIFY across processes) of topology changes
TOPOLOGY_TOPIC = "pipeline:topology"


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        bus: PubSub,
        notices: Once,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.bus = bus
        self.notices = notices
        self.stopping = False
        self._consumers: dict[str, Consumer] = {}
        self._workers_lock = asyncio.Lock()

    # -- topology ------------------------------------------------------------------------

    async def sync_all_topologies(self) -> None:
        async with self.sessionmaker() as session:
            org_ids = list((await session.execute(select(Org.id).order_by(Org.id))).scalars())
        for org_id in org_ids:
            await self.apply_topology(org_id)

    async def apply_topology(self, org_id: int) -> bool:
        try:
            async with self.sessionmaker() as session:
                topology = await load_org_topology(session, org_id)
            await self.broker.apply_topology(topology)
        except Exception as exc:
            log.warning("topology of org %d not applied: %s", org_id, type(exc).__name__)
            return False
        return True

    async def org_changed(self, org_id: int, *, restart_workers: bool) -> None:
        """Apply an org's topology again (after commit), restart its worker consumers here
        when `restart_workers`, and tell the worker processes through the pubsub."""
        await self.apply_topology(org_id)
        if restart_workers:
            await self.sync_workers(restart_org=org_id)
        with contextlib.suppress(Exception):
            await self.bus.publish(TOPOLOGY_TOPIC, {"org": org_id})

    # -- worker consumers ----------------------------------------------------------------

    async def listen_topology(self) -> None:
        """Follow the topology changes of other processes."""
        while not self.stopping:
            try:
                async with self.bus.subscribe(TOPOLOGY_TOPIC) as messages:
                    while True:
                        message = await messages.get()
                        org = message.get("org")
                        if isinstance(org, int):
                            await self.apply_topology(org)
                        await self.sync_workers(restart_org=org if isinstance(org, int) else None)
            except Exception:
                log.warning("no topology notifications; resyncing periodically", exc_info=True)
                await asyncio.sleep(RESYNC_INTERVAL)

    async def resync(self) -> None:
        """Follow the database every RESYNC_INTERVAL, should a notification be lost."""
        while not self.stopping:
            await asyncio.sleep(RESYNC_INTERVAL)
            try:
                await self.sync_workers()
            except Exception:
                log.warning("worker resync failed", exc_info=True)

    async def worker_queues(self) -> list[str]:
        """The `wrk.N.*` queues of every org's topology, as the database says now."""
        async with self.sessionmaker() as session:
            org_ids = list((await session.execute(select(Org.id).order_by(Org.id))).scalars())
            names: list[str] = []
            for org_id in org_ids:
                topology = await load_org_topology(session, org_id)
                names += [q.name for q in topology.queues if q.name.startswith("wrk.")]
        return names

    async def sync_workers(self, *, restart_org: int | None = None) -> None:
        """Start a consumer for each worker queue with a built-in worker, stop the others;
        the consumers of `restart_org` are restarted (its services may have changed)."""
        async with self._workers_lock:
            if self.stopping:
                return
            wanted = set(await self.worker_queues())
            for queue in sorted(self._consumers):
                if queue not in wanted or queue_org_id(queue) == restart_org:
                    await self._consumers.pop(queue).stop()
            deps = WorkerDeps(self.settings, self.sessionmaker, self.broker, self.notices)
            for queue in sorted(wanted - set(self._consumers)):
                handler = batch_handler_for(queue, deps)
                if handler is None:
                    continue
                try:
                    self._consumers[queue] = await self.broker.consume_batches(
                        queue, handler, org_id=queue_org_id(queue)
                    )
                except Exception as exc:
                    log.warning("no consumer for %s: %s", queue, type(exc).__name__)

    async def stop_workers(self) -> None:
        """Stop every consumer (each finishes its batch first)."""
        self.stopping = True
        for consumer in list(self._consumers.values()):
            with contextlib.suppress(Exception):
                await consumer.stop()
        self._consumers.clear()

    @property
    def consumed_queues(self) -> list[str]:
        return sorted(self._consumers)
