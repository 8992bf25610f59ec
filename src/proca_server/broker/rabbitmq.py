"""The broker on RabbitMQ (aio-pika), with the topology of topology.py.

- One robust connection: it reconnects by itself, and consumers resume on the new
  connection. A message in hand when the connection drops is not acknowledged, so RabbitMQ
  delivers it again.
- Publishing is persistent, mandatory and publisher-confirmed: `publish` returns once the
  broker has the message, and says whether a queue took it (a returned message is answered
  False, counted and logged once per exchange and routing key; see base.py). A publish
  interrupted by a connection loss raises.
- Topology changes run on a channel of their own, closed afterwards, so that the client never
  replays old bindings on a reconnection.
- A failed message is republished (confirmed) before the original is acknowledged: to
  `org.N.delay` with the retry delay as expiration and the queue's name as routing key, from
  where it expires through `org.N.retry` back to its queue; or, past the retry limit, to
  `org.N.fail`, where it stays. Retries are counted in the `x-retry-count` header, and in
  the `x-death` count of rejections from this queue for messages that took the original
  dead-letter path (an outside consumer's reject, an operator's TTL on `org.N.fail`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from proca_server.broker.base import (
    BatchHandler,
    BrokerError,
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
from proca_server.broker.topology import OrgTopology, delay_exchange
from proca_server.broker.transport import GatheringConnection
from proca_server.kit import retry
from proca_server.kit.once import Once

log = logging.getLogger(__name__)


class _ChannelReopening(Exception):
    """Messages of a batch were refused by a channel being reopened (never sent)."""


RETRY_HEADER = "x-retry-count"
PUBLISH_TIMEOUT = 30.0
PERSISTENT = 2
# kept on a republished message; the broker's x-death history is dropped (the count is kept)
_COPIED_PROPERTIES = (
    "content_type",
    "content_encoding",
    "message_id",
    "correlation_id",
    "timestamp",
    "type",
    "app_id",
)


def _dead_letter_header(name: str) -> bool:
    return name == "x-death" or name.startswith(("x-first-death-", "x-last-death-"))


def retries_of(message: AbstractIncomingMessage, queue: str) -> int:
    headers = message.headers or {}
    own = headers.get(RETRY_HEADER)
    count = own if isinstance(own, int) else 0
    deaths = headers.get("x-death")
    if isinstance(deaths, list):
        for death in deaths:
            if not isinstance(death, dict):
                continue
            dead = death.get("count")
            if death.get("queue") == queue and death.get("reason") == "rejected":
                count = max(count, dead if isinstance(dead, int) else 0)
    return count


def _outcome(exchange: str, result: object) -> bool | BrokerError:
    """What one publish came to, from the client's answer or the exception it raised: True (a
    queue took it), False (unroutable: returned by the broker) or the BrokerError to report
    (`ExchangeNotFound` for a missing exchange)."""
    if isinstance(result, aiormq.exceptions.ChannelNotFoundEntity):
        return ExchangeNotFound(f"exchange {exchange} does not exist")
    if isinstance(result, aiormq.exceptions.DeliveryError):
        return BrokerError(f"RabbitMQ refused a message for {exchange!r}")
    if isinstance(result, BaseException):
        return BrokerError(f"publish to {exchange!r} failed: {type(result).__name__}")
    # a message returned by the broker is unroutable
    return not isinstance(result, DeliveredMessage)


class RabbitBroker:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractRobustChannel,
        *,
        retry_limit: int = 10,
        retry_delay: float = 60.0,
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self._topology_lock = asyncio.Lock()
        self._consumers: set[RabbitConsumer] = set()
        self._pending: set[asyncio.Task[bool]] = set()
        # the exchanges and routing keys of unroutable messages said lately
        self._unroutable = Once()

    @classmethod
    async def connect(
        cls, url: str, *, retry_limit: int = 10, retry_delay: float = 60.0
    ) -> RabbitBroker:
        try:
            connection = await aio_pika.connect_robust(
                url, reconnect_interval=5, connection_class=GatheringConnection
            )
        except (OSError, aiormq.exceptions.AMQPError) as exc:
            # the URL carries the password: name the failure only
            raise BrokerError(f"cannot connect to RabbitMQ: {type(exc).__name__}") from None
        channel = await connection.channel(publisher_confirms=True)
        assert isinstance(channel, AbstractRobustChannel)
        return cls(connection, channel, retry_limit=retry_limit, retry_delay=retry_delay)

    # topology

    async def apply_topology(self, topology: OrgTopology) -> None:
        async with self._topology_lock:
            channel = await self.connection.channel(publisher_confirms=False)
            try:
                raw = await channel.get_underlay_channel()
                for x in topology.exchanges:
                    await raw.exchange_declare(
                        exchange=x.name, exchange_type=str(x.type), durable=x.durable
                    )
                for q in topology.queues:
                    await raw.queue_declare(
                        queue=q.name, durable=q.durable, arguments=dict(q.arguments)
                    )
                for b in topology.bindings:
                    if b.enabled:
                        await raw.queue_bind(
                            queue=b.queue, exchange=b.exchange, routing_key=b.routing_key
                        )
                    else:
                        # a no-op when the binding, or the queue, does not exist
                        await raw.queue_unbind(
                            queue=b.queue, exchange=b.exchange, routing_key=b.routing_key
                        )
            except aiormq.exceptions.ChannelClosed as exc:
                raise BrokerError(f"topology of org {topology.org_id} refused: {exc}") from exc
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()

    # publishing

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        if session is None:
            return await self._publish(exchange, routing_key, body)

        def send(_session: Session) -> None:
            task = asyncio.get_running_loop().create_task(
                self._publish_logged(exchange, routing_key, body)
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        def forget(_session: Session) -> None:
            with contextlib.suppress(Exception):
                event.remove(session.sync_session, "after_commit", send)

        event.listen(session.sync_session, "after_commit", send, once=True)
        event.listen(session.sync_session, "after_rollback", forget, once=True)
        return True

    async def _publish_logged(self, exchange: str, routing_key: str, body: bytes) -> bool:
        try:
            return await self._publish(exchange, routing_key, body)
        except Exception as exc:
            log.error(
                "publish to %r (%r) after commit failed: %s",
                exchange,
                routing_key,
                type(exc).__name__,
            )
            return False

    async def send_to_queue(
        self, queue: str, body: bytes, *, session: AsyncSession | None = None
    ) -> None:
        if session is not None:
            await self.publish("", queue, body, session=session)
        elif not await self._publish("", queue, body):
            raise QueueNotFound(f"queue {queue} does not exist")

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: aiormq.spec.Basic.Properties | None = None,
    ) -> bool:
        properties = properties or Basic.Properties(delivery_mode=PERSISTENT)
        result: object
        try:
            result = await self._send(exchange, routing_key, body, properties)
        except (
            TimeoutError,
            aiormq.exceptions.AMQPError,
            aiormq.exceptions.ChannelInvalidStateError,
            OSError,
        ) as exc:
            result = exc
        outcome = _outcome(exchange, result)
        if isinstance(outcome, BrokerError):
            raise outcome from (result if isinstance(result, BaseException) else None)
        if not outcome:
            note_unroutable(self._unroutable, exchange, routing_key)
        return outcome

    async def publish_batch(
        self, messages: Sequence[Outgoing], *, session: AsyncSession
    ) -> list[Outcome]:
        # sent now, confirmed before the caller commits (see base.py)
        return await self.publish_many(messages)

    async def publish_many(self, messages: Sequence[Outgoing]) -> list[Outcome]:
        """Publish (exchange, routing key, body) messages together: all are written at
        once, in order, then their confirmations are awaited together. Per message, in
        order: True (a queue took it), False (unroutable) or the BrokerError it failed with
        (`ExchangeNotFound` for a missing exchange). Persistent and mandatory, as
        `publish`.

        `publish` awaits the write of each message under the channel's lock before the
        next one can be written, one event-loop turn per message; here the writes are
        queued without waiting for them, which is what lets a batch of a few hundred
        messages go out in a few milliseconds on a busy loop."""
        results: list[object] = [None] * len(messages)
        todo = list(range(len(messages)))
        # As in `_send`: a message refused because the channel was closed (being reopened
        # after the broker closed it) was never sent; it is tried again.
        with contextlib.suppress(_ChannelReopening):
            async for attempt in retry.CHANNEL_REOPEN.retrying(
                _ChannelReopening, log=log, what="publish", level=logging.DEBUG
            ):
                with attempt:
                    try:
                        await asyncio.wait_for(self.channel.ready(), PUBLISH_TIMEOUT)
                        raw = await self.channel.get_underlay_channel()
                        assert isinstance(raw, aiormq.Channel)
                    except (TimeoutError, aiormq.exceptions.AMQPError, OSError) as exc:
                        for i in todo:
                            results[i] = exc
                        break
                    sent = await asyncio.gather(
                        *(
                            raw.basic_publish(
                                messages[i][2],
                                exchange=messages[i][0],
                                routing_key=messages[i][1],
                                # one each: the client writes a message id into them, by
                                # which it matches a returned (unroutable) message to its
                                # publish
                                properties=Basic.Properties(delivery_mode=PERSISTENT),
                                mandatory=True,
                                timeout=PUBLISH_TIMEOUT,
                                wait=False,
                            )
                            for i in todo
                        ),
                        return_exceptions=True,
                    )
                    for i, answer in zip(todo, sent, strict=True):
                        results[i] = answer
                    todo = [
                        i
                        for i in todo
                        if isinstance(results[i], aiormq.exceptions.ChannelInvalidStateError)
                    ]
                    if todo:
                        raise _ChannelReopening
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # a cancellation
        answers: list[Outcome] = []
        for (exchange, routing_key, _), result in zip(messages, results, strict=True):
            outcome = _outcome(exchange, result)
            if outcome is False:
                note_unroutable(self._unroutable, exchange, routing_key)
            answers.append(outcome)
        return answers

    async def _send(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: aiormq.spec.Basic.Properties,
    ) -> object:
        # The client reopens the channel after the broker closed it (e.g. on a publish to an
        # exchange that does not exist); a closed channel sends nothing, so trying again
        # cannot duplicate the message.
        async for attempt in retry.CHANNEL_REOPEN.retrying(
            aiormq.exceptions.ChannelInvalidStateError,
            log=log,
            what="publish",
            level=logging.DEBUG,
        ):
            with attempt:
                await asyncio.wait_for(self.channel.ready(), PUBLISH_TIMEOUT)
                raw = await self.channel.get_underlay_channel()
                return await raw.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                    timeout=PUBLISH_TIMEOUT,
                )
        raise AssertionError("unreachable")

    # consuming

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int = 10,
        org_id: int | None = None,
    ) -> RabbitConsumer:
        return await self._start(queue, single(handler), prefetch, 1, 0.0, org_id)

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        batch_size: int = 10,
        batch_timeout: float = 1.0,
        org_id: int | None = None,
    ) -> RabbitConsumer:
        return await self._start(queue, handler, batch_size, batch_size, batch_timeout, org_id)

    async def _start(
        self,
        queue: str,
        handler: BatchHandler,
        prefetch: int,
        batch_size: int,
        batch_timeout: float,
        org_id: int | None,
    ) -> RabbitConsumer:
        failure_org(queue, org_id)
        consumer = RabbitConsumer(self, queue, handler, max(batch_size, 1), batch_timeout, org_id)
        await consumer.start(max(prefetch, batch_size, 1))
        self._consumers.add(consumer)
        return consumer

    async def close(self) -> None:
        for consumer in list(self._consumers):
            await consumer.stop()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.connection.close()


class RabbitConsumer:
    def __init__(
        self,
        broker: RabbitBroker,
        queue: str,
        handler: BatchHandler,
        batch_size: int,
        batch_timeout: float,
        org_id: int | None,
    ) -> None:
        self.broker = broker
        self._queue = queue
        self.handler = handler
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.org_id = failure_org(queue, org_id)
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._channel: AbstractRobustChannel | None = None
        self._amqp_queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = True

    @property
    def queue(self) -> str:
        return self._queue

    async def start(self, prefetch: int) -> None:
        channel = await self.broker.connection.channel()
        assert isinstance(channel, AbstractRobustChannel)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            self._amqp_queue = await channel.declare_queue(self._queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            with contextlib.suppress(Exception):
                await channel.close()
            raise QueueNotFound(f"queue {self._queue} does not exist") from None
        self._channel = channel
        self._tag = await self._amqp_queue.consume(self._inbox.put, no_ack=False)
        self._task = asyncio.create_task(self._run(), name=f"consume {self._queue}")

    async def stop(self) -> None:
        self._stopping = True
        if self._amqp_queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await self._amqp_queue.cancel(self._tag)
        if self._task is not None:
            if self._idle:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            # unacknowledged messages go back to the queue
            with contextlib.suppress(Exception):
                await self._channel.close()
        self._task = self._channel = None
        self.broker._consumers.discard(self)

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        batch = [await self._inbox.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_timeout
        while len(batch) < self.batch_size:
            if not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._inbox.get(), left))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while not self._stopping:
            self._idle = True
            batch = await self._next_batch()
            # a batch in hand is finished even when stop() is called meanwhile
            self._idle = False
            await self._handle(batch)

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        deliveries = [
            Delivery(
                queue=self._queue,
                body=m.body,
                exchange=m.exchange or "",
                routing_key=m.routing_key or "",
                retries=retries_of(m, self._queue),
                redelivered=bool(m.redelivered),
                id=m.delivery_tag or 0,
                headers=dict(m.headers or {}),
            )
            for m in batch
        ]
        try:
            result = outcomes(deliveries, await self.handler(deliveries))
        except Exception as exc:
            result = [exc] * len(deliveries)
        for message, delivery, error in zip(batch, deliveries, result, strict=True):
            try:
                await self._settle(message, delivery, error)
            except Exception as exc:
                # not acknowledged: RabbitMQ delivers it again
                log.warning("message on %s left unsettled: %s", self._queue, type(exc).__name__)

    async def _settle(
        self, message: AbstractIncomingMessage, delivery: Delivery, error: BaseException | None
    ) -> None:
        if error is None:
            await message.ack()
            return
        broker = self.broker
        headers = {k: v for k, v in (message.headers or {}).items() if not _dead_letter_header(k)}
        properties = {
            name: getattr(message, name)
            for name in _COPIED_PROPERTIES
            if getattr(message, name, None) is not None
        }
        if should_park(error, delivery.retries, broker.retry_limit):
            log.warning(
                "message on %s parked after %d retries: %s",
                self._queue,
                delivery.retries,
                _describe(error),
            )
            headers[RETRY_HEADER] = delivery.retries
            target = park_exchange(self._queue, self.org_id)
            expiration = None
        else:
            log.warning(
                "message on %s failed (retry %d of %d): %s",
                self._queue,
                delivery.retries + 1,
                broker.retry_limit,
                _describe(error),
            )
            headers[RETRY_HEADER] = delivery.retries + 1
            target = delay_exchange(self.org_id)
            expiration = str(int(broker.retry_delay * 1000))
        copy = Basic.Properties(
            delivery_mode=PERSISTENT, headers=headers, expiration=expiration, **properties
        )
        try:
            routed = await broker._publish(target, self._queue, message.body, copy)
        except ExchangeNotFound:
            routed = False
        if routed:
            await message.ack()
        else:
            # The retry circuit is missing: dead-letter it through the queue's own arguments.
            log.error("no retry circuit for %s; message dead-lettered", self._queue)
            await message.reject(requeue=False)


def _describe(error: BaseException) -> str:
    first = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
