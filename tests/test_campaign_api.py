"""Campaigns, action pages and targets through the GraphQL API."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action_page.service import NAME_RE
from proca_server.app_state import state_of
from proca_server.models import (
    Action,
    ActionPage,
    Campaign,
    EmailTemplate,
    Org,
    Service,
    Target,
    TargetEmail,
)
from proca_server.models.enums import ContactSchema, EmailStatus
from proca_server.user.service import reset_api_token
from tests.factories import make_campaign, make_org, make_page, make_user, make_world
from tests.graphql_helpers import data, error, gql


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("org-name/petition", True),
        ("org-name/campaign/locale/34", True),
        ("greenplanet.org/trees", True),
        ("org_name", False),
        ("org-name", False),
        ("test/", False),
        ("/test", False),
        ("test_this.now/123", False),
        ("domain.pl/../../etc/shadow", False),
        ("domain.pl////", False),
    ],
)
def test_action_page_name_rules(name: str, valid: bool) -> None:
    assert bool(NAME_RE.match(name)) is valid


async def test_add_campaign_then_pages(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    world.org.contact_schema = ContactSchema.ECI
    await session.commit()
    token, org = world.tokens["owner"], world.org.name
    added = data(
        await gql(
            client,
            'mutation($o: String!) { addCampaign(orgName: $o, input: {name: "save-bees", '
            'title: "Save bees", config: "{\\"lang\\":\\"en\\"}"}) { id name title config '
            "contactSchema status } }",
            {"o": org},
            token=token,
        )
    )["addCampaign"]
    assert added["contactSchema"] == "ECI" and added["status"] == "LIVE"
    assert added["config"] == '{"lang":"en"}'

    page = data(
        await gql(
            client,
            'mutation($o: String!) { addActionPage(orgName: $o, campaignName: "save-bees", '
            f'input: {{name: "{org}/bees/en", locale: "en_GB"}}) {{ id name live locale }} }}',
            {"o": org},
            token=token,
        )
    )["addActionPage"]
    assert page["live"] is False and page["locale"] == "en_GB"
    bad_locale = error(
        await gql(
            client,
            'mutation($o: String!) { addActionPage(orgName: $o, campaignName: "save-bees", '
            f'input: {{name: "{org}/bees/fr", locale: "french"}}) {{ id }} }}',
            {"o": org},
            token=token,
        )
    )
    assert bad_locale["path"] == ["addActionPage", "locale"]
    bad_name = error(
        await gql(
            client,
            'mutation($o: String!) { addActionPage(orgName: $o, campaignName: "save-bees", '
            'input: {name: "nope", locale: "en"}) { id } }',
            {"o": org},
            token=token,
        )
    )
    assert bad_name["path"] == ["addActionPage", "name"]
    assert bad_name["extensions"]["code"] == "bad_arg"

    launched = data(
        await gql(
            client,
            f'mutation {{ launchActionPage(name: "{org}/bees/en") {{ status }} }}',
            token=token,
        )
    )
    assert launched["launchActionPage"]["status"] == "SUCCESS"
    assert (await session.get(ActionPage, page["id"])) is not None


async def test_upsert_campaign_matches_by_external_id_and_never_deletes_pages(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, org = world.tokens["owner"], world.org.name
    doc = (
        "mutation($o: String!, $i: CampaignInput!) { upsertCampaign(orgName: $o, input: $i) "
        "{ id name title externalId ... on PrivateCampaign { actionPages { name locale } } } }"
    )
    first = data(
        await gql(
            client,
            doc,
            {
                "o": org,
                "i": {
                    "name": "climate",
                    "title": "Climate",
                    "externalId": 77,
                    "actionPages": [{"name": f"{org}/climate/en", "locale": "en"}],
                },
            },
            token=token,
        )
    )["upsertCampaign"]
    second = data(
        await gql(
            client,
            doc,
            {
                "o": org,
                "i": {
                    "name": "climate-2026",
                    "title": "Climate 2026",
                    "externalId": 77,
                    "actionPages": [
                        {"name": f"{org}/climate/de", "locale": "de"},
                        {"name": f"{org}/climate/en", "locale": "en_IE"},
                    ],
                },
            },
            token=token,
        )
    )["upsertCampaign"]
    assert second["id"] == first["id"]
    assert second["name"] == "climate-2026" and second["externalId"] == 77
    pages = {p["name"]: p["locale"] for p in second["actionPages"]}
    assert pages[f"{org}/climate/en"] == "en_IE" and f"{org}/climate/de" in pages
    assert sum(1 for p in pages if p.startswith(f"{org}/climate/")) == 2

    failing = error(
        await gql(
            client,
            doc,
            {
                "o": org,
                "i": {
                    "name": "climate-2026",
                    "externalId": 77,
                    "actionPages": [{"name": "bad", "locale": "en"}],
                },
            },
            token=token,
        )
    )
    assert failing["path"] == ["upsertCampaign", "actionPages", "0", "name"]


async def test_update_campaign_dates_mtt_and_snake_case_input(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, name = world.tokens["owner"], world.campaign.name
    # the Python CLI sends snake_case input keys
    doc = (
        "mutation($n: String!, $i: CampaignInput!) { updateCampaign(name: $n, input: $i) "
        "{ name externalId contactSchema start end status } }"
    )
    updated = data(
        await gql(
            client,
            doc,
            {
                "n": name,
                "i": {
                    "external_id": 12,
                    "contact_schema": "POPULAR_INITIATIVE",
                    "start": "2026-01-01",
                    "end": "2026-12-31",
                    "status": "CLOSED",
                },
            },
            token=token,
        )
    )["updateCampaign"]
    assert updated == {
        "name": name,
        "externalId": 12,
        "contactSchema": "POPULAR_INITIATIVE",
        "start": "2026-01-01",
        "end": "2026-12-31",
        "status": "CLOSED",
    }
    backwards = error(
        await gql(client, doc, {"n": name, "i": {"start": "2027-01-01"}}, token=token)
    )
    assert (backwards["message"], backwards["path"]) == (
        "must be after start",
        ["updateCampaign", "end"],
    )

    set_mtt = (
        "mutation($n: String!) { updateCampaign(name: $n, input: "
        '{mtt: {startAt: "2026-03-01T08:00:00Z", endAt: "2026-03-10T18:00:00Z",'
        ' testEmail: "t@example.org"}}) { ... on PrivateCampaign { mtt { '
        "startAt endAt testEmail dripDelivery } } } }"
    )
    # letters to targets go through the org's email backend: none, no MTT
    refused = error(await gql(client, set_mtt, {"n": name}, token=token))
    assert refused["path"] == ["updateCampaign", "mtt"]
    assert "needs an email backend" in refused["message"]
    backend = Service(name="preview", org_id=world.org.id)
    session.add(backend)
    await session.flush()
    world.org.email_backend_id = backend.id
    await session.commit()
    mtt = data(await gql(client, set_mtt, {"n": name}, token=token))["updateCampaign"]
    assert mtt["mtt"] == {
        "startAt": "2026-03-01T08:00:00Z",
        "endAt": "2026-03-10T18:00:00Z",
        "testEmail": "t@example.org",
        "dripDelivery": True,
    }
    snake_field = data(
        await gql(
            client,
            "query($n: String!) { campaign(name: $n) { external_id contact_schema } }",
            {"n": name},
            token=token,
        )
    )
    assert snake_field["campaign"] == {"external_id": 12, "contact_schema": "POPULAR_INITIATIVE"}


async def test_public_and_private_views(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    outsider = await make_user(session, org=await make_org(session))
    outsider_token = await reset_api_token(session, outsider)
    await session.commit()
    doc = (
        "query($n: String!) { actionPage(name: $n) { __typename campaign { __typename } "
        "org { __typename } } }"
    )
    mine = data(await gql(client, doc, {"n": world.page.name}, token=world.tokens["owner"]))
    theirs = data(await gql(client, doc, {"n": world.page.name}, token=outsider_token))
    anonymous = data(await gql(client, doc, {"n": world.page.name}))
    assert mine["actionPage"] == {
        "__typename": "PrivateActionPage",
        "campaign": {"__typename": "PrivateCampaign"},
        "org": {"__typename": "PrivateOrg"},
    }
    public = {
        "__typename": "PublicActionPage",
        "campaign": {"__typename": "PublicCampaign"},
        "org": {"__typename": "PublicOrg"},
    }
    assert theirs["actionPage"] == public == anonymous["actionPage"]
    both = error(await gql(client, '{ actionPage(id: 1, name: "x/y") { id } }'))
    assert both["message"] == "Provide exactly one identifier argument"
    assert both["extensions"]["code"] == "bad_arg"
    none = error(await gql(client, '{ actionPage(name: "no/such") { id } }'))
    assert none["extensions"]["code"] == "not_found"


async def test_partner_pages_and_deletion_rules(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    partner = await make_world(session)
    token = partner.tokens["owner"]
    page = data(
        await gql(
            client,
            "mutation($o: String!, $c: String!, $n: String!) { addActionPage(orgName: $o, "
            'campaignName: $c, input: {name: $n, locale: "en"}) { id campaign { name } } }',
            {"o": partner.org.name, "c": lead.campaign.name, "n": f"{partner.org.name}/join"},
            token=token,
        )
    )["addActionPage"]
    assert page["campaign"]["name"] == lead.campaign.name
    partnerships = data(
        await gql(
            client,
            "query($n: String!) { campaign(name: $n) { ... on PrivateCampaign { "
            "partnerships { org { name } actionPages { name } } } } }",
            {"n": lead.campaign.name},
            token=lead.tokens["owner"],
        )
    )["campaign"]["partnerships"]
    assert partnerships == [
        {"org": {"name": partner.org.name}, "actionPages": [{"name": f"{partner.org.name}/join"}]}
    ]

    refused = error(
        await gql(
            client,
            "mutation($n: String!) { deleteCampaign(name: $n) }",
            {"n": lead.campaign.name},
            token=lead.tokens["owner"],
        )
    )
    assert refused["message"] == "has action pages"

    session.add(
        Action(action_type="petition", campaign_id=lead.campaign.id, action_page_id=page["id"])
    )
    await session.commit()
    kept = error(
        await gql(
            client,
            "mutation($n: String!) { deleteActionPage(name: $n) }",
            {"n": f"{partner.org.name}/join"},
            token=token,
        )
    )
    assert kept["message"] == "has action data"

    copy = data(
        await gql(
            client,
            "mutation($o: String!, $c: String!) { copyCampaignActionPage("
            'orgName: $o, name: "copied/page", fromCampaignName: $c) { name '
            "locale campaign { name } } }",
            {"o": partner.org.name, "c": lead.campaign.name},
            token=token,
        )
    )
    assert data({"data": copy})["copyCampaignActionPage"]["campaign"]["name"] == lead.campaign.name


async def test_page_mutations_answer_unknown_names_as_the_original(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    outsider = await make_user(session)
    outsider_token = await reset_api_token(session, outsider)
    empty = await make_campaign(session, world.org)
    await session.commit()
    org, token = world.org.name, world.tokens["owner"]
    add = (
        "mutation($o: String!, $c: String!) { addActionPage(orgName: $o, campaignName: $c, "
        'input: {name: "x/new", locale: "en"}) { id } }'
    )
    copy = (
        "mutation($o: String!, $f: String!) { copyActionPage(orgName: $o, "
        'name: "x/copy", fromName: $f) { id } }'
    )
    copy_from = (
        "mutation($o: String!, $c: String!) { copyCampaignActionPage(orgName: $o, "
        'name: "x/copy", fromCampaignName: $c) { id } }'
    )
    for doc, variables, field in (
        (add, {"o": org, "c": "no-such-campaign"}, "addActionPage"),
        (copy, {"o": org, "f": "no/such-page"}, "copyActionPage"),
        (copy_from, {"o": org, "c": "no-such-campaign"}, "copyCampaignActionPage"),
    ):
        # the named entities are looked up before the caller's rights, as in the original
        for caller in (token, outsider_token):
            got = error(await gql(client, doc, variables, token=caller))
            assert (got["message"], got["extensions"]["code"], got["path"]) == (
                "Entity not found",
                "not_found",
                [field],
            )
    got = error(await gql(client, copy_from, {"o": org, "c": empty.name}, token=token))
    assert (got["message"], got["extensions"]["code"], got["path"]) == (
        f"Campaign {empty.name} does not have action pages",
        "not_found",
        ["copyCampaignActionPage"],
    )


async def test_delete_campaign_removes_the_lead_pages(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    test_action = Action(
        action_type="petition",
        campaign_id=world.campaign.id,
        action_page_id=world.page.id,
        testing=True,
    )
    session.add(test_action)
    await session.commit()
    campaign_id = world.campaign.id
    done = data(
        await gql(
            client,
            "mutation($n: String!) { deleteCampaign(name: $n) }",
            {"n": world.campaign.name},
            token=world.tokens["owner"],
        )
    )
    assert done["deleteCampaign"] == "SUCCESS"
    await session.rollback()  # end the read snapshot, see fresh data
    assert await session.scalar(select(Campaign.id).where(Campaign.id == campaign_id)) is None
    assert (
        await session.execute(select(ActionPage).where(ActionPage.campaign_id == campaign_id))
    ).first() is None


async def test_upsert_targets(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    token, campaign_id, campaign_name = (
        world.tokens["owner"],
        world.campaign.id,
        world.campaign.name,
    )
    doc = (
        "mutation($c: Int!, $t: [TargetInput!]!, $o: OutdatedTargets) { upsertTargets("
        "campaignId: $c, targets: $t, outdatedTargets: $o) { id externalId name emails "
        "{ email emailStatus } } }"
    )
    first = data(
        await gql(
            client,
            doc,
            {
                "c": campaign_id,
                "t": [
                    {
                        "externalId": "mep-1",
                        "name": "Ann",
                        "emails": [{"email": " Ann@EU.example.org "}],
                    },
                    {
                        "externalId": "mep-2",
                        "name": "Bob",
                        "locale": "fr",
                        "fields": '{"party":"x"}',
                        "emails": [{"email": "bob@eu.example.org"}],
                    },
                ],
            },
            token=token,
        )
    )["upsertTargets"]
    assert [t["emails"] for t in first] == [
        [{"email": "ann@eu.example.org", "emailStatus": "NONE"}],
        [{"email": "bob@eu.example.org", "emailStatus": "NONE"}],
    ]
    data(
        await gql(
            client,
            doc,
            {
                "c": campaign_id,
                "o": "DISABLE",
                "t": [
                    {"externalId": "mep-1", "emails": [{"email": "ann2@eu.example.org"}]},
                ],
            },
            token=token,
        )
    )
    await session.rollback()
    emails = {
        e.email: e.email_status for e in (await session.execute(select(TargetEmail))).scalars()
    }
    assert emails == {
        "ann2@eu.example.org": EmailStatus.NONE,
        "bob@eu.example.org": EmailStatus.INACTIVE,
    }
    data(
        await gql(
            client,
            doc,
            {"c": campaign_id, "o": "DELETE", "t": [{"externalId": "mep-1"}]},
            token=token,
        )
    )
    await session.rollback()  # end the read snapshot, see fresh data
    names = {t.external_id for t in (await session.execute(select(Target))).scalars()}
    assert names == {"mep-1"}
    invalid = error(
        await gql(
            client,
            doc,
            {
                "c": campaign_id,
                "t": [{"externalId": "mep-3", "name": "C", "locale": "french"}],
            },
            token=token,
        )
    )
    assert invalid["path"] == ["upsertTargets", "targets", "0", "locale"]
    public = data(
        await gql(
            client,
            "query($n: String!) { campaign(name: $n) { targets { __typename externalId } } }",
            {"n": campaign_name},
        )
    )
    assert public["campaign"]["targets"] == [{"__typename": "PublicTarget", "externalId": "mep-1"}]


async def test_root_mutations_commit_one_by_one(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    body = await gql(
        client,
        'mutation($n: String!) { a: updateOrg(name: $n, input: {title: "Renamed"}) { title } '
        'b: updateOrg(name: $n, input: {name: "bad name"}) { title } }',
        {"n": world.org.name},
        token=world.tokens["owner"],
    )
    # b returns a non-null type, so its error nulls the whole result; a was committed
    assert body["data"] is None
    assert error(body)["path"] == ["b", "name"]
    second = data(
        await gql(
            client,
            "query($n: String!) { org(name: $n) { title } }",
            {"n": world.org.name},
            token=world.tokens["owner"],
        )
    )
    assert second["org"]["title"] == "Renamed"


async def test_campaigns_query_by_title(client: httpx.AsyncClient, session: AsyncSession) -> None:
    org = await make_org(session)
    await make_campaign(session, org, "alpha")
    await make_campaign(session, org, "beta")
    page_campaign = await make_campaign(session, org, "gamma")
    await make_page(session, page_campaign, org)
    await session.commit()
    found = data(await gql(client, '{ campaigns(title: "Al%") { name } }'))
    assert found["campaigns"] == [{"name": "alpha"}]


async def test_sibling_fields_share_the_request_session(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    # sibling resolvers run concurrently; each reads through the one request session
    body = data(
        await gql(
            client,
            "query($n: String!) { campaign(name: $n) { org { name } targets { id } "
            "stats { supporterCount actionCount { count } } a: org { title } "
            "... on PrivateCampaign { actionPages { name } partnerships { org { name } } "
            "mtt { startAt } } } }",
            {"n": world.campaign.name},
            token=world.tokens["owner"],
        )
    )
    assert body["campaign"]["org"] == {"name": world.org.name}
    assert body["campaign"]["actionPages"] == [{"name": world.page.name}]


async def test_delete_org_refuses_without_changing_anything(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    spare = await make_campaign(session, world.org, "spare-campaign")
    session.add(
        Action(action_type="petition", campaign_id=world.campaign.id, action_page_id=world.page.id)
    )
    await session.commit()
    spare_id = spare.id
    refused = error(
        await gql(
            client,
            "mutation($n: String!) { deleteOrg(name: $n) }",
            {"n": world.org.name},
            token=world.tokens["owner"],
        )
    )
    assert refused["message"] == "has action pages"
    await session.rollback()
    # the deletable campaign was not deleted either: a refusal changes nothing
    assert await session.scalar(select(Campaign.id).where(Campaign.id == spare_id)) == spare_id


async def can_send_confirm_emails(session: AsyncSession, org: Org) -> None:
    """An email backend (the preview mailbox) and a confirm template: what turning supporter
    confirmation on asks for."""
    preview = Service(name="preview", org_id=org.id)
    session.add(preview)
    session.add(EmailTemplate(org_id=org.id, name="confirm", locale="en", subject="S", html="h"))
    await session.flush()
    org.email_backend_id = preview.id
    org.supporter_confirm_template = "confirm"
    await session.commit()


class TopologyRecorder:
    """A pipeline that only notes which orgs' queues it was asked to follow."""

    def __init__(self) -> None:
        self.orgs: list[int] = []

    async def after_commit(self, publications: object, action_ids: object) -> None:
        return None

    async def org_changed(self, org_id: int) -> None:
        self.orgs.append(org_id)


async def test_campaign_supporter_confirm_changes_make_the_org_topology_follow(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    token, name, org_id = world.tokens["owner"], world.campaign.name, world.org.id
    await can_send_confirm_emails(session, world.org)
    recorder = TopologyRecorder()
    previous = state_of(app).pipeline
    state_of(app).pipeline = recorder
    try:
        doc = (
            "mutation($n: String!, $i: CampaignInput!) { updateCampaign(name: $n, input: $i) "
            "{ name } }"
        )
        data(await gql(client, doc, {"n": name, "i": {"title": "New title"}}, token=token))
        assert recorder.orgs == []  # nothing the topology depends on
        data(await gql(client, doc, {"n": name, "i": {"supporterConfirm": True}}, token=token))
        assert recorder.orgs == [org_id]
        add = (
            "mutation($o: String!, $i: CampaignInput!) { addCampaign(orgName: $o, input: $i) "
            "{ name } }"
        )
        data(
            await gql(
                client,
                add,
                {
                    "o": world.org.name,
                    "i": {"name": "confirming", "title": "C", "supporterConfirm": True},
                },
                token=token,
            )
        )
        assert recorder.orgs == [org_id, org_id]
    finally:
        state_of(app).pipeline = previous
