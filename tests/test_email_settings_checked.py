"""Settings whose emails could not go out are refused when they are turned on, and logged when
a later change breaks them (email/readiness.py): supporterConfirm on an org or a campaign,
doiThankYou, a page's thankYouTemplate."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.models import EmailTemplate, Org, Service
from proca_server.org.service import ensure_instance_org
from tests.factories import World, make_campaign, make_org, make_page, make_world
from tests.graphql_helpers import data, error, gql

CONFIRM_ON = """mutation($n: String!) {
  updateOrgProcessing(name: $n, supporterConfirm: true) {
    processing { supporterConfirm } } }"""
CONFIRM_ON_WITH = """mutation($n: String!, $t: String) {
  updateOrgProcessing(name: $n, supporterConfirm: true, supporterConfirmTemplate: $t) {
    processing { supporterConfirm supporterConfirmTemplate } } }"""
DOI_ON = """mutation($n: String!) {
  updateOrgProcessing(name: $n, doiThankYou: true) { processing { doiThankYou } } }"""
CAMPAIGN_CONFIRM_ON = """mutation($n: String!) {
  updateCampaignProcessing(name: $n, supporterConfirm: true) { name } }"""


async def give_backend(session: AsyncSession, org: Org) -> Service:
    """The preview mailbox as the org's own email backend."""
    service = Service(name="preview", org_id=org.id)
    session.add(service)
    await session.flush()
    org.email_backend_id = service.id
    await session.commit()
    return service


async def add_template(session: AsyncSession, org: Org, name: str, locale: str = "en") -> None:
    session.add(EmailTemplate(org_id=org.id, name=name, locale=locale, subject="S", html="h"))
    await session.commit()


async def stored(session: AsyncSession, org_id: int) -> Org:
    await session.rollback()
    org = await session.get(Org, org_id, populate_existing=True)
    assert org is not None
    return org


def refused_with(body: dict[str, Any], path: list[str], message: str) -> None:
    found = error(body)
    assert found["extensions"]["code"] == "bad_arg"
    assert found["path"] == path
    assert found["message"] == message


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -- supporterConfirm on an org -----------------------------------------------------------------


