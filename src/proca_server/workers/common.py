"""What the push/event workers share: decoding a queued message, finding the service it goes
to, and counting outcomes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.broker.base import Delivery, PermanentError, should_park
from proca_server.metrics import MESSAGES_DELIVERED, WORKER_FAILURES, WORKER_RETRIES
from proca_server.models import Org, Service

BackendKind = Literal["push", "event"]


@dataclass(frozen=True)
class ServiceConfig:
    """The fields of a service a worker needs, read once per batch."""

    id: int
    name: str
    host: str
    user: str
    password: str
    path: str | None

    def __repr__(self) -> str:  # never show the password
        return f"ServiceConfig({self.id}, {self.name}, host={self.host!r})"


def decode_message(delivery: Delivery) -> dict[str, Any]:
    try:
        message = json.loads(delivery.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PermanentError("the message is not JSON") from None
    if not isinstance(message, dict):
        raise PermanentError("the message is not a JSON object")
    return message


def backend_kind(message: dict[str, Any]) -> BackendKind:
    """Events go to the org's event backend, actions to its push backend. System events are
    action-shaped (`proca:action:2`, stage `system`) but come through the event exchange,
    where only the event backend's binding brought them: they go to the event backend."""
    schema = message.get("schema")
    if isinstance(schema, str):
        if schema.startswith("proca:event"):
            return "event"
        if schema.startswith("proca:action"):
            return "event" if message.get("stage") == "system" else "push"
    raise PermanentError(f"unknown message schema {str(schema)[:40]!r}")


async def load_backends(
    sessionmaker: async_sessionmaker[AsyncSession], org_id: int
) -> dict[BackendKind, ServiceConfig | None]:
    async with sessionmaker() as session:
        org = await session.get(Org, org_id)
        if org is None:
            return {"push": None, "event": None}
        ids = {"push": org.push_backend_id, "event": org.event_backend_id}
        wanted = [i for i in ids.values() if i is not None]
        services = {
            s.id: ServiceConfig(s.id, s.name, s.host or "", s.user or "", s.password or "", s.path)
            for s in (await session.execute(select(Service).where(Service.id.in_(wanted))))
            .scalars()
            .all()
        }
    return {
        "push": services.get(ids["push"]) if ids["push"] is not None else None,
        "event": services.get(ids["event"]) if ids["event"] is not None else None,
    }


def service_for(
    backends: dict[BackendKind, ServiceConfig | None], kind: BackendKind, service_name: str
) -> ServiceConfig:
    service = backends[kind]
    if service is None or service.name != service_name:
        raise PermanentError(f"the org has no {service_name} {kind} backend")
    return service


def count_outcomes(
    worker: str,
    deliveries: Sequence[Delivery],
    results: Sequence[BaseException | None],
    retry_limit: int,
) -> None:
    for delivery, result in zip(deliveries, results, strict=True):
        if delivery.retries > 0:
            WORKER_RETRIES.labels(worker=worker).inc()
        if result is None:
            MESSAGES_DELIVERED.labels(worker=worker).inc()
        else:
            parked = should_park(result, delivery.retries, retry_limit)
            WORKER_FAILURES.labels(worker=worker, outcome="parked" if parked else "retry").inc()
