"""The running pipeline: processor, sweeper, topology and built-in workers (ARCHITECTURE.md,
"Processing pipeline and broker").

`PipelineRuntime` is the `Pipeline` (handoff.py) of a process:

- publications handed over after a commit are published at once; a failed action
  publication is left to the sweeper (the action's status did not move), a failed event is
  logged and counted (`proca_publish_failures`): it cannot be derived again;
- action ids go to an in-process queue; the processor takes batches of them (up to
  `BATCH_SIZE` ids, or what came within `BATCH_WAIT` seconds) and processes each batch in one
  transaction. On PostgreSQL the batch's action rows are locked first with
  `FOR UPDATE SKIP LOCKED`, so processes running side by side never process one action at
  the same time (a row another process holds is skipped: that process is doing it). With the
  embedded broker the messages are written in the same transaction as the new statuses; with
  RabbitMQ the batch's messages are published together and confirmed first, then the plans
  whose messages all went out are applied and the batch committed (at least once: a crash in
  between sends them again later). A failed batch (a deadlock between two processes updating
  the same supporters, a database error) is left to the sweeper;
- the sweeper walks `find_unprocessed` by keyset every `sweep_interval` seconds, over
  actions older than `sweep_age`, and feeds what it finds to the same processing;
- at start the topology of every org is applied, and again for one org when its
  processing settings change (`org_changed`, called after the mutation's commit);
- one consumer per worker queue (`wrk.N.*`) with a built-in worker, restarted when the
  topology changes.

Roles (`Role`): `EMBEDDED` runs everything in the server process; `HANDOFF` is an API
process next to separate `proca-server worker` processes: it publishes events, applies
topology changes, and passes action ids to the workers through a PostgreSQL NOTIFY (their
sweeper, with a short age, finds whatever a lost notification missed); `WORKER` is such a
worker process."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import metrics
from proca_server.broker import open_broker
from proca_server.broker.base import (
    Broker,
    BrokerError,
    Consumer,
    ExchangeNotFound,
    QueueNotFound,
)
from proca_server.broker.rabbitmq import RabbitBroker
from proca_server.broker.topology import load_org_topology, queue_org_id
from proca_server.config import Settings
from proca_server.kit.once import Once
from proca_server.models import Org
from proca_server.processing.messages import Publication
from proca_server.processing.service import Plan, apply_plans, find_unprocessed, process_actions
from proca_server.processing.transition import Stage
from proca_server.pubsub import PubSub, pubsub
from proca_server.workers import WorkerDeps, batch_handler_for

log = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_WAIT = 0.05
SWEEP_LIMIT = 500
# ids in one NOTIFY payload (PostgreSQL refuses 8000 bytes or more)
HANDOFF_BATCH = 500
RESYNC_INTERVAL = 60.0
# topics on the pubsub (PostgreSQL NOTIFY across processes)
ACTIONS_TOPIC = "pipeline:actions"
TOPOLOGY_TOPIC = "pipeline:topology"


class Role(enum.StrEnum):
    EMBEDDED = "embedded"
    HANDOFF = "handoff"
    WORKER = "worker"


@dataclass(frozen=True)
class RuntimeOptions:
    role: Role = Role.EMBEDDED
    sweep_interval: float = 5.0
    sweep_age: float = 60.0
    run_workers: bool = True
    batch_size: int = BATCH_SIZE
    batch_wait: float = BATCH_WAIT

    @classmethod
    def of(cls, settings: Settings, role: Role | None = None) -> RuntimeOptions:
        return cls(
            role=role or Role(settings.pipeline),
            sweep_interval=settings.sweep_interval_ms / 1000,
            sweep_age=settings.sweep_age_ms / 1000,
            run_workers=settings.run_workers,
        )


def _exchange_kind(exchange: str) -> str:
    # org.12.event -> org.event: one label per kind, not per org
    parts = exchange.split(".")
    if len(parts) >= 3 and parts[0] == "org" and parts[1].isdigit():
        return ".".join(["org", *parts[2:]])
    return exchange or "default"


class PipelineRuntime:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        options: RuntimeOptions | None = None,
        *,
        bus: PubSub = pubsub,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.options = options or RuntimeOptions.of(settings)
        self.bus = bus
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: dict[str, Consumer] = {}
        self._workers_lock = asyncio.Lock()
        self._sweep_now = asyncio.Event()
        self._drain: asyncio.Task[None] | None = None
        self._stopping = False
        self._postgres = False
        # orgs whose topology to apply again after the batch (a lookup queue was missing)
        self._missing_topology: set[int] = set()
        # warnings about an org's settings, said once in a while rather than per action
        self.notices = Once()

    @property
    def processes(self) -> bool:
        return self.options.role is not Role.HANDOFF

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        async with self.sessionmaker() as session:
            self._postgres = session.get_bind().dialect.name == "postgresql"
        await self.sync_all_topologies()
        if not self.processes:
            self._drain = self._spawn(self._forwarder(), "pipeline hand-off")
            return
        self._drain = self._spawn(self._processor(), "pipeline processor")
        self._spawn(self._sweeper(), "pipeline sweeper")
        if self.options.role is Role.WORKER:
            self._spawn(self._listen_actions(), "pipeline hand-off listener")
        if self.options.run_workers:
            await self.sync_workers()
            self._spawn(self._listen_topology(), "pipeline topology listener")
            self._spawn(self._resync(), "pipeline topology resync")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        """Finish what is in hand and the ids queued so far; the sweeper recovers the rest."""
        self._stopping = True
        self._sweep_now.set()
        for consumer in list(self._consumers.values()):
            with contextlib.suppress(Exception):
                await consumer.stop()
        self._consumers.clear()
        if self._drain is not None:
            self._queue.put_nowait(0)  # wakes the task up to see it is stopping
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._drain), 10)
            self._drain = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # -- the Pipeline protocol -----------------------------------------------------------

    async def after_commit(
        self, publications: Sequence[Publication], action_ids: Sequence[int]
    ) -> None:
        for publication in publications:
            await self._publish_event(publication)
        if not action_ids:
            return
        for action_id in action_ids:
            self._queue.put_nowait(action_id)

    async def _publish_event(self, publication: Publication) -> None:
        try:
            await self.broker.publish(
                publication.exchange, publication.routing_key, publication.body
            )
        except Exception as exc:
            metrics.PUBLISH_FAILURES.labels(exchange=_exchange_kind(publication.exchange)).inc()
            log.error(
                "publish to %s (%s) failed, message lost: %s",
                publication.exchange,
                publication.routing_key,
                type(exc).__name__,
            )

    # -- processing ----------------------------------------------------------------------

    async def process(self, action_ids: Sequence[int]) -> int:
        """Process these actions now, in batches; the number of actions that moved."""
        ids = sorted(set(i for i in action_ids if i > 0))
        done = 0
        for start in range(0, len(ids), self.options.batch_size):
            done += await self._process_batch(ids[start : start + self.options.batch_size])
        return done

    async def _next_batch(self, size: int) -> list[int]:
        """Up to `size` queued ids: the first, and what comes within `batch_wait`."""
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + self.options.batch_wait
        while len(batch) < size:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        while len(batch) < size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _processor(self) -> None:
        while True:
            batch = await self._next_batch(self.options.batch_size)
            try:
                await self.process(batch)
            except Exception:
                log.exception("processing of %d actions failed; the sweeper retries", len(batch))
            if self._stopping and self._queue.empty():
                return

    async def _forwarder(self) -> None:
        """PIPELINE=handoff: one notification for the ids committed within `batch_wait`."""
        while True:
            batch = [i for i in await self._next_batch(HANDOFF_BATCH) if i > 0]
            if batch:
                try:
                    await self.bus.publish(ACTIONS_TOPIC, {"ids": batch})
                except Exception:
                    log.warning("hand-off of %d actions failed; swept later", len(batch))
            if self._stopping and self._queue.empty():
                return

    async def _process_batch(self, ids: list[int]) -> int:
        async with self._lock:
            metrics.PROCESSING_BATCH_SIZE.observe(len(ids))
            try:
                with metrics.timed(metrics.PROCESSING_BATCH_DURATION):
                    return await self._process_locked(ids)
            except ExchangeNotFound:
                # an org whose topology was never applied: apply them all, try once more
                await self.sync_all_topologies()
                return await self._process_locked(ids)

    async def _process_locked(self, ids: list[int]) -> int:
        embedded = not _is_rabbit(self.broker)
        async with self.sessionmaker() as session, session.begin():
            plans = await process_actions(session, ids, lock=True)
            if not plans:
                return 0
            if embedded:
                published = []
                for plan in plans:
                    sent = True
                    for p in plan.publications:
                        routed = await self.broker.publish(
                            p.exchange, p.routing_key, p.body, session=session
                        )
                        if not routed:
                            sent = self._note_unrouted(plan) and sent
                    if sent:
                        published.append(plan)
            else:
                published = await self._publish_plans(plans)
            await apply_plans(session, published)
            applied = published
        while self._missing_topology:
            await self._apply_topology(self._missing_topology.pop())
        now = datetime.now(UTC)
        for plan in applied:
            self._note_unsent_thanks(plan)
            stage = plan.stage.value if plan.stage is not None else plan.action_status.name.lower()
            metrics.ACTIONS_PROCESSED.labels(stage=stage).inc()
            metrics.observe_processing_lag(stage, plan.loaded.action.inserted_at, now)
        return len(applied)

    async def _publish_plans(self, plans: list[Plan]) -> list[Plan]:
        """Publish the messages of the batch together (confirmed); the plans whose messages
        all went out. A missing exchange raises `ExchangeNotFound` (the caller applies the
        topologies and tries the batch again); a plan with a failed message is left to the
        sweeper (its action's status does not move)."""
        assert isinstance(self.broker, RabbitBroker)
        messages = [
            (p.exchange, p.routing_key, p.body) for plan in plans for p in plan.publications
        ]
        outcomes = iter(await self.broker.publish_many(messages))
        published: list[Plan] = []
        missing: ExchangeNotFound | None = None
        for plan in plans:
            failed: BrokerError | None = None
            for p in plan.publications:
                outcome = next(outcomes)
                if outcome is False and not self._note_unrouted(plan):
                    failed = failed or QueueNotFound(f"queue {p.routing_key} does not exist")
                if isinstance(outcome, BrokerError):
                    metrics.PUBLISH_FAILURES.labels(exchange=_exchange_kind(p.exchange)).inc()
                    failed = failed or outcome
                    if isinstance(outcome, ExchangeNotFound):
                        missing = missing or outcome
            if failed is None:
                published.append(plan)
            else:
                log.warning(
                    "action %d not published (%s); the sweeper retries",
                    plan.action_id,
                    type(failed).__name__,
                )
        if missing is not None:
            raise missing
        return published

    def _note_unrouted(self, plan: Plan) -> bool:
        """A message no queue took; whether the plan may be applied all the same.

        A detail lookup request must reach the org's lookup queue (a topology not applied
        yet): the plan is left to the sweeper and the topology applied again. A supporter
        confirm message no queue took (the org has no email backend and no
        customSupporterConfirm queue): its supporter waits for an email nobody sends. Said
        once an hour per org and process, not per signature."""
        org = plan.loaded.org
        if plan.detail_lookup:
            log.warning(
                "action %d: org %s has no detail lookup queue yet; the sweeper retries",
                plan.action_id,
                org.name,
            )
            self._missing_topology.add(org.id)
            return False
        if plan.stage is Stage.SUPPORTER_CONFIRM and self.notices.first(("confirm", org.id)):
            log.warning(
                "org %s: supporter confirmation is on but its confirm messages go nowhere "
                "(no email backend, no customSupporterConfirm queue): its supporters stay "
                "unconfirmed",
                org.name,
            )
        return True

    def _note_unsent_thanks(self, plan: Plan) -> None:
        """A delivered action of a page with a thank-you template while the org has no email
        backend: the thank-you email is not sent (once an hour per org and process)."""
        page, org = plan.loaded.page, plan.loaded.org
        if (
            plan.stage is Stage.DELIVER
            and page.thank_you_template
            and org.email_backend_id is None
            and self.notices.first(("thank_you", org.id))
        ):
            log.warning(
                "org %s: page %s has a thank-you template but the org has no email backend: "
                "no thank-you email is sent",
                org.name,
                page.name,
            )

    # -- the sweeper ---------------------------------------------------------------------

    async def _sweeper(self) -> None:
        after_id = 0
        while not self._stopping:
            try:
                async with self.sessionmaker() as session:
                    older_than = datetime.now(UTC) - timedelta(seconds=self.options.sweep_age)
                    ids = await find_unprocessed(
                        session, after_id=after_id, older_than=older_than, limit=SWEEP_LIMIT
                    )
            except Exception:
                log.warning("sweeper: database error", exc_info=True)
                ids = []
            if ids:
                after_id = ids[-1]
                try:
                    moved = await self.process(ids)
                except Exception:
                    log.exception("sweeper: processing failed")
                    moved = 0
                if moved:
                    metrics.SWEPT_ACTIONS.inc(moved)
                continue
            after_id = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_now.wait(), self.options.sweep_interval)
            self._sweep_now.clear()

    def sweep_soon(self) -> None:
        self._sweep_now.set()

    async def _listen_actions(self) -> None:
        while not self._stopping:
            try:
                async with self.bus.subscribe(ACTIONS_TOPIC) as messages:
                    while True:
                        message = await messages.get()
                        for action_id in message.get("ids", ()):
                            if isinstance(action_id, int):
                                self._queue.put_nowait(action_id)
            except Exception:
                log.warning("no action hand-off notifications; sweeping", exc_info=True)
                await asyncio.sleep(self.options.sweep_interval)

    # -- topology and workers ------------------------------------------------------------

    async def sync_all_topologies(self) -> None:
        async with self.sessionmaker() as session:
            org_ids = list((await session.execute(select(Org.id).order_by(Org.id))).scalars())
        for org_id in org_ids:
            await self._apply_topology(org_id)

    async def _apply_topology(self, org_id: int) -> bool:
        try:
            async with self.sessionmaker() as session:
                topology = await load_org_topology(session, org_id)
            await self.broker.apply_topology(topology)
        except Exception as exc:
            log.warning("topology of org %d not applied: %s", org_id, type(exc).__name__)
            return False
        return True

    async def org_changed(self, org_id: int) -> None:
        """Re-apply an org's topology after its settings or services changed (after commit),
        and restart the worker consumers here and, through the pubsub, in worker processes."""
        await self._apply_topology(org_id)
        if self.processes and self.options.run_workers:
            await self.sync_workers(restart_org=org_id)
        with contextlib.suppress(Exception):
            await self.bus.publish(TOPOLOGY_TOPIC, {"org": org_id})

    async def _listen_topology(self) -> None:
        while not self._stopping:
            try:
                async with self.bus.subscribe(TOPOLOGY_TOPIC) as messages:
                    while True:
                        message = await messages.get()
                        org = message.get("org")
                        if isinstance(org, int):
                            await self._apply_topology(org)
                        await self.sync_workers(restart_org=org if isinstance(org, int) else None)
            except Exception:
                log.warning("no topology notifications; resyncing periodically", exc_info=True)
                await asyncio.sleep(RESYNC_INTERVAL)

    async def _resync(self) -> None:
        while not self._stopping:
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
            if self._stopping:
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

    @property
    def consumed_queues(self) -> list[str]:
        return sorted(self._consumers)


