"""Members of an org: nobody changes or removes a stronger member, any member may leave, and
an org never loses its last owner."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.auth.permissions import LEGACY_OWNER, ROLES
from proca_server.errors import BadArgument
from proca_server.models import Org, Staffer, User
from proca_server.org import service
from proca_server.user.service import reset_api_token
from tests.factories import make_user, make_world
from tests.graphql_helpers import data, error, gql

UPDATE = (
    "mutation($o: String!, $e: String!, $r: String!) { updateOrgUser(orgName: $o, "
    "input: {email: $e, role: $r}) { status } }"
)
DELETE = "mutation($o: String!, $e: String!) { deleteOrgUser(orgName: $o, email: $e) { status } }"


async def update_member(
    client: httpx.AsyncClient, org: Org, member: User, role: str, token: str
) -> dict[str, Any]:
    return await gql(client, UPDATE, {"o": org.name, "e": member.email, "r": role}, token=token)


async def delete_member(
    client: httpx.AsyncClient, org: Org, member: User, token: str
) -> dict[str, Any]:
    return await gql(client, DELETE, {"o": org.name, "e": member.email}, token=token)


async def perms_of(session: AsyncSession, org: Org, user: User) -> int | None:
    result = await session.execute(
        select(Staffer.perms).where(Staffer.org_id == org.id, Staffer.user_id == user.id)
    )
    return result.scalar_one_or_none()


async def test_a_campaigner_can_neither_demote_nor_remove_an_owner(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "campaigner", "coordinator"))
    other = await make_user(session, org=world.org, role="campaigner")
    await session.commit()
    owner, campaigner = world.users["owner"], world.tokens["campaigner"]

    demoted = error(await update_member(client, world.org, owner, "coordinator", campaigner))
    removed = error(await delete_member(client, world.org, owner, campaigner))

    for refused in (demoted, removed):
        assert refused["extensions"]["code"] == "permission_denied"
        assert "stronger" in refused["message"]
    assert await perms_of(session, world.org, owner) == ROLES["owner"]
    # members as strong as the caller, or weaker, stay theirs to manage
    changed = await update_member(client, world.org, other, "coordinator", campaigner)
    assert data(changed)["updateOrgUser"]["status"] == "SUCCESS"
    gone = await delete_member(client, world.org, world.users["coordinator"], campaigner)
    assert data(gone)["deleteOrgUser"]["status"] == "SUCCESS"
    assert await perms_of(session, world.org, other) == ROLES["coordinator"]
    assert await perms_of(session, world.org, world.users["coordinator"]) is None


async def test_a_legacy_owner_is_an_owner_for_both_rules(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("campaigner",))
    legacy = await make_user(session, org=world.org, role="owner")
    staffer = (
        await session.execute(select(Staffer).where(Staffer.user_id == legacy.id))
    ).scalar_one()
    staffer.perms = int(LEGACY_OWNER)
    legacy_token = await reset_api_token(session, legacy)
    await session.commit()

    refused = error(
        await update_member(client, world.org, legacy, "coordinator", world.tokens["campaigner"])
    )
    assert refused["extensions"]["code"] == "permission_denied"
    last = error(await delete_member(client, world.org, legacy, legacy_token))
    assert last["extensions"]["code"] == "bad_arg"
    assert await perms_of(session, world.org, legacy) == LEGACY_OWNER


async def test_the_last_owner_can_neither_be_demoted_nor_removed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "campaigner"), admin=True)
    owner = world.users["owner"]

    attempts = [
        await update_member(client, world.org, owner, "campaigner", world.tokens["owner"]),
        await delete_member(client, world.org, owner, world.tokens["owner"]),
        await update_member(client, world.org, owner, "campaigner", world.tokens["admin"]),
        await delete_member(client, world.org, owner, world.tokens["admin"]),
    ]

    for body in attempts:
        refused = error(body)
        assert refused["extensions"]["code"] == "bad_arg"
        assert refused["message"] == (
            "is the last owner of the org; make another member owner first"
        )
        assert refused["path"][-1] == "email"
    assert await perms_of(session, world.org, owner) == ROLES["owner"]

    # with a second owner, the first may go: an instance admin demotes, the owner leaves
    promoted = await update_member(
        client, world.org, world.users["campaigner"], "owner", world.tokens["owner"]
    )
    assert data(promoted)["updateOrgUser"]["status"] == "SUCCESS"
    demoted = await update_member(client, world.org, owner, "campaigner", world.tokens["admin"])
    assert data(demoted)["updateOrgUser"]["status"] == "SUCCESS"
    left = await delete_member(client, world.org, owner, world.tokens["owner"])
    assert data(left)["deleteOrgUser"]["status"] == "SUCCESS"
    assert await perms_of(session, world.org, owner) is None
    assert await perms_of(session, world.org, world.users["campaigner"]) == ROLES["owner"]


async def test_any_member_may_leave_the_org(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "coordinator", "translator"))

    for role in ("coordinator", "translator"):
        left = await delete_member(client, world.org, world.users[role], world.tokens[role])
        assert data(left)["deleteOrgUser"]["status"] == "SUCCESS"
        assert await perms_of(session, world.org, world.users[role]) is None
    # but for the last owner
    refused = error(
        await delete_member(client, world.org, world.users["owner"], world.tokens["owner"])
    )
    assert refused["extensions"]["code"] == "bad_arg"


async def test_two_owners_leaving_at_once_leave_one_owner(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    world = await make_world(session, roles=("owner",))
    first = world.users["owner"]
    second = await make_user(session, org=world.org, role="owner")
    await session.commit()

    async def leave(s: AsyncSession, owner: User) -> None:
        org = await s.get_one(Org, world.org.id)
        user = await s.get_one(User, owner.id)
        staffer = await service.get_staffer(s, org.id, owner.id)
        await service.remove_member(s, org, user, caller_perms=user.perms, staffer=staffer)

    async with sessionmaker() as a, sessionmaker() as b:
        await leave(a, first)
        racing = asyncio.create_task(leave(b, second))
        await asyncio.sleep(0.3)
        assert not racing.done()  # waits for the other transaction
        await a.commit()
        with pytest.raises(BadArgument):
            await racing
        await b.rollback()

    assert await perms_of(session, world.org, first) is None
    assert await perms_of(session, world.org, second) == ROLES["owner"]


async def test_an_admin_who_joined_an_ownerless_org_may_leave_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # the CLIs' `user join` then `user leave`: the org had no owner before the admin came
    world = await make_world(session, roles=(), admin=True)
    org, admin, token = world.org, world.users["admin"], world.tokens["admin"]
    join = "mutation($o: String!) { joinOrg(name: $o) { status } }"
    assert data(await gql(client, join, {"o": org.name}, token=token))["joinOrg"] == {
        "status": "SUCCESS"
    }
    assert await perms_of(session, org, admin) is not None

    left = await delete_member(client, org, admin, token)

    assert data(left)["deleteOrgUser"]["status"] == "SUCCESS"
    assert await perms_of(session, org, admin) is None
