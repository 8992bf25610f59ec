"""Orgs, members, keys, services and templates through the GraphQL API."""

from __future__ import annotations

import json

import httpx
from nacl.public import Box, PrivateKey
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit import base64url
from proca_server.models import Contact, Org, PublicKey, Service, Staffer
from proca_server.org.service import ensure_instance_org
from proca_server.user.service import reset_api_token
from tests.factories import make_key, make_user, make_world
from tests.graphql_helpers import data, error, gql
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post


async def test_add_org_makes_the_caller_owner_and_borrows_the_instance_backend(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    instance = (await ensure_instance_org(session, "instance")).org
    backend = Service(name="smtp", host="smtp.example.org", org_id=instance.id)
    session.add(backend)
    await session.flush()
    instance.email_backend_id = backend.id
    user = await make_user(session)
    token = await reset_api_token(session, user)
    await session.commit()

    body = await gql(
        client,
        'mutation { addOrg(input: {name: "Greens", title: "The Greens"}) '
        "{ name title ... on PrivateOrg { id processing { emailFrom emailBackend } } } }",
        token=token,
    )
    org = data(body)["addOrg"]
    assert org["name"] == "Greens"
    assert org["processing"] == {"emailFrom": user.email, "emailBackend": "SMTP"}
    roles = data(await gql(client, "{ currentUser { roles { role org { name } } } }", token=token))
    assert roles["currentUser"]["roles"] == [{"role": "owner", "org": {"name": "Greens"}}]

    again = await gql(
        client, 'mutation { addOrg(input: {name: "greens", title: "x"}) { name } }', token=token
    )
    err = error(again)
    assert err["path"] == ["addOrg", "name"]
    assert err["extensions"]["code"] == "bad_arg"
    assert err["message"] == "has already been taken"
    bad = error(
        await gql(
            client, 'mutation { addOrg(input: {name: "a b", title: "x"}) { name } }', token=token
        )
    )
    assert bad["path"] == ["addOrg", "name"]


async def test_org_query_is_for_staff_and_hides_service_passwords(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner",))
    session.add(Service(name="webhook", host="https://h", password="s3cret", org_id=world.org.id))
    await session.commit()
    token = world.tokens["owner"]
    org = data(
        await gql(
            client,
            "query($n: String!) { org(name: $n) { id name services { name host user } "
            "users { email role } keys { id active public } } }",
            {"n": world.org.name},
            token=token,
        )
    )["org"]
    assert org["services"] == [{"name": "WEBHOOK", "host": "https://h", "user": ""}]
    assert org["users"] == [{"email": world.users["owner"].email, "role": "owner"}]
    assert [k["active"] for k in org["keys"]] == [True]
    no_password = await gql(
        client,
        "query($n: String!) { org(name: $n) { services { password } } }",
        {"n": world.org.name},
        token=token,
    )
    assert "Cannot query field 'password'" in error(no_password)["message"]

    missing = error(await gql(client, '{ org(name: "nope") { id } }', token=token))
    assert missing["extensions"]["code"] == "not_found"


async def test_update_org_processing_backends(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    instance = (await ensure_instance_org(session, "instance")).org
    shared = Service(name="mailjet", org_id=instance.id)
    session.add(shared)
    world = await make_world(session)
    await session.flush()
    instance.email_backend_id = shared.id
    own = Service(name="sqs", org_id=world.org.id)
    session.add(own)
    await session.commit()
    token = world.tokens["owner"]
    doc = (
        "mutation($n: String!, $e: ServiceName, $p: ServiceName) {"
        ' updateOrgProcessing(name: $n, emailBackend: $e, pushBackend: $p, emailFrom: "a@b.org")'
        " { processing { emailBackend pushBackend emailFrom } } }"
    )
    result = data(
        await gql(client, doc, {"n": world.org.name, "e": "SYSTEM", "p": "SQS"}, token=token)
    )
    assert result["updateOrgProcessing"]["processing"] == {
        "emailBackend": "MAILJET",
        "pushBackend": "SQS",
        "emailFrom": "a@b.org",
    }
    org = await session.get(Org, world.org.id)
    await session.refresh(org)
    assert org is not None and org.email_backend_id == shared.id

    off = data(await gql(client, doc, {"n": world.org.name, "e": None, "p": "SQS"}, token=token))
    assert off["updateOrgProcessing"]["processing"]["emailBackend"] is None
    unknown = error(
        await gql(client, doc, {"n": world.org.name, "e": "SES", "p": "SQS"}, token=token)
    )
    assert unknown["extensions"]["code"] == "bad_arg"
    assert unknown["path"] == ["updateOrgProcessing", "emailBackend"]


async def test_keys_generate_activate_and_reactivate(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, name = world.tokens["owner"], world.org.name
    generated = data(
        await gql(
            client,
            'mutation($o: String!) { generateKey(orgName: $o, input: {name: "new"})'
            " { id public private active } }",
            {"o": name},
            token=token,
        )
    )["generateKey"]
    assert generated["active"] is False and len(generated["private"]) == 43
    row = await session.get(PublicKey, generated["id"])
    assert row is not None and row.private is None  # an org's private key is never kept

    activate = "mutation($o: String!, $id: Int!) { activateKey(orgName: $o, id: $id) { status } }"
    done = data(await gql(client, activate, {"o": name, "id": generated["id"]}, token=token))
    assert done["activateKey"]["status"] == "SUCCESS"
    keys = data(
        await gql(
            client,
            "query($o: String!) { org(name: $o) { keys { id active expired expiredAt } } }",
            {"o": name},
            token=token,
        )
    )["org"]["keys"]
    by_id = {k["id"]: k for k in keys}
    assert by_id[generated["id"]]["active"] is True
    # the key it replaced is only inactive, as on the original: it can come back
    assert by_id[world.key.id] == {
        "id": world.key.id,
        "active": False,
        "expired": False,
        "expiredAt": None,
    }
    again = data(await gql(client, activate, {"o": name, "id": world.key.id}, token=token))
    assert again["activateKey"]["status"] == "SUCCESS"
    assert await key_states(client, name, token) == {
        world.key.id: (True, False),
        generated["id"]: (False, False),
    }
    none = "mutation($o: String!) { deactivateAllKeys(orgName: $o) { status } }"
    assert data(await gql(client, none, {"o": name}, token=token)) == {
        "deactivateAllKeys": {"status": "SUCCESS"}
    }
    assert await key_states(client, name, token) == {
        world.key.id: (False, False),
        generated["id"]: (False, False),
    }
    data(await gql(client, activate, {"o": name, "id": generated["id"]}, token=token))
    assert await key_states(client, name, token) == {
        world.key.id: (False, False),
        generated["id"]: (True, False),
    }
    # a key marked expired (the original's data may hold some) stays out
    old, _ = await make_key(session, world.org, active=False)
    old.expired = True
    await session.commit()
    expired = error(await gql(client, activate, {"o": name, "id": old.id}, token=token))
    assert expired["message"] == "Public key expired"
    assert expired["extensions"]["code"] == "expired"
    assert expired["path"] == ["activateKey"]
    missing = error(await gql(client, activate, {"o": name, "id": 999999}, token=token))
    assert missing["message"] == "Public key not found"
    assert missing["extensions"]["code"] == "not_found"
    bad = error(
        await gql(
            client,
            "mutation($o: String!) { addKey(orgName: $o, input: "
            '{name: "x", public: "***"}) { id } }',
            {"o": name},
            token=token,
        )
    )
    assert bad["path"] == ["addKey", "public"]
    assert bad["message"] == "Cannot decode public key using Base64"
    short = error(
        await gql(
            client,
            "mutation($o: String!) { addKey(orgName: $o, input: "
            '{name: "x", public: "AAAA"}) { id } }',
            {"o": name},
            token=token,
        )
    )
    assert (short["message"], short["path"]) == ("must be 256 bits", ["addKey", "public"])


async def test_a_reactivated_key_seals_the_new_contacts(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    instance = await ensure_instance_org(session, "instance")
    world = await make_world(session)
    token, name, page = world.tokens["owner"], world.org.name, world.page.id
    first_id, first_private = world.key.id, world.private_key
    sign_public = NaclPublicKey(instance.key.public)
    await session.commit()
    generated = data(
        await gql(
            client,
            'mutation($o: String!) { generateKey(orgName: $o, input: {name: "second"})'
            " { id private } }",
            {"o": name},
            token=token,
        )
    )["generateKey"]
    second_private = PrivateKey(base64url.decode(generated["private"]))
    activate = "mutation($o: String!, $id: Int!) { activateKey(orgName: $o, id: $id) { status } }"

    async def sign_as(email: str) -> tuple[int | None, str]:
        body = await widget_post(
            client, "addActionContact", ADD_ACTION_CONTACT, signature(page, email)
        )
        assert "errors" not in body, body
        await session.rollback()
        contact = (
            await session.execute(select(Contact).order_by(Contact.id.desc()).limit(1))
        ).scalar_one()
        key = first_private if contact.public_key_id == first_id else second_private
        assert contact.crypto_nonce is not None
        clear = Box(key, sign_public).decrypt(contact.payload, contact.crypto_nonce)
        return contact.public_key_id, json.loads(clear)["email"]

    assert await sign_as("one@example.org") == (first_id, "one@example.org")
    data(await gql(client, activate, {"o": name, "id": generated["id"]}, token=token))
    assert await sign_as("two@example.org") == (generated["id"], "two@example.org")
    data(await gql(client, activate, {"o": name, "id": first_id}, token=token))
    assert await sign_as("three@example.org") == (first_id, "three@example.org")


async def key_states(
    client: httpx.AsyncClient, org: str, token: str
) -> dict[int, tuple[bool, bool]]:
    """Each key of the org: (active, expired)."""
    keys = data(
        await gql(
            client,
            "query($o: String!) { org(name: $o) { keys { id active expired } } }",
            {"o": org},
            token=token,
        )
    )["org"]["keys"]
    return {k["id"]: (k["active"], k["expired"]) for k in keys}


async def test_members_and_role_assignment(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "translator"), admin=True)
    newcomer = await make_user(session)
    await session.commit()
    add = (
        "mutation($o: String!, $e: String!, $r: String!) { addOrgUser(orgName: $o, "
        "input: {email: $e, role: $r}) { status } }"
    )
    org = world.org.name
    denied = error(
        await gql(
            client,
            add,
            {"o": org, "e": newcomer.email, "r": "owner"},
            token=world.tokens["translator"],
        )
    )
    assert denied["extensions"]["code"] == "permission_denied"
    ok = await gql(
        client, add, {"o": org, "e": newcomer.email, "r": "campaigner"}, token=world.tokens["owner"]
    )
    assert data(ok)["addOrgUser"]["status"] == "SUCCESS"
    again = await gql(
        client, add, {"o": org, "e": newcomer.email, "r": "campaigner"}, token=world.tokens["owner"]
    )
    assert data(again)["addOrgUser"]["status"] == "NOOP"
    # a member already: nothing to do, whatever the role (as the original answers)
    member = await gql(
        client, add, {"o": org, "e": newcomer.email, "r": "boss"}, token=world.tokens["owner"]
    )
    assert data(member)["addOrgUser"]["status"] == "NOOP"

    async def refused(email: str, role: str, token: str) -> tuple[str, str, list[str]]:
        got = error(await gql(client, add, {"o": org, "e": email, "r": role}, token=token))
        return got["message"], got["extensions"]["code"], got["path"]

    outsider = await make_user(session)
    campaigner = await make_user(session, org=world.org, role="campaigner")
    campaigner_token = await reset_api_token(session, campaigner)
    await session.commit()
    owner = world.tokens["owner"]
    assert await refused("no@body.org", "coordinator", owner) == (
        "User does not exist",
        "not_found",
        ["addOrgUser"],
    )
    assert await refused("no@body.org", "boss", owner) == (
        "User does not exist",
        "not_found",
        ["addOrgUser"],
    )
    assert await refused(outsider.email, "boss", owner) == (
        "No such role",
        "not_found",
        ["addOrgUser"],
    )
    assert await refused(outsider.email, "owner", campaigner_token) == (
        "User must have higher role",
        "permission_denied",
        ["addOrgUser"],
    )
    update = (
        "mutation($o: String!, $e: String!, $r: String!) { updateOrgUser(orgName: $o, "
        "input: {email: $e, role: $r}) { status } }"
    )
    for email, message in (
        ("no@body.org", "User does not exist"),
        (outsider.email, "User is not a member of this org"),
    ):
        got = error(await gql(client, update, {"o": org, "e": email, "r": "owner"}, token=owner))
        assert (got["message"], got["extensions"]["code"], got["path"]) == (
            message,
            "not_found",
            ["updateOrgUser"],
        )
    delete = (
        "mutation($o: String!, $e: String!) { deleteOrgUser(orgName: $o, email: $e) { status } }"
    )
    for email, message in (
        ("no@body.org", "User does not exist"),
        (outsider.email, "User is not a member of this org"),
    ):
        got = error(await gql(client, delete, {"o": org, "e": email}, token=owner))
        assert (got["message"], got["extensions"]["code"], got["path"]) == (
            message,
            "not_found",
            ["deleteOrgUser"],
        )

    # an instance admin joins as owner, then leaves
    admin = world.tokens["admin"]
    joined = data(
        await gql(
            client,
            "mutation($o: String!) { joinOrg(name: $o) { status org { name } } }",
            {"o": org},
            token=admin,
        )
    )
    assert joined["joinOrg"] == {"status": "SUCCESS", "org": {"name": org}}
    left = data(
        await gql(
            client,
            "mutation($o: String!, $e: String!) { deleteOrgUser("
            "orgName: $o, email: $e) { status } }",
            {"o": org, "e": world.users["admin"].email},
            token=admin,
        )
    )
    assert left["deleteOrgUser"]["status"] == "SUCCESS"
    members = await session.execute(select(Staffer).where(Staffer.org_id == world.org.id))
    assert world.users["admin"].id not in {s.user_id for s in members.scalars()}


async def test_update_user_does_not_tell_others_whether_an_address_has_an_account(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner",), admin=True)
    other = await make_user(session)
    await session.commit()
    doc = 'mutation($e: String!) { updateUser(email: $e, input: {jobTitle: "x"}) { email } }'
    member = world.tokens["owner"]
    answers = [
        error(await gql(client, doc, {"e": email}, token=member))
        for email in (other.email, "no@body.org")
    ]
    for got in answers:
        assert (got["message"], got["extensions"]["code"], got["path"]) == (
            "Only admin with manage_users permission can modify other users",
            "permission_denied",
            ["updateUser"],
        )
    mine = await gql(client, doc, {"e": world.users["owner"].email}, token=member)
    assert data(mine)["updateUser"]["email"] == world.users["owner"].email
    admin = world.tokens["admin"]
    assert data(await gql(client, doc, {"e": other.email}, token=admin))["updateUser"] == {
        "email": other.email
    }
    missing = error(await gql(client, doc, {"e": "no@body.org"}, token=admin))
    assert (missing["message"], missing["extensions"]["code"]) == ("User not found", "not_found")


async def test_services_and_templates(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    token, org = world.tokens["owner"], world.org.name
    upsert = (
        "mutation($o: String!, $id: Int, $i: ServiceInput!) { upsertService(orgName: $o, "
        "id: $id, input: $i) { id name host user path } }"
    )
    first = data(
        await gql(
            client,
            upsert,
            {"o": org, "i": {"name": "WEBHOOK", "host": "https://a", "password": "pw"}},
            token=token,
        )
    )["upsertService"]
    second = data(
        await gql(
            client, upsert, {"o": org, "i": {"name": "WEBHOOK", "host": "https://b"}}, token=token
        )
    )["upsertService"]
    assert first["id"] == second["id"] and second["host"] == "https://b"
    rename = error(
        await gql(client, upsert, {"o": org, "id": first["id"], "i": {"name": "SQS"}}, token=token)
    )
    assert rename["path"] == ["upsertService", "name"]
    missing = error(
        await gql(client, upsert, {"o": org, "id": 999999, "i": {"name": "WEBHOOK"}}, token=token)
    )
    assert (missing["message"], missing["extensions"]["code"], missing["path"]) == (
        "Cannot find service with 999999",
        "not_found",
        ["upsertService"],
    )
    stored = await session.get(Service, first["id"])
    assert stored is not None and stored.password == "pw"

    template = (
        "mutation($o: String!, $i: EmailTemplateInput!) { upsertTemplate(orgName: $o, input: $i) }"
    )
    ok = await gql(
        client,
        template,
        {
            "o": org,
            "i": {
                "name": "thanks",
                "locale": "en",
                "subject": "Hi\n{{firstName}}",
                "html": "<p>{{#x}}y{{/x}}</p>",
            },
        },
        token=token,
    )
    assert data(ok)["upsertTemplate"] == "SUCCESS"
    broken = error(
        await gql(
            client,
            template,
            {
                "o": org,
                "i": {"name": "thanks", "locale": "en", "subject": "Hi", "html": "<p>{{#x}}</p>"},
            },
            token=token,
        )
    )
    assert broken["path"] == ["upsertTemplate", "html"]
    names = data(
        await gql(
            client,
            "query($o: String!) { org(name: $o) { processing { emailTemplates } } }",
            {"o": org},
            token=token,
        )
    )
    assert names["org"]["processing"]["emailTemplates"] == ["thanks@en"]


async def test_instance_org_keeps_its_generated_private_key(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    instance = (await ensure_instance_org(session, "instance")).org
    admin = await make_user(session, admin=True, org=instance, role="owner")
    token = await reset_api_token(session, admin)
    await make_key(session, instance)
    await session.commit()
    key = data(
        await gql(
            client,
            'mutation { generateKey(orgName: "instance", input: {name: "rotated"}) { id } }',
            token=token,
        )
    )["generateKey"]
    row = await session.get(PublicKey, key["id"])
    assert row is not None and row.private is not None
