"""Each staff read of personal data and each key change or erasure leaves an audit entry:
who, what, which org, how many rows, and nothing personal."""

from __future__ import annotations

import httpx
from nacl.public import PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.audit.service import user_actor
from proca_server.kit import base64url
from tests.audit.helpers import PEOPLE, assert_nothing_personal, contact_ref, entries, sign_people
from tests.factories import make_world
from tests.graphql_helpers import data, error, gql

ACTIONS = "query($o: String!) { actions(orgName: $o) { actionId contact { payload } } }"
EXPORT = (
    "query($o: String!, $c: String, $l: Int, $s: Int) { exportActions(orgName: $o, "
    "campaignName: $c, limit: $l, start: $s) { actionId contact { contactRef payload } } }"
)
CONTACTS = (
    "query($o: String!, $e: String) { contacts(orgName: $o, email: $e) "
    "{ actionId contact { contactRef payload } } }"
)


async def test_each_export_read_leaves_an_entry_with_its_count_and_parameters(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    await sign_people(session, world)
    token, org = world.tokens["owner"], world.org.name
    owner = user_actor(world.users["owner"].id)

    assert len(data(await gql(client, ACTIONS, {"o": org}, token=token))["actions"]) == 2
    exported = data(
        await gql(client, EXPORT, {"o": org, "c": world.campaign.name, "l": 1, "s": 0}, token=token)
    )["exportActions"]
    assert len(exported) == 1
    email = PEOPLE[0][0]
    found = data(await gql(client, CONTACTS, {"o": org, "e": email}, token=token))["contacts"]
    assert len(found) == 1

    trail = await entries(session)
    assert sorted((e.resource, e.actor_id, e.org_id, e.changeset["count"]) for e in trail) == [
        ("actions", owner, world.org.id, 2),
        ("contacts", owner, world.org.id, 1),
        ("exportActions", owner, world.org.id, 1),
    ]
    by_action = {e.resource: e for e in trail}
    assert by_action["exportActions"].changeset == {
        "campaignName": world.campaign.name,
        "start": 0,
        "limit": 1,
        "onlyOptIn": True,
        "onlyDoubleOptIn": False,
        "includeTesting": False,
        "count": 1,
    }
    # an email lookup is flagged, never named
    assert by_action["contacts"].changeset["byEmail"] is True
    assert_nothing_personal(trail)


async def test_a_read_is_recorded_even_when_another_field_of_the_query_fails(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    await sign_people(session, world)
    query = (
        "query($o: String!) { actions(orgName: $o) { actionId } "
        'campaign(name: "no-such-campaign") { id } }'
    )
    body = await gql(client, query, {"o": world.org.name}, token=world.tokens["owner"])
    assert error(body)["extensions"]["code"] == "not_found"
    assert len(body["data"]["actions"]) == 2  # the personal data went out

    trail = await entries(session)
    assert [(e.resource, e.org_id, e.changeset["count"]) for e in trail] == [
        ("actions", world.org.id, 2)
    ]


async def test_a_refused_read_and_an_anonymous_query_leave_no_entry(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "campaigner"))
    await sign_people(session, world)
    denied = error(
        await gql(client, ACTIONS, {"o": world.org.name}, token=world.tokens["campaigner"])
    )
    assert denied["extensions"]["code"] == "permission_denied"
    page = "query($n: String!) { actionPage(name: $n) { id } }"
    data(await gql(client, page, {"n": world.page.name}))
    assert await entries(session) == []


async def test_key_changes_are_recorded_in_their_transaction(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, org = world.tokens["owner"], world.org.name
    owner = user_actor(world.users["owner"].id)

    generated = data(
        await gql(
            client,
            'mutation($o: String!) { generateKey(orgName: $o, input: {name: "fresh"}) { id } }',
            {"o": org},
            token=token,
        )
    )["generateKey"]["id"]
    public = base64url.encode(bytes(PrivateKey.generate().public_key))
    added = data(
        await gql(
            client,
            "mutation($o: String!, $p: String!) "
            '{ addKey(orgName: $o, input: {name: "imported", public: $p}) { id } }',
            {"o": org, "p": public},
            token=token,
        )
    )["addKey"]["id"]
    activate = "mutation($o: String!, $id: Int!) { activateKey(orgName: $o, id: $id) { status } }"
    data(await gql(client, activate, {"o": org, "id": added}, token=token))
    # a refused change leaves nothing: the key does not exist
    missing = error(await gql(client, activate, {"o": org, "id": added + 1000}, token=token))
    assert missing["extensions"]["code"] == "not_found"
    data(
        await gql(
            client,
            "mutation($o: String!) { deactivateAllKeys(orgName: $o) { status } }",
            {"o": org},
            token=token,
        )
    )

    trail = await entries(session)
    assert sorted((e.resource, e.resource_id) for e in trail) == sorted(
        [
            ("generateKey", str(generated)),
            ("addKey", str(added)),
            ("activateKey", str(added)),
            ("deactivateAllKeys", ""),
        ]
    )
    assert {(e.actor_id, e.org_id) for e in trail} == {(owner, world.org.id)}


async def test_delete_contact_is_recorded_without_whom(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    await sign_people(session, world)
    email = PEOPLE[1][0]
    data(
        await gql(
            client,
            "mutation($o: String!, $r: String!) { deleteContact(orgName: $o, contactRef: $r) }",
            {"o": world.org.name, "r": contact_ref(email)},
            token=world.tokens["owner"],
        )
    )
    trail = await entries(session)
    assert [(e.resource, e.actor_id, e.org_id, e.resource_id) for e in trail] == [
        ("deleteContact", user_actor(world.users["owner"].id), world.org.id, "")
    ]
    assert trail[0].changeset == {"count": 1}
    assert_nothing_personal(trail)
