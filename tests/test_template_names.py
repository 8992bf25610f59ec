"""Template names set on an org or a page must name a template of the org, once the org has an
email backend to look them up in."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import EmailTemplate, Service
from tests.factories import make_world
from tests.graphql_helpers import data, error, gql

PAGE = """mutation($id: Int!, $t: String) {
  updateActionPage(id: $id, input: {thankYouTemplate: $t}) { id } }"""
ORG = """mutation($n: String!, $t: String) {
  updateOrgProcessing(name: $n, supporterConfirmTemplate: $t) { name } }"""


async def test_template_names_are_checked_once_the_org_has_an_email_backend(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, page_id, org_name = world.tokens["owner"], world.page.id, world.org.name
    # no email backend: nothing to look the name up in, any name is kept
    data(await gql(client, PAGE, {"id": page_id, "t": "anything"}, token=token))
    service = Service(name="preview", org_id=world.org.id)
    session.add(service)
    await session.flush()
    world.org.email_backend_id = service.id
    session.add(
        EmailTemplate(org_id=world.org.id, name="thanks", locale="en", subject="S", html="h")
    )
    await session.commit()
    refused = error(await gql(client, PAGE, {"id": page_id, "t": "nope"}, token=token))
    assert refused["message"] == "Template not found"
    assert refused["path"] == ["updateActionPage", "thankYouTemplate"]
    data(await gql(client, PAGE, {"id": page_id, "t": "thanks"}, token=token))
    refused = error(await gql(client, ORG, {"n": org_name, "t": "nope"}, token=token))
    assert refused["path"] == ["updateOrgProcessing", "supporterConfirmTemplate"]
    data(await gql(client, ORG, {"n": org_name, "t": "thanks"}, token=token))
    # clearing a name is always allowed
    data(await gql(client, PAGE, {"id": page_id, "t": None}, token=token))


async def test_a_campaign_confirm_template_is_checked_too(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, name = world.tokens["owner"], world.campaign.name
    service = Service(name="preview", org_id=world.org.id)
    session.add(service)
    await session.flush()
    world.org.email_backend_id = service.id
    session.add(
        EmailTemplate(org_id=world.org.id, name="confirm", locale="en", subject="S", html="h")
    )
    await session.commit()
    doc = """mutation($n: String, $t: String) {
      updateCampaignProcessing(name: $n, supporterConfirmTemplate: $t) { name } }"""
    refused = error(await gql(client, doc, {"n": name, "t": "nope"}, token=token))
    assert refused["message"] == "Template not found"
    assert refused["path"] == ["updateCampaignProcessing", "supporterConfirmTemplate"]
    data(await gql(client, doc, {"n": name, "t": "confirm"}, token=token))
