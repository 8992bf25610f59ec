"""Fixtures for the running pipeline: a runtime over the test app's database, RabbitMQ.

Tests needing RabbitMQ (TEST_AMQP_URL, default the local server) are skipped without it,
except under CI=true, where that is a failure."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aio_pika
import pytest
from fastapi import FastAPI

from proca_server.app_state import state_of
from proca_server.broker.base import Broker
from proca_server.broker.embedded import EmbeddedBroker
from proca_server.config import Settings
from proca_server.processing.runtime import PipelineRuntime, RuntimeOptions
from tests.conftest import IN_CI

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# sweep everything at once, often: the tests do not depend on the widget's hand-off
FAST = RuntimeOptions(sweep_interval=0.1, sweep_age=0.0, run_workers=False)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    app: FastAPI, broker: Broker, options: RuntimeOptions = FAST
) -> AsyncIterator[PipelineRuntime]:
    """A runtime plugged into the app as its pipeline, stopped afterwards."""
    runtime = PipelineRuntime(state_of(app).settings, state_of(app).sessionmaker, broker, options)
    await runtime.start()
    state_of(app).pipeline = runtime
    try:
        yield runtime
    finally:
        state_of(app).pipeline = None
        await runtime.stop()


@pytest.fixture
async def embedded_broker(app: FastAPI) -> AsyncIterator[EmbeddedBroker]:
    broker = EmbeddedBroker(state_of(app).sessionmaker, retry_delay=0.1, poll_interval=0.1)
    yield broker
    await broker.close()


def amqp_problem() -> str | None:
    url = urlsplit(AMQP_URL)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), 3).close()
    except OSError as exc:
        return f"RabbitMQ not available at {url.hostname}:{url.port}: {type(exc).__name__}"
    return None


_amqp_problem: list[str | None] = []


def require_rabbitmq() -> None:
    if not _amqp_problem:
        _amqp_problem.append(amqp_problem())
    problem = _amqp_problem[0]
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture
def rabbit_settings(settings: Settings) -> Settings:
    require_rabbitmq()
    return settings.model_copy(update={"amqp_url": AMQP_URL})


# org ids no deployment on the local RabbitMQ uses, unique to the run
_orgs = itertools.count(1_500_000_000 + secrets.randbelow(10**8) * 5)


def fresh_org_id() -> int:
    return next(_orgs)


@asynccontextmanager
async def amqp_channel() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def delete_org_entities(org_id: int) -> None:
    """Remove what the org's topology declared on RabbitMQ."""
    from proca_server.broker.topology import OrgConfig, org_topology

    topology = org_topology(
        OrgConfig(
            org_id,
            email_backend=True,
            supporter_confirm=True,
            push_backend="webhook",
            event_backend="sqs",
            custom_supporter_confirm=True,
            custom_action_confirm=True,
            custom_action_deliver=True,
            custom_event_deliver=True,
            detail_backend=True,
        )
    )
    async with amqp_channel() as channel:
        for queue in topology.queues:
            if queue.name != "system.deliver":
                await channel.queue_delete(queue.name)
        for exchange in topology.exchanges:
            await channel.exchange_delete(exchange.name)


@pytest.fixture(params=["embedded", "rabbitmq"])
def broker_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The app's settings, with the embedded queue or with RabbitMQ."""
    if request.param == "embedded":
        return settings
    require_rabbitmq()
    return settings.model_copy(update={"amqp_url": AMQP_URL})
