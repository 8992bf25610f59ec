"""Message broker: RabbitMQ when AMQP_URL is set, else the queue kept in the database.

Both implement `Broker` (base.py) over the per-org topology of topology.py."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker.base import (
    BatchHandler,
    Broker,
    BrokerError,
    Consumer,
    Delivery,
    ExchangeNotFound,
    Handler,
    PermanentError,
    QueueNotFound,
    RetryableError,
)
from proca_server.broker.topology import OrgConfig, OrgTopology, load_org_topology, org_topology
from proca_server.config import Settings

__all__ = [
    "BatchHandler",
    "Broker",
    "BrokerError",
    "Consumer",
    "Delivery",
    "ExchangeNotFound",
    "Handler",
    "OrgConfig",
    "OrgTopology",
    "PermanentError",
    "QueueNotFound",
    "RetryableError",
    "load_org_topology",
    "open_broker",
    "org_topology",
]


async def open_broker(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Broker:
    retry_delay = settings.retry_delay_ms / 1000
    if settings.amqp_url:
        from proca_server.broker.rabbitmq import RabbitBroker

        return await RabbitBroker.connect(
            settings.amqp_url, retry_limit=settings.retry_limit, retry_delay=retry_delay
        )
    from proca_server.broker.embedded import EmbeddedBroker
    from proca_server.pubsub import pubsub

    return EmbeddedBroker(
        sessionmaker, retry_limit=settings.retry_limit, retry_delay=retry_delay, pubsub=pubsub
    )