def _is_rabbit(broker: Broker) -> bool:
    return isinstance(broker, RabbitBroker)


# -- running it ------------------------------------------------------------------------------

CONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0)


async def open_runtime(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: RuntimeOptions,
) -> PipelineRuntime:
    """Connect to the broker (trying again until it answers) and start a runtime."""
    attempt = 0
    while True:
        try:
            broker = await open_broker(settings, sessionmaker)
        except BrokerError as exc:
            delay = CONNECT_DELAYS[min(attempt, len(CONNECT_DELAYS) - 1)]
            log.warning("broker unavailable (%s); trying again in %.0f s", exc, delay)
            attempt += 1
            await asyncio.sleep(delay)
            continue
        runtime = PipelineRuntime(settings, sessionmaker, broker, options)
        try:
            await runtime.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await broker.close()
            raise
        return runtime


async def close_runtime(runtime: PipelineRuntime) -> None:
    await runtime.stop()
    with contextlib.suppress(Exception):
        await runtime.broker.close()


@asynccontextmanager
async def pipeline_running(state: Any) -> AsyncIterator[None]:
    """The app's pipeline (`state.pipeline`) for as long as the app runs, by PIPELINE:
    `embedded` processes in this process, `handoff` leaves processing to worker processes,
    `off` runs nothing. The broker connection is made in the background, so the API serves
    even while the broker is down (what is committed meanwhile is swept later)."""
    settings: Settings = state.settings
    if settings.pipeline == "off":
        yield
        return
    options = RuntimeOptions.of(settings, Role(settings.pipeline))
    starting = asyncio.create_task(
        open_runtime(settings, state.sessionmaker, options), name="pipeline start"
    )

    def ready(task: asyncio.Task[PipelineRuntime]) -> None:
        if not task.cancelled() and task.exception() is None:
            state.pipeline = task.result()
        elif not task.cancelled():
            log.error("pipeline did not start: %s", type(task.exception()).__name__)

    starting.add_done_callback(ready)
    try:
        yield
    finally:
        if not starting.done():
            starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        runtime = getattr(state, "pipeline", None)
        if isinstance(runtime, PipelineRuntime):
            state.pipeline = None
            await close_runtime(runtime)
