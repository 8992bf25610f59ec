"""The export queries and GDPR erasure (docs/export.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.action.export import EXPORTED, ExportFilter, export_actions, scoped
from proca_server.db import is_postgres
from proca_server.kit import base64url
from proca_server.models import Action, Contact, Supporter
from proca_server.models.enums import ActionProcessingStatus, SupporterProcessingStatus
from proca_server.supporter.fingerprint import email_fingerprint
from tests.factories import World, make_world
from tests.graphql_helpers import data, error, gql

SEED = ""


async def sign(
    session: AsyncSession,
    world: World,
    email: str,
    *,
    opt_in: bool = True,
    accepted: bool = True,
    testing: bool = False,
) -> Action:
    supporter = Supporter(
        fingerprint=email_fingerprint(SEED, email),
        campaign_id=world.campaign.id,
        action_page_id=world.page.id,
        email=email,
        first_name="Ann",
        processing_status=(
            SupporterProcessingStatus.ACCEPTED if accepted else SupporterProcessingStatus.NEW
        ),
    )
    session.add(supporter)
    await session.flush()
    session.add(
        Contact(
            supporter_id=supporter.id,
            org_id=world.org.id,
            payload=json.dumps({"email": email, "firstName": "Ann"}).encode(),
            communication_consent=opt_in,
            delivery_consent=True,
        )
    )
    action = Action(
        action_type="petition",
        campaign_id=world.campaign.id,
        action_page_id=world.page.id,
        supporter_id=supporter.id,
        with_consent=True,
        testing=testing,
        fields={"comment": "yes"},
        processing_status=(
            ActionProcessingStatus.DELIVERED if accepted else ActionProcessingStatus.NEW
        ),
    )
    session.add(action)
    await session.flush()
    return action


EXPORT = (
    "query($o: String!, $optIn: Boolean, $testing: Boolean, $start: Int) { actions(orgName: $o, "
    "onlyOptIn: $optIn, includeTesting: $testing, start: $start) { actionId actionType "
    "customFields contact { contactRef payload nonce publicKey { id } } privacy { optIn "
    "withConsent emailStatus } campaign { name } actionPage { name } } }"
)


async def test_actions_export_filters(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    a = await sign(session, world, "a@example.org")
    b = await sign(session, world, "b@example.org", opt_in=False)
    await sign(session, world, "c@example.org", accepted=False)
    t = await sign(session, world, "t@example.org", testing=True)
    await session.commit()
    token, org = world.tokens["owner"], world.org.name

    default = data(await gql(client, EXPORT, {"o": org}, token=token))["actions"]
    assert [x["actionId"] for x in default] == [a.id]
    row = default[0]
    assert row["customFields"] == '{"comment":"yes"}'
    assert json.loads(row["contact"]["payload"]) == {"email": "a@example.org", "firstName": "Ann"}
    assert row["contact"]["nonce"] is None and row["contact"]["publicKey"] is None
    assert row["contact"]["contactRef"] == base64url.encode(
        email_fingerprint(SEED, "a@example.org")
    )
    assert row["privacy"] == {"optIn": True, "withConsent": True, "emailStatus": "NONE"}

    everyone = data(
        await gql(client, EXPORT, {"o": org, "optIn": False, "testing": True}, token=token)
    )["actions"]
    assert [x["actionId"] for x in everyone] == [a.id, b.id, t.id]
    paged = data(await gql(client, EXPORT, {"o": org, "optIn": False, "start": b.id}, token=token))[
        "actions"
    ]
    assert [x["actionId"] for x in paged] == [b.id]

    campaigner = await make_world(session, roles=("campaigner",))
    denied = error(
        await gql(client, EXPORT, {"o": campaigner.org.name}, token=campaigner.tokens["campaigner"])
    )
    assert denied["extensions"]["code"] == "permission_denied"


async def test_contacts_gdpr_lookup_and_delete_contact(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    unconfirmed = await sign(session, world, "gdpr@example.org", accepted=False, opt_in=False)
    await sign(session, world, "other@example.org")
    await session.commit()
    token, org = world.tokens["owner"], world.org.name
    found = data(
        await gql(
            client,
            "query($o: String!, $e: String) { contacts(orgName: $o, email: $e) { actionId } }",
            {"o": org, "e": " GDPR@example.org "},
            token=token,
        )
    )["contacts"]
    assert [x["actionId"] for x in found] == [unconfirmed.id]

    ref = base64url.encode(email_fingerprint(SEED, "other@example.org"))
    done = data(
        await gql(
            client,
            "mutation($o: String!, $r: String!) { deleteContact(orgName: $o, contactRef: $r) }",
            {"o": org, "r": ref},
            token=token,
        )
    )
    assert done["deleteContact"] == "SUCCESS"
    await session.rollback()  # end the read snapshot, see fresh data
    supporter = (
        await session.execute(select(Supporter).where(Supporter.email.is_(None)))
    ).scalar_one()
    assert supporter.first_name is None
    contacts = (
        await session.execute(select(Contact).where(Contact.supporter_id == supporter.id))
    ).first()
    assert contacts is None
    actions = (
        await session.execute(select(Action).where(Action.supporter_id == supporter.id))
    ).first()
    assert actions is not None  # actions remain, anonymous

    bad = error(
        await gql(
            client,
            'mutation($o: String!) { deleteContact(orgName: $o, contactRef: "*") }',
            {"o": org},
            token=token,
        )
    )
    assert bad["path"] == ["deleteContact", "contactRef"]


async def test_export_actions_counts_the_actions_and_times_the_call(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    for email in ("m1@example.org", "m2@example.org"):
        await sign(session, world, email)
    await session.commit()
    token, org, org_id = world.tokens["owner"], world.org.name, str(world.org.id)

    def exported() -> tuple[float, float]:
        labels = {"org_id": org_id}
        count = REGISTRY.get_sample_value("proca_export_actions_total", labels) or 0.0
        calls = REGISTRY.get_sample_value("proca_export_actions_seconds_count", labels) or 0.0
        return count, calls

    before = exported()
    query = "query($o: String!) { exportActions(orgName: $o) { actionId } }"
    assert len(data(await gql(client, query, {"o": org}, token=token))["exportActions"]) == 2
    assert exported() == (before[0] + 2, before[1] + 1)
    # `actions` is the same query under its new name
    assert len(data(await gql(client, EXPORT, {"o": org}, token=token))["actions"]) == 2
    assert exported() == (before[0] + 4, before[1] + 2)
    # a GDPR lookup is no export; a refused call exports nothing
    lookup = 'query($o: String!) { contacts(orgName: $o, email: "m1@example.org") { actionId } }'
    assert len(data(await gql(client, lookup, {"o": org}, token=token))["contacts"]) == 1
    campaigner = await make_world(session, roles=("campaigner",))
    error(await gql(client, query, {"o": org}, token=campaigner.tokens["campaigner"]))
    assert exported() == (before[0] + 4, before[1] + 2)


async def test_a_page_holds_the_one_querys_rows_however_far_apart_the_actions_are(
    session: AsyncSession,
) -> None:
    """export_actions walks the actions in id order first on PostgreSQL and asks the planner for
    what the walk leaves: the rows are those of the one query, whatever the gaps."""
    world = await make_world(session)
    other = await make_world(session)
    ours = []
    for run in range(6):
        for i in range(run + 1):
            ours.append((await sign(session, world, f"w{run}-{i}@example.org")).id)
        await sign(session, world, f"out{run}@example.org", opt_in=False)
        await sign(session, world, f"t{run}@example.org", testing=True)
        for j in range(run * 7):  # gaps wider than a one-row page's walk
            await sign(session, other, f"o{run}-{j}@example.org")
    await session.commit()
    starts = [None, *range(min(ours) - 1, max(ours) + 2)]
    for limit in (1, 3, 100):
        for start in starts:
            for criteria in (
                ExportFilter(start=start, limit=limit),
                ExportFilter(start=start, limit=limit, only_opt_in=False, include_testing=True),
            ):
                one_query = scoped(world.org.id, criteria, *EXPORTED).order_by(Action.id)
                expected = (await session.execute(one_query.limit(limit))).all()
                got = await export_actions(session, world.org, criteria)
                assert [tuple(r) for r in got] == [tuple(r) for r in expected], (start, limit)
    if is_postgres(session):
        # the planner's settings are the defaults again for what follows in the transaction
        assert await session.scalar(text("SHOW enable_sort")) == "on"
        assert await session.scalar(text("SHOW jit")) == await session.scalar(
            text("SELECT reset_val FROM pg_settings WHERE name = 'jit'")
        )


async def test_a_page_within_the_walk_is_one_statement(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_world(session)
    first = await sign(session, world, "a@example.org")
    for i in range(4):
        await sign(session, world, f"{i}@example.org")
    await session.commit()
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2].lstrip())

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        rows = await export_actions(session, world.org, ExportFilter(start=first.id, limit=3))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert [r.action_id for r in rows] == [first.id, first.id + 1, first.id + 2]
    selects = [i for i, sql in enumerate(statements) if sql.startswith("SELECT")]
    assert len(selects) == 1
    if is_postgres(session):
        # planned without a sort and compiled without JIT (a large database's walk passes
        # jit_above_cost: 13 ms of compiling for a 37 ms statement)
        before = statements[: selects[0]]
        assert "SET LOCAL enable_sort = off" in before and "SET LOCAL jit = off" in before
