"""`PrivateOrg.auditLog`: the org's trail for its owners and instance admins, no one else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.audit.service import record, user_actor
from proca_server.models import AuditLog
from tests.audit.helpers import assert_nothing_personal, sign_people
from tests.factories import make_world
from tests.graphql_helpers import data, error, gql

AUDIT = (
    "query($o: String!, $since: DateTime, $limit: Int) { org(name: $o) { auditLog(since: $since, "
    "limit: $limit) { id actor action resourceId count details insertedAt } } }"
)
ACTIONS = "query($o: String!) { actions(orgName: $o) { actionId } }"


async def test_owners_read_their_orgs_trail_newest_first_with_since_and_limit(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    other = await make_world(session)
    await sign_people(session, world)
    now = datetime.now(UTC).replace(microsecond=0)
    session.add(
        AuditLog(
            actor_id="cli",
            resource="oldThing",
            resource_id="7",
            org_id=world.org.id,
            changeset={},
            inserted_at=now - timedelta(days=3),
        )
    )
    record(session, actor="cli", action="elsewhere", org_id=other.org.id)
    await session.commit()
    token, org = world.tokens["owner"], world.org.name
    data(await gql(client, ACTIONS, {"o": org}, token=token))

    log = data(await gql(client, AUDIT, {"o": org}, token=token))["org"]["auditLog"]
    assert [e["action"] for e in log] == ["actions", "oldThing"]
    newest = log[0]
    assert newest["actor"] == user_actor(world.users["owner"].id)
    assert newest["count"] == 2 and newest["resourceId"] == ""
    assert json.loads(newest["details"])["onlyOptIn"] is True
    assert newest["insertedAt"].endswith("Z")
    assert log[1]["count"] is None and log[1]["resourceId"] == "7"

    since = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    recent = data(await gql(client, AUDIT, {"o": org, "since": since}, token=token))
    assert [e["action"] for e in recent["org"]["auditLog"]] == ["actions"]
    limited = data(await gql(client, AUDIT, {"o": org, "limit": 1}, token=token))
    assert [e["action"] for e in limited["org"]["auditLog"]] == ["actions"]


async def test_instance_admins_read_any_orgs_trail(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, admin=True)
    record(session, actor="cli", action="generateKey", org_id=world.org.id, resource_id=3)
    await session.commit()
    # an admin who is not a member reaches the org's private view through its campaign
    query = (
        "query($id: Int!) { campaign(id: $id) { org { ... on PrivateOrg { auditLog "
        "{ action resourceId } } } } }"
    )
    found = data(await gql(client, query, {"id": world.campaign.id}, token=world.tokens["admin"]))
    assert found["campaign"]["org"]["auditLog"] == [{"action": "generateKey", "resourceId": "3"}]


async def test_campaigners_and_other_orgs_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "campaigner"))
    other = await make_world(session)
    record(session, actor="cli", action="generateKey", org_id=world.org.id)
    await session.commit()

    denied = await gql(client, AUDIT, {"o": world.org.name}, token=world.tokens["campaigner"])
    assert error(denied)["extensions"]["code"] == "permission_denied"
    assert denied["data"] is None
    outsider = await gql(client, AUDIT, {"o": world.org.name}, token=other.tokens["owner"])
    assert error(outsider)["extensions"]["code"] == "unauthorized"  # not a member
    assert outsider["data"] is None
    # the other org's owner sees their own (empty) trail, none of this org's
    own = data(await gql(client, AUDIT, {"o": other.org.name}, token=other.tokens["owner"]))
    assert own["org"]["auditLog"] == []


async def test_the_trail_a_client_reads_holds_nothing_personal(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    await sign_people(session, world)
    token, org = world.tokens["owner"], world.org.name
    contacts = "query($o: String!, $e: String) { contacts(orgName: $o, email: $e) { actionId } }"
    data(await gql(client, contacts, {"o": org, "e": "quentin.private@example.org"}, token=token))
    log = data(await gql(client, AUDIT, {"o": org}, token=token))["org"]["auditLog"]
    assert [e["action"] for e in log] == ["contacts"]
    entry = AuditLog(
        actor_id=log[0]["actor"],
        resource=log[0]["action"],
        resource_id=log[0]["resourceId"],
        changeset=json.loads(log[0]["details"]),
    )
    assert_nothing_personal([entry])
