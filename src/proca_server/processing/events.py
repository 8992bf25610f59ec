"""Events the API emits when it changes things, published once the change committed.

Where each is emitted, and the org whose `org.N.event` exchange receives it:

- `system.campaign_updated`: upsertCampaign, updateCampaign, updateCampaignProcessing; the
  campaign's lead org.
- `confirm_created.<operation>`: every new confirm (launchActionPage, inviteOrgUser, ...);
  the campaign's lead org for launch_page, the instance org for the others.
- `system.join_campaign`: accepting a join_campaign confirm, or the launch_page confirm of a
  partner's page; the campaign's lead org.
- `system.new_org`: addOrg; the instance org.
- `system.new_user`: /users/register, and a JWT's first use (which registers its user); the
  instance org.
- `supporter.email_status`: processing/lifecycle.py and supporter/rights.py; each org
  holding a contact of the supporter.

From `org.N.event` the topology takes them to the org's event backend (`wrk.N.webhook`,
`wrk.N.sqs`), to `cus.N.deliver` when `customEventDeliver` is on, and the `system.*` ones to
the global `system.deliver` queue. The messages are built in the transaction (messages.py);
publishing them never holds up nor fails the request: they are handed to the pipeline in a
background task after commit, and one the broker does not take is logged, counted and lost
(an event cannot be derived again). No message carries a password, an API token or a
service's credentials; `confirm_created` carries the confirm's code and links, for the org
asked to act on it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.models import ActionPage, Campaign, Org, User
from proca_server.org.repository import get_org_by_name
from proca_server.processing.handoff import Pipeline
from proca_server.processing.messages import (
    Publication,
    campaign_updated_publication,
    join_campaign_event,
    new_org_event,
    new_user_event,
    system_publication,
)
from proca_server.user.service import take_registered

log = logging.getLogger(__name__)

# what a transaction leaves to do once it committed (publishes, emails); dropped on rollback
AfterCommit = list[Callable[[], Awaitable[None]]]


async def run_after_commit(callbacks: AfterCommit) -> None:
    """Run a committed transaction's callbacks in order; one that fails is logged and the
    others still run (the transaction stays committed)."""
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            log.exception("after-commit callback failed")


# the publishing tasks in flight (the event loop keeps only weak references to tasks)
_in_flight: set[asyncio.Task[None]] = set()


async def _hand_over(pipeline: Pipeline, publications: list[Publication]) -> None:
    try:
        await pipeline.after_commit(publications, [])
    except Exception as exc:
        log.error("%d event(s) not published: %s", len(publications), type(exc).__name__)


def publish_soon(pipeline: Pipeline, publications: Sequence[Publication]) -> None:
    """Publish committed events in the background: the caller never waits for the broker."""
    if not publications:
        return
    task = asyncio.get_running_loop().create_task(
        _hand_over(pipeline, list(publications)), name="publish events"
    )
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)


def publish_after_commit(
    pipeline: Pipeline, callbacks: AfterCommit, publications: Sequence[Publication]
) -> None:
    """Publish `publications` once the transaction committed (`callbacks` is the request's
    after-commit list, dropped on rollback)."""
    if not publications:
        return
    ready = list(publications)

    async def publish() -> None:
        publish_soon(pipeline, ready)

    callbacks.append(publish)


async def instance_org_id(session: AsyncSession, settings: Settings) -> int | None:
    instance = await get_org_by_name(session, settings.org_name)
    return instance.id if instance is not None else None


async def campaign_updated(
    session: AsyncSession, campaign: Campaign, lead: Org | None = None
) -> list[Publication]:
    """`system.campaign_updated` to the campaign's lead org (`lead`, when at hand)."""
    if campaign.org_id is None:
        return []
    if lead is None or lead.id != campaign.org_id:
        lead = await session.get(Org, campaign.org_id)
        if lead is None:
            return []
    return [campaign_updated_publication(campaign, lead)]


async def join_campaign(
    session: AsyncSession,
    *,
    creator_id: int | None,
    org: Org,
    campaign: Campaign,
    page: ActionPage,
) -> list[Publication]:
    """`system.join_campaign` to the campaign's lead org: the partner `org` (owner of `page`)
    joined; its contact is the user who asked. Nothing without that user."""
    creator = await session.get(User, creator_id) if creator_id is not None else None
    if creator is None or campaign.org_id is None:
        return []
    message = join_campaign_event(user_email=creator.email, org=org, campaign=campaign, page=page)
    return [system_publication(message, campaign.org_id)]


async def new_org(
    session: AsyncSession, settings: Settings, user: User, org: Org
) -> list[Publication]:
    """`system.new_org` to the instance org: `user` created `org`."""
    instance_id = await instance_org_id(session, settings)
    if instance_id is None:
        return []
    return [system_publication(new_org_event(user_email=user.email, org=org), instance_id)]


async def new_user(session: AsyncSession, settings: Settings, email: str) -> list[Publication]:
    """`system.new_user` to the instance org: a user registered."""
    instance_id = await instance_org_id(session, settings)
    if instance_id is None:
        return []
    return [system_publication(new_user_event(user_email=email), instance_id)]


# -- users registered while authenticating --------------------------------------------------


async def commit_registrations(
    session: AsyncSession, settings: Settings, pipeline: Pipeline
) -> None:
    """Called by a boundary after authentication: a user registered on the way (a JWT's
    first use) is committed at once (the account stays whatever the request then does, as
    with the registration form) and `system.new_user` published."""
    emails = take_registered(session)
    if not emails:
        return
    publications = [p for email in emails for p in await new_user(session, settings, email)]
    await session.commit()
    publish_soon(pipeline, publications)
