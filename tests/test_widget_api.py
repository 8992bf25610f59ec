"""The widget's calls, sent as plain HTTP the way the widget sends them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from nacl.public import Box
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.kit import base64url
from proca_server.models import Action, Contact, Donation, Org, Source, Supporter
from proca_server.org.service import ensure_instance_org
from tests.factories import World, make_campaign, make_org, make_page, make_world
from tests.widget_helpers import (
    ADD_ACTION,
    ADD_ACTION_CONTACT,
    COUNT,
    COUNT_BY_NAME,
    counts,
    signature,
    widget_post,
)


@dataclass(frozen=True)
class Ids:
    """Ids read before the test ends a transaction (which expires the ORM objects)."""

    page: int
    org: int
    page_org: int

    @classmethod
    def of(cls, world: World) -> Ids:
        return cls(world.page.id, world.org.id, world.page.org_id)


async def test_sign_stores_supporter_contact_and_action(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(ids.page))
    result = body["data"]["addActionContact"]
    assert result["firstName"] == "Ann"
    assert len(result["contactRef"]) == 43
    assert await counts(session) == (1, 1, 1)
    supporter = (await session.execute(select(Supporter))).scalar_one()
    assert supporter.email == "ann@example.org" and supporter.first_name == "Ann"
    assert supporter.last_name is None  # not kept in clear by default
    assert supporter.area == "FR"
    action = (await session.execute(select(Action))).scalar_one()
    assert action.fields == {"comment": "hi"} and action.with_consent
    source = await session.get(Source, action.source_id)
    assert source is not None
    assert (source.source, source.medium, source.campaign, source.location) == (
        "newsletter",
        "email",
        "spring",
        "https://campaign.example.org/sign",
    )


async def test_contact_is_encrypted_for_the_org(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    instance = await ensure_instance_org(session, "instance")
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    await session.commit()
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(ids.page))
    assert "errors" not in body
    await session.rollback()
    contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.crypto_nonce is not None and contact.public_key_id == world.key.id
    assert contact.sign_key_id == instance.key.id
    sign_public = NaclPublicKey(instance.key.public)
    clear = Box(world.private_key, sign_public).decrypt(contact.payload, contact.crypto_nonce)
    data = json.loads(clear)
    assert data["email"] == "ann@example.org" and data["firstName"] == "Ann"


async def test_counter_by_id_over_get_and_by_name(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    page_name = world.page.name
    for email in ("a@example.org", "b@example.org", "A@example.org"):
        await widget_post(
            client, "addActionContact", ADD_ACTION_CONTACT, signature(ids.page, email)
        )
    response = await client.get(
        "/api", params={"query": COUNT, "variables": json.dumps({"actionPage": ids.page})}
    )
    assert response.status_code == 200
    assert response.json()["data"]["actionPage"]["campaign"]["stats"]["supporterCount"] == 2
    by_name = await widget_post(client, "getCountByName", COUNT_BY_NAME, {"name": page_name})
    assert by_name["data"]["actionPage"]["campaign"]["stats"]["supporterCount"] == 2


async def test_share_then_link_by_contact_ref(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    anonymous_ref = base64url.encode(b"0123456789abcdef")
    shared = await widget_post(
        client,
        "addAction",
        ADD_ACTION,
        {
            "contact": anonymous_ref,
            "actionPage": ids.page,
            "actionType": "share_close",
            "payload": json.dumps({"medium": "twitter"}),
        },
    )
    assert shared["data"]["addAction"]["contactRef"] == anonymous_ref
    await session.rollback()
    unlinked = (await session.execute(select(Action))).scalar_one()
    assert unlinked.supporter_id is None and unlinked.ref == b"0123456789abcdef"
    unlinked_id = unlinked.id

    signed = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(ids.page, contactRef=anonymous_ref),
    )
    ref = signed["data"]["addActionContact"]["contactRef"]
    await session.rollback()
    supporter_id = (await session.execute(select(Supporter.id))).scalar_one()
    linked = await session.get(Action, unlinked_id)
    assert linked is not None and linked.supporter_id == supporter_id

    # a later share with the real contactRef attaches to that supporter
    again = await widget_post(
        client,
        "addAction",
        ADD_ACTION,
        {
            "contact": ref,
            "actionPage": ids.page,
            "actionType": "share_open",
        },
    )
    assert again["data"]["addAction"]["contactRef"] == ref
    await session.rollback()
    share = (
        await session.execute(select(Action).where(Action.action_type == "share_open"))
    ).scalar_one()
    assert share.supporter_id == supporter_id and share.ref is None


async def test_donation(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    variables = signature(ids.page)
    variables["action"] = {
        "actionType": "donate",
        "donation": {
            "amount": 1500,
            "currency": "eur",
            "frequencyUnit": "MONTHLY",
            "payload": json.dumps({"provider": "stripe"}),
        },
    }
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert "errors" not in body, body
    await session.rollback()
    donation = (await session.execute(select(Donation))).scalar_one()
    assert (donation.amount, donation.currency, donation.frequency_unit.name) == (
        1500,
        "EUR",
        "MONTHLY",
    )
    bad = signature(ids.page, "b@example.org")
    bad["action"] = {
        "actionType": "donate",
        "donation": {"amount": 100, "frequencyUnit": "YEARLY", "payload": "{}"},
    }
    refused = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, bad)
    assert refused.get("errors") and refused.get("data") is None


async def test_errors_carry_the_form_field_and_leave_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    missing_page = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, signature(999999)
    )
    error = missing_page["errors"][0]
    assert error["message"] == "action_page_id: Cannot find Action Page with id=999999"
    # the original's answer: the mutation alone in the path (not a form field)
    assert error["path"] == ["addActionContact"]
    assert error["extensions"]["code"] == "not_found"
    missing_page = await widget_post(
        client,
        "addAction",
        ADD_ACTION,
        {"contact": "AAAA", "actionPage": 999999, "actionType": "share"},
    )
    error = missing_page["errors"][0]
    assert error["message"] == "action_page_id: Cannot find Action Page with id=999999"
    assert error["path"] == ["addAction"]
    assert error["extensions"]["code"] == "not_found"
    bad_email = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, signature(ids.page, "not-an-email")
    )
    error = bad_email["errors"][0]
    assert error["path"] == ["addActionContact", "email"]
    assert error["extensions"]["code"] == "bad_arg"
    bad_ref = await widget_post(
        client,
        "addAction",
        ADD_ACTION,
        {"contact": "%%%", "actionPage": ids.page, "actionType": "share"},
    )
    error = bad_ref["errors"][0]
    assert error["message"] == "contact_ref: Cannot decode from Base64url"
    assert error["path"] == ["addAction"]
    too_big = signature(ids.page, "c@example.org")
    too_big["action"] = {"actionType": "petition", "customFields": json.dumps({"x": "y" * 6000})}
    refused = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, too_big)
    assert refused["errors"][0]["path"] == ["addActionContact", "customFields"]
    nested = signature(ids.page, "d@example.org")
    nested["action"] = {"actionType": "petition", "customFields": json.dumps({"x": {"y": 1}})}
    refused = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, nested)
    assert refused["errors"][0]["extensions"]["code"] == "bad_arg"
    not_object = signature(ids.page, "e@example.org")
    not_object["action"] = {"actionType": "petition", "customFields": "[1,2]"}
    refused = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, not_object)
    assert refused.get("errors")
    assert await counts(session) == (0, 0, 0)


async def test_deprecated_fields_list_and_snake_case_contact(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    variables = signature(ids.page)
    variables["contact"] = {"first_name": "Bo", "last_name": "Ek", "email": "bo@example.org"}
    variables["action"] = {
        "actionType": "petition",
        "customFields": json.dumps({"a": "1"}),
        "fields": [{"key": "a", "value": "2"}, {"key": "b", "value": "3"}],
    }
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert body["data"]["addActionContact"]["firstName"] == "Bo"
    await session.rollback()
    action = (await session.execute(select(Action))).scalar_one()
    assert action.fields == {"a": ["1", "2"], "b": "3"}


async def partner_world(session: AsyncSession, *, delivery: bool, force: bool = False) -> World:
    lead = await make_world(session, roles=())
    partner = await make_org(session)
    page = await make_page(session, lead.campaign, partner)
    page.delivery = delivery
    lead.campaign.force_delivery = force
    lead.page = page
    await session.commit()
    return lead


async def _consents(session: AsyncSession) -> dict[int, tuple[bool, bool | None]]:
    await session.rollback()
    rows = (await session.execute(select(Contact))).scalars().all()
    return {c.org_id or 0: (c.delivery_consent, c.communication_consent) for c in rows}


async def test_privacy_partner_page_delivering(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await partner_world(session, delivery=True)
    ids = Ids.of(world)
    await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(ids.page, privacy={"optIn": True, "leadOptIn": False}),
    )
    assert await _consents(session) == {ids.page_org: (True, True)}
    await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(ids.page, "x@example.org", privacy={"optIn": False, "leadOptIn": True}),
    )
    consents = await _consents(session)
    assert consents[ids.org] == (False, True)


async def test_privacy_force_delivery_and_non_delivering_partner(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    ids = Ids.of(await partner_world(session, delivery=True, force=True))
    await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(ids.page, privacy={"optIn": False}),
    )
    assert await _consents(session) == {
        ids.page_org: (True, False),
        ids.org: (True, None),
    }


async def test_privacy_partner_not_delivering(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await partner_world(session, delivery=False)
    ids = Ids.of(world)
    await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(ids.page, privacy={"optIn": False}),
    )
    assert await _consents(session) == {ids.org: (True, None)}


async def test_high_security_org_keeps_only_the_area(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    org = await session.get(Org, ids.org)
    assert org is not None
    org.high_security = True
    await session.commit()
    await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(ids.page))
    await session.rollback()
    supporter = (await session.execute(select(Supporter))).scalar_one()
    assert (supporter.email, supporter.first_name, supporter.area) == (None, None, "FR")


async def test_no_referer_no_tracking_no_source(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    org = await make_org(session)
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    await session.commit()
    variables = signature(page.id)
    del variables["tracking"]
    await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables, referer=None)
    await session.rollback()
    action = (await session.execute(select(Action))).scalar_one()
    assert action.source_id is None


async def test_mail_to_target_stores_messages(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from datetime import timedelta

    from proca_server.kit.time import utcnow
    from proca_server.models import Message, MessageContent, Mtt, Target

    world = await make_world(session, roles=())
    ids = Ids.of(world)
    plain = signature(ids.page, "m@example.org")
    plain["action"] = {
        "actionType": "mail2target",
        "mtt": {"subject": "Hi", "body": "Please", "targets": []},
    }
    refused = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, plain)
    assert refused["errors"][0]["message"] == "Campaign does not support MTT"

    session.add(
        Mtt(campaign_id=world.campaign.id, start_at=utcnow(), end_at=utcnow() + timedelta(days=3))
    )
    targets = [
        Target(name=f"MEP {n}", external_id=f"mep-{n}", campaign_id=world.campaign.id)
        for n in range(2)
    ]
    session.add_all(targets)
    from proca_server.models import Service

    storage = Service(name="supabase", host="https://files.example", org_id=world.org.id)
    session.add(storage)
    await session.flush()
    world.org.storage_backend_id = storage.id  # the files are read from it when sending
    await session.commit()
    state_of(app).page_cache.clear()  # the page snapshot (with "has MTT") is cached a moment
    variables = signature(ids.page, "m@example.org")
    variables["action"] = {
        "actionType": "mail2target",
        "mtt": {
            "subject": "Dear {{target.name}}",
            "body": "Please act",
            "targets": [str(t.id) for t in targets],
            "files": ["a/b.pdf"],
        },
    }
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert "errors" not in body, body
    await session.rollback()
    messages = (await session.execute(select(Message))).scalars().all()
    assert len(messages) == 2 and {m.files[0] for m in messages} == {"a/b.pdf"}
    content = (await session.execute(select(MessageContent))).scalar_one()
    assert content.subject == "Dear {{target.name}}"
    supporter = (await session.execute(select(Supporter))).scalar_one()
    assert supporter.last_name == "Lee"  # MTT campaigns keep names in clear to send as them

    anonymous = await widget_post(
        client,
        "addAction",
        ADD_ACTION.replace(
            "customFields: $payload, testing: $testing",
            "customFields: $payload, testing: $testing, mtt: {targets: []}",
        ),
        {
            "contact": base64url.encode(b"nobody-yet-12345"),
            "actionPage": ids.page,
            "actionType": "mail2target",
        },
    )
    assert anonymous["errors"][0]["message"] == "contact_ref: Cannot find contact for MTT action"
    assert anonymous["errors"][0]["path"] == ["addAction"]


LINK_ACTIONS = """mutation linkActions($actionPage: Int!, $contactRef: ID!, $linkRefs: [String!]) {
  linkActions(actionPageId: $actionPage, contactRef: $contactRef, linkRefs: $linkRefs) {
    contactRef
  }
}"""


async def test_link_actions_has_one_answer_for_a_missing_page_or_contact(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    signed = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(ids.page))
    ref = signed["data"]["addActionContact"]["contactRef"]
    before = await counts(session)
    for page, contact_ref in (
        (999999, ref),  # no such page
        (ids.page, "%%%"),  # not base64url
        (ids.page, base64url.encode(b"nobody-here-1234")),  # no such supporter
    ):
        body = await widget_post(
            client,
            "linkActions",
            LINK_ACTIONS,
            {"actionPage": page, "contactRef": contact_ref, "linkRefs": []},
        )
        assert body["data"] is None
        [error] = body["errors"]
        assert error["message"] == "ActionPage or contact not found"
        assert error["path"] == ["linkActions"]
        assert error["extensions"]["code"] == "not_found"
    assert await counts(session) == before
    linked = await widget_post(
        client,
        "linkActions",
        LINK_ACTIONS,
        {"actionPage": ids.page, "contactRef": ref, "linkRefs": []},
    )
    assert linked == {"data": {"linkActions": {"contactRef": ref}}}


async def test_testing_actions_are_stored_but_not_counted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    ids = Ids.of(world)
    variables = signature(ids.page, "t@example.org")
    variables["action"] = {"actionType": "petition", "testing": True}
    await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    await session.rollback()
    action = (await session.execute(select(Action))).scalar_one()
    assert action.testing
    response = await client.get(
        "/api", params={"query": COUNT, "variables": json.dumps({"actionPage": ids.page})}
    )
    assert response.json()["data"]["actionPage"]["campaign"]["stats"]["supporterCount"] == 0
