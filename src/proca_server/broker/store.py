"""The embedded queue's rows: routing a message as RabbitMQ would, and the statements on
`broker_messages` that the embedded broker and the operators' commands use."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.broker.base import ExchangeNotFound
from proca_server.models.queue import BrokerBinding, BrokerExchange, BrokerMessage, BrokerQueue

M = BrokerMessage
DEFAULT_LEASE = 120.0


def now() -> datetime:
    return datetime.now(UTC)


# --- routing -------------------------------------------------------------------------------


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: words split on dots, `*` is one word, `#` zero or more."""
    return _match(
        pattern.split(".") if pattern else [], routing_key.split(".") if routing_key else []
    )


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def binding_matches(exchange_type: str, pattern: str, routing_key: str) -> bool:
    if exchange_type == "fanout":
        return True
    if exchange_type == "topic":
        return topic_matches(pattern, routing_key)
    return pattern == routing_key


async def route(session: AsyncSession, exchange: str, routing_key: str) -> list[str]:
    """The queues a message published to `exchange` with `routing_key` goes to."""
    if exchange == "":
        found = await session.scalar(
            select(BrokerQueue.name).where(BrokerQueue.name == routing_key)
        )
        return [found] if found is not None else []
    rows = (
        await session.execute(
            select(BrokerExchange.type, BrokerBinding.queue, BrokerBinding.routing_key)
            .outerjoin(BrokerBinding, BrokerBinding.exchange == BrokerExchange.name)
            .where(BrokerExchange.name == exchange)
        )
    ).all()
    if not rows:
        raise ExchangeNotFound(f"exchange {exchange} does not exist")
    queues: dict[str, None] = {}
    for exchange_type, queue, pattern in rows:
        if queue is not None and binding_matches(exchange_type, pattern, routing_key):
            queues[queue] = None
    return list(queues)


# --- messages, for the broker and for operators --------------------------------------------


@dataclass(frozen=True)
class QueueCounts:
    name: str
    ready: int
    delayed: int  # waiting for a retry
    unacked: int  # claimed by a consumer

    @property
    def total(self) -> int:
        return self.ready + self.delayed + self.unacked


@dataclass(frozen=True)
class StoredMessage:
    id: int
    queue: str
    exchange: str
    routing_key: str
    body: bytes
    retries: int
    deliveries: int
    available_at: datetime
    locked_until: datetime | None
    inserted_at: datetime


def _stored(row: Any) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        queue=row.queue,
        exchange=row.exchange,
        routing_key=row.routing_key,
        body=row.body,
        retries=row.retries,
        deliveries=row.deliveries,
        available_at=row.available_at,
        locked_until=row.locked_until,
        inserted_at=row.inserted_at,
    )


async def insert_messages(
    session: AsyncSession, queues: Iterable[str], exchange: str, routing_key: str, body: bytes
) -> None:
    at = now()
    rows = [
        {
            "queue": q,
            "exchange": exchange,
            "routing_key": routing_key,
            "body": body,
            "available_at": at,
            "inserted_at": at,
        }
        for q in queues
    ]
    if rows:
        await session.execute(insert(BrokerMessage), rows)


async def list_queues(session: AsyncSession, org_id: int, prefix: str = "cus") -> list[QueueCounts]:
    """The org's queues whose names start with `prefix` (`cus`, `wrk` or `org`), with counts."""
    pattern = f"{prefix}.{org_id}.%"
    names = (
        await session.scalars(
            select(BrokerQueue.name)
            .where(BrokerQueue.name.like(pattern))
            .order_by(BrokerQueue.name)
        )
    ).all()
    if not names:
        return []
    at = now()
    claimed = (
        M.locked_until.is_not(None) & (M.available_at > at) & (M.locked_until == M.available_at)
    )
    rows = await session.execute(
        select(
            M.queue,
            func.count().filter(M.available_at <= at),
            func.count().filter(claimed),
            func.count().filter(M.available_at > at),
        )
        .where(M.queue.in_(names))
        .group_by(M.queue)
    )
    counts = {queue: (ready, waiting - unacked, unacked) for queue, ready, unacked, waiting in rows}
    return [QueueCounts(name, *counts.get(name, (0, 0, 0))) for name in names]


async def peek_messages(session: AsyncSession, queue: str, limit: int = 10) -> list[StoredMessage]:
    """The next messages of the queue, in delivery order, without claiming them."""
    rows = await session.execute(
        select(M).where(M.queue == queue).order_by(M.available_at, M.id).limit(limit)
    )
    return [_stored(m) for m in rows.scalars()]


async def claim_messages(
    session: AsyncSession, queue: str, limit: int = 10, lease: float = DEFAULT_LEASE
) -> list[StoredMessage]:
    """Claim up to `limit` ready messages of the queue for `lease` seconds."""
    at = now()
    until = at + timedelta(seconds=lease)
    candidates = (
        select(M.id)
        .where(M.queue == queue, M.available_at <= at)
        .order_by(M.available_at, M.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(M)
        .where(M.id.in_(candidates.scalar_subquery()))
        .values(available_at=until, locked_until=until, deliveries=M.deliveries + 1)
        .returning(
            M.id,
            M.queue,
            M.exchange,
            M.routing_key,
            M.body,
            M.retries,
            M.deliveries,
            M.available_at,
            M.locked_until,
            M.inserted_at,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = sorted(result.all(), key=lambda r: r.id)
    return [_stored(r) for r in claimed]


async def ack_messages(session: AsyncSession, queue: str, ids: Sequence[int]) -> int:
    """Delete the queue's messages with these ids, claimed or not; how many there were."""
    if not ids:
        return 0
    result = await session.execute(
        delete(M).where(M.queue == queue, M.id.in_(list(ids))).returning(M.id)
    )
    return len(result.all())


async def requeue_parked(session: AsyncSession, org_id: int, limit: int | None = None) -> int:
    """Send messages parked in `org.N.fail` back to the queues they failed in, retries reset."""
    fail = f"org.{org_id}.fail"
    ids = select(M.id).where(M.queue == fail).order_by(M.id)
    if limit is not None:
        ids = ids.limit(limit)
    known = select(BrokerQueue.name)
    result = await session.execute(
        update(M)
        .where(M.id.in_(ids.scalar_subquery()), M.routing_key.in_(known))
        .values(queue=M.routing_key, retries=0, deliveries=0, available_at=now(), locked_until=None)
        .returning(M.id)
        .execution_options(synchronize_session=False)
    )
    return len(result.all())