async def test_supporter_confirm_is_refused_without_an_email_backend(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    name = world.org.name
    body = await gql(client, CONFIRM_ON, {"n": name}, token=world.tokens["owner"])
    refused_with(
        body,
        ["updateOrgProcessing", "supporterConfirm"],
        f"supporterConfirm needs an email backend: org {name} has none "
        "(set its emailBackend first)",
    )
    assert (await stored(session, world.org.id)).supporter_confirm is False


async def test_supporter_confirm_is_refused_without_a_confirm_template(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    await give_backend(session, world.org)
    token, name = world.tokens["owner"], world.org.name
    refused_with(
        await gql(client, CONFIRM_ON, {"n": name}, token=token),
        ["updateOrgProcessing", "supporterConfirm"],
        f"supporterConfirm needs a supporter confirm template: none is set for page "
        f"{world.page.name} (set supporterConfirmTemplate on the org, the campaign or the page)",
    )
    assert (await stored(session, world.org.id)).supporter_confirm is False


async def test_the_confirm_template_must_exist_in_the_page_locale(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The worker looks the template up in the page's locale: an English-only template
    leaves a German page's supporters waiting."""
    world = await make_world(session)
    world.page.locale = "de"
    await give_backend(session, world.org)
    await add_template(session, world.org, "confirm", "en")
    token, name = world.tokens["owner"], world.org.name
    refused_with(
        await gql(client, CONFIRM_ON_WITH, {"n": name, "t": "confirm"}, token=token),
        ["updateOrgProcessing", "supporterConfirm"],
        f"supporterConfirm needs a supporter confirm template: 'confirm' (for page "
        f"{world.page.name}, locale de) is not a template of org {name}",
    )
    # refused as a whole: the template name given in the same call is not kept either
    org = await stored(session, world.org.id)
    assert (org.supporter_confirm, org.supporter_confirm_template) == (False, None)
    await add_template(session, org, "confirm", "de")
    answer = data(await gql(client, CONFIRM_ON_WITH, {"n": name, "t": "confirm"}, token=token))
    assert answer["updateOrgProcessing"]["processing"] == {
        "supporterConfirm": True,
        "supporterConfirmTemplate": "confirm",
    }


async def test_a_page_or_campaign_template_is_enough_and_an_opted_out_campaign_is_skipped(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    await give_backend(session, world.org)
    await add_template(session, world.org, "page-confirm")
    world.page.supporter_confirm_template = "page-confirm"
    # a campaign that turned supporter confirmation off is not affected by the org's setting
    opted_out = await make_campaign(session, world.org)
    opted_out.supporter_confirm = False
    await make_page(session, opted_out, world.org)
    await session.commit()
    token, name = world.tokens["owner"], world.org.name
    answer = data(await gql(client, CONFIRM_ON, {"n": name}, token=token))
    assert answer["updateOrgProcessing"]["processing"]["supporterConfirm"] is True


async def test_supporter_confirm_with_the_borrowed_system_backend(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    instance = (await ensure_instance_org(session, state_of(app).settings.org_name)).org
    await give_backend(session, instance)
    await add_template(session, world.org, "confirm")
    doc = """mutation($n: String!) {
      updateOrgProcessing(name: $n, emailBackend: SYSTEM, supporterConfirm: true,
                          supporterConfirmTemplate: "confirm") {
        processing { emailBackend supporterConfirm } } }"""
    answer = data(await gql(client, doc, {"n": world.org.name}, token=world.tokens["owner"]))
    assert answer["updateOrgProcessing"]["processing"] == {
        "emailBackend": "PREVIEW",
        "supporterConfirm": True,
    }


async def test_an_org_taking_confirm_messages_itself_needs_no_backend(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    doc = """mutation($n: String!) {
      updateOrgProcessing(name: $n, customSupporterConfirm: true, supporterConfirm: true) {
        processing { supporterConfirm customSupporterConfirm } } }"""
    answer = data(await gql(client, doc, {"n": world.org.name}, token=world.tokens["owner"]))
    assert answer["updateOrgProcessing"]["processing"] == {
        "supporterConfirm": True,
        "customSupporterConfirm": True,
    }


async def test_update_org_and_add_org_refuse_it_too(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, name = world.tokens["owner"], world.org.name
    update = """mutation($n: String!) {
      updateOrg(name: $n, input: {supporterConfirm: true}) { name } }"""
    refused_with(
        await gql(client, update, {"n": name}, token=token),
        ["updateOrg", "supporterConfirm"],
        f"supporterConfirm needs an email backend: org {name} has none "
        "(set its emailBackend first)",
    )
    add = """mutation($n: String!) {
      addOrg(input: {name: $n, title: "New", doiThankYou: true}) { name } }"""
    refused_with(
        await gql(client, add, {"n": "brand-new"}, token=token),
        ["addOrg", "doiThankYou"],
        "doiThankYou needs an email backend: org brand-new has none (set its emailBackend first)",
    )
    await session.rollback()
    assert await session.scalar(select(Org.id).where(Org.name == "brand-new")) is None


# -- supporterConfirm on a campaign --------------------------------------------------------------


async def test_campaign_supporter_confirm_needs_every_page_org_to_send(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """A partner's page confirms through the partner's backend and templates."""
    world = await make_world(session)
    await give_backend(session, world.org)
    await add_template(session, world.org, "confirm")
    world.org.supporter_confirm_template = "confirm"
    partner = await make_org(session)
    partner_page = await make_page(session, world.campaign, partner)
    await session.commit()
    token, campaign = world.tokens["owner"], world.campaign.name
    refused_with(
        await gql(client, CAMPAIGN_CONFIRM_ON, {"n": campaign}, token=token),
        ["updateCampaignProcessing", "supporterConfirm"],
        f"supporterConfirm needs an email backend: org {partner.name} has none "
        "(set its emailBackend first)",
    )
    await give_backend(session, partner)
    refused_with(
        await gql(client, CAMPAIGN_CONFIRM_ON, {"n": campaign}, token=token),
        ["updateCampaignProcessing", "supporterConfirm"],
        f"supporterConfirm needs a supporter confirm template: none is set for page "
        f"{partner_page.name} (set supporterConfirmTemplate on the org, the campaign or the "
        "page)",
    )
    # the campaign's template is looked up among the partner's templates for its page
    await add_template(session, partner, "campaign-confirm")
    await add_template(session, world.org, "campaign-confirm")
    doc = """mutation($n: String!) {
      updateCampaignProcessing(name: $n, supporterConfirm: true,
                               supporterConfirmTemplate: "campaign-confirm") { name } }"""
    data(await gql(client, doc, {"n": campaign}, token=token))


async def test_a_new_campaign_without_pages_asks_for_its_lead_org_template(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    await give_backend(session, world.org)
    token, org_name = world.tokens["owner"], world.org.name
    add = """mutation($o: String!, $i: CampaignInput!) {
      addCampaign(orgName: $o, input: $i) { name } }"""
    refused_with(
        await gql(
            client,
            add,
            {"o": org_name, "i": {"name": "confirming", "title": "C", "supporterConfirm": True}},
            token=token,
        ),
        ["addCampaign", "supporterConfirm"],
        "supporterConfirm needs a supporter confirm template: none is set for campaign "
        f"confirming of org {org_name} (set supporterConfirmTemplate on the org, the campaign "
        "or the page)",
    )
    await add_template(session, world.org, "confirm")
    given = {"name": "confirming", "title": "C", "supporterConfirm": True}
    given["supporterConfirmTemplate"] = "confirm"
    data(await gql(client, add, {"o": org_name, "i": given}, token=token))


# -- doiThankYou ---------------------------------------------------------------------------------


async def test_doi_thank_you_needs_a_backend_and_a_thank_you_template(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, name = world.tokens["owner"], world.org.name
    path = ["updateOrgProcessing", "doiThankYou"]
    refused_with(
        await gql(client, DOI_ON, {"n": name}, token=token),
        path,
        f"doiThankYou needs an email backend: org {name} has none (set its emailBackend first)",
    )
    await give_backend(session, world.org)
    refused_with(
        await gql(client, DOI_ON, {"n": name}, token=token),
        path,
        f"doiThankYou needs a thank-you template: no action page of org {name} has a "
        "thankYouTemplate (set one on its pages first)",
    )
    world.page.thank_you_template = "thanks"
    world.page.locale = "fr"
    await add_template(session, world.org, "thanks", "en")
    refused_with(
        await gql(client, DOI_ON, {"n": name}, token=token),
        path,
        f"doiThankYou needs a thank-you template: 'thanks' (for page {world.page.name}, "
        f"locale fr) is not a template of org {name}",
    )
    assert (await stored(session, world.org.id)).doi_thank_you is False
    await add_template(session, world.org, "thanks", "fr")
    answer = data(await gql(client, DOI_ON, {"n": name}, token=token))
    assert answer["updateOrgProcessing"]["processing"]["doiThankYou"] is True


# -- later changes: logged -----------------------------------------------------------------------


async def confirming_world(client: httpx.AsyncClient, session: AsyncSession) -> World:
    world = await make_world(session)
    await give_backend(session, world.org)
    await add_template(session, world.org, "confirm")
    answer = await gql(
        client, CONFIRM_ON_WITH, {"n": world.org.name, "t": "confirm"}, token=world.tokens["owner"]
    )
    data(answer)
    return world


async def test_removing_the_backend_of_a_confirming_org_is_logged(
    client: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    world = await confirming_world(client, session)
    token, name = world.tokens["owner"], world.org.name
    caplog.set_level(logging.WARNING)
    doc = """mutation($n: String!) {
      updateOrgProcessing(name: $n, emailBackend: null) { processing { emailBackend } } }"""
    answer = data(await gql(client, doc, {"n": name}, token=token))
    assert answer["updateOrgProcessing"]["processing"]["emailBackend"] is None
    assert warnings(caplog) == [
        f"org {name}: supporterConfirm needs an email backend: org {name} has none (set its "
        "emailBackend first) (until then those emails are not sent)"
    ]
    staff_email = world.users["owner"].email
    assert all(staff_email not in r.getMessage() for r in caplog.records)


async def test_clearing_the_confirm_template_of_a_confirming_org_is_logged(
    client: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    world = await confirming_world(client, session)
    token, name = world.tokens["owner"], world.org.name
    caplog.set_level(logging.WARNING)
    doc = """mutation($n: String!) {
      updateOrgProcessing(name: $n, supporterConfirmTemplate: null) { name } }"""
    data(await gql(client, doc, {"n": name}, token=token))
    [warning] = warnings(caplog)
    assert warning.startswith(
        f"org {name}: supporterConfirm needs a supporter confirm template: none is set for "
        f"page {world.page.name}"
    )


async def test_a_thank_you_template_without_a_backend_is_kept_and_logged(
    client: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(session)
    caplog.set_level(logging.WARNING)
    doc = """mutation($id: Int!) {
      updateActionPage(id: $id, input: {thankYouTemplate: "thanks"}) { thankYouTemplate } }"""
    answer = data(await gql(client, doc, {"id": world.page.id}, token=world.tokens["owner"]))
    assert answer["updateActionPage"]["thankYouTemplate"] == "thanks"
    assert warnings(caplog) == [
        f"page {world.page.name}: thankYouTemplate needs an email backend: org "
        f"{world.org.name} has none (set its emailBackend first) (until then those emails "
        "are not sent)"
    ]
