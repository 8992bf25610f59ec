"""The message queue kept in the database, for setups without RabbitMQ.

It keeps RabbitMQ's model, so that everything above the broker works the same on both: the
topology's exchanges, queues and bindings are rows (`broker_exchanges`, `broker_queues`,
`broker_bindings`), and publishing routes a message as RabbitMQ would (topic patterns with `*`
and `#`, fanout, direct, the default exchange) into one `broker_messages` row per queue.

- Published in the caller's session, a message commits or rolls back with the caller's
  writes (an action's new status and its messages are one transaction).
- A consumer claims up to a batch of the oldest ready rows of its queue in one statement
  (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent consumers in any number of processes
  never claim the same row; SQLite: its single writer serializes the claims). A claim is a
  lease: the row's `available_at` moves to the lease's end, so a consumer that dies lets
  the row come back when the lease ends. `locked_until` carries the same time and identifies
  the claim: acknowledging or failing a message whose lease was lost (and taken by another
  consumer) does nothing.
- Acknowledging deletes the row. A failure moves `available_at` to the end of the retry
  delay (retries + 1); after the retry limit, or on a permanent error, the row moves to the
  org's fail queue (`org.N.fail`) with the queue's name as routing key.
- Consumers wake up when a message is committed: in this process directly, in other
  processes through PostgreSQL NOTIFY (sent in the publishing transaction, so delivered at
  its commit) when the process's pubsub listens; otherwise they poll.

Times come from the clock of the process (aware UTC); processes sharing a database need
clocks within a fraction of the lease of each other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from proca_server.broker.base import (
    BatchHandler,
    Delivery,
    ExchangeNotFound,
    Handler,
    Outcome,
    Outgoing,
    QueueNotFound,
    failure_org,
    note_unroutable,
    outcomes,
    park_exchange,
    should_park,
    single,
)
from proca_server.broker.store import (
    DEFAULT_LEASE,
    M,
    StoredMessage,
    claim_messages,
    insert_messages,
    now,
    route,
)
from proca_server.broker.topology import OrgTopology, queue_org_id
from proca_server.kit.once import Once
from proca_server.models.queue import BrokerBinding, BrokerExchange, BrokerQueue
from proca_server.pubsub import CHANNEL, PubSub

log = logging.getLogger(__name__)

DEFAULT_POLL = 1.0


def wake_topic(queue: str) -> str:
    return f"broker:{queue}"


class EmbeddedBroker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        retry_limit: int = 10,
        retry_delay: float = 60.0,
        lease: float = DEFAULT_LEASE,
        poll_interval: float = DEFAULT_POLL,
        pubsub: PubSub | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.lease = lease
        self.poll_interval = poll_interval
        self.pubsub = pubsub
        self._wakers: dict[str, set[asyncio.Event]] = {}
        self._consumers: set[EmbeddedConsumer] = set()
        # the exchanges and routing keys of unroutable messages said lately
        self._unroutable = Once()

    # topology

    async def apply_topology(self, topology: OrgTopology) -> None:
        async with self.sessionmaker() as session, session.begin():
            dialect = session.get_bind().dialect.name
            upsert = pg_insert if dialect == "postgresql" else sqlite_insert
            for x in topology.exchanges:
                await session.execute(
                    upsert(BrokerExchange)
                    .values(name=x.name, type=str(x.type))
                    .on_conflict_do_nothing(index_elements=["name"])
                )
            for q in topology.queues:
                await session.execute(
                    upsert(BrokerQueue)
                    .values(name=q.name, arguments=dict(q.arguments))
                    .on_conflict_do_nothing(index_elements=["name"])
                )
            for b in topology.bindings:
                key = {"exchange": b.exchange, "queue": b.queue, "routing_key": b.routing_key}
                if b.enabled:
                    await session.execute(
                        upsert(BrokerBinding).values(**key).on_conflict_do_nothing()
                    )
                else:
                    await session.execute(
                        delete(BrokerBinding).where(
                            BrokerBinding.exchange == b.exchange,
                            BrokerBinding.queue == b.queue,
                            BrokerBinding.routing_key == b.routing_key,
                        )
                    )

    # publishing

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        if session is not None:
            return await self._publish_in(session, exchange, routing_key, body)
        async with self.sessionmaker() as own, own.begin():
            return await self._publish_in(own, exchange, routing_key, body)

    async def send_to_queue(
        self, queue: str, body: bytes, *, session: AsyncSession | None = None
    ) -> None:
        if not await self.publish("", queue, body, session=session):
            raise QueueNotFound(f"queue {queue} does not exist")

    async def publish_batch(
        self, messages: Sequence[Outgoing], *, session: AsyncSession
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for exchange, routing_key, body in messages:
            try:
                outcomes.append(await self._publish_in(session, exchange, routing_key, body))
            except ExchangeNotFound as exc:
                outcomes.append(exc)
        return outcomes

    async def _publish_in(
        self, session: AsyncSession, exchange: str, routing_key: str, body: bytes
    ) -> bool:
        queues = await route(session, exchange, routing_key)
        if not queues:
            note_unroutable(self._unroutable, exchange, routing_key)
            return False
        await insert_messages(session, queues, exchange, routing_key, body)
        await self._wake_after_commit(session, queues)
        return True

    async def _wake_after_commit(self, session: AsyncSession, queues: list[str]) -> None:
        if session.get_bind().dialect.name == "postgresql":
            for q in queues:
                payload = json.dumps({"topic": wake_topic(q), "message": {}})
                await session.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": CHANNEL, "payload": payload},
                )

        def wake(_session: Session) -> None:
            self._wake(queues)

        event.listen(session.sync_session, "after_commit", wake, once=True)

    def _wake(self, queues: Iterable[str]) -> None:
        for q in queues:
            for waker in self._wakers.get(q, ()):
                waker.set()

    # consuming

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int = 10,
        org_id: int | None = None,
    ) -> EmbeddedConsumer:
        return await self._start(queue, single(handler), prefetch, 0.0, org_id)

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        batch_size: int = 10,
        batch_timeout: float = 1.0,
        org_id: int | None = None,
    ) -> EmbeddedConsumer:
        return await self._start(queue, handler, batch_size, batch_timeout, org_id)

    async def _start(
        self,
        queue: str,
        handler: BatchHandler,
        size: int,
        batch_timeout: float,
        org_id: int | None,
    ) -> EmbeddedConsumer:
        failure_org(queue, org_id)  # refuse a queue whose failures would have nowhere to go
        async with self.sessionmaker() as session:
            if await session.get(BrokerQueue, queue) is None:
                raise QueueNotFound(f"queue {queue} does not exist")
        consumer = EmbeddedConsumer(self, queue, handler, max(size, 1), batch_timeout, org_id)
        self._consumers.add(consumer)
        consumer.start()
        return consumer

    def _register(self, queue: str, waker: asyncio.Event) -> None:
        self._wakers.setdefault(queue, set()).add(waker)

    def _unregister(self, queue: str, waker: asyncio.Event) -> None:
        wakers = self._wakers.get(queue)
        if wakers is not None:
            wakers.discard(waker)
            if not wakers:
                del self._wakers[queue]

    async def close(self) -> None:
        for consumer in list(self._consumers):
            await consumer.stop()


class EmbeddedConsumer:
    def __init__(
        self,
        broker: EmbeddedBroker,
        queue: str,
        handler: BatchHandler,
        size: int,
        batch_timeout: float,
        org_id: int | None,
    ) -> None:
        self.broker = broker
        self._queue = queue
        self.handler = handler
        self.size = size
        self.batch_timeout = batch_timeout
        self.org_id = org_id if org_id is not None else queue_org_id(queue)
        self._waker = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    @property
    def queue(self) -> str:
        return self._queue

    def start(self) -> None:
        self.broker._register(self._queue, self._waker)
        pubsub = self.broker.pubsub
        if pubsub is not None and pubsub.cross_process:
            self._listener = asyncio.create_task(self._listen(pubsub), name=f"wake {self._queue}")
        self._task = asyncio.create_task(self._run(), name=f"consume {self._queue}")

    async def stop(self) -> None:
        self._stopping = True
        self._waker.set()
        for task in (self._task, self._listener):
            if task is None:
                continue
            if task is self._listener:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = self._listener = None
        self.broker._unregister(self._queue, self._waker)
        self.broker._consumers.discard(self)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                async with pubsub.subscribe(wake_topic(self._queue)) as notifications:
                    while True:
                        await notifications.get()
                        self._waker.set()
            except Exception:
                log.warning("no wake-ups for %s; polling", self._queue, exc_info=True)
                await asyncio.sleep(self.broker.poll_interval * 10)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._waker.wait(), seconds)
        self._waker.clear()

    async def _claim(self, limit: int) -> list[StoredMessage]:
        async with self.broker.sessionmaker() as session, session.begin():
            return await claim_messages(session, self._queue, limit, self.broker.lease)

    async def _run(self) -> None:
        poll = self.broker.poll_interval
        while not self._stopping:
            try:
                batch = await self._claim(self.size)
                if not batch:
                    await self._wait(poll)
                    continue
                if len(batch) < self.size and self.batch_timeout > 0:
                    batch += await self._fill(len(batch))
                await self._handle(batch)
            except (SQLAlchemyError, OSError):
                log.warning("consumer of %s: database error; retrying", self._queue, exc_info=True)
                await asyncio.sleep(poll)
            except Exception:
                # claimed messages come back when their lease ends
                log.exception("consumer of %s failed; restarting", self._queue)
                await asyncio.sleep(poll)

    async def _fill(self, have: int) -> list[StoredMessage]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_timeout
        more: list[StoredMessage] = []
        while have + len(more) < self.size and not self._stopping:
            left = deadline - loop.time()
            if left <= 0:
                break
            await self._wait(min(left, self.broker.poll_interval))
            more += await self._claim(self.size - have - len(more))
        return more

    async def _handle(self, batch: list[StoredMessage]) -> None:
        deliveries = [
            Delivery(
                queue=m.queue,
                body=m.body,
                exchange=m.exchange,
                routing_key=m.routing_key,
                retries=m.retries,
                redelivered=_redelivered(m),
                id=m.id,
            )
            for m in batch
        ]
        try:
            result = outcomes(deliveries, await self.handler(deliveries))
        except Exception as exc:
            result = [exc] * len(deliveries)
        await self._settle(batch, result)

    async def _settle(self, batch: list[StoredMessage], result: list[BaseException | None]) -> None:
        broker = self.broker
        async with broker.sessionmaker() as session, session.begin():
            at = now()
            for message, error in zip(batch, result, strict=True):
                mine = (M.id == message.id) & (M.locked_until == message.locked_until)
                if error is None:
                    done = await session.execute(delete(M).where(mine).returning(M.id))
                elif not should_park(error, message.retries, broker.retry_limit):
                    log.warning(
                        "message %d on %s failed (retry %d of %d): %s",
                        message.id,
                        message.queue,
                        message.retries + 1,
                        broker.retry_limit,
                        _describe(error),
                    )
                    done = await session.execute(
                        update(M)
                        .where(mine)
                        .values(
                            available_at=at + timedelta(seconds=broker.retry_delay),
                            locked_until=None,
                            retries=M.retries + 1,
                        )
                        .returning(M.id)
                    )
                else:
                    log.warning(
                        "message %d on %s parked after %d retries: %s",
                        message.id,
                        message.queue,
                        message.retries,
                        _describe(error),
                    )
                    done = await self._park(session, message, mine, at)
                if done.first() is None:
                    log.warning("message %d on %s: lease lost", message.id, message.queue)
        # a retry with no delay is ready at once
        if broker.retry_delay == 0 and any(e is not None for e in result):
            self._waker.set()

    async def _park(
        self, session: AsyncSession, message: StoredMessage, mine: Any, at: datetime
    ) -> Any:
        fail = park_exchange(message.queue, self.org_id)
        try:
            targets = await route(session, fail, message.queue)
        except ExchangeNotFound:
            targets = []
        if not targets:
            # Nowhere to park (topology not applied): keep it, retrying, rather than lose it.
            log.error("no fail queue for %s; message %d kept", message.queue, message.id)
            return await session.execute(
                update(M)
                .where(mine)
                .values(
                    available_at=at + timedelta(seconds=self.broker.retry_delay),
                    locked_until=None,
                )
                .returning(M.id)
            )
        done = await session.execute(
            update(M)
            .where(mine)
            .values(
                queue=targets[0],
                exchange=fail,
                routing_key=message.queue,
                retries=M.retries + 1,
                available_at=at,
                locked_until=None,
            )
            .returning(M.id)
        )
        await insert_messages(session, targets[1:], fail, message.queue, message.body)
        return done


def _redelivered(message: StoredMessage) -> bool:
    # claimed more often than its failures explain: a consumer lost it before settling
    return message.deliveries > message.retries + 1


def _describe(error: BaseException) -> str:
    text_ = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text_}" if text_ else type(error).__name__
