"""Events the API emits (processing/events.py) reach the org's event queue, the global
`system.deliver` queue for `system.*` ones, and an event webhook over HTTP: on the embedded
queue and on RabbitMQ. They leave after commit, never for a rolled-back change, and a broker
that hangs or fails never holds up nor fails the request."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proca_server.app_state import state_of
from proca_server.broker import open_broker
from proca_server.broker.store import peek_messages
from proca_server.config import Settings
from proca_server.confirm import service as confirms
from proca_server.models import ActionPage, Campaign, Org, Service, User
from proca_server.models.enums import ConfirmOperation
from proca_server.processing.messages import Publication
from proca_server.processing.runtime import RuntimeOptions
from proca_server.user.service import reset_api_token
from tests.account_helpers import app_settings, csrf_for
from tests.factories import PASSWORD, make_campaign, make_org, make_page, make_user, unique
from tests.graphql_helpers import data, error, gql
from tests.local_http import serve
from tests.pipeline.conftest import (
    FAST,
    amqp_channel,
    delete_org_entities,
    eventually,
    fresh_org_id,
    running,
)

UPDATE_CAMPAIGN = """
mutation($id: Int!, $title: String!) {
  updateCampaign(id: $id, input: {title: $title}) { id }
}"""
UPSERT_CAMPAIGN = """
mutation($org: String!, $name: String!, $title: String!) {
  upsertCampaign(orgName: $org, input: {name: $name, title: $title, config: "{\\"k\\": 1}"}) {
    id
  }
}"""
UPDATE_PROCESSING = """
mutation($name: String!) {
  updateCampaignProcessing(name: $name, actionConfirm: false) { id }
}"""
LAUNCH = """
mutation($name: String!) { launchActionPage(name: $name, message: "Let us in") { status } }"""
ACCEPT_ORG = """
mutation($name: String!, $confirm: ConfirmInput!) {
  acceptOrgConfirm(name: $name, confirm: $confirm) { status }
}"""
INVITE = """
mutation($org: String!, $email: String!) {
  inviteOrgUser(orgName: $org, input: {email: $email, role: "campaigner"}) { code }
}"""
ADD_ORG = """
mutation($name: String!) { addOrg(input: {name: $name, title: "Fresh Org"}) { name } }"""
SYSTEM = "system.deliver"
JWT_SECRET = "another-shared-secret-of-32-bytes-or-more"

Message = dict[str, Any]


# --- a coalition: the instance org, a lead org and a partner org, each reading its events ------


@dataclass(frozen=True)
class Ref:
    """A row's values, read once: the test's session rolls back while it polls the queues."""

    id: int
    name: str
    title: str | None = None


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    token: str


@dataclass(frozen=True)
class Coalition:
    instance: Ref
    lead: Ref
    partner: Ref
    campaign: Ref
    partner_page: Ref
    lead_owner: Person
    partner_owner: Person


def ref(row: Org | Campaign | ActionPage) -> Ref:
    return Ref(row.id, row.name, getattr(row, "title", None))


async def person(session: AsyncSession, org: Org) -> Person:
    user = await make_user(session, org=org, role="owner")
    return Person(user.id, user.email, await reset_api_token(session, user))


@pytest.fixture
async def org_ids(broker_settings: Settings) -> AsyncIterator[list[int]]:
    """Fresh org ids, their RabbitMQ entities removed before and after."""
    ids = [fresh_org_id() for _ in range(3)]
    if broker_settings.amqp_url:
        for org_id in ids:
            await delete_org_entities(org_id)
    yield ids
    if broker_settings.amqp_url:
        for org_id in ids:
            await delete_org_entities(org_id)


async def coalition(session: AsyncSession, settings: Settings, ids: list[int]) -> Coalition:
    instance = await make_org(
        session, settings.org_name, id=ids[0], title="Instance", custom_event_deliver=True
    )
    lead = await make_org(session, id=ids[1], title="Lead Org", custom_event_deliver=True)
    partner = await make_org(session, id=ids[2], title="Partner Org", custom_event_deliver=True)
    campaign = await make_campaign(session, lead)
    await make_page(session, campaign, lead)
    partner_page = await make_page(session, campaign, partner)
    world = Coalition(
        ref(instance),
        ref(lead),
        ref(partner),
        ref(campaign),
        ref(partner_page),
        await person(session, lead),
        await person(session, partner),
    )
    await session.commit()
    return world


# --- reading the queues --------------------------------------------------------------------------


@dataclass
class Inbox:
    """What reached a queue: (routing key, message). RabbitMQ's are taken off the queue, so
    kept; the global `system.deliver` holds other runs' messages too, hence the filters."""

    session: AsyncSession
    settings: Settings
    seen: dict[str, list[tuple[str, Message]]] = field(default_factory=dict)

    async def messages(self, queue: str) -> list[tuple[str, Message]]:
        if self.settings.amqp_url:
            kept = self.seen.setdefault(queue, [])
            async with amqp_channel() as channel:
                q = await channel.declare_queue(queue, passive=True)
                while (m := await q.get(fail=False)) is not None:
                    kept.append((m.routing_key or "", json.loads(m.body)))
                    await m.ack()
            return kept
        await self.session.rollback()
        found = await peek_messages(self.session, queue, 1000)
        return [(m.routing_key, json.loads(m.body)) for m in found]

    async def wait(
        self, queue: str, routing_key: str, match: Callable[[Message], bool] = lambda _: True
    ) -> Message:
        found: list[Message] = []

        async def arrived() -> bool:
            found[:] = [m for k, m in await self.messages(queue) if k == routing_key and match(m)]
            return bool(found)

        await eventually(arrived)
        [message] = found
        return message


