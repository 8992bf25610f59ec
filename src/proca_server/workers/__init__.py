"""Built-in workers: one module per worker queue (`wrk.N.<name>`).

`batch_handler_for` picks the batch handler that consumes a worker queue; the runtime opens
one consumer per worker queue of each org with it."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker.base import BatchHandler, Broker, Delivery
from proca_server.config import Settings
from proca_server.kit import extras
from proca_server.kit.once import Once

log = logging.getLogger("proca_server.workers")


@dataclass(frozen=True)
class WorkerDeps:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    broker: Broker
    # warnings about an org's settings, said once in a while rather than per message
    notices: Once = field(default_factory=Once)


def _worker_queue_parts(queue: str) -> tuple[int, str] | None:
    prefix, sep, rest = queue.partition(".")
    if prefix != "wrk" or not sep:
        return None
    org, sep, name = rest.partition(".")
    if not sep or not org.isdigit() or not name:
        return None
    return int(org), name


def batch_handler_for(queue: str, deps: WorkerDeps) -> BatchHandler | None:
    """The handler for a worker queue, or None when no built-in worker consumes it."""
    parts = _worker_queue_parts(queue)
    if parts is None:
        return None
    org_id, name = parts
    if name == "webhook":
        from proca_server.workers.webhook import webhook_batch_handler

        return webhook_batch_handler(deps, org_id)
    if name == "detail":
        from proca_server.workers.detail import detail_batch_handler

        return detail_batch_handler(deps, org_id)
    if name == "sqs":
        if not extras.installed("aws"):
            return _refusing_handler(extras.MissingExtra("the sqs worker", "aws"))
        from proca_server.workers.sqs import sqs_batch_handler

        return sqs_batch_handler(deps, org_id)
    if name == "email.supporter":
        try:
            module = importlib.import_module("proca_server.email.worker")
        except ModuleNotFoundError as exc:
            if exc.name != "proca_server.email.worker":
                raise
            return None
        handle_batch = module.handle_batch

        async def email_batch(deliveries: list[Delivery]) -> list[Exception | None]:
            result: list[Exception | None] = await handle_batch(deps, org_id, deliveries)
            return result

        return email_batch
    return None


def _refusing_handler(error: Exception) -> BatchHandler:
    """A handler for a worker whose libraries are missing: every message fails with `error`
    (retried, then parked like any failure: nothing is lost), and the log says what to install."""
    log.error("%s", error)

    async def refuse(deliveries: list[Delivery]) -> list[BaseException | None]:
        return [error for _ in deliveries]

    return refuse
