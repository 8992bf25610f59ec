"""The processor: committed actions, processed in batches (ARCHITECTURE.md, "Processing
pipeline and broker").

Action ids wait in an in-process queue; a batch is up to `batch_size` ids, or what came within
`batch_wait` seconds of the first, and is processed in one transaction. On PostgreSQL the
batch's action rows are locked first with `FOR UPDATE SKIP LOCKED`, so processes running side
by side never process one action at the same time (a row another process holds is skipped:
that process is doing it). The batch's messages go out through the broker's `publish_batch`
for that transaction (written in it by the embedded queue; sent and confirmed first by
RabbitMQ, at least once: a crash before the commit sends them again later), then the plans
whose messages all went out are applied and the batch commits. A failed batch (a deadlock
between two processes updating the same supporters, a database error) is left to the
sweeper, and so is a plan with a failed message: its action's status does not move."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server import metrics
from proca_server.broker.base import Broker, BrokerError, ExchangeNotFound, QueueNotFound
from proca_server.broker.topology import exchange_kind
from proca_server.kit.once import Once
from proca_server.processing.service import ProcessingPlan, apply_plans, process_actions
from proca_server.processing.supervisor import Supervisor
from proca_server.processing.transition import Stage

log = logging.getLogger(__name__)

# The most actions in one batch (one transaction: load, publish, update). A batch takes what
# is queued when it starts, so the size only matters with a backlog; there each batch waits on
# its round trips to PostgreSQL and the broker's confirms one after the other, and larger
# batches carry more actions per wait: in the production shape (docs/benchmarks.md (12)) a
# worker kept up with 1,200 actions/s at 200, 1,310 at 500, 1,390 at 1,000.
BATCH_SIZE = 1000
BATCH_WAIT = 0.05


class ActionQueue:
    """Action ids handed over in this process, taken in batches; an id already waiting is
    not queued twice (0 wakes a waiting taker up)."""

    def __init__(self) -> None:
        self._ids: asyncio.Queue[int] = asyncio.Queue()
        self._waiting: set[int] = set()

    def put(self, action_id: int) -> None:
        if action_id > 0:
            if action_id in self._waiting:
                return
            self._waiting.add(action_id)
        self._ids.put_nowait(action_id)

    def __contains__(self, action_id: int) -> bool:
        return action_id in self._waiting

    def empty(self) -> bool:
        return self._ids.empty()

    async def next_batch(self, size: int, wait: float) -> list[int]:
        """Up to `size` ids: the first to come, and what comes within `wait` seconds."""
        loop = asyncio.get_running_loop()
        batch = [await self._ids.get()]
        deadline = loop.time() + wait
        while len(batch) < size:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._ids.get(), left))
            except TimeoutError:
                break
        while len(batch) < size and not self._ids.empty():
            batch.append(self._ids.get_nowait())
        self._waiting.difference_update(batch)
        return batch


class Processor:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        supervisor: Supervisor,
        notices: Once,
        *,
        batch_size: int = BATCH_SIZE,
        batch_wait: float = BATCH_WAIT,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.supervisor = supervisor
        # warnings about an org's settings, said once in a while rather than per action
        self.notices = notices
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.queue = ActionQueue()
        # the ids of the batch being processed
        self._current: frozenset[int] = frozenset()
        self.stopping = False
        self._lock = asyncio.Lock()
        # orgs whose topology to apply again after the batch (a lookup queue was missing)
        self._missing_topology: set[int] = set()

    async def run(self) -> None:
        """Process the queued ids batch after batch; once `stopping`, until none is left."""
        while True:
            batch = await self.queue.next_batch(self.batch_size, self.batch_wait)
            try:
                await self.process(batch)
            except Exception:
                log.exception("processing of %d actions failed; the sweeper retries", len(batch))
            if self.stopping and self.queue.empty():
                return

    async def process(self, action_ids: Sequence[int]) -> int:
        """Process these actions now, in batches; the number of actions that moved."""
        ids = sorted(set(i for i in action_ids if i > 0))
        done = 0
        for start in range(0, len(ids), self.batch_size):
            done += await self.process_batch(ids[start : start + self.batch_size])
        return done

    def holds(self, action_id: int) -> bool:
        """Whether the action is queued here or in the batch being processed: the sweeper
        leaves it alone (with a backlog, the actions waiting in the queue are older than
        its age; taking them again would load each one twice)."""
        return action_id in self.queue or action_id in self._current

    async def process_batch(self, ids: list[int]) -> int:
        async with self._lock:
            metrics.PROCESSING_BATCH_SIZE.observe(len(ids))
            self._current = frozenset(ids)
            try:
                with metrics.timed(metrics.PROCESSING_BATCH_DURATION):
                    return await self._process_locked(ids)
            except ExchangeNotFound:
                # an org whose topology was never applied: apply them all, try once more
                await self.supervisor.sync_all_topologies()
                return await self._process_locked(ids)
            finally:
                self._current = frozenset()

    async def _process_locked(self, ids: list[int]) -> int:
        async with self.sessionmaker() as session, session.begin():
            plans = await process_actions(session, ids, lock=True)
            if not plans:
                return 0
            applied = await self._publish(session, plans)
            await apply_plans(session, applied)
        while self._missing_topology:
            await self.supervisor.apply_topology(self._missing_topology.pop())
        now = datetime.now(UTC)
        for plan in applied:
            self._note_unsent_thanks(plan)
            stage = plan.stage.value if plan.stage is not None else plan.action_status.name.lower()
            metrics.ACTIONS_PROCESSED.labels(stage=stage).inc()
            metrics.observe_processing_lag(stage, plan.loaded.action.inserted_at, now)
        return len(applied)

    async def _publish(
        self, session: AsyncSession, plans: list[ProcessingPlan]
    ) -> list[ProcessingPlan]:
        """Publish the messages of the batch for its transaction; the plans whose messages
        all went out. A missing exchange raises `ExchangeNotFound` (the caller applies the
        topologies and tries the batch again); a plan with a failed message is left to the
        sweeper (its action's status does not move)."""
        messages = [
            (p.exchange, p.routing_key, p.body) for plan in plans for p in plan.publications
        ]
        outcomes = iter(await self.broker.publish_batch(messages, session=session))
        published: list[ProcessingPlan] = []
        missing: ExchangeNotFound | None = None
        for plan in plans:
            failed: BrokerError | None = None
            for p in plan.publications:
                outcome = next(outcomes)
                if outcome is False and not self._note_unrouted(plan):
                    failed = failed or QueueNotFound(f"queue {p.routing_key} does not exist")
                if isinstance(outcome, BrokerError):
                    metrics.PUBLISH_FAILURES.labels(exchange=exchange_kind(p.exchange)).inc()
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

    def _note_unrouted(self, plan: ProcessingPlan) -> bool:
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

    def _note_unsent_thanks(self, plan: ProcessingPlan) -> None:
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