def cus(org: Ref) -> str:
    return f"cus.{org.id}.deliver"


def system_shape(message: Message, event_type: str) -> None:
    """The keys of a system event (an action-shaped message of stage `system`)."""
    assert list(message) == [
        "schema",
        "stage",
        "eventType",
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
    assert (message["schema"], message["stage"], message["eventType"]) == (
        "proca:action:2",
        "system",
        event_type,
    )
    assert message["actionId"] is None and message["personalInfo"] is None
    assert message["action"]["actionType"] == event_type
    assert message["action"]["customFields"] == {} and message["action"]["testing"] is False
    assert message["privacy"] == {} and message["tracking"] == {}


def user_contact(email: str) -> Message:
    return {
        "firstName": email.split("@")[0],
        "email": email,
        "contactRef": None,
        "dupeRank": 0,
        "area": None,
    }


# --- each event, on the embedded queue and on RabbitMQ -------------------------------------------


async def test_campaign_updates_reach_the_lead_org_and_the_system_queue(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
) -> None:
    world = await coalition(session, state_of(app).settings, org_ids)
    lead, campaign = world.lead, world.campaign
    inbox = Inbox(session, broker_settings)
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, FAST):
            body = await gql(
                client,
                UPDATE_CAMPAIGN,
                {"id": campaign.id, "title": "Renamed"},
                token=world.lead_owner.token,
            )
            data(body)
            updated = await inbox.wait(
                cus(lead), "system.campaign_updated", lambda m: m["campaign"]["title"] == "Renamed"
            )
            assert list(updated) == [
                "schema",
                "eventType",
                "timestamp",
                "campaign",
                "campaignId",
                "orgId",
            ]
            assert (updated["schema"], updated["eventType"]) == (
                "proca:event:2",
                "campaign_updated",
            )
            assert updated["campaign"] == {
                "id": campaign.id,
                "name": campaign.name,
                "externalId": None,
                "title": "Renamed",
                "config": {},
                "contactSchema": "basic",
                "org": {"name": lead.name, "title": "Lead Org"},
            }
            assert (updated["campaignId"], updated["orgId"]) == (campaign.id, lead.id)
            assert updated["timestamp"].endswith("Z")
            # routed `system.*`: the global queue has it too
            await inbox.wait(SYSTEM, "system.campaign_updated", lambda m: m["orgId"] == lead.id)

            variables = {"org": lead.name, "name": campaign.name, "title": "Upserted"}
            data(await gql(client, UPSERT_CAMPAIGN, variables, token=world.lead_owner.token))
            upserted = await inbox.wait(
                cus(lead), "system.campaign_updated", lambda m: m["campaign"]["title"] == "Upserted"
            )
            assert upserted["campaign"]["config"] == {"k": 1}

            variables = {"name": campaign.name}
            data(await gql(client, UPDATE_PROCESSING, variables, token=world.lead_owner.token))

            async def three() -> bool:
                got = [k for k, _ in await inbox.messages(cus(lead))]
                return got.count("system.campaign_updated") == 3

            await eventually(three)
            # only the lead org is told
            for org in (world.partner, world.instance):
                assert await inbox.messages(cus(org)) == []
    finally:
        await broker.close()


