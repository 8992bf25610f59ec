"""Action and event messages, as `@proca/queue` consumers read them, built from real
signatures made through the widget API."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.kit import base64url
from proca_server.models import ActionPage, Campaign, Confirm, Donation, EmailTemplate, Org
from proca_server.models.enums import ConfirmOperation, DonationFrequencyUnit, DonationSchema
from proca_server.processing.loader import load_actions_for_processing
from proca_server.processing.messages import (
    action_message,
    campaign_updated_publication,
    confirm_created_publication,
    encode_message,
    iso8601,
    iso8601_now,
    join_campaign_event,
    new_org_event,
    new_user_event,
    system_publication,
)
from proca_server.processing.service import plan_processing
from tests.processing.helpers import action_ids, body, decrypt, load, make_site, sign

V2_KEYS = [
    "schema",
    "stage",
    "actionId",
    "actionPageId",
    "actionPage",
    "campaignId",
    "campaign",
    "org",
    "orgId",
    "action",
    "contact",
    "personalInfo",
    "privacy",
    "tracking",
]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_encrypted_contact_message_has_every_key(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session)
    ref = await sign(client, site.page_id)
    [loaded] = await load(session, await action_ids(session))
    message = action_message(loaded, "deliver", site.org_id)

    assert list(message) == V2_KEYS
    assert message["schema"] == "proca:action:2" and message["stage"] == "deliver"
    assert message["actionId"] == loaded.action.id
    assert message["actionPageId"] == site.page_id
    assert message["actionPage"] == {
        "locale": "en",
        "name": site.page_name,
        "thankYouTemplate": None,
        "thankYouTemplateRef": None,
        "supporterConfirmTemplate": None,
    }
    assert message["campaignId"] == site.campaign_id
    assert message["campaign"] == {
        "name": site.campaign_name,
        "title": site.campaign_name.title(),
        "externalId": None,
        "contactSchema": "basic",
    }
    assert message["org"] == {"name": site.org_name, "title": site.org_name.title()}
    assert message["orgId"] == site.org_id
    action = message["action"]
    assert list(action) == ["actionType", "customFields", "createdAt", "testing"]
    assert action["actionType"] == "petition" and action["customFields"] == {"comment": "hi"}
    assert STAMP.match(action["createdAt"]) and action["testing"] is False
    # encrypted: only the supporter row's cleartext in `contact`
    assert message["contact"] == {
        "firstName": "Ann",
        "email": "ann@example.org",
        "contactRef": ref,
        "dupeRank": None,
        "area": "FR",
    }
    info = message["personalInfo"]
    assert list(info) == ["payload", "nonce", "encryptKey", "signKey"]
    assert info["signKey"]["public"] == base64url.encode(site.sign_public)
    assert site.private_key is not None
    assert info["encryptKey"]["public"] == base64url.encode(bytes(site.private_key.public_key))
    clear = decrypt(info, site.private_key, site.sign_public)
    assert clear["email"] == "ann@example.org" and clear["lastName"] == "Lee"
    privacy = message["privacy"]
    assert list(privacy) == ["optIn", "givenAt", "emailStatus", "emailStatusChanged", "withConsent"]
    assert privacy["optIn"] is True and STAMP.match(privacy["givenAt"])
    assert privacy["emailStatus"] is None and privacy["emailStatusChanged"] is None
    assert privacy["withConsent"] is True
    assert message["tracking"] == {
        "source": "newsletter",
        "medium": "email",
        "campaign": "spring",
        "content": "",
        "location": "https://campaign.example.org/sign",
    }
    encoded = encode_message(message)
    assert b", " not in encoded and b'": ' not in encoded  # compact


async def test_cleartext_contact_is_merged_into_contact(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session, encrypted=False)
    contact = {
        "firstName": "Zoé",
        "lastName": "Lee",
        "email": "Zoe@example.org",
        "address": {"country": "FR"},
    }
    ref = await sign(client, site.page_id, contact=contact)
    [loaded] = await load(session, await action_ids(session))
    message = action_message(loaded, "deliver", site.org_id)
    assert message["personalInfo"] is None
    contact = message["contact"]
    assert contact["contactRef"] == ref and contact["dupeRank"] is None
    assert contact["firstName"] == "Zoé" and contact["lastName"] == "Lee"
    assert contact["email"] == "zoe@example.org" and contact["area"] == "FR"
    assert contact["country"] == "FR"
    assert "Zoé".encode() in encode_message(message)  # UTF-8, not \u escapes


async def test_coalition_delivers_one_message_per_receiving_org(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_site(session, encrypted=False)
    partner = await make_site(session, lead=lead)
    await sign(client, partner.page_id, privacy={"optIn": True, "leadOptIn": True})
    [plan] = await plan_processing(session, await load(session, await action_ids(session)))
    by_exchange = {p.exchange: body(p.body) for p in plan.publications}
    assert sorted(by_exchange) == sorted(
        [f"org.{lead.org_id}.deliver", f"org.{partner.org_id}.deliver"]
    )
    assert {p.routing_key for p in plan.publications} == {f"petition.{partner.campaign_name}"}
    to_partner = by_exchange[f"org.{partner.org_id}.deliver"]
    to_lead = by_exchange[f"org.{lead.org_id}.deliver"]
    # the page owner processes: org/orgId are the partner's in both
    assert to_partner["orgId"] == to_lead["orgId"] == partner.org_id
    assert to_partner["personalInfo"] is not None and "lastName" not in to_partner["contact"]
    assert to_lead["personalInfo"] is None and to_lead["contact"]["lastName"] == "Lee"
    assert to_partner["privacy"]["optIn"] is True and to_lead["privacy"]["optIn"] is True
    assert to_partner["contact"]["dupeRank"] == to_lead["contact"]["dupeRank"] == 0


async def test_legacy_v1_message_for_orgs_on_schema_version_1(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(session, org_fields={"action_schema_version": 1})
    ref = await sign(client, site.page_id)
    [loaded] = await load(session, await action_ids(session))
    message = action_message(loaded, "deliver", site.org_id)
    assert message["schema"] == "proca:action:1"
    assert message["action"]["fields"] == {"comment": "hi"}
    assert "customFields" not in message["action"]
    assert "supporterConfirmTemplate" not in message["actionPage"]
    assert "contactSchema" not in message["campaign"]
    contact = message["contact"]
    assert list(contact) == [
        "ref",
        "firstName",
        "email",
        "payload",
        "nonce",
        "publicKey",
        "signKey",
    ]
    assert contact["ref"] == ref and contact["signKey"] == base64url.encode(site.sign_public)
    assert message["privacy"]["communication"] is True
    assert STAMP.match(message["privacy"]["givenAt"])


async def test_donation_and_template_fallbacks(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    site = await make_site(
        session,
        org_fields={"supporter_confirm_template": "org_confirm"},
        page_fields={"thank_you_template": "thanks", "locale": "de"},
    )
    session.add_all(
        [
            EmailTemplate(
                org_id=site.org_id,
                name="thanks",
                locale="en",
                subject="",
                html="",
                external_id="41",
            ),
            EmailTemplate(
                org_id=site.org_id,
                name="thanks",
                locale="de",
                subject="",
                html="",
                external_id="42",
            ),
        ]
    )
    await session.commit()
    await sign(client, site.page_id)
    [action_id] = await action_ids(session)
    session.add(
        Donation(
            action_id=action_id,
            schema=DonationSchema.STRIPE_PAYMENT_INTENT,
            payload={"id": "pi_1"},
            amount=500,
            currency="EUR",
            frequency_unit=DonationFrequencyUnit.MONTHLY,
        )
    )
    await session.commit()
    [loaded] = await load(session, [action_id])
    message = action_message(loaded, "supporter_confirm", site.org_id)
    assert message["actionPage"]["thankYouTemplateRef"] == "42"
    assert message["actionPage"]["supporterConfirmTemplate"] == "org_confirm"
    assert message["action"]["donation"] == {
        "payload": {"id": "pi_1"},
        "amount": 500,
        "currency": "EUR",
        "frequencyUnit": "monthly",
        "schema": "stripe_payment_intent",
    }


async def test_loader_statement_count_does_not_grow_with_the_batch(
    client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    lead = await make_site(session, encrypted=False)
    partner = await make_site(session, lead=lead)
    for n in range(20):
        privacy = {"optIn": True, "leadOptIn": True}
        await sign(client, partner.page_id, f"p{n}@example.org", privacy=privacy)
    ids = await action_ids(session)
    await session.rollback()

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    async def loaded_with_count(batch: list[int]) -> int:
        session.expunge_all()
        statements.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            loaded = await load_actions_for_processing(session, batch)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        assert len(loaded) == len(batch)
        assert all(la.supporter is not None and la.contacts for la in loaded)
        return len(statements)

    one = await loaded_with_count(ids[:1])
    twenty = await loaded_with_count(ids)
    assert one == twenty <= 8
    assert all(len(la.contacts) == 2 for la in await load_actions_for_processing(session, ids))


def test_dates_are_iso8601_utc_with_z() -> None:
    stamp = datetime(2024, 5, 1, 12, 0, 7, tzinfo=UTC)
    assert iso8601(stamp) == "2024-05-01T12:00:07Z"
    assert iso8601_now(stamp) == "2024-05-01T12:00:07.000000Z"


async def test_campaign_updated_and_confirm_created_events(session: AsyncSession) -> None:
    site = await make_site(session)
    campaign = await session.get(Campaign, site.campaign_id)
    org = await session.get(Org, site.org_id)
    assert campaign is not None and org is not None
    campaign.config = {"some_key": {"inner_key": 1}}
    campaign.external_id = 7
    await session.flush()
    pub = campaign_updated_publication(campaign, org)
    assert (pub.exchange, pub.routing_key) == (
        f"org.{site.org_id}.event",
        "system.campaign_updated",
    )
    msg = body(pub.body)
    assert list(msg) == ["schema", "eventType", "timestamp", "campaign", "campaignId", "orgId"]
    assert msg["schema"] == "proca:event:2" and msg["eventType"] == "campaign_updated"
    assert STAMP.match(msg["timestamp"])
    assert msg["campaign"] == {
        "id": site.campaign_id,
        "name": site.campaign_name,
        "externalId": 7,
        "title": site.campaign_name.title(),
        "config": {"some_key": {"inner_key": 1}},
        "contactSchema": "basic",
        "org": {"name": site.org_name, "title": site.org_name.title()},
    }
    assert (msg["campaignId"], msg["orgId"]) == (site.campaign_id, site.org_id)

    confirm = Confirm(
        operation=ConfirmOperation.LAUNCH_PAGE, subject_id=site.campaign_id, code="12345678"
    )
    session.add(confirm)
    await session.flush()
    fields = {"operation": "launch_page", "code": "12345678", "subjectId": site.campaign_id}
    pub = confirm_created_publication(confirm, fields, site.org_id)
    assert pub.routing_key == "confirm_created.launch_page"
    msg = body(pub.body)
    assert msg["eventType"] == "confirm_created" and msg["confirm"] == fields


async def test_system_events_are_action_shaped(session: AsyncSession) -> None:
    site = await make_site(session)
    org = await session.get(Org, site.org_id)
    campaign = await session.get(Campaign, site.campaign_id)
    page = (
        await session.execute(select(ActionPage).where(ActionPage.id == site.page_id))
    ).scalar_one()
    assert org is not None and campaign is not None
    now = datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    joined = join_campaign_event(
        user_email="jo@example.org", org=org, campaign=campaign, page=page, now=now
    )
    pub = system_publication(joined, 99)
    assert (pub.exchange, pub.routing_key) == ("org.99.event", "system.join_campaign")
    msg = body(pub.body)
    assert msg["schema"] == "proca:action:2" and msg["stage"] == "system"
    assert msg["eventType"] == "join_campaign" and msg["actionId"] is None
    assert msg["contact"] == {
        "firstName": "jo",
        "email": "jo@example.org",
        "contactRef": None,
        "dupeRank": 0,
        "area": None,
    }
    assert msg["personalInfo"] is None and msg["privacy"] == {} and msg["tracking"] == {}
    assert msg["action"] == {
        "actionType": "join_campaign",
        "customFields": {},
        "createdAt": "2024-01-02T03:04:05.600000Z",
        "testing": False,
    }
    assert msg["actionPageId"] == site.page_id and msg["actionPage"]["name"] == site.page_name
    assert msg["campaignId"] == site.campaign_id and msg["orgId"] == site.org_id

    new_org = new_org_event(user_email="jo@example.org", org=org)
    assert new_org["org"]["name"] == site.org_name and new_org["campaign"] is None
    assert new_org["actionPage"] is None and new_org["action"]["actionType"] == "new_org"
    new_user = new_user_event(user_email="x@example.org")
    assert new_user["org"] is None and new_user["orgId"] is None
    assert system_publication(new_user, 1).routing_key == "system.new_user"
