"""GraphQL: `requeueActions`, sending actions' messages again to one of the
org's queues."""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info

from proca_server.auth.permissions import Permission
from proca_server.broker import open_broker
from proca_server.broker.base import Broker, BrokerError
from proca_server.graphql.access import allow, auth_for
from proca_server.graphql.context import Context
from proca_server.metrics import REQUEUED_ACTIONS
from proca_server.org.service import access_org
from proca_server.processing.service import RequeueDestination, select_requeue

log = logging.getLogger(__name__)

Ctx = Info[Context, None]


@strawberry.enum(name="Queue")
class QueueEnum(enum.Enum):
    CUSTOM_ACTION_CONFIRM = strawberry.enum_value(
        "CUSTOM_ACTION_CONFIRM", description="a custom queue of action that needs moderation"
    )
    CUSTOM_ACTION_DELIVER = strawberry.enum_value(
        "CUSTOM_ACTION_DELIVER", description="a custom queue of actions to sync to CRM"
    )
    CUSTOM_SUPPORTER_CONFIRM = strawberry.enum_value(
        "CUSTOM_SUPPORTER_CONFIRM", description="a custom queue of action that needs DOI"
    )
    EMAIL_SUPPORTER = strawberry.enum_value(
        "EMAIL_SUPPORTER", description="Queue of thank you email sender worker"
    )
    SQS = strawberry.enum_value("SQS", description="Queue of SQS sync worker")
    WEBHOOK = strawberry.enum_value("WEBHOOK", description="Queue of webhook sync worker")


@strawberry.type(name="RequeueResult")
class RequeueResultType:
    count: int = strawberry.field(description="Count of actions selected for requeueing")
    failed: int = strawberry.field(description="Count of actions that could not be requeued")


@dataclass(frozen=True)
class RequeueOutcome:
    """`count` actions selected, `failed` of them not sent (no stage for the destination,
    or the destination queue does not exist)."""

    count: int
    failed: int


async def requeue_actions(
    session: AsyncSession,
    broker: Broker,
    org_id: int,
    action_ids: Sequence[int],
    destination: RequeueDestination,
) -> RequeueOutcome:
    """Send the org's messages for `action_ids` to the destination queue. With the embedded
    broker they are written in `session`'s transaction; RabbitMQ gets them at once."""
    selection = await select_requeue(session, org_id, action_ids, destination)
    outcomes = await broker.publish_batch(
        [("", queue, body) for queue, body in selection.messages], session=session
    )
    for outcome in outcomes:
        if isinstance(outcome, BrokerError):
            raise outcome
    sent = sum(1 for outcome in outcomes if outcome is True)
    failed = selection.failed + len(outcomes) - sent
    if sent < len(outcomes):
        # every message of a requeue goes to the same queue
        log.info("requeue for org %s: queue %s does not exist", org_id, selection.messages[0][0])
    REQUEUED_ACTIONS.labels(destination=destination.value).inc(sent)
    return RequeueOutcome(sent + failed, failed)


def _broker_of(ctx: Context) -> Broker | None:
    broker = getattr(ctx.pipeline, "broker", None)
    return broker if broker is not None and hasattr(broker, "send_to_queue") else None


async def _requeue(
    ctx: Context, org_id: int, ids: Sequence[int], destination: RequeueDestination
) -> RequeueOutcome:
    broker = _broker_of(ctx)
    if broker is not None:
        return await requeue_actions(ctx.session, broker, org_id, ids, destination)
    # no pipeline running in this process (PIPELINE=off, tests): a broker for this call
    bind = ctx.session.bind
    broker = await open_broker(ctx.settings, async_sessionmaker(bind, expire_on_commit=False))
    try:
        return await requeue_actions(ctx.session, broker, org_id, ids, destination)
    finally:
        await broker.close()


@strawberry.type
class RequeueMutation:
    @strawberry.mutation
    async def requeue_actions(
        self,
        info: Ctx,
        org_name: Annotated[str, strawberry.argument(description="Organization name")],
        queue: Annotated[QueueEnum, strawberry.argument(description="Destination queue")],
        ids: Annotated[list[int] | None, strawberry.argument(description="Action Ids")] = None,
    ) -> RequeueResultType:
        ctx = info.context
        org = await access_org(ctx.session, org_name)
        allow(await auth_for(ctx, org.id), Permission.EXPORT_CONTACTS)
        destination = RequeueDestination[queue.name]
        outcome = await _requeue(ctx, org.id, ids or [], destination)
        return RequeueResultType(count=outcome.count, failed=outcome.failed)