async def test_a_partner_launch_request_and_its_acceptance(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
) -> None:
    world = await coalition(session, state_of(app).settings, org_ids)
    lead, partner, page = world.lead, world.partner, world.partner_page
    inbox = Inbox(session, broker_settings)
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, FAST):
            launched = await gql(
                client, LAUNCH, {"name": page.name}, token=world.partner_owner.token
            )
            assert data(launched) == {"launchActionPage": {"status": "CONFIRMING"}}

            created = await inbox.wait(cus(lead), "confirm_created.launch_page")
            assert list(created) == ["schema", "eventType", "timestamp", "confirm"]
            assert (created["schema"], created["eventType"]) == ("proca:event:2", "confirm_created")
            confirm = created["confirm"]
            assert confirm["operation"] == "launch_page"
            assert (confirm["subjectId"], confirm["objectId"]) == (world.campaign.id, page.id)
            assert confirm["message"] == "Let us in" and confirm["email"] == ""
            assert confirm["creator"] == {"email": world.partner_owner.email, "jobTitle": None}
            assert confirm["campaign"] == {
                "name": world.campaign.name,
                "title": world.campaign.title,
            }
            assert confirm["org"]["name"] == partner.name
            code = confirm["code"]
            assert confirm["acceptLink"].endswith(f"/link/accept/{code}?id={page.id}")
            assert confirm["rejectLink"].endswith(f"/link/reject/{code}?id={page.id}")

            accepted = await gql(
                client,
                ACCEPT_ORG,
                {"name": lead.name, "confirm": {"code": code, "objectId": page.id}},
                token=world.lead_owner.token,
            )
            assert data(accepted) == {"acceptOrgConfirm": {"status": "SUCCESS"}}
            joined = await inbox.wait(cus(lead), "system.join_campaign")
            system_shape(joined, "join_campaign")
            assert joined["contact"] == user_contact(world.partner_owner.email)
            assert joined["org"] == {"name": partner.name, "title": "Partner Org"}
            assert joined["orgId"] == partner.id
            assert (joined["campaignId"], joined["campaign"]["name"]) == (
                world.campaign.id,
                world.campaign.name,
            )
            assert (joined["actionPageId"], joined["actionPage"]["name"]) == (page.id, page.name)
            await inbox.wait(SYSTEM, "system.join_campaign", lambda m: m["orgId"] == partner.id)
            # a request is not a system event: the global queue never had it
            assert not [
                m
                for k, m in await inbox.messages(SYSTEM)
                if k.startswith("confirm_created") and m["confirm"]["code"] == code
            ]
            assert await inbox.messages(cus(partner)) == []
    finally:
        await broker.close()


