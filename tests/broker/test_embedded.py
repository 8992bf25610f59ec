"""The queue kept in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server.broker import (
    BrokerError,
    Delivery,
    ExchangeNotFound,
    OrgConfig,
    PermanentError,
    QueueNotFound,
    RetryableError,
    open_broker,
    org_topology,
    store,
)
from proca_server.broker.embedded import EmbeddedBroker
from proca_server.broker.store import topic_matches
from proca_server.config import Settings
from proca_server.models import BrokerMessage
from proca_server.pubsub import PubSub
from tests.factories import make_org

_orgs = itertools.count(101)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def broker(
    sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> AsyncIterator[EmbeddedBroker]:
    # `session` empties the tables after the test
    b = EmbeddedBroker(sessionmaker, retry_limit=2, retry_delay=0.2, poll_interval=0.05)
    yield b
    await b.close()


async def rows(session: AsyncSession, queue: str | None = None) -> list[BrokerMessage]:
    await session.rollback()
    query = (
        select(BrokerMessage).order_by(BrokerMessage.id).execution_options(populate_existing=True)
    )
    if queue is not None:
        query = query.where(BrokerMessage.queue == queue)
    return list((await session.scalars(query)).all())


async def org_with(broker: EmbeddedBroker, **flags: object) -> int:
    org_id = next(_orgs)
    await broker.apply_topology(org_topology(OrgConfig(org_id, **flags)))  # type: ignore[arg-type]
    return org_id


def test_topic_patterns_match_as_on_rabbitmq() -> None:
    assert topic_matches("#", "register.save_bees")
    assert topic_matches("#", "")
    assert topic_matches("system.*", "system.new_user")
    assert not topic_matches("system.*", "system.a.b")
    assert not topic_matches("system.*", "supporter.email_status")
    assert topic_matches("*.save_bees", "petition.save_bees")
    assert topic_matches("a.#.z", "a.z") and topic_matches("a.#.z", "a.b.c.z")
    assert not topic_matches("a.#.z", "a.b.c")
    assert not topic_matches("*", "")


async def test_publish_routes_by_routing_key_to_the_bound_queues(
    broker: EmbeddedBroker, session: AsyncSession
) -> None:
    n = await org_with(broker, email_backend=True, custom_action_deliver=True)
    assert await broker.publish(f"org.{n}.deliver", "petition.save_bees", b'{"a": 1}')
    got = await rows(session)
    assert sorted(m.queue for m in got) == [f"cus.{n}.deliver", f"wrk.{n}.email.supporter"]
    assert {(m.exchange, m.routing_key, m.body, m.retries) for m in got} == {
        (f"org.{n}.deliver", "petition.save_bees", b'{"a": 1}', 0)
    }
    # events: only system.* reaches the global queue
    assert await broker.publish(f"org.{n}.event", "system.new_user", b"{}")
    assert not await broker.publish(f"org.{n}.event", "supporter.email_status", b"{}")
    assert [m.queue for m in await rows(session, "system.deliver")] == ["system.deliver"]


async def test_unroutable_and_unknown_exchange(
    broker: EmbeddedBroker, session: AsyncSession
) -> None:
    n = await org_with(broker)
    assert not await broker.publish(f"org.{n}.confirm.action", "petition.x", b"{}")
    with pytest.raises(ExchangeNotFound):
        await broker.publish("org.999999.deliver", "petition.x", b"{}")
    with pytest.raises(QueueNotFound):
        await broker.send_to_queue(f"cus.{n}.deliver", b"{}")
    assert await rows(session) == []


def unroutable_count(kind: str) -> float:
    return REGISTRY.get_sample_value("proca_broker_unroutable_total", {"exchange": kind}) or 0.0


async def test_unroutable_messages_are_counted_and_said_once_per_exchange_and_key(
    broker: EmbeddedBroker, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    # an org with no delivery queue: its deliver messages go nowhere, as expected
    n = await org_with(broker)
    deliver = f"org.{n}.deliver"
    body = b'{"contact": {"email": "ada.lovelace@example.org"}}'
    before = unroutable_count("org.deliver")
    with caplog.at_level(logging.INFO):
        for _ in range(30):
            assert not await broker.publish(deliver, "petition.save_bees", body)
        outcomes = await broker.publish_batch(
            [(deliver, "petition.save_bees", body)] * 5 + [(deliver, "register.other", body)],
            session=session,
        )
    assert outcomes == [False] * 6
    assert unroutable_count("org.deliver") - before == 36
    said = [r.getMessage() for r in caplog.records if "no queue bound" in r.getMessage()]
    assert said == [
        f"no queue bound on exchange {deliver} for routing key 'petition.save_bees': such "
        "messages are dropped, as expected for an org with no queue for this stage (such as "
        "no delivery queue); counted in proca_broker_unroutable_total, said once an hour",
        f"no queue bound on exchange {deliver} for routing key 'register.other': such "
        "messages are dropped, as expected for an org with no queue for this stage (such as "
        "no delivery queue); counted in proca_broker_unroutable_total, said once an hour",
    ]
    assert not [r for r in caplog.records if "ada.lovelace" in r.getMessage()]
    assert await rows(session) == []
    # a missing queue through the default exchange is the caller's error to report: counted,
    # not said here
    default_before = unroutable_count("default")
    with caplog.at_level(logging.INFO), pytest.raises(QueueNotFound):
        await broker.send_to_queue(f"cus.{n}.deliver", body)
    assert unroutable_count("default") - default_before == 1
    assert len([r for r in caplog.records if "no queue bound" in r.getMessage()]) == 2


async def test_publish_in_the_callers_session_commits_and_rolls_back_with_it(
    broker: EmbeddedBroker, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    n = await org_with(broker, custom_action_deliver=True)
    async with sessionmaker() as caller:
        await caller.begin()
        assert await broker.publish(f"org.{n}.deliver", "petition.x", b"1", session=caller)
        await caller.rollback()
    assert await rows(session) == []
    async with sessionmaker() as caller, caller.begin():
        org = await make_org(caller)
        await broker.publish(f"org.{n}.deliver", "petition.x", b"2", session=caller)
        await broker.send_to_queue(f"cus.{n}.deliver", b"3", session=caller)
        assert await rows(session) == []  # not committed yet
    assert [m.body for m in await rows(session)] == [b"2", b"3"]
    assert org.id


async def test_a_flag_turned_off_unbinds_but_keeps_the_queue_and_its_messages(
    broker: EmbeddedBroker, session: AsyncSession
) -> None:
    n = await org_with(broker, custom_action_deliver=True)
    await broker.publish(f"org.{n}.deliver", "petition.x", b"kept")
    await broker.apply_topology(org_topology(OrgConfig(n)))
    assert not await broker.publish(f"org.{n}.deliver", "petition.x", b"dropped")
    assert [m.body for m in await rows(session)] == [b"kept"]
    # the queue is still there: requeue can still send to it, consumers can still read it
    await broker.send_to_queue(f"cus.{n}.deliver", b"direct")
    assert [q.name for q in await store.list_queues(session, n)] == [f"cus.{n}.deliver"]


async def test_consume_acks_by_deleting(broker: EmbeddedBroker, session: AsyncSession) -> None:
    n = await org_with(broker, custom_action_deliver=True)
    seen: list[Delivery] = []

    async def handler(d: Delivery) -> None:
        seen.append(d)

    consumer = await broker.consume(f"cus.{n}.deliver", handler)
    await broker.publish(f"org.{n}.deliver", "petition.x", b"one")
    await broker.publish(f"org.{n}.deliver", "petition.x", b"two")

    async def done() -> bool:
        return len(seen) == 2 and not await rows(session)

    await eventually(done)
    await consumer.stop()
    assert [(d.body, d.routing_key, d.retries, d.redelivered) for d in seen] == [
        (b"one", "petition.x", 0, False),
        (b"two", "petition.x", 0, False),
    ]


async def test_a_failure_comes_back_after_the_delay_then_parks_after_the_limit(
    broker: EmbeddedBroker, session: AsyncSession
) -> None:
    n = await org_with(broker, custom_action_deliver=True)
    queue = f"cus.{n}.deliver"
    attempts: list[tuple[int, float]] = []
    loop = asyncio.get_running_loop()

    async def handler(d: Delivery) -> None:
        attempts.append((d.retries, loop.time()))
        raise RetryableError("receiver down")

    consumer = await broker.consume(queue, handler)
    await broker.publish(f"org.{n}.deliver", "petition.x", b"m")

    async def parked() -> bool:
        return bool(await rows(session, f"org.{n}.fail"))

    await eventually(parked)
    await consumer.stop()
    # first delivery + retry_limit (2) retries, each after the delay
    assert [r for r, _ in attempts] == [0, 1, 2]
    assert all(b - a >= 0.2 for (_, a), (_, b) in itertools.pairwise(attempts))
    (message,) = await rows(session)
    assert (message.queue, message.exchange, message.routing_key, message.retries) == (
        f"org.{n}.fail",
        f"org.{n}.fail",
        queue,
        3,
    )
    # an operator sends it back
    assert await store.requeue_parked(session, n) == 1
    await session.commit()
    assert [(m.queue, m.retries) for m in await rows(session)] == [(queue, 0)]


async def test_a_permanent_error_parks_at_once(
    broker: EmbeddedBroker, session: AsyncSession
) -> None:
    n = await org_with(broker, push_backend="webhook")
    calls = 0

    async def handler(d: Delivery) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("bad message")

    consumer = await broker.consume(f"wrk.{n}.webhook", handler)
    await broker.publish(f"org.{n}.deliver", "petition.x", b"m")

    async def parked() -> bool:
        return bool(await rows(session, f"org.{n}.fail"))

    await eventually(parked)
    await consumer.stop()
    assert calls == 1


async def test_batches_fail_only_the_messages_that_failed(
    broker: EmbeddedBroker, session: AsyncSession
) -> None:
    n = await org_with(broker, push_backend="sqs")
    for i in range(5):
        await broker.publish(f"org.{n}.deliver", f"petition.c{i}", str(i).encode())
    batches: list[list[bytes]] = []

    async def handler(ds: list[Delivery]) -> list[BaseException | None]:
        batches.append([d.body for d in ds])
        return [RetryableError("no") if d.body == b"3" and d.retries == 0 else None for d in ds]

    consumer = await broker.consume_batches(f"wrk.{n}.sqs", handler, batch_size=10)

    async def drained() -> bool:
        return not await rows(session)

    await eventually(drained)
    await consumer.stop()
    assert batches == [[b"0", b"1", b"2", b"3", b"4"], [b"3"]]


async def test_messages_survive_a_restart_and_a_lost_lease_comes_back(
    sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    first = EmbeddedBroker(sessionmaker, lease=0.3, poll_interval=0.05)
    n = next(_orgs)
    await first.apply_topology(org_topology(OrgConfig(n, custom_action_deliver=True)))
    await first.publish(f"org.{n}.deliver", "petition.x", b"a")
    await first.publish(f"org.{n}.deliver", "petition.x", b"b")
    # a consumer claims "a" and dies without settling it
    async with sessionmaker() as s, s.begin():
        (claimed,) = await store.claim_messages(s, f"cus.{n}.deliver", 1, lease=0.3)
    assert claimed.body == b"a"
    await first.close()

    second = EmbeddedBroker(sessionmaker, lease=0.3, poll_interval=0.05)
    seen: list[Delivery] = []

    async def handler(d: Delivery) -> None:
        seen.append(d)

    consumer = await second.consume(f"cus.{n}.deliver", handler)

    async def both() -> bool:
        return len(seen) == 2

    await eventually(both)
    await consumer.stop()
    assert [(d.body, d.redelivered) for d in seen] == [(b"b", False), (b"a", True)]
    assert await rows(session) == []


async def test_settling_after_the_lease_was_lost_does_nothing(
    broker: EmbeddedBroker, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    n = await org_with(broker, custom_action_deliver=True)
    queue = f"cus.{n}.deliver"
    await broker.publish(f"org.{n}.deliver", "petition.x", b"a")
    async with sessionmaker() as s, s.begin():
        (old,) = await store.claim_messages(s, queue, 1, lease=0.01)
    await asyncio.sleep(0.05)
    async with sessionmaker() as s, s.begin():
        (new,) = await store.claim_messages(s, queue, 1)
    assert new.id == old.id and new.locked_until != old.locked_until
    async with sessionmaker() as s, s.begin():
        gone = await s.execute(
            update(BrokerMessage)
            .where(BrokerMessage.id == old.id, BrokerMessage.locked_until == old.locked_until)
            .values(retries=9)
            .returning(BrokerMessage.id)
        )
        assert gone.first() is None
    (row,) = await rows(session)
    assert row.retries == 0 and row.locked_until == new.locked_until


async def test_concurrent_claimers_never_get_the_same_message(
    broker: EmbeddedBroker,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    backend: str,
) -> None:
    if backend != "postgresql":
        pytest.skip("several claimers at once is PostgreSQL's case (SQLite: one process)")
    n = await org_with(broker, custom_action_deliver=True)
    queue = f"cus.{n}.deliver"
    async with sessionmaker() as s, s.begin():
        await store.insert_messages(s, [queue] * 300, f"org.{n}.deliver", "a.b", b"x")

    async def claimer() -> list[int]:
        got: list[int] = []
        while True:
            async with sessionmaker() as s, s.begin():
                batch = await store.claim_messages(s, queue, 7)
                await asyncio.sleep(0.001)  # hold the row locks a little
            if not batch:
                return got
            got += [m.id for m in batch]

    results = await asyncio.gather(*(claimer() for _ in range(6)))
    ids = [i for r in results for i in r]
    assert len(ids) == 300 == len(set(ids))
    assert sum(1 for r in results if r) > 1  # they did run side by side


async def test_claiming_reads_the_queue_index(
    broker: EmbeddedBroker, session: AsyncSession, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("plan checked on PostgreSQL")
    from sqlalchemy import text

    await session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        row[0]
        for row in await session.execute(
            text(
                "EXPLAIN SELECT id FROM broker_messages WHERE queue = 'q' "
                "AND available_at <= now() ORDER BY available_at, id LIMIT 10 "
                "FOR UPDATE SKIP LOCKED"
            )
        )
    )
    assert "broker_messages_queue_available_at_id_index" in plan
    assert "Sort" not in plan


async def test_listing_peeking_and_acking_by_id(
    broker: EmbeddedBroker, sessionmaker: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    n = await org_with(broker, custom_action_deliver=True, custom_action_confirm=True)
    for body in (b"1", b"2", b"3"):
        await broker.publish(f"org.{n}.deliver", "petition.x", body)
    async with sessionmaker() as s, s.begin():
        await store.claim_messages(s, f"cus.{n}.deliver", 1)
        await s.execute(
            update(BrokerMessage)
            .where(BrokerMessage.body == b"3")
            .values(available_at=store.now() + timedelta(minutes=1))
        )
    counts = {q.name: q for q in await store.list_queues(session, n)}
    assert set(counts) == {f"cus.{n}.confirm.action", f"cus.{n}.deliver"}
    deliver = counts[f"cus.{n}.deliver"]
    assert (deliver.ready, deliver.unacked, deliver.delayed, deliver.total) == (1, 1, 1, 3)
    assert counts[f"cus.{n}.confirm.action"].total == 0
    assert {q.name for q in await store.list_queues(session, n, "org")} == {
        f"org.{n}.fail",
        f"org.{n}.delay",
    }

    peeked = await store.peek_messages(session, f"cus.{n}.deliver", 10)
    # by when due: ready, then the delayed one (1 min), then the claimed one (2 min lease)
    assert [m.body for m in peeked] == [b"2", b"3", b"1"]
    assert await store.ack_messages(session, f"cus.{n}.confirm.action", [peeked[0].id]) == 0
    assert await store.ack_messages(session, f"cus.{n}.deliver", [peeked[0].id, 999999]) == 1
    await session.commit()
    assert [m.body for m in await rows(session)] == [b"1", b"3"]


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    code = "import sys; from proca_server.broker.cli import queue_app; queue_app(sys.argv[1:])"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        env={**os.environ, "AMQP_URL": "", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow  # the proca-server command in a subprocess
async def test_cli_lists_reads_and_acks_an_orgs_custom_queue(
    broker: EmbeddedBroker, session: AsyncSession, database_url: str, tmp_path: object
) -> None:
    org = await make_org(session, custom_action_deliver=True)
    await session.commit()
    n, name = org.id, org.name
    await broker.apply_topology(org_topology(OrgConfig(n, custom_action_deliver=True)))
    await broker.publish(f"org.{n}.deliver", "petition.x", b'{"actionId": 1}')
    await broker.publish(f"org.{n}.deliver", "petition.x", b"not json")
    env = {"DATABASE_URL": database_url, "PROCA_DATA_DIR": str(tmp_path)}

    rc, out, err = await cli("list", name, env=env)
    assert rc == 0, err
    assert out.split() == [
        f"cus.{n}.deliver",
        "ready",
        "2",
        "unacked",
        "0",
        "delayed",
        "0",
        "total",
        "2",
    ]

    rc, out, err = await cli("read", name, "deliver", "--limit", "1", env=env)
    assert rc == 0, err
    assert '"body": {"actionId": 1}' in out and '"routingKey": "petition.x"' in out
    first_id = (await rows(session))[0].id

    rc, out, err = await cli("read", name, f"cus.{n}.deliver", "--ack", env=env)
    assert rc == 0, err
    assert len(out.splitlines()) == 2 and '"body": "not json"' in out
    assert await rows(session) == []

    await broker.publish(f"org.{n}.deliver", "petition.x", b"again")
    (row,) = await rows(session)
    assert row.id > first_id
    rc, out, err = await cli("ack", name, "deliver", str(row.id), env=env)
    assert rc == 0, err
    assert out.strip() == "acknowledged 1 of 1"
    assert await rows(session) == []

    rc, _, err = await cli("read", name, f"cus.{n + 1}.deliver", env=env)
    assert rc != 0 and "is not one of this org" in err


async def test_consumers_wake_on_commit_without_polling(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    session: AsyncSession,
    backend: str,
) -> None:
    """In this process directly; from another process through NOTIFY on PostgreSQL (here:
    a second broker object, which shares nothing in memory with the consumer's)."""
    pubsub = PubSub()
    await pubsub.connect(engine)
    consumer_side = EmbeddedBroker(sessionmaker, poll_interval=30, pubsub=pubsub)
    publisher_side = EmbeddedBroker(sessionmaker, poll_interval=30)
    n = next(_orgs)
    await consumer_side.apply_topology(org_topology(OrgConfig(n, custom_action_deliver=True)))
    seen: list[bytes] = []

    async def handler(d: Delivery) -> None:
        seen.append(d.body)

    consumer = await consumer_side.consume(f"cus.{n}.deliver", handler)
    await asyncio.sleep(0.2)  # the consumer found nothing and sleeps
    try:
        await consumer_side.publish(f"org.{n}.deliver", "petition.x", b"local")

        async def local() -> bool:
            return seen == [b"local"]

        await eventually(local, 5)
        if backend == "postgresql":
            await publisher_side.publish(f"org.{n}.deliver", "petition.x", b"remote")

            async def remote() -> bool:
                return seen == [b"local", b"remote"]

            await eventually(remote, 5)
    finally:
        await consumer.stop()
        await pubsub.close()


async def test_open_broker_picks_rabbitmq_only_with_amqp_url(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    broker = await open_broker(settings.model_copy(update={"amqp_url": None}), sessionmaker)
    assert isinstance(broker, EmbeddedBroker)
    assert (broker.retry_limit, broker.retry_delay) == (10, 60.0)
    await broker.close()
    unreachable = settings.model_copy(update={"amqp_url": "amqp://guest:secret@127.0.0.1:5999/"})
    with pytest.raises(BrokerError) as raised:
        await open_broker(unreachable, sessionmaker)
    assert "secret" not in str(raised.value)
