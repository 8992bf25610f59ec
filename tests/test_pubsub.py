"""Publish/subscribe: in-process, and across processes through PostgreSQL LISTEN/NOTIFY
(two PubSub instances on two engines stand for two server processes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from proca_server import db
from proca_server.config import Settings
from proca_server.pubsub import CHANNEL, QUEUE_SIZE, PubSub

QUIET = 0.3


async def receive(queue: asyncio.Queue[dict[str, Any]], within: float = 5) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), within)


async def nothing_more(queue: asyncio.Queue[dict[str, Any]]) -> None:
    await asyncio.sleep(QUIET)
    assert queue.empty(), queue.get_nowait()


async def test_in_process_delivery_by_topic() -> None:
    bus = PubSub()
    async with bus.subscribe("org:a") as a1, bus.subscribe("org:a") as a2, bus.subscribe("b") as b:
        assert bus.subscriber_count("org:a") == 2
        await bus.publish("org:a", {"action_page_id": 1})
        assert await receive(a1) == {"action_page_id": 1}
        assert await receive(a2) == {"action_page_id": 1}
        assert b.empty()
    assert bus.subscriber_count("org:a") == 0
    await bus.publish("org:a", {"action_page_id": 2})  # nobody listens: nothing happens


async def test_a_full_queue_drops_messages_without_failing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = PubSub()
    async with bus.subscribe("t") as slow, bus.subscribe("t") as fast:
        with caplog.at_level(logging.WARNING, logger="proca_server.pubsub"):
            for i in range(QUEUE_SIZE + 1):
                await bus.publish("t", {"i": i})
                if i < QUEUE_SIZE:
                    assert (await receive(fast))["i"] == i
        assert slow.qsize() == QUEUE_SIZE
        assert "message dropped" in caplog.text
        assert (await receive(fast))["i"] == QUEUE_SIZE


async def test_sqlite_stays_in_process(engine: AsyncEngine, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the SQLite case")
    bus = PubSub()
    await bus.connect(engine)
    assert bus.cross_process is False
    async with bus.subscribe("t") as queue:
        await bus.publish("t", {"x": 1})
        assert queue.get_nowait() == {"x": 1}


@pytest.fixture
async def two_processes(
    engine: AsyncEngine, settings: Settings, backend: str
) -> AsyncIterator[tuple[PubSub, PubSub]]:
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    other_engine = db.create_engine(settings)
    here, there = PubSub(), PubSub()
    await here.connect(engine)
    await there.connect(other_engine)
    try:
        yield here, there
    finally:
        await here.close()
        await there.close()
        await other_engine.dispose()


async def test_notify_reaches_every_process_once(two_processes: tuple[PubSub, PubSub]) -> None:
    here, there = two_processes
    assert here.cross_process and there.cross_process
    async with (
        here.subscribe("org:a") as near,
        there.subscribe("org:a") as far,
        there.subscribe("org:b") as elsewhere,
    ):
        await here.publish("org:a", {"action_page_id": 7})
        assert await receive(far) == {"action_page_id": 7}
        # the publisher's own subscribers get it through the listener, exactly once
        assert await receive(near) == {"action_page_id": 7}
        await nothing_more(near)
        await nothing_more(elsewhere)
        await there.publish("org:b", {"action_page_id": 8})
        assert await receive(elsewhere) == {"action_page_id": 8}
        await nothing_more(far)


async def test_a_publish_without_local_subscribers_still_notifies(
    two_processes: tuple[PubSub, PubSub],
) -> None:
    here, there = two_processes
    async with there.subscribe("$instance") as far:
        await here.publish("$instance", {"action_page_id": 1})
        assert await receive(far) == {"action_page_id": 1}


async def test_a_message_too_large_for_notify_stays_local(
    two_processes: tuple[PubSub, PubSub], caplog: pytest.LogCaptureFixture
) -> None:
    here, there = two_processes
    big = {"blob": "x" * 9000}
    async with here.subscribe("t") as near, there.subscribe("t") as far:
        with caplog.at_level(logging.WARNING, logger="proca_server.pubsub"):
            await here.publish("t", big)
        assert await receive(near) == big
        await nothing_more(far)
        assert "too large" in caplog.text


async def test_the_listener_reconnects_after_losing_its_connection(
    two_processes: tuple[PubSub, PubSub], engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    here, there = two_processes
    async with there.subscribe("t") as far:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query = :listen"
                ),
                {"listen": f'LISTEN "{CHANNEL}"'},
            )
            assert result.scalars().all() == [True]
        # notifications sent while it reconnects are lost; it comes back within seconds
        with caplog.at_level(logging.WARNING, logger="proca_server.pubsub"):
            async with asyncio.timeout(10):
                while True:
                    await here.publish("t", {"n": 1})
                    try:
                        assert await receive(far, within=0.2) == {"n": 1}
                        break
                    except TimeoutError:
                        continue
        assert "listener connection" in caplog.text


async def test_close_stops_the_listener(two_processes: tuple[PubSub, PubSub]) -> None:
    here, _ = two_processes
    async with here.subscribe("t"):
        pass
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "pubsub-listener"]
    assert len(tasks) == 1
    await here.close()
    assert tasks[0].done()
    assert here.cross_process is False
    async with here.subscribe("t") as queue:  # back to in-process
        await here.publish("t", {"x": 1})
        assert queue.get_nowait() == {"x": 1}
