"""The running pipeline of a process (ARCHITECTURE.md, "Processing pipeline and broker"):
`PipelineRuntime`, the `Pipeline` (handoff.py) of a process, composes

- the processor (processor.py): action ids handed over after a commit, processed in batches;
- the sweeper (sweeper.py): what a lost hand-off left behind;
- the supervisor (supervisor.py): every org's topology and the worker consumers;

and publishes the publications handed over after a commit at once (a failed event is logged
and counted, `proca_publish_failures`: it cannot be derived again).

Roles (`Role`): `EMBEDDED` runs everything in the server process; `HANDOFF` is an API
process next to separate `proca-server worker` processes: it publishes events, applies
topology changes, and passes action ids to the workers through a PostgreSQL NOTIFY (their
sweeper, with a short age, finds whatever a lost notification missed); `WORKER` is such a
worker process. The broker's connection is made (and tried again until it answers) by
`open_runtime`."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import metrics
from proca_server.broker import open_broker
from proca_server.broker.base import Broker, BrokerError
from proca_server.broker.topology import exchange_kind
from proca_server.config import Settings
from proca_server.kit import retry
from proca_server.kit.once import Once
from proca_server.processing.messages import Publication
from proca_server.processing.processor import BATCH_SIZE, BATCH_WAIT, Processor
from proca_server.processing.supervisor import TOPOLOGY_TOPIC, Supervisor
from proca_server.processing.sweeper import Sweeper
from proca_server.pubsub import PubSub, pubsub

__all__ = [
    "ACTIONS_TOPIC",
    "BATCH_SIZE",
    "TOPOLOGY_TOPIC",
    "PipelineRuntime",
    "Role",
    "RuntimeOptions",
    "close_runtime",
    "open_runtime",
    "pipeline_running",
]

log = logging.getLogger(__name__)

# ids in one NOTIFY payload (PostgreSQL refuses 8000 bytes or more)
HANDOFF_BATCH = 500
# the pubsub topic (PostgreSQL NOTIFY across processes) of the ids handed to worker processes
ACTIONS_TOPIC = "pipeline:actions"


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
        self.options = options = options or RuntimeOptions.of(settings)
        self.bus = bus
        # warnings about an org's settings, said once in a while rather than per action
        self.notices = Once()
        self.supervisor = Supervisor(settings, sessionmaker, broker, bus, self.notices)
        self.processor = Processor(
            sessionmaker,
            broker,
            self.supervisor,
            self.notices,
            batch_size=options.batch_size,
            batch_wait=options.batch_wait,
        )
        self.sweeper = Sweeper(
            sessionmaker, self.processor, interval=options.sweep_interval, age=options.sweep_age
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._drain: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def processes(self) -> bool:
        return self.options.role is not Role.HANDOFF

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.supervisor.sync_all_topologies()
        if not self.processes:
            self._drain = self._spawn(self._forward(), "pipeline hand-off")
            return
        self._drain = self._spawn(self.processor.run(), "pipeline processor")
        self._spawn(self.sweeper.run(), "pipeline sweeper")
        if self.options.role is Role.WORKER:
            self._spawn(self._listen_actions(), "pipeline hand-off listener")
        if self.options.run_workers:
            await self.supervisor.sync_workers()
            self._spawn(self.supervisor.listen_topology(), "pipeline topology listener")
            self._spawn(self.supervisor.resync(), "pipeline topology resync")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        """Finish what is in hand and the ids queued so far; the sweeper recovers the rest."""
        self._stopping = self.processor.stopping = True
        self.sweeper.stop()
        await self.supervisor.stop_workers()
        if self._drain is not None:
            self.processor.queue.put(0)  # wakes the task up to see it is stopping
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
        for action_id in action_ids:
            self.processor.queue.put(action_id)

    async def _publish_event(self, publication: Publication) -> None:
        try:
            await self.broker.publish(
                publication.exchange, publication.routing_key, publication.body
            )
        except Exception as exc:
            metrics.PUBLISH_FAILURES.labels(exchange=exchange_kind(publication.exchange)).inc()
            log.error(
                "publish to %s (%s) failed, message lost: %s",
                publication.exchange,
                publication.routing_key,
                type(exc).__name__,
            )

    async def org_changed(self, org_id: int) -> None:
        """Re-apply an org's topology after its settings or services changed (after commit),
        and restart the worker consumers here and, through the pubsub, in worker processes."""
        await self.supervisor.org_changed(
            org_id, restart_workers=self.processes and self.options.run_workers
        )

    # -- what the pieces do, for the CLI and tests ---------------------------------------

    async def process(self, action_ids: Sequence[int]) -> int:
        """Process these actions now, in batches; the number of actions that moved."""
        return await self.processor.process(action_ids)

    def sweep_soon(self) -> None:
        self.sweeper.sweep_soon()

    async def sync_all_topologies(self) -> None:
        await self.supervisor.sync_all_topologies()

    async def sync_workers(self, *, restart_org: int | None = None) -> None:
        await self.supervisor.sync_workers(restart_org=restart_org)

    async def worker_queues(self) -> list[str]:
        return await self.supervisor.worker_queues()

    @property
    def consumed_queues(self) -> list[str]:
        return self.supervisor.consumed_queues

    # -- the hand-off between API and worker processes -----------------------------------

    async def _forward(self) -> None:
        """PIPELINE=handoff: one notification for the ids committed within `batch_wait`."""
        queue = self.processor.queue
        while True:
            batch = [
                i for i in await queue.next_batch(HANDOFF_BATCH, self.options.batch_wait) if i > 0
            ]
            if batch:
                try:
                    await self.bus.publish(ACTIONS_TOPIC, {"ids": batch})
                except Exception:
                    log.warning("hand-off of %d actions failed; swept later", len(batch))
            if self._stopping and queue.empty():
                return

    async def _listen_actions(self) -> None:
        """PIPELINE=worker: the ids the API processes hand over."""
        while not self._stopping:
            try:
                async with self.bus.subscribe(ACTIONS_TOPIC) as messages:
                    while True:
                        message = await messages.get()
                        for action_id in message.get("ids", ()):
                            if isinstance(action_id, int):
                                self.processor.queue.put(action_id)
            except Exception:
                log.warning("no action hand-off notifications; sweeping", exc_info=True)
                await asyncio.sleep(self.options.sweep_interval)


# -- running it ------------------------------------------------------------------------------


async def open_runtime(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: RuntimeOptions,
) -> PipelineRuntime:
    """Connect to the broker (trying again until it answers) and start a runtime."""
    async for attempt in retry.BROKER_CONNECT.retrying(
        BrokerError, log=log, what="pipeline: connecting to the broker", describe=str
    ):
        with attempt:
            broker = await open_broker(settings, sessionmaker)
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
