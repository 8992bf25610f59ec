"""The supporter's page (`/link/rights/<token>`): the link in their emails, GET that changes
nothing, each POST doing what it says once, its events for every org that received the data,
the audit trail, and refused tokens."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.kit import base64url
from proca_server.models import Action, AuditLog, Contact, PreviewEmail, Supporter
from proca_server.models.counter import CounterPerson
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.stats import campaign_stats
from proca_server.supporter.rights import rights_token
from proca_server.workers import WorkerDeps
from tests.email.worker_world import add_template, processed, run_worker
from tests.processing.conftest import RecordingPipeline
from tests.processing.helpers import action_ids, make_site, sign
from tests.supporter.world import (
    BOTH_OPT_INS,
    RIGHTS_PATH,
    coalition,
    events,
    path_of,
    signed_and_delivered,
    state,
)


async def test_the_confirm_email_carries_the_link_and_opening_it_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    deps: WorkerDeps,
    settings: Settings,
    pipeline: RecordingPipeline,
) -> None:
    world = await coalition(
        session,
        org_fields={"supporter_confirm": True, "supporter_confirm_template": "confirm"},
    )
    await add_template(
        session,
        world.partner.org_id,
        "confirm",
        subject="Confirm",
        html="<p><a href='{{confirmLink}}'>Confirm</a> <a href='{{rightsLink}}'>Your data</a></p>",
        text="Your data: {{rightsLink}}",
    )
    ref = await sign(client, world.partner.page_id, privacy=BOTH_OPT_INS)
    [action_id] = await action_ids(session)
    assert await run_worker(
        deps, world.partner, await processed(session, world.partner, action_id)
    ) == [None]

    await session.rollback()
    [email] = (await session.execute(select(PreviewEmail))).scalars().all()
    assert email.html is not None and email.text is not None
    [path] = set(RIGHTS_PATH.findall(email.html))
    assert f"http://localhost:{settings.port}{path}" in email.text
    assert path == path_of(settings, action_id, ref)
    # no personal data in the address: neither the email, nor the contactRef
    assert "ann" not in path.lower() and ref not in path
    shown = await client.get(f"/mailbox/{email.id}")
    assert path in shown.text

    before = await state(session)
    for method in ("GET", "HEAD"):
        page = await client.request(method, path)
        assert page.status_code == 200
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "noindex" in page.headers["x-robots-tag"]
    page = await client.get(path)
    assert "Partner Org" in page.text and "Lead Org" in page.text
    assert "ann@example.org" not in page.text and "<script" not in page.text
    assert len(re.findall(r'<form class="choice" method="post"', page.text)) == 5
    assert await state(session) == before
    assert pipeline.calls == []


async def test_withdraw_from_one_org_then_from_all(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    pipeline: RecordingPipeline,
) -> None:
    world = await coalition(session)
    lead, partner = world.lead.org_id, world.partner.org_id
    action_id, ref = await signed_and_delivered(client, session, world.partner)
    path = path_of(settings, action_id, ref)
    assert (await state(session)).consents == {partner: True, lead: True}

    done = await client.post(path, data={"request": "withdraw", "org": str(partner)})
    assert done.status_code == 200
    assert "Partner Org will not send you emails any more." in done.text
    after_one = await state(session)
    assert after_one.consents == {partner: False, lead: True}
    assert after_one.audit == 1
    sent = events(pipeline.calls)
    assert list(sent) == [partner]
    assert sent[partner]["eventType"] == "email_status"
    assert sent[partner]["rightsRequest"] == "withdraw"
    assert sent[partner]["actionId"] == action_id
    assert sent[partner]["supporter"]["privacy"]["optIn"] is False
    assert sent[partner]["supporter"]["privacy"]["emailStatus"] is None
    [entry] = (await session.execute(select(AuditLog))).scalars().all()
    assert (entry.actor_id, entry.resource, entry.org_id) == (
        f"supporter:{after_one.supporters[0][0]}",
        "rights_request",
        partner,
    )
    assert entry.changeset == {"request": "withdraw", "scope": "org", "count": 1}

    again = await client.post(path, data={"request": "withdraw", "org": str(partner)})
    assert "already done" in again.text
    assert await state(session) == after_one
    assert len(pipeline.calls) == 1

    everyone = await client.post(path, data={"request": "withdraw", "org": "all"})
    assert "None of these organisations will send you emails any more." in everyone.text
    after_all = await state(session)
    assert after_all.consents == {partner: False, lead: False}
    assert after_all.supporters[0][2] is EmailStatus.UNSUB
    assert after_all.audit == 3  # both orgs: the lead's consent, the partner's email status
    sent = events(pipeline.calls[1:])
    assert sorted(sent) == sorted([partner, lead])
    for event in sent.values():
        assert event["supporter"]["privacy"]["emailStatus"] == "unsub"
        assert event["supporter"]["privacy"]["optIn"] is False
    # the lead's event carries its contact sealed for it, as its other messages do
    assert sent[lead]["supporter"]["personalInfo"]["payload"]

    await client.post(path, data={"request": "withdraw", "org": "all"})
    assert await state(session) == after_all
    assert len(pipeline.calls) == 2
    page = await client.get(path)
    assert "No more emails from" not in page.text.replace("No more emails from any", "")


async def test_it_was_not_me_rejects_and_revokes_double_opt_in_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    pipeline: RecordingPipeline,
) -> None:
    world = await coalition(session)
    action_id, ref = await signed_and_delivered(client, session, world.partner)
    assert (await client.get(f"/link/d/{action_id}/{ref}")).status_code == 302
    pipeline.calls.clear()
    path = path_of(settings, action_id, ref)

    done = await client.post(path, data={"request": "not_me"})
    assert done.status_code == 200 and "The action is cancelled" in done.text
    after = await state(session)
    [(_, supporter_status, email_status, *_)] = after.supporters
    assert (supporter_status, email_status) == (S.REJECTED, EmailStatus.UNSUB)
    action = await session.get(Action, action_id)
    assert action is not None and action.processing_status is A.REJECTED
    assert after.consents == {world.partner.org_id: False, world.lead.org_id: False}
    assert after.audit == 2
    sent = events(pipeline.calls)
    assert sorted(sent) == sorted([world.partner.org_id, world.lead.org_id])
    assert {e["rightsRequest"] for e in sent.values()} == {"not_me"}
    assert {e["supporter"]["privacy"]["emailStatus"] for e in sent.values()} == {"unsub"}

    again = await client.post(path, data={"request": "not_me"})
    assert "already done" in again.text
    assert await state(session) == after
    assert len(pipeline.calls) == 1
    assert "This action is already cancelled." in (await client.get(path)).text


async def test_erasure_deletes_contacts_and_cleartext_and_keeps_every_count(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    pipeline: RecordingPipeline,
) -> None:
    world = await coalition(session)
    first, ref = await signed_and_delivered(client, session, world.partner)
    # the same person again on the lead's own page, and someone else
    second, same_ref = await signed_and_delivered(client, session, world.lead)
    assert same_ref == ref
    other, other_ref = await signed_and_delivered(client, session, world.partner, "bob@example.org")
    # and in a campaign of an org of its own
    third = await make_site(session, encrypted=False, org_fields={"title": "Third Org"})
    elsewhere, _ = await signed_and_delivered(client, session, third)
    campaign_ids = (world.lead.campaign_id, third.campaign_id)
    await session.rollback()
    counts = [await campaign_stats(session, c, max_age=0) for c in campaign_ids]
    people = sorted((await session.execute(select(CounterPerson.fingerprint))).scalars().all())
    path = path_of(settings, first, ref)

    unconfirmed = await client.post(path, data={"request": "erase"})
    assert unconfirmed.status_code == 400 and "tick the box" in unconfirmed.text
    assert pipeline.calls == []

    done = await client.post(path, data={"request": "erase", "confirm": "yes"})
    assert done.status_code == 200 and "Your personal data is erased" in done.text
    await session.rollback()
    session.expunge_all()
    fingerprint = base64url.decode(ref)
    left = (await session.execute(select(Contact.supporter_id))).scalars().all()
    bob = (
        await session.execute(select(Supporter).where(Supporter.fingerprint != fingerprint))
    ).scalar_one()
    assert set(left) == {bob.id}
    assert bob.first_name == "Ann"  # another person: untouched
    erased = (
        (await session.execute(select(Supporter).where(Supporter.fingerprint == fingerprint)))
        .scalars()
        .all()
    )
    assert len(erased) == 3
    for supporter in erased:
        assert (supporter.first_name, supporter.last_name, supporter.email) == (None, None, None)
        assert supporter.address is None and supporter.area is not None
        assert supporter.email_status is EmailStatus.UNSUB
    actions = (await session.execute(select(Action.id).order_by(Action.id))).scalars().all()
    assert actions == [first, second, other, elsewhere]
    assert [await campaign_stats(session, c, max_age=0) for c in campaign_ids] == counts
    assert sorted((await session.execute(select(CounterPerson.fingerprint))).scalars()) == people

    sent = events(pipeline.calls)
    assert sorted(sent) == sorted([world.partner.org_id, world.lead.org_id, third.org_id])
    # an org that held a contact of the link's own signature hears about it; another, about
    # the latest signature it received
    assert sent[world.partner.org_id]["actionId"] == first
    assert sent[world.lead.org_id]["actionId"] == first
    assert sent[third.org_id]["actionId"] == elsewhere
    for event in sent.values():
        assert event["rightsRequest"] == "erase"
        assert event["supporter"]["contact"]["contactRef"] == ref
        assert event["supporter"]["contact"]["email"] is None
        assert event["supporter"]["personalInfo"] is None
        assert event["supporter"]["privacy"]["withConsent"] is False
    entries = (await session.execute(select(AuditLog).order_by(AuditLog.org_id))).scalars().all()
    assert sorted((e.org_id, e.changeset["request"]) for e in entries) == sorted(
        [(o, "erase") for o in (world.lead.org_id, world.partner.org_id, third.org_id)]
    )
    assert sum(e.changeset["count"] for e in entries) == 4  # contacts deleted
    assert "ann" not in str([e.changeset for e in entries]).lower()

    before = await state(session)
    again = await client.post(path, data={"request": "erase", "confirm": "yes"})
    assert "already done" in again.text
    assert await state(session) == before
    assert len(pipeline.calls) == 1
    page = await client.get(path)
    assert "No organisation holds your contact details any more." in page.text
    assert other_ref != ref


async def test_forged_or_altered_links_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    pipeline: RecordingPipeline,
) -> None:
    world = await coalition(session)
    action_id, ref = await signed_and_delivered(client, session, world.partner)
    other_id, _ = await signed_and_delivered(client, session, world.partner, "bob@example.org")
    genuine = rights_token(settings, action_id, base64url.decode(ref))
    raw = bytearray(base64url.decode(genuine))
    raw[-1] ^= 1
    altered_mac = base64url.encode(bytes(raw))
    raw = bytearray(base64url.decode(genuine))
    raw[1:9] = other_id.to_bytes(8, "big")
    other_action = base64url.encode(bytes(raw))
    unknown_action = rights_token(settings, other_id + 1000, base64url.decode(ref))
    before = await state(session)

    for token, status in (
        ("not-a-token", 400),
        (genuine[:-2], 400),
        ("A" * len(genuine), 400),
        (altered_mac, 404),
        (other_action, 404),
        (unknown_action, 404),
    ):
        page = await client.get(f"/link/rights/{token}")
        assert page.status_code == status, token
        assert "This link is not valid" in page.text
        posted = await client.post(
            f"/link/rights/{token}", data={"request": "erase", "confirm": "yes"}
        )
        assert posted.status_code == status, token
    assert (
        await client.post(f"/link/rights/{genuine}", data={"request": "other"})
    ).status_code == 400
    assert (
        await client.post(f"/link/rights/{genuine}", json={"request": "not_me"})
    ).status_code == 400
    assert (
        await client.post(f"/link/rights/{genuine}", data={"request": "withdraw"})
    ).status_code == 400
    assert await state(session) == before
    assert pipeline.calls == []
    assert urlsplit(f"http://x/link/rights/{genuine}").path.count("/") == 3