async def test_an_accepted_join_campaign_link_is_announced_to_the_lead(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
) -> None:
    world = await coalition(session, state_of(app).settings, org_ids)
    campaign = await session.get(Campaign, world.campaign.id)
    partner = await session.get(Org, world.partner.id)
    creator = await session.get(User, world.partner_owner.id)
    assert campaign is not None and partner is not None and creator is not None
    later_page = ref(await make_page(session, campaign, partner))
    confirm = await confirms.create_confirm(
        session,
        ConfirmOperation.JOIN_CAMPAIGN,
        world.partner.id,
        object_id=world.campaign.id,
        creator=creator,
    )
    await session.commit()
    inbox = Inbox(session, broker_settings)
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, FAST):
            credentials = base64.b64encode(f"{world.lead_owner.email}:{PASSWORD}".encode())
            response = await client.get(
                f"/link/accept/{confirm.code}?id={world.campaign.id}",
                headers={"Authorization": f"Basic {credentials.decode()}"},
            )
            assert response.status_code == 302, response.text
            joined = await inbox.wait(cus(world.lead), "system.join_campaign")
            system_shape(joined, "join_campaign")
            assert joined["contact"]["email"] == world.partner_owner.email
            assert joined["orgId"] == world.partner.id
            # the partner's most recent page in the campaign
            assert joined["actionPageId"] == later_page.id
    finally:
        await broker.close()


async def test_an_invitation_is_announced_to_the_instance_org(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
) -> None:
    world = await coalition(session, state_of(app).settings, org_ids)
    inbox = Inbox(session, broker_settings)
    invitee = f"{unique('invitee')}@example.org"
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, FAST):
            variables = {"org": world.lead.name, "email": invitee}
            code = data(await gql(client, INVITE, variables, token=world.lead_owner.token))
            created = await inbox.wait(cus(world.instance), "confirm_created.add_staffer")
            confirm = created["confirm"]
            assert confirm["code"] == code["inviteOrgUser"]["code"]
            assert (confirm["operation"], confirm["email"]) == ("add_staffer", invitee)
            assert confirm["org"] == {"name": world.lead.name, "title": "Lead Org"}
            assert confirm["creator"]["email"] == world.lead_owner.email
            assert await inbox.messages(cus(world.lead)) == []
    finally:
        await broker.close()


async def test_a_new_org_is_announced_to_the_instance_org(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
) -> None:
    world = await coalition(session, state_of(app).settings, org_ids)
    inbox = Inbox(session, broker_settings)
    name = unique("fresh-org")
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, FAST):
            body = await gql(client, ADD_ORG, {"name": name}, token=world.partner_owner.token)
            assert data(body) == {"addOrg": {"name": name}}
            created = await inbox.wait(cus(world.instance), "system.new_org")
            system_shape(created, "new_org")
            org_id = await session.scalar(select(Org.id).where(Org.name == name))
            assert created["org"] == {"name": name, "title": "Fresh Org"}
            assert created["orgId"] == org_id
            assert created["contact"] == user_contact(world.partner_owner.email)
            assert created["campaign"] is None and created["actionPage"] is None
            await inbox.wait(SYSTEM, "system.new_org", lambda m: m["orgId"] == org_id)
    finally:
        await broker.close()


async def test_a_registration_is_announced_to_the_instance_org(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
) -> None:
    world = await coalition(session, state_of(app).settings, org_ids)
    inbox = Inbox(session, broker_settings)
    email = f"{unique('newcomer')}@example.org"
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, FAST):
            token = await csrf_for(client, "/users/register")
            response = await client.post(
                "/users/register",
                data={"email": email, "password": PASSWORD, "_csrf_token": token},
            )
            assert response.status_code == 303, response.text
            registered = await inbox.wait(cus(world.instance), "system.new_user")
            system_shape(registered, "new_user")
            assert registered["contact"] == user_contact(email)
            assert registered["org"] is None and registered["orgId"] is None
            assert PASSWORD not in json.dumps(registered)
            await inbox.wait(SYSTEM, "system.new_user", lambda m: m["contact"]["email"] == email)
    finally:
        await broker.close()


