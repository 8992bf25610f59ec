"""Announce created or updated action pages to `actionPageUpserted` subscribers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import ActionPage, Org
from proca_server.processing.events import AfterCommit
from proca_server.pubsub import pubsub

INSTANCE_TOPIC = "$instance"


def page_upserted(session: AsyncSession, after_commit: AfterCommit, page: ActionPage) -> None:
    """After commit, publish the page on its org's topic and on the instance-wide one
    (`after_commit` is the request's list; `session`, still open then, reads the org)."""
    page_id, org_id = page.id, page.org_id

    async def publish() -> None:
        org = await session.get(Org, org_id)
        message = {"action_page_id": page_id}
        if org is not None:
            await pubsub.publish(f"org:{org.name.lower()}", message)
        await pubsub.publish(INSTANCE_TOPIC, message)

    after_commit.append(publish)
