"""The subscription root: `actionPageUpserted(orgName)`.

A subscription outlives the request that started it, so it holds no session while it waits:
each event is loaded and resolved in a session of its own, which the event's field resolvers
find as `info.context.session`. The socket is unauthenticated, as in the original, so pages
are always the public view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from strawberry.types import Info

from proca_server import db
from proca_server.action_page.events import INSTANCE_TOPIC
from proca_server.action_page.types import ActionPageInterface, PublicActionPage
from proca_server.errors import ProcaError
from proca_server.graphql.context import Context
from proca_server.models import ActionPage
from proca_server.org.service import access_org
from proca_server.pubsub import pubsub

Ctx = Info[Context, None]


@dataclass
class SubscriptionContext(Context):
    """A context that lives as long as its subscription."""

    sessionmaker: async_sessionmaker[AsyncSession] | None = None
    # Set once the subscription listens: a publish from then on reaches it.
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


def org_topic(name: str) -> str:
    return f"org:{name.lower()}"


def _sessionmaker(ctx: Context) -> async_sessionmaker[AsyncSession]:
    if isinstance(ctx, SubscriptionContext) and ctx.sessionmaker is not None:
        return ctx.sessionmaker
    bind = ctx.session.bind
    if isinstance(bind, AsyncConnection):
        bind = bind.engine
    if bind is None:
        raise RuntimeError("a subscription needs a session bound to an engine")
    return db.create_sessionmaker(bind)


@strawberry.type(name="RootSubscriptionType")
class Subscription:
    @strawberry.subscription
    async def action_page_upserted(
        self, info: Ctx, org_name: str | None = None
    ) -> AsyncGenerator[ActionPageInterface, None]:
        ctx = info.context
        topic = INSTANCE_TOPIC
        if org_name is not None:
            try:
                org = await access_org(ctx.session, org_name)
            except ProcaError as exc:
                # Raised before the first event, it would otherwise reach the client unplaced.
                raise GraphQLError(
                    exc.message, path=info.path.as_list(), original_error=exc
                ) from exc
            topic = org_topic(org.name)
        # End the lookup's transaction: nothing is held while waiting for events.
        await ctx.session.rollback()
        sessions = _sessionmaker(ctx)
        async with pubsub.subscribe(topic) as queue:
            if isinstance(ctx, SubscriptionContext):
                ctx.subscribed.set()
            while True:
                message = await queue.get()
                page_id = message.get("action_page_id")
                if not isinstance(page_id, int):
                    continue
                async with sessions() as session:
                    page = await session.get(ActionPage, page_id)
                    if page is None:
                        continue
                    ctx.session = session
                    yield PublicActionPage.of(page)
