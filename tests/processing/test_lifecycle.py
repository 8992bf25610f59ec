"""Supporter and action lifecycle and its email_status events."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.processing.lifecycle import (
    LifecycleRefused,
    confirm_action,
    confirm_supporter,
    find_action_by_ref,
    reject_action,
    reject_supporter,
    set_double_opt_in,
)
from tests.processing.helpers import (
    action_ids,
    body,
    decrypt,
    load,
    make_site,
    process,
    share,
    sign,
)

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def supporter_row(session: AsyncSession) -> Supporter:
    await session.rollback()
    session.expunge_all()
    found = (await session.execute(select(Supporter).order_by(Supporter.id))).scalars().first()
    assert found is not None
    return found


async def test_confirming_supporter_is_accepted_and_waiting_actions_processed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session, org_fields={"supporter_confirm": True})
    ref = await sign(client, site.page_id)
    consent_id = (await action_ids(session))[0]
    await process(session, [consent_id])
    await share(client, site.page_id, ref)
    share_id = (await action_ids(session))[1]
    [loaded] = await load(session, [consent_id])
    outcome = await confirm_supporter(session, loaded)
    await session.commit()
    assert outcome.changed and outcome.publications == []
    assert outcome.process_action_ids == [consent_id, share_id]
    plans = await process(session, outcome.process_action_ids)
    assert [(p.action_status, p.stage) for p in plans] == [
        (A.DELIVERED, "deliver"),
        (A.DELIVERED, "deliver"),
    ]
    # again: nothing to do
    [loaded] = await load(session, [consent_id])
    assert not (await confirm_supporter(session, loaded)).changed


async def test_confirm_refused_for_new_and_rejected_supporters(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    await sign(client, site.page_id)
    [loaded] = await load(session, await action_ids(session))
    with pytest.raises(LifecycleRefused, match="not allowed"):
        await confirm_supporter(session, loaded)
    await reject_supporter(session, loaded)
    with pytest.raises(LifecycleRefused, match="already rejected"):
        await confirm_supporter(session, loaded)


async def test_reject_revokes_double_opt_in_and_tells_every_org_with_a_contact(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_site(session)
    partner = await make_site(session, lead=lead, encrypted=False)
    ref = await sign(client, partner.page_id, privacy={"optIn": True, "leadOptIn": True})
    [action_id] = await action_ids(session)
    await process(session, [action_id])
    [loaded] = await load(session, [action_id])
    doi = await set_double_opt_in(session, loaded)
    await session.commit()
    assert sorted(p.exchange for p in doi.publications) == sorted(
        [f"org.{lead.org_id}.event", f"org.{partner.org_id}.event"]
    )
    assert {body(p.body)["supporter"]["privacy"]["emailStatus"] for p in doi.publications} == {
        "double_opt_in"
    }

    [loaded] = await load(session, [action_id])
    outcome = await reject_supporter(session, loaded)
    await session.commit()
    assert outcome.changed
    events = {p.exchange: body(p.body) for p in outcome.publications}
    assert {p.routing_key for p in outcome.publications} == {"supporter.email_status"}
    to_lead = events[f"org.{lead.org_id}.event"]
    to_partner = events[f"org.{partner.org_id}.event"]
    assert list(to_lead) == [
        "schema",
        "eventType",
        "timestamp",
        "supporter",
        "campaign",
        "campaignId",
        "actionPage",
        "actionPageId",
        "actionId",
        "action",
        "tracking",
    ]
    assert to_lead["schema"] == "proca:event:2" and to_lead["eventType"] == "email_status"
    assert STAMP.match(to_lead["timestamp"])
    assert to_lead["actionId"] == action_id and to_lead["actionPageId"] == partner.page_id
    assert list(to_lead["action"]) == ["actionType", "customFields", "createdAt", "testing"]
    assert list(to_lead["supporter"]) == ["contact", "privacy", "personalInfo"]
    for event in (to_lead, to_partner):
        privacy = event["supporter"]["privacy"]
        assert privacy["emailStatus"] == "unsub" and STAMP.match(privacy["emailStatusChanged"])
        assert event["supporter"]["contact"]["contactRef"] == ref
    # each org's own copy: the lead's encrypted, the partner's in clear
    assert lead.private_key is not None
    clear = decrypt(to_lead["supporter"]["personalInfo"], lead.private_key, lead.sign_public)
    assert clear["lastName"] == "Lee"
    assert to_partner["supporter"]["personalInfo"] is None
    assert to_partner["supporter"]["contact"]["lastName"] == "Lee"

    supporter = await supporter_row(session)
    assert supporter.processing_status is S.REJECTED
    assert supporter.email_status is EmailStatus.UNSUB
    action = await session.get(Action, action_id)
    assert action is not None and action.processing_status is A.REJECTED


async def test_reject_without_doi_sends_no_event_and_bounce_sets_reason(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    await sign(client, site.page_id)
    await sign(client, site.page_id, "bob@example.org")
    first, second = await action_ids(session)
    [loaded] = await load(session, [first])
    quiet = await reject_supporter(session, loaded)
    assert quiet.changed and quiet.publications == []
    [loaded] = await load(session, [second])
    bounced = await reject_supporter(session, loaded, email_status=EmailStatus.BOUNCE)
    await session.commit()
    [event] = bounced.publications
    assert body(event.body)["supporter"]["privacy"]["emailStatus"] == "bounce"
    [loaded] = await load(session, [second])
    again = await reject_supporter(session, loaded, email_status=EmailStatus.BOUNCE)
    assert not again.changed and again.publications == []


async def test_reject_hands_other_pending_actions_to_processing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session, org_fields={"supporter_confirm": True})
    ref = await sign(client, site.page_id)
    await share(client, site.page_id, ref)
    consent_id, share_id = await action_ids(session)
    await process(session, [consent_id])
    [loaded] = await load(session, [consent_id])
    outcome = await reject_supporter(session, loaded)
    await session.commit()
    assert outcome.process_action_ids == [share_id]
    [plan] = await process(session, [share_id])
    assert (plan.action_status, plan.stage, plan.publications) == (A.REJECTED, None, [])


async def test_action_confirm_and_reject(client: httpx.AsyncClient, session: AsyncSession) -> None:
    site = await make_site(session, org_fields={"custom_action_confirm": True})
    await sign(client, site.page_id)
    await sign(client, site.page_id, "bob@example.org")
    first, second = await action_ids(session)
    [loaded] = await load(session, [first])
    with pytest.raises(LifecycleRefused, match="new"):
        await reject_action(session, loaded.action)
    await process(session, [first, second])
    [one, two] = await load(session, [first, second])
    assert one.action.processing_status is A.CONFIRMING
    accepted = await confirm_action(session, one.action)
    rejected = await reject_action(session, two.action)
    await session.commit()
    assert accepted.process_action_ids == [first] and rejected.changed
    assert not (await confirm_action(session, one.action)).changed
    with pytest.raises(LifecycleRefused, match="rejected"):
        await confirm_action(session, two.action)
    [plan] = await process(session, [first])
    assert plan.action_status is A.DELIVERED


async def test_find_action_needs_the_supporters_fingerprint(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    await sign(client, site.page_id)
    [action_id] = await action_ids(session)
    supporter = await supporter_row(session)
    assert await find_action_by_ref(session, action_id, b"someone else") is None
    found = await find_action_by_ref(session, action_id, bytes(supporter.fingerprint))
    assert found is not None and found.action.id == action_id
