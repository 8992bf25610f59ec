"""The per-org message topology: exchanges, queues and bindings, computed from an org's
configuration, named and bound as the Proca tools (`@proca/queue`) expect them.

Per org N:

    exchange                 type    queue                      enabled when
    org.N.confirm.supporter  topic   wrk.N.email.supporter  #   email backend and supporter confirm
                                     cus.N.confirm.supporter #  custom_supporter_confirm
    org.N.confirm.action     topic   cus.N.confirm.action   #   custom_action_confirm
    org.N.deliver            topic   wrk.N.email.supporter  #   email backend
                                     wrk.N.sqs / wrk.N.webhook  push backend kind
                                     cus.N.deliver          #   custom_action_deliver
    org.N.event              topic   wrk.N.sqs / wrk.N.webhook  event backend kind
                                     cus.N.deliver          #   custom_event_deliver
                                     system.deliver  system.*   always (global queue)
    (default exchange)               wrk.N.detail               detail backend (lookup requests,
                                                                sent by queue name)
    org.N.fail               fanout  org.N.fail                 always; dead-letters to org.N.retry
    org.N.retry              direct  each declared queue, by its own name
    org.N.delay              fanout  org.N.delay                always; dead-letters to org.N.retry

Worker and custom queues dead-letter to `org.N.fail` with their own name as routing key, so a
message rejected by an outside consumer parks in `org.N.fail` and, once it expires there (an
operator's policy), comes back through `org.N.retry`. Queue arguments are exactly those of
existing deployments: RabbitMQ refuses to redeclare a queue with other arguments.

`org.N.delay` is this server's retry delay: the built-in consumers republish a failed message
there with a per-message expiration and the queue's name as routing key; on expiry it is
dead-lettered through `org.N.retry` back to its queue. It is a queue of its own (not
`org.N.fail`) because RabbitMQ expires messages only at the head of a queue: parked messages,
which never expire, would hold back every retry behind them.

A queue is declared while one of its stage bindings is enabled. Turning a flag off only
removes that stage binding: the queue, its messages and its retry binding stay."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.errors import NotFound
from proca_server.models import Campaign, Org, Service

SYSTEM_QUEUE = "system.deliver"
SYSTEM_ROUTING_KEY = "system.*"
STAGE_PATTERN = "#"


class ExchangeType(StrEnum):
    TOPIC = "topic"
    FANOUT = "fanout"
    DIRECT = "direct"


@dataclass(frozen=True)
class OrgConfig:
    """What of an org decides its topology."""

    org_id: int
    email_backend: bool = False
    # org.supporter_confirm, or supporter_confirm=true on one of its campaigns
    supporter_confirm: bool = False
    push_backend: str | None = None  # the service name: "sqs", "webhook", ...
    event_backend: str | None = None
    custom_supporter_confirm: bool = False
    custom_action_confirm: bool = False
    custom_action_deliver: bool = False
    custom_event_deliver: bool = False
    detail_backend: bool = False


@dataclass(frozen=True)
class Exchange:
    name: str
    type: ExchangeType
    durable: bool = True


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)
    durable: bool = True


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str
    enabled: bool = True


@dataclass(frozen=True)
class OrgTopology:
    org_id: int
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    # enabled: to create; disabled: to remove if present (stage bindings of a flag that is off)
    bindings: tuple[Binding, ...]

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    @property
    def enabled_bindings(self) -> tuple[Binding, ...]:
        return tuple(b for b in self.bindings if b.enabled)


def exchange_name(org_id: int, name: str) -> str:
    return f"org.{org_id}.{name}"


def worker_queue(org_id: int, name: str) -> str:
    return f"wrk.{org_id}.{name}"


def custom_queue(org_id: int, name: str) -> str:
    return f"cus.{org_id}.{name}"


def fail_exchange(org_id: int) -> str:
    return exchange_name(org_id, "fail")


def retry_exchange(org_id: int) -> str:
    return exchange_name(org_id, "retry")


def delay_exchange(org_id: int) -> str:
    return exchange_name(org_id, "delay")


def exchange_kind(exchange: str) -> str:
    """The metrics' label of an exchange: org.12.event -> org.event (one per kind, not per
    org); `default` for the default exchange."""
    parts = exchange.split(".")
    if len(parts) >= 3 and parts[0] == "org" and parts[1].isdigit():
        return ".".join(["org", *parts[2:]])
    return exchange or "default"


_ORG_QUEUE = re.compile(r"^(?:wrk|cus|org)\.(\d+)\.")


def queue_org_id(queue: str) -> int | None:
    """The org a `wrk.N.*`, `cus.N.*` or `org.N.*` queue belongs to."""
    match = _ORG_QUEUE.match(queue)
    return int(match.group(1)) if match else None


def retry_queue_arguments(org_id: int, queue: str) -> dict[str, Any]:
    return {"x-dead-letter-exchange": fail_exchange(org_id), "x-dead-letter-routing-key": queue}


def org_topology(config: OrgConfig) -> OrgTopology:
    n = config.org_id
    x = {name: exchange_name(n, name) for name in ("confirm.supporter", "confirm.action")}
    deliver, event = exchange_name(n, "deliver"), exchange_name(n, "event")
    fail, retry, delay = fail_exchange(n), retry_exchange(n), delay_exchange(n)
    exchanges = (
        Exchange(x["confirm.supporter"], ExchangeType.TOPIC),
        Exchange(x["confirm.action"], ExchangeType.TOPIC),
        Exchange(deliver, ExchangeType.TOPIC),
        Exchange(event, ExchangeType.TOPIC),
        Exchange(fail, ExchangeType.FANOUT),
        Exchange(retry, ExchangeType.DIRECT),
        Exchange(delay, ExchangeType.FANOUT),
    )
    email, sqs, webhook = (worker_queue(n, w) for w in ("email.supporter", "sqs", "webhook"))
    stage: list[Binding] = [
        Binding(x["confirm.supporter"], email, STAGE_PATTERN, _email_confirm(config)),
        Binding(deliver, email, STAGE_PATTERN, config.email_backend),
        Binding(deliver, sqs, STAGE_PATTERN, config.push_backend == "sqs"),
        Binding(event, sqs, STAGE_PATTERN, config.event_backend == "sqs"),
        Binding(deliver, webhook, STAGE_PATTERN, config.push_backend == "webhook"),
        Binding(event, webhook, STAGE_PATTERN, config.event_backend == "webhook"),
        Binding(
            x["confirm.supporter"],
            custom_queue(n, "confirm.supporter"),
            STAGE_PATTERN,
            config.custom_supporter_confirm,
        ),
        Binding(
            x["confirm.action"],
            custom_queue(n, "confirm.action"),
            STAGE_PATTERN,
            config.custom_action_confirm,
        ),
        Binding(deliver, custom_queue(n, "deliver"), STAGE_PATTERN, config.custom_action_deliver),
        Binding(event, custom_queue(n, "deliver"), STAGE_PATTERN, config.custom_event_deliver),
    ]
    declared = list(dict.fromkeys(b.queue for b in stage if b.enabled))
    if config.detail_backend:
        declared.append(worker_queue(n, "detail"))
    queues = [
        Queue(fail, {"x-dead-letter-exchange": retry}),
        Queue(delay, {"x-dead-letter-exchange": retry}),
        *(Queue(name, retry_queue_arguments(n, name)) for name in declared),
        Queue(SYSTEM_QUEUE),
    ]
    bindings = [
        Binding(fail, fail, ""),
        Binding(delay, delay, ""),
        *stage,
        *(Binding(retry, name, name) for name in declared),
        Binding(event, SYSTEM_QUEUE, SYSTEM_ROUTING_KEY),
    ]
    return OrgTopology(n, exchanges, tuple(queues), tuple(bindings))


def _email_confirm(config: OrgConfig) -> bool:
    return config.email_backend and config.supporter_confirm


async def load_org_config(session: AsyncSession, org_id: int) -> OrgConfig:
    org = await session.get(Org, org_id)
    if org is None:
        raise NotFound("org not found")
    backend_ids = {i for i in (org.push_backend_id, org.event_backend_id) if i is not None}
    names: dict[int, str] = {}
    if backend_ids:
        rows = await session.execute(
            select(Service.id, Service.name).where(Service.id.in_(backend_ids))
        )
        names = {row.id: row.name for row in rows}
    campaign_confirms = False
    if not org.supporter_confirm:
        campaign_confirms = bool(
            await session.scalar(
                select(
                    exists().where(Campaign.org_id == org_id, Campaign.supporter_confirm.is_(True))
                )
            )
        )
    return OrgConfig(
        org_id=org.id,
        email_backend=org.email_backend_id is not None,
        supporter_confirm=org.supporter_confirm or campaign_confirms,
        push_backend=names.get(org.push_backend_id) if org.push_backend_id else None,
        event_backend=names.get(org.event_backend_id) if org.event_backend_id else None,
        custom_supporter_confirm=org.custom_supporter_confirm,
        custom_action_confirm=org.custom_action_confirm,
        custom_action_deliver=org.custom_action_deliver,
        custom_event_deliver=org.custom_event_deliver,
        detail_backend=org.detail_backend_id is not None,
    )


async def load_org_topology(session: AsyncSession, org_id: int) -> OrgTopology:
    return org_topology(await load_org_config(session, org_id))
