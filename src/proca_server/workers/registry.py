"""Which built-in worker consumes a worker queue (`wrk.N.<name>`)."""

from __future__ import annotations

import logging

from proca_server.broker.base import BatchHandler, Delivery
from proca_server.email.worker import handle_batch as handle_email_batch
from proca_server.kit import extras
from proca_server.workers import WorkerDeps
from proca_server.workers.detail import detail_batch_handler
from proca_server.workers.webhook import webhook_batch_handler

log = logging.getLogger("proca_server.workers")


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
        return webhook_batch_handler(deps, org_id)
    if name == "detail":
        return detail_batch_handler(deps, org_id)
    if name == "sqs":
        if not extras.installed("aws"):
            return _refusing_handler(extras.MissingExtra("the sqs worker", "aws"))
        # imported only here: the module needs the `aws` extra
        from proca_server.workers.sqs import sqs_batch_handler

        return sqs_batch_handler(deps, org_id)
    if name == "email.supporter":

        async def email_batch(deliveries: list[Delivery]) -> list[Exception | None]:
            return await handle_email_batch(deps, org_id, deliveries)

        return email_batch
    return None


def _refusing_handler(error: Exception) -> BatchHandler:
    """A handler for a worker whose libraries are missing: every message fails with `error`
    (retried, then parked like any failure: nothing is lost), and the log says what to install."""
    log.error("%s", error)

    async def refuse(deliveries: list[Delivery]) -> list[BaseException | None]:
        return [error for _ in deliveries]

    return refuse
