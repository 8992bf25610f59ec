"""Announce created or updated action pages to `actionPageUpserted` subscribers."""

from __future__ import annotations

from proca_server.graphql.context import Context
from proca_server.models import ActionPage, Org
from proca_server.pubsub import pubsub

INSTANCE_TOPIC = "$instance"


def page_upserted(ctx: Context, page: ActionPage) -> None:
    """After commit, publish the page on its org's topic and on the instance-wide one."""
    page_id, org_id = page.id, page.org_id

    async def publish() -> None:
        org = await ctx.session.get(Org, org_id)
        message = {"action_page_id": page_id}
        if org is not None:
            await pubsub.publish(f"org:{org.name.lower()}", message)
        await pubsub.publish(INSTANCE_TOPIC, message)

    ctx.after_commit.append(publish)
