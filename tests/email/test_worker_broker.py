"""A signature's thank-you email through the broker: the processing message published to
`org.N.deliver` reaches `wrk.N.email.supporter`, whose consumer sends it over SMTP. On the
embedded queue and on RabbitMQ (skipped when unreachable, except under CI=true)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker import open_broker
from proca_server.broker.topology import load_org_topology
from proca_server.config import Settings
from proca_server.workers import WorkerDeps
from proca_server.workers.registry import batch_handler_for
from tests.conftest import IN_CI
from tests.email.conftest import SmtpServer
from tests.email.worker_world import add_template, signed, smtp_site, trusted_ca

__all__ = ["trusted_ca"]

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

pytestmark = [
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("trusted_ca"),
]


async def _purge(queue: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await (await channel.get_queue(queue)).purge()


@pytest.fixture(params=["embedded", "rabbitmq"])
async def broker_settings(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[Settings]:
    if request.param == "embedded":
        yield settings
        return
    try:
        connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 5)
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        reason = f"RabbitMQ unreachable at {AMQP_URL.split('@')[-1]}: {type(exc).__name__}"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    await connection.close()
    yield settings.model_copy(update={"amqp_url": AMQP_URL})


async def test_thank_you_email_goes_through_the_queue(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    starttls_server: SmtpServer,
    broker_settings: Settings,
) -> None:
    site = await smtp_site(session, starttls_server, page_fields={"thank_you_template": "thanks"})
    await add_template(session, site.org_id, "thanks", subject="Thanks {{firstName}}", html="x")
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        await broker.apply_topology(await load_org_topology(session, site.org_id))
        queue = f"wrk.{site.org_id}.email.supporter"
        if broker_settings.amqp_url:
            await _purge(queue)  # a previous run's org of the same id
        handler = batch_handler_for(queue, WorkerDeps(broker_settings, sessionmaker, broker))
        assert handler is not None
        consumer = await broker.consume_batches(queue, handler, batch_size=5, batch_timeout=0.1)
        try:
            _, _, [delivery] = await signed(client, session, site)
            assert await broker.publish(delivery.exchange, delivery.routing_key, delivery.body)
            for _ in range(200):
                if starttls_server.handler.received:
                    break
                await asyncio.sleep(0.05)
        finally:
            await consumer.stop()
    finally:
        await broker.close()
    [received] = starttls_server.handler.received
    assert received.message["Subject"] == "Thanks Ann"
