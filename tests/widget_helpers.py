"""Sending the widget's calls as plain HTTP the way the widget sends them, and reading back what
they stored (shared by the widget, signature-lane, pipeline and processing tests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action import widget_api
from proca_server.kit.time import utcnow
from proca_server.models import Action, Contact, Mtt, Service, Source, Supporter, Target
from tests.factories import World, make_world

ADD_ACTION_CONTACT = """mutation addActionContact($action: ActionInput!, $actionPage: Int!,
  $contact: ContactInput!, $contactRef: ID, $privacy: ConsentInput!, $tracking: TrackingInput) {
  addActionContact(actionPageId: $actionPage, action: $action, contact: $contact,
    contactRef: $contactRef, privacy: $privacy, tracking: $tracking) { contactRef firstName }
}"""

ADD_ACTION = """mutation addAction($contact: ID!, $actionPage: Int!, $actionType: String!,
  $payload: Json, $testing: Boolean, $tracking: TrackingInput) {
  addAction(actionPageId: $actionPage, contactRef: $contact,
    action: {actionType: $actionType, customFields: $payload, testing: $testing},
    tracking: $tracking) { contactRef }
}"""

COUNT = "query getCount($actionPage: Int!) { actionPage(id: $actionPage) { campaign { stats { supporterCount } } } }"  # noqa: E501
COUNT_BY_NAME = """query getCountByName($name: String) { actionPage(name: $name) {
  id campaign { name title externalId stats { supporterCount } } } }"""


async def widget_post(
    client: httpx.AsyncClient,
    op: str,
    query: str,
    variables: dict[str, Any],
    *,
    referer: str | None = "https://campaign.example.org/sign?utm_source=x",
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    url = "/api"
    if "actionPage" in variables:
        url = f"/api?id={variables['actionPage']}"
    body: dict[str, Any] = {"query": query, "variables": variables, "operationName": op}
    if extensions:
        body["extensions"] = extensions
    h = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    if referer:
        h["Referer"] = referer
    response = await client.post(url, content=json.dumps(body), headers=h)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def signature(page_id: int, email: str = "Ann@Example.org", **over: Any) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "actionPage": page_id,
        "action": {"actionType": "petition", "customFields": json.dumps({"comment": "hi"})},
        "contact": {
            "firstName": "Ann",
            "lastName": "Lee",
            "email": email,
            "phone": "",
            "address": {"country": "FR", "postcode": ""},
        },
        "privacy": {"optIn": True},
        "tracking": {
            "source": "newsletter",
            "medium": "email",
            "campaign": "spring",
            "content": "",
            "location": "https://campaign.example.org/sign",
        },
    }
    variables.update(over)
    return variables


async def warm_up(client: httpx.AsyncClient, page: int, email: str) -> None:
    # the first signature fills the page and key caches; the sources row is cached once it
    # is known to be committed, i.e. by the second
    for _ in range(2):
        body = await widget_post(
            client, "addActionContact", ADD_ACTION_CONTACT, signature(page, email)
        )
        assert "errors" not in body


@pytest.fixture
def generic_resolvers() -> Iterator[None]:
    widget_api.DIRECT_RESOLVERS = False
    try:
        yield
    finally:
        widget_api.DIRECT_RESOLVERS = True


# --- reading back -------------------------------------------------------------------------------


async def counts(session: AsyncSession) -> tuple[int, int, int]:
    await session.rollback()
    s = await session.scalar(select(func.count()).select_from(Supporter))
    c = await session.scalar(select(func.count()).select_from(Contact))
    a = await session.scalar(select(func.count()).select_from(Action))
    return int(s or 0), int(c or 0), int(a or 0)


async def stored_rows(
    session: AsyncSession, campaign: int
) -> tuple[list[Supporter], list[tuple[Action, Source | None]], list[Contact]]:
    """The campaign's supporters, actions (with their source) and contacts, by id, as the
    database has them now."""
    await session.rollback()
    supporters = (
        await session.execute(
            select(Supporter).where(Supporter.campaign_id == campaign).order_by(Supporter.id)
        )
    ).scalars()
    actions = (
        await session.execute(
            select(Action, Source)
            .outerjoin(Source, Source.id == Action.source_id)
            .where(Action.campaign_id == campaign)
            .order_by(Action.id)
        )
    ).all()
    contacts = (
        await session.execute(
            select(Contact)
            .join(Supporter, Supporter.id == Contact.supporter_id)
            .where(Supporter.campaign_id == campaign)
            .order_by(Contact.id)
        )
    ).scalars()
    return list(supporters), [(a, src) for a, src in actions], list(contacts)


# --- mail-to-target letters with files ---------------------------------------------------------


NO_STORAGE = "cannot be attached: the campaign's org has no storage backend"


async def mtt_world(session: AsyncSession, *, bucket: str | None = "") -> tuple[World, list[str]]:
    """A campaign with MTT and two targets; its org has a storage backend unless `bucket` is
    None (restricted to that bucket when given)."""
    world = await make_world(session, roles=())
    session.add(
        Mtt(campaign_id=world.campaign.id, start_at=utcnow(), end_at=utcnow() + timedelta(days=3))
    )
    targets = [
        Target(name=f"MEP {n}", external_id=f"mep-{world.campaign.id}-{n}",
               campaign_id=world.campaign.id)
        for n in range(2)
    ]  # fmt: skip
    session.add_all(targets)
    if bucket is not None:
        service = Service(
            name="supabase", host="https://files.example", path=bucket or None, org_id=world.org.id
        )
        session.add(service)
        await session.flush()
        world.org.storage_backend_id = service.id
    await session.commit()
    return world, [str(t.id) for t in targets]


def letter(page: int, targets: list[str], files: list[str], email: str) -> dict[str, Any]:
    return signature(
        page,
        email,
        action={
            "actionType": "mail2target",
            "mtt": {"subject": "Dear {{target.name}}", "body": "Please", "targets": targets,
                    "files": files},
        },
    )  # fmt: skip
