"""A second signature of the same person in a campaign: with the campaign's
`config.duplicateEmail` on, the "you already signed" email (template page → campaign → org)
instead of the thank-you, whether on the same page (a repeat) or another one; the signature is
still delivered and exported as a duplicate. Off, the emails stay as they were."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.export import ExportFilter, export_actions
from proca_server.models import Action, ActionPage, Campaign, Org, PreviewEmail
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.workers import WorkerDeps
from tests.email.worker_world import add_template, deps, run_worker, signed, smtp_site
from tests.factories import make_page
from tests.processing.helpers import Site

__all__ = ["deps"]


async def world(
    session: AsyncSession,
    campaign_config: dict[str, Any],
    *,
    org_config: dict[str, Any] | None = None,
) -> tuple[Site, Site]:
    """An org sending to the preview mailbox; two pages of one campaign, each with a
    thank-you template; templates `thanks`, `again` and `org_again`."""
    site = await smtp_site(
        session,
        None,
        org_fields={"config": org_config or {}},
        page_fields={"thank_you_template": "thanks"},
    )
    campaign = await session.get(Campaign, site.campaign_id)
    org = await session.get(Org, site.org_id)
    assert campaign is not None and org is not None
    campaign.config = campaign_config
    other = await make_page(session, campaign, org)
    other.thank_you_template = "thanks"
    other_site = dataclasses.replace(site, page_id=other.id, page_name=other.name)
    await session.commit()
    for name, subject in (
        ("thanks", "Thank you"),
        ("again", "You already signed (campaign)"),
        ("org_again", "You already signed (org)"),
        ("page_again", "You already signed (page)"),
    ):
        await add_template(
            session, site.org_id, name, subject=subject, html="<p>{{firstName}} {{rightsLink}}</p>"
        )
    return site, other_site


async def sign_and_email(
    client: httpx.AsyncClient, session: AsyncSession, deps: WorkerDeps, site: Site
) -> tuple[int, dict[str, Any], str]:
    """(action id, its deliver message, the subject of the email it got)."""
    action_id, _, deliveries = await signed(client, session, site)
    [delivery] = deliveries
    assert delivery.exchange == f"org.{site.org_id}.deliver"
    assert await run_worker(deps, site, deliveries) == [None]
    await session.rollback()
    subjects = (
        (await session.execute(select(PreviewEmail.subject).order_by(PreviewEmail.id)))
        .scalars()
        .all()
    )
    return action_id, json.loads(delivery.body), subjects[-1]


async def test_with_the_setting_a_second_signature_gets_the_duplicate_email(
    client: httpx.AsyncClient, session: AsyncSession, deps: WorkerDeps
) -> None:
    page, other_page = await world(session, {"duplicateEmail": True, "duplicateTemplate": "again"})
    first, message, subject = await sign_and_email(client, session, deps, page)
    assert (subject, message["contact"]["dupeRank"]) == ("Thank you", 0)

    # the same page: a repeat, still delivered
    repeat, message, subject = await sign_and_email(client, session, deps, page)
    assert subject == "You already signed (campaign)"
    assert message["contact"]["dupeRank"] == 1
    # another page of the campaign: delivered as a duplicate
    cross, message, subject = await sign_and_email(client, session, deps, other_page)
    assert subject == "You already signed (campaign)"
    assert (message["contact"]["dupeRank"], message["actionPageId"]) == (2, other_page.page_id)

    org = await session.get(Org, page.org_id)
    assert org is not None
    exported = await export_actions(session, org, ExportFilter())
    statuses = dict((await session.execute(select(Action.id, Action.processing_status))).all())
    assert [(r.action_id, statuses[r.action_id], r.dupe_rank) for r in exported] == [
        (first, A.DELIVERED, 0),
        (repeat, A.REPEAT, 1),
        (cross, A.DELIVERED, 2),
    ]


async def test_the_duplicate_template_is_the_page_s_then_the_campaign_s_then_the_org_s(
    client: httpx.AsyncClient, session: AsyncSession, deps: WorkerDeps
) -> None:
    page, other_page = await world(
        session, {"duplicateEmail": True}, org_config={"duplicateTemplate": "org_again"}
    )
    found = await session.get(ActionPage, other_page.page_id)
    assert found is not None
    found.duplicate_template = "page_again"
    await session.commit()
    await sign_and_email(client, session, deps, page)
    _, _, subject = await sign_and_email(client, session, deps, page)
    assert subject == "You already signed (org)"
    _, _, subject = await sign_and_email(client, session, deps, other_page)
    assert subject == "You already signed (page)"


async def test_without_the_setting_a_signature_on_another_page_gets_the_thank_you(
    client: httpx.AsyncClient, session: AsyncSession, deps: WorkerDeps
) -> None:
    page, other_page = await world(
        session, {"duplicateTemplate": "again"}, org_config={"duplicateTemplate": "org_again"}
    )
    await sign_and_email(client, session, deps, page)
    _, message, subject = await sign_and_email(client, session, deps, other_page)
    assert (subject, message["contact"]["dupeRank"]) == ("Thank you", 1)
    # a repeat on the same page, no duplicate template on the page: the thank-you, as before
    _, message, subject = await sign_and_email(client, session, deps, page)
    assert (subject, message["contact"]["dupeRank"]) == ("Thank you", 2)


async def test_a_setting_that_is_not_true_is_off(
    client: httpx.AsyncClient, session: AsyncSession, deps: WorkerDeps
) -> None:
    page, _ = await world(session, {"duplicateEmail": "yes", "duplicateTemplate": "again"})
    await sign_and_email(client, session, deps, page)
    _, _, subject = await sign_and_email(client, session, deps, page)
    assert subject == "Thank you"