@pytest.fixture
def jwt_settings(app: FastAPI) -> Iterator[Settings]:
    state_of(app).key_sets.clear()
    with app_settings(app, jwt_secret=JWT_SECRET) as settings:
        yield settings
    state_of(app).key_sets.clear()


def sso_token(email: str, subject: str) -> str:
    claims = {
        "sub": subject,
        "email": email,
        "user_metadata": {"email_verified": True},
        "exp": int(time.time()) + 300,
        "aud": "authenticated",
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


async def test_a_jwt_user_registered_on_first_use_is_announced_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
    jwt_settings: Settings,
) -> None:
    world = await coalition(session, state_of(app).settings, org_ids)
    inbox = Inbox(session, broker_settings)
    email = f"{unique('sso')}@example.org"
    token = sso_token(email, unique("subject-"))
    broker = await open_broker(broker_settings, sessionmaker)
    try:
        async with running(app, broker, FAST):
            for _ in range(2):
                body = await gql(client, "{ currentUser { email } }", token=token)
                assert data(body) == {"currentUser": {"email": email}}
            registered = await inbox.wait(cus(world.instance), "system.new_user")
            system_shape(registered, "new_user")
            assert registered["contact"] == user_contact(email)
            await inbox.wait(SYSTEM, "system.new_user", lambda m: m["contact"]["email"] == email)
            await asyncio.sleep(0.3)
            got = [k for k, _ in await inbox.messages(cus(world.instance))]
            assert got == ["system.new_user"]
    finally:
        await broker.close()


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[Posted]]]:
    """A webhook receiver on a loopback port: its URL and what it was sent."""
    received: list[Posted] = []

    async def endpoint(request: Request) -> Response:
        received.append(Posted(request.url.path, dict(request.headers), await request.body()))
        return Response("ok")

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    async with serve(app) as url:
        yield url, received


async def test_an_event_webhook_backend_receives_the_events_over_http(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker_settings: Settings,
    org_ids: list[int],
    receiver: tuple[str, list[Posted]],
) -> None:
    url, received = receiver
    world = await coalition(session, state_of(app).settings, org_ids)
    hook = Service(
        org_id=world.lead.id,
        name="webhook",
        host=f"{url}/events",
        user="",
        password="Bearer event-s3cret",
    )
    session.add(hook)
    await session.flush()
    lead = await session.get(Org, world.lead.id)
    assert lead is not None
    lead.event_backend_id = hook.id
    lead.custom_event_deliver = False
    await session.commit()
    broker = await open_broker(broker_settings, sessionmaker)
    options = RuntimeOptions(sweep_interval=0.1, sweep_age=0.0, run_workers=True)
    try:
        async with running(app, broker, options):
            variables = {"id": world.campaign.id, "title": "Hooked"}
            data(await gql(client, UPDATE_CAMPAIGN, variables, token=world.lead_owner.token))
            launched = await gql(
                client, LAUNCH, {"name": world.partner_page.name}, token=world.partner_owner.token
            )
            data(launched)

            def posted() -> list[Message]:
                return [json.loads(r.body) for r in received]

            async def requested() -> bool:
                return any(m["eventType"] == "confirm_created" for m in posted())

            await eventually(requested)
            [request] = [m for m in posted() if m["eventType"] == "confirm_created"]
            confirm = {"code": request["confirm"]["code"], "objectId": world.partner_page.id}
            accepted = await gql(
                client,
                ACCEPT_ORG,
                {"name": world.lead.name, "confirm": confirm},
                token=world.lead_owner.token,
            )
            data(accepted)

            async def all_three() -> bool:
                kinds = {m["eventType"] for m in posted()}
                return kinds == {"campaign_updated", "confirm_created", "join_campaign"}

            await eventually(all_three)
    finally:
        await broker.close()
    assert all(r.path == "/events" for r in received)
    assert all(r.headers["authorization"] == "Bearer event-s3cret" for r in received)
    [updated] = [m for m in posted() if m["eventType"] == "campaign_updated"]
    assert updated["campaign"]["title"] == "Hooked"
    [joined] = [m for m in posted() if m["eventType"] == "join_campaign"]
    assert joined["stage"] == "system" and joined["orgId"] == world.partner.id
    assert not any("event-s3cret" in r.body.decode() for r in received)


