"""The broker on a real RabbitMQ (TEST_AMQP_URL, default the local server).

Each test works on orgs with ids unique to the run and deletes what it declared. Without
RabbitMQ the tests are skipped, except under CI=true, where that is a failure."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker import (
    BrokerError,
    Delivery,
    ExchangeNotFound,
    OrgConfig,
    OrgTopology,
    PermanentError,
    QueueNotFound,
    RetryableError,
    org_topology,
)
from proca_server.broker.rabbitmq import RETRY_HEADER, RabbitBroker
from proca_server.broker.transport import GatheringConnection
from tests.conftest import IN_CI

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# org ids no real deployment on this server uses, unique to the run
_orgs = itertools.count(2_000_000_000 + secrets.randbelow(10**8) * 10)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def connection() -> AsyncIterator[AbstractRobustConnection]:
    try:
        conn = await asyncio.wait_for(aio_pika.connect_robust(AMQP_URL), 5)
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        reason = f"RabbitMQ not available: {type(exc).__name__}"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    yield conn
    await conn.close()


class Declared:
    """The topologies a test applied, deleted at teardown."""

    def __init__(self, broker: RabbitBroker) -> None:
        self.broker = broker
        self.topologies: list[OrgTopology] = []

    async def apply(self, config: OrgConfig) -> OrgTopology:
        topology = org_topology(config)
        self.topologies.append(topology)
        await self.broker.apply_topology(topology)
        return topology

    async def org(self, **flags: object) -> int:
        n = next(_orgs)
        await self.apply(OrgConfig(n, **flags))  # type: ignore[arg-type]
        return n

    async def delete(self, connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        raw = await channel.get_underlay_channel()
        for topology in self.topologies:
            n = topology.org_id
            for name in ("email.supporter", "sqs", "webhook"):
                await raw.queue_delete(f"wrk.{n}.{name}")
            for name in ("confirm.supporter", "confirm.action", "deliver"):
                await raw.queue_delete(f"cus.{n}.{name}")
            for q in topology.queues:
                if q.name != "system.deliver":
                    await raw.queue_delete(q.name)
            for x in topology.exchanges:
                await raw.exchange_delete(x.name)
        await channel.close()


@pytest.fixture
async def declared(connection: AbstractRobustConnection) -> AsyncIterator[Declared]:
    broker = await RabbitBroker.connect(AMQP_URL, retry_limit=2, retry_delay=0.3)
    d = Declared(broker)
    yield d
    await broker.close()
    await d.delete(connection)


@pytest.fixture
async def channel(connection: AbstractRobustConnection) -> AsyncIterator[AbstractChannel]:
    ch = await connection.channel()
    yield ch
    if not ch.is_closed:
        await ch.close()


async def count(connection: AbstractRobustConnection, queue: str) -> int:
    ch = await connection.channel()
    try:
        q = await ch.declare_queue(queue, passive=True)
        return q.declaration_result.message_count or 0
    finally:
        await ch.close()


async def get(channel: AbstractChannel, queue: str) -> AbstractIncomingMessage:
    q = await channel.declare_queue(queue, passive=True)
    for _ in range(200):
        message = await q.get(fail=False, no_ack=False)
        if message is not None:
            return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing in {queue}")


async def test_topology_is_declared_with_the_exact_queue_arguments(
    declared: Declared, connection: AbstractRobustConnection
) -> None:
    n = await declared.org(email_backend=True, custom_action_deliver=True)
    ch = await connection.channel()
    raw = await ch.get_underlay_channel()
    # redeclaring with the arguments existing deployments have succeeds...
    await raw.queue_declare(
        f"cus.{n}.deliver",
        durable=True,
        arguments={
            "x-dead-letter-exchange": f"org.{n}.fail",
            "x-dead-letter-routing-key": f"cus.{n}.deliver",
        },
    )
    await raw.queue_declare(
        f"org.{n}.fail", durable=True, arguments={"x-dead-letter-exchange": f"org.{n}.retry"}
    )
    await raw.queue_declare("system.deliver", durable=True)
    for name, kind in (("deliver", "topic"), ("fail", "fanout"), ("retry", "direct")):
        await raw.exchange_declare(f"org.{n}.{name}", exchange_type=kind, durable=True)
    # ...and with others is refused, so the arguments above are exactly the declared ones
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await raw.queue_declare(f"cus.{n}.deliver", durable=True)
    await ch.close()


async def test_actions_reach_the_queues_bound_to_their_stage(
    declared: Declared, connection: AbstractRobustConnection, channel: AbstractChannel
) -> None:
    n = await declared.org(email_backend=True, custom_action_deliver=True, push_backend="sqs")
    broker = declared.broker
    assert await broker.publish(f"org.{n}.deliver", "petition.save_bees", b'{"stage": 1}')
    for queue in (f"wrk.{n}.email.supporter", f"cus.{n}.deliver", f"wrk.{n}.sqs"):
        message = await get(channel, queue)
        assert (message.body, message.routing_key, message.exchange) == (
            b'{"stage": 1}',
            "petition.save_bees",
            f"org.{n}.deliver",
        )
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await message.ack()
    # nothing bound to confirm.action: unroutable, and said so
    assert not await broker.publish(f"org.{n}.confirm.action", "petition.save_bees", b"{}")
    # system events reach the global queue
    marker = secrets.token_hex(8).encode()
    assert await broker.publish(f"org.{n}.event", "system.new_user", marker)
    system = await channel.declare_queue("system.deliver", passive=True)
    async with system.iterator() as it:
        async for message in it:
            await message.ack()
            if message.body == marker:
                break


async def test_a_flag_turned_off_unbinds_and_keeps_queue_messages_and_retry_binding(
    declared: Declared, connection: AbstractRobustConnection, channel: AbstractChannel
) -> None:
    n = await declared.org(custom_action_deliver=True)
    broker = declared.broker
    assert await broker.publish(f"org.{n}.deliver", "petition.x", b"kept")
    await declared.apply(OrgConfig(n))
    assert not await broker.publish(f"org.{n}.deliver", "petition.x", b"dropped")
    assert await count(connection, f"cus.{n}.deliver") == 1
    # the retry binding still brings failed messages back
    assert await broker.publish(f"org.{n}.retry", f"cus.{n}.deliver", b"retried")
    assert await count(connection, f"cus.{n}.deliver") == 2
    # and the queue can still be consumed (passively, as @proca/queue does)
    q = await channel.declare_queue(f"cus.{n}.deliver", passive=True)
    assert q.declaration_result.message_count == 2


async def test_custom_queues_can_be_opened_passively_once_applied(
    declared: Declared, connection: AbstractRobustConnection
) -> None:
    n = next(_orgs)
    ch = await connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await ch.declare_queue(f"cus.{n}.deliver", passive=True)
    await declared.apply(OrgConfig(n, custom_event_deliver=True, custom_supporter_confirm=True))
    ch = await connection.channel()
    for name in ("deliver", "confirm.supporter"):
        await ch.declare_queue(f"cus.{n}.{name}", passive=True)
    await ch.close()


async def test_unroutable_unknown_exchange_and_missing_queue(
    declared: Declared, channel: AbstractChannel
) -> None:
    n = await declared.org(custom_action_deliver=True)
    broker = declared.broker
    with pytest.raises(ExchangeNotFound):
        await broker.publish(f"org.{n + 1}.deliver", "petition.x", b"{}")
    # the broker's channel survives the refusal
    assert await broker.publish(f"org.{n}.deliver", "petition.x", b"after")
    with pytest.raises(QueueNotFound):
        await broker.send_to_queue(f"cus.{n}.confirm.action", b"{}")
    # requeue's path: straight to an existing queue
    await broker.send_to_queue(f"cus.{n}.deliver", b"requeued")
    bodies = [(await get(channel, f"cus.{n}.deliver")).body for _ in range(2)]
    assert bodies == [b"after", b"requeued"]


async def test_publish_many_confirms_each_message_in_order(
    declared: Declared, channel: AbstractChannel, caplog: pytest.LogCaptureFixture
) -> None:
    n = await declared.org(custom_action_deliver=True)
    broker = declared.broker
    # deliver is bound to cus.N.deliver; confirm.action has no queue: unroutable
    messages = [
        (f"org.{n}.deliver" if i % 3 else f"org.{n}.confirm.action", "petition.x", b"m%d" % i)
        for i in range(30)
    ]
    with caplog.at_level("INFO"):
        outcomes = await broker.publish_many(messages)
    assert outcomes == [i % 3 != 0 for i in range(30)]
    # every return was matched to its own publish: nothing logged as unhandled, no body
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert all(
        b"m" not in r.getMessage().encode() or "routing key" in r.getMessage()
        for r in caplog.records
    )
    bodies = [(await get(channel, f"cus.{n}.deliver")).body for _ in range(20)]
    assert bodies == [b"m%d" % i for i in range(30) if i % 3]
    assert await broker.publish_many([]) == []


async def test_a_batch_leaves_in_few_sends_and_each_message_is_confirmed(
    declared: Declared, channel: AbstractChannel
) -> None:
    n = await declared.org(custom_action_deliver=True)
    broker = declared.broker
    assert isinstance(broker.connection, GatheringConnection)
    writer = broker.connection.transport_factory.writer
    assert writer is not None
    before = writer.sends
    messages = [(f"org.{n}.deliver", "petition.x", b"m%d" % i) for i in range(500)]
    assert await broker.publish_many(messages) == [True] * 500
    # the client writes each message on its own; they went out gathered
    assert 0 < writer.sends - before < 100
    bodies = [(await get(channel, f"cus.{n}.deliver")).body for _ in range(500)]
    assert bodies == [body for _, _, body in messages]


def unroutable_count(kind: str) -> float:
    return REGISTRY.get_sample_value("proca_broker_unroutable_total", {"exchange": kind}) or 0.0


async def test_unroutable_messages_are_counted_and_said_once_per_exchange_and_key(
    declared: Declared, caplog: pytest.LogCaptureFixture
) -> None:
    # an org with no delivery queue: its deliver messages go nowhere, as expected
    n = await declared.org()
    broker = declared.broker
    deliver = f"org.{n}.deliver"
    body = b'{"contact": {"email": "ada.lovelace@example.org"}}'
    before = unroutable_count("org.deliver")
    with caplog.at_level(logging.INFO):
        outcomes = await broker.publish_many(
            [(deliver, "petition.save_bees", body)] * 40 + [(deliver, "register.other", body)]
        )
        for _ in range(5):
            assert not await broker.publish(deliver, "petition.save_bees", body)
    assert outcomes == [False] * 41
    assert unroutable_count("org.deliver") - before == 46
    said = [r for r in caplog.records if "no queue bound" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in said] == [
        (
            "INFO",
            f"no queue bound on exchange {deliver} for routing key {key!r}: such messages are "
            "dropped, as expected for an org with no queue for this stage (such as no "
            "delivery queue); counted in proca_broker_unroutable_total, said once an hour",
        )
        for key in ("petition.save_bees", "register.other")
    ]
    assert not [r for r in caplog.records if "ada.lovelace" in r.getMessage()]


async def test_publish_many_names_a_missing_exchange_and_the_channel_recovers(
    declared: Declared, channel: AbstractChannel
) -> None:
    n = await declared.org(custom_action_deliver=True)
    broker = declared.broker
    outcomes = await broker.publish_many(
        [(f"org.{n}.deliver", "petition.x", b"first"), (f"org.{n + 1}.deliver", "p.x", b"lost")]
    )
    assert isinstance(outcomes[1], ExchangeNotFound)
    # the refusal closes the channel, which may take the first one's confirmation with it:
    # then it is reported failed (and sent again by the caller), though it was routed
    assert outcomes[0] is True or isinstance(outcomes[0], BrokerError)
    assert await broker.publish_many([(f"org.{n}.deliver", "petition.x", b"after")]) == [True]
    bodies = [(await get(channel, f"cus.{n}.deliver")).body for _ in range(2)]
    assert bodies == [b"first", b"after"]


async def test_a_failure_comes_back_after_the_delay_then_parks_after_the_limit(
    declared: Declared, channel: AbstractChannel
) -> None:
    n = await declared.org(push_backend="webhook")
    loop = asyncio.get_running_loop()
    attempts: list[tuple[int, float]] = []

    async def handler(d: Delivery) -> None:
        attempts.append((d.retries, loop.time()))
        raise RetryableError("receiver down")

    consumer = await declared.broker.consume(f"wrk.{n}.webhook", handler)
    await declared.broker.publish(f"org.{n}.deliver", "petition.x", b'{"m": 1}')
    parked = await get(channel, f"org.{n}.fail")
    await consumer.stop()
    assert [r for r, _ in attempts] == [0, 1, 2]
    assert all(b - a >= 0.25 for (_, a), (_, b) in itertools.pairwise(attempts))
    assert parked.body == b'{"m": 1}'
    assert parked.routing_key == f"wrk.{n}.webhook"
    assert parked.headers[RETRY_HEADER] == 2
    await parked.ack()


async def test_a_permanent_error_parks_at_once_and_success_acks(
    declared: Declared, connection: AbstractRobustConnection, channel: AbstractChannel
) -> None:
    n = await declared.org(custom_action_deliver=True)
    seen: list[bytes] = []

    async def handler(d: Delivery) -> None:
        seen.append(d.body)
        if d.body == b"bad":
            raise PermanentError("cannot decode")

    consumer = await declared.broker.consume(f"cus.{n}.deliver", handler)
    for body in (b"good", b"bad"):
        await declared.broker.publish(f"org.{n}.deliver", "petition.x", body)
    parked = await get(channel, f"org.{n}.fail")
    await consumer.stop()
    assert seen == [b"good", b"bad"] and parked.body == b"bad"
    await parked.ack()
    assert await count(connection, f"cus.{n}.deliver") == 0


async def test_batches_retry_only_the_failed_messages(declared: Declared) -> None:
    n = await declared.org(push_backend="sqs")
    for i in range(4):
        await declared.broker.publish(f"org.{n}.deliver", "petition.x", str(i).encode())
    batches: list[list[tuple[bytes, int]]] = []

    async def handler(ds: list[Delivery]) -> list[BaseException | None]:
        batches.append([(d.body, d.retries) for d in ds])
        return [RetryableError("x") if d.body == b"2" and not d.retries else None for d in ds]

    consumer = await declared.broker.consume_batches(
        f"wrk.{n}.sqs", handler, batch_size=10, batch_timeout=0.2
    )

    async def done() -> bool:
        return len(batches) == 2

    await eventually(done)
    await consumer.stop()
    assert batches == [[(b"0", 0), (b"1", 0), (b"2", 0), (b"3", 0)], [(b"2", 1)]]


async def test_a_message_rejected_by_an_outside_consumer_parks_in_fail(
    declared: Declared, channel: AbstractChannel
) -> None:
    n = await declared.org(custom_action_deliver=True)
    await declared.broker.publish(f"org.{n}.deliver", "petition.x", b"nacked")
    message = await get(channel, f"cus.{n}.deliver")
    await message.nack(requeue=False)
    parked = await get(channel, f"org.{n}.fail")
    assert parked.body == b"nacked" and parked.routing_key == f"cus.{n}.deliver"
    await parked.ack()


async def test_consuming_a_missing_queue_is_refused(declared: Declared) -> None:
    async def handler(d: Delivery) -> None:
        pass

    with pytest.raises(QueueNotFound):
        await declared.broker.consume(f"cus.{next(_orgs)}.deliver", handler)


async def test_publishing_in_a_session_waits_for_its_commit(
    declared: Declared,
    connection: AbstractRobustConnection,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    n = await declared.org(custom_action_deliver=True)
    broker = declared.broker
    async with sessionmaker() as caller:
        await caller.begin()
        await broker.publish(f"org.{n}.deliver", "petition.x", b"rolled back", session=caller)
        await caller.rollback()
    async with sessionmaker() as caller, caller.begin():
        await broker.publish(f"org.{n}.deliver", "petition.x", b"committed", session=caller)
        await asyncio.sleep(0.2)
        assert await count(connection, f"cus.{n}.deliver") == 0

    async def sent() -> bool:
        return await count(connection, f"cus.{n}.deliver") == 1

    await eventually(sent)
    async with sessionmaker() as caller, caller.begin():
        pass  # a later commit does not send the rolled-back message
    await asyncio.sleep(0.2)
    assert await count(connection, f"cus.{n}.deliver") == 1
