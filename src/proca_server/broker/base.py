"""The broker interface, satisfied by RabbitMQ (`rabbitmq.py`) and by the queue kept in the
database (`embedded.py`).

Delivery is at least once: a consumer that dies before acknowledging gets its messages
delivered again, so handlers must be idempotent.

A handler returns normally to acknowledge its message. Raising `PermanentError` parks the
message in its org's `org.N.fail` queue at once; any other exception is a retryable failure:
the message comes back to its queue after the retry delay, up to the retry limit (retries,
not counting the first delivery); the failure after the last retry parks it. A parked message
keeps the name of its queue as its routing key, so it can be sent back there.

`publish` is mandatory publishing: it returns whether at least one queue received the
message. An unroutable message (no queue bound for its routing key, a normal case for an org
with nothing configured for a stage, such as no delivery queue) is not an error: the caller
sees False, the message is dropped and counted in `proca_broker_unroutable_total` by kind of
exchange, and it is logged at INFO only the first time its exchange and routing key come up
in the hour (`note_unroutable`), not once per message.
Publishing to an exchange that does not exist raises `ExchangeNotFound`, sending to a queue
that does not exist raises `QueueNotFound`.

`publish_batch` publishes what a transaction produced (the processor's batch, a detail lookup's
stage messages, a requeue) on behalf of that transaction, the same way whatever the broker:
the caller commits after it, and reads one outcome per message."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server import metrics
from proca_server.broker.topology import OrgTopology, exchange_kind, fail_exchange, queue_org_id
from proca_server.kit.once import Once

log = logging.getLogger(__name__)


class BrokerError(Exception):
    """The broker cannot do what was asked (the message names the entity, never a body)."""


class ExchangeNotFound(BrokerError):
    pass


class QueueNotFound(BrokerError):
    pass


class RetryableError(Exception):
    """The message could not be handled now; retry it later."""


class PermanentError(Exception):
    """The message can never be handled; park it without retrying."""


@dataclass(frozen=True)
class Delivery:
    queue: str
    body: bytes
    exchange: str
    routing_key: str
    # failures so far (0 on the first delivery)
    retries: int = 0
    # delivered before and not acknowledged (the consumer died or lost its lease)
    redelivered: bool = False
    # the embedded queue's row id, or the AMQP delivery tag
    id: int = 0
    headers: dict[str, Any] = field(default_factory=dict, hash=False)


# (exchange, routing key, body)
Outgoing = tuple[str, str, bytes]
# what publishing one message came to: True (a queue took it), False (unroutable) or the
# BrokerError it failed with (`ExchangeNotFound` for a missing exchange)
Outcome = bool | BrokerError

Handler = Callable[[Delivery], Awaitable[None]]
# One outcome per delivery, in order: None = done, an exception = that failure. Returning
# None acknowledges the whole batch; raising fails the whole batch.
BatchHandler = Callable[[list[Delivery]], Awaitable[Sequence[BaseException | None] | None]]


class Consumer(Protocol):
    @property
    def queue(self) -> str: ...

    async def stop(self) -> None:
        """Stop taking messages; the batch in hand is finished first."""


class Broker(Protocol):
    async def apply_topology(self, topology: OrgTopology) -> None:
        """Declare the exchanges, queues and enabled bindings; remove disabled bindings."""

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        session: AsyncSession | None = None,
    ) -> bool:
        """Persistent, confirmed, mandatory. With a session, the message belongs to that
        transaction: the embedded queue writes it there, RabbitMQ sends it once the session
        commits (and answers True: routing is known only then); nothing is sent on rollback."""

    async def send_to_queue(
        self, queue: str, body: bytes, *, session: AsyncSession | None = None
    ) -> None:
        """Through the default exchange, straight to the named queue."""

    async def publish_batch(
        self, messages: Sequence[Outgoing], *, session: AsyncSession
    ) -> list[Outcome]:
        """Publish `messages` for the transaction of `session`, which the caller commits
        next; one outcome per message, in order (an error other than the broker's, such as
        the database's, raises). The embedded queue writes them in that transaction, so
        they commit or roll back with it (exactly once); RabbitMQ sends them at once, all
        together, and returns once the broker has confirmed each (at least once: should the
        commit then fail, the work is done again and they are sent again)."""

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int = 10,
        org_id: int | None = None,
    ) -> Consumer:
        """Run `handler` on each message of the queue, in the background, until stopped.
        `org_id` names the org whose fail/retry exchanges to use when the queue's name does
        not (`system.deliver`)."""

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        batch_size: int = 10,
        batch_timeout: float = 1.0,
        org_id: int | None = None,
    ) -> Consumer:
        """As `consume`, handing over up to `batch_size` messages at a time (waiting at most
        `batch_timeout` seconds to fill a batch)."""

    async def close(self) -> None: ...


def failure_org(queue: str, org_id: int | None) -> int:
    found = org_id if org_id is not None else queue_org_id(queue)
    if found is None:
        raise ValueError(f"queue {queue} belongs to no org: pass org_id")
    return found


def park_exchange(queue: str, org_id: int | None) -> str:
    return fail_exchange(failure_org(queue, org_id))


def note_unroutable(notices: Once, exchange: str, routing_key: str) -> None:
    """A message no queue took: counted, and said when `notices` (the broker's own) has not
    seen its exchange and routing key within the hour. Through the default exchange it is a
    queue that does not exist, which the caller reports: counted only."""
    metrics.BROKER_UNROUTABLE.labels(exchange=exchange_kind(exchange)).inc()
    if exchange and notices.first((exchange, routing_key)):
        log.info(
            "no queue bound on exchange %s for routing key %r: such messages are dropped, "
            "as expected for an org with no queue for this stage (such as no delivery queue); "
            "counted in proca_broker_unroutable_total, said once an hour",
            exchange,
            routing_key,
        )


def should_park(error: BaseException, retries: int, retry_limit: int) -> bool:
    return isinstance(error, PermanentError) or retries >= retry_limit


def outcomes(
    deliveries: Sequence[Delivery], result: Sequence[BaseException | None] | None
) -> list[BaseException | None]:
    if result is None:
        return [None] * len(deliveries)
    result = list(result)
    if len(result) != len(deliveries):
        error = RuntimeError("batch handler returned a wrong number of outcomes")
        return [error] * len(deliveries)
    return result


def single(handler: Handler) -> BatchHandler:
    """A batch handler running `handler` on each message in turn."""

    async def run(deliveries: list[Delivery]) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for delivery in deliveries:
            try:
                await handler(delivery)
            except Exception as exc:
                results.append(exc)
            else:
                results.append(None)
        return results

    return run