# --- after commit, and never in the request's way ------------------------------------------------


@dataclass
class Recorder:
    """A pipeline that records what it is handed; while `held`, it hangs as a broker that
    does not answer; with `fail`, it raises."""

    handed: list[Publication] = field(default_factory=list)
    held: asyncio.Event | None = None
    fail: Exception | None = None

    async def after_commit(
        self, publications: Sequence[Publication], action_ids: Sequence[int]
    ) -> None:
        if self.held is not None:
            await self.held.wait()
        if self.fail is not None:
            raise self.fail
        self.handed.extend(publications)


@pytest.fixture
async def recorder(app: FastAPI) -> AsyncIterator[Recorder]:
    pipeline = Recorder()
    state_of(app).pipeline = pipeline
    yield pipeline
    state_of(app).pipeline = None
    if pipeline.held is not None:
        pipeline.held.set()
        await asyncio.sleep(0)


async def test_a_failed_mutation_emits_nothing(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, recorder: Recorder
) -> None:
    owner = await make_user(session)
    instance = await make_org(session, state_of(app).settings.org_name)
    taken = await make_org(session)
    token = await reset_api_token(session, owner)
    await session.commit()

    refused = await gql(client, ADD_ORG, {"name": taken.name}, token=token)
    assert error(refused)["message"].endswith("has already been taken")
    await asyncio.sleep(0.1)
    assert recorder.handed == []

    fresh = unique("fresh")
    data(await gql(client, ADD_ORG, {"name": fresh}, token=token))
    await eventually(lambda: _some(recorder))
    [published] = recorder.handed
    assert (published.exchange, published.routing_key) == (
        f"org.{instance.id}.event",
        "system.new_org",
    )


async def _some(recorder: Recorder) -> bool:
    return bool(recorder.handed)


async def test_a_jwt_user_stays_and_is_announced_when_the_document_fails(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    recorder: Recorder,
    jwt_settings: Settings,
) -> None:
    instance = await make_org(session, state_of(app).settings.org_name)
    await session.commit()
    email = f"{unique('sso')}@example.org"
    body = await gql(
        client,
        '{ currentUser { email } org(name: "no-such-org") { name } }',
        token=sso_token(email, unique("subject-")),
    )
    assert body["errors"]
    await eventually(lambda: _some(recorder))
    [published] = recorder.handed
    assert (published.exchange, published.routing_key) == (
        f"org.{instance.id}.event",
        "system.new_user",
    )
    await session.rollback()
    assert await session.scalar(select(User.id).where(User.email == email)) is not None


@pytest.mark.parametrize("trouble", ["hangs", "fails"])
async def test_a_broker_in_trouble_never_holds_up_nor_fails_the_mutation(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    recorder: Recorder,
    trouble: str,
) -> None:
    if trouble == "hangs":
        recorder.held = asyncio.Event()
    else:
        recorder.fail = ConnectionError("broker down")
    lead = await make_org(session)
    campaign = await make_campaign(session, lead)
    owner = await make_user(session, org=lead, role="owner")
    token = await reset_api_token(session, owner)
    await session.commit()

    started = time.monotonic()
    body = await gql(client, UPDATE_CAMPAIGN, {"id": campaign.id, "title": "Still"}, token=token)
    assert data(body) == {"updateCampaign": {"id": campaign.id}}
    assert time.monotonic() - started < 5
    await session.rollback()
    assert await session.scalar(select(Campaign.title).where(Campaign.id == campaign.id)) == "Still"
