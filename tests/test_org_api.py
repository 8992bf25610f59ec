"""Orgs, members, keys, services and templates through the GraphQL API."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Org, PublicKey, Service, Staffer
from proca_server.org.service import ensure_instance_org
from proca_server.user.service import reset_api_token
from tests.factories import make_key, make_user, make_world
from tests.graphql_helpers import data, error, gql


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


async def test_keys_generate_activate_expire(
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
    assert by_id[world.key.id] == {
        "id": world.key.id,
        "active": False,
        "expired": True,
        "expiredAt": by_id[world.key.id]["expiredAt"],
    }
    assert by_id[world.key.id]["expiredAt"] is not None
    expired = error(await gql(client, activate, {"o": name, "id": world.key.id}, token=token))
    assert expired["extensions"]["code"] == "expired"
    missing = error(await gql(client, activate, {"o": name, "id": 999999}, token=token))
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
    unknown = error(
        await gql(
            client, add, {"o": org, "e": newcomer.email, "r": "boss"}, token=world.tokens["owner"]
        )
    )
    assert unknown["extensions"]["code"] == "bad_arg"
    nobody = error(
        await gql(
            client,
            add,
            {"o": org, "e": "no@body.org", "r": "coordinator"},
            token=world.tokens["owner"],
        )
    )
    assert nobody["extensions"]["code"] == "not_found"

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
