"""The real Node CLI (npm `proca` 2.5.1) drives a served proca-server.

One scenario walks every covered command in the order an admin would use them; the smaller
tests below run one command group each on a shared server, with what they need arranged in the
database, so that a failure names its command. Each step asserts on the CLI's JSON (or CSV,
for the commands that print nothing with --json) and on ids staying consistent across commands.

What each command sends is recorded in docs/clients/recorded-operations.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.clients.harness import (
    ADMIN_EMAIL,
    INSTANCE_ORG,
    CampaignRef,
    NodeCli,
    OrgRef,
    ServedProca,
    arrange_campaign,
    arrange_org,
)
from tests.factories import unique

# What `campaign add` sends as the config of a new campaign (an org without a locale).
DEFAULT_CAMPAIGN_CONFIG = {
    "locales": {"en": {"campaign:": {"description": ""}, "common:": {}}},
    "portal": [],
}


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def role_set(me: dict[str, Any]) -> set[tuple[str, str]]:
    return {(role["role"], role["org"]["name"]) for role in me["roles"]}


async def whoami(proca: NodeCli) -> dict[str, Any]:
    me = only((await proca("user", "whoami")).json())
    assert me["email"] == ADMIN_EMAIL
    assert me["isAdmin"] is True
    assert isinstance(me["id"], int)
    assert me["apiToken"]["expiresAt"]
    return me


# ---------------------------------------------------------------------------------------------
# One step per command group; the scenario chains them, the small tests arrange and call one.


async def add_and_get_org(proca: NodeCli, name: str, title: str) -> OrgRef:
    added = only((await proca("org", "add", "-n", name, "-t", title)).json())
    assert added["name"] == name
    assert added["title"] == title
    assert json.loads(added["config"]) == {}

    me = await whoami(proca)
    assert ("owner", name) in role_set(me), "addOrg makes the caller an owner"

    org = only((await proca("org", "get", name)).json())
    assert isinstance(org["id"], int)
    assert (org["name"], org["title"], org["config"]) == (name, title, {})
    # `org get` asks for keys and personal data, and (by a variable misnamed `$withProcessing`
    # in the client) neither campaigns nor processing: @include with default values.
    assert org["keys"] == []
    assert org["personalData"]["contactSchema"] == "BASIC"
    assert org["personalData"]["supporterConfirm"] is False
    assert org["services"] == []
    assert "campaigns" not in org
    assert "processing" not in org
    return OrgRef(org["id"], name, title)


async def campaign_commands(proca: NodeCli, org: OrgRef, name: str, title: str) -> CampaignRef:
    added = only(
        (await proca("campaign", "add", "-n", name, "-o", org.name, "--title", title)).json()
    )
    assert added["addCampaign"]["name"] == name
    assert added["addCampaign"]["title"] == title
    assert json.loads(added["addCampaign"]["config"]) == DEFAULT_CAMPAIGN_CONFIG

    got = only((await proca("campaign", "get", name)).json())
    assert isinstance(got["id"], int)
    assert (got["name"], got["title"]) == (name, title)
    assert got["org"] == {"name": org.name, "title": org.title}
    assert got["status"] == "LIVE"
    assert (got["externalId"], got["start"], got["end"]) == (None, None, None)
    assert got["config"] == DEFAULT_CAMPAIGN_CONFIG
    assert got["stats"] == {"supporterCount": 0, "actionCount": []}
    assert got["mtt"] is None
    campaign = CampaignRef(got["id"], name, title)

    by_id = only((await proca("campaign", "get", "-i", str(campaign.id))).json())
    assert (by_id["id"], by_id["name"]) == (campaign.id, name)

    listed = only((await proca("campaign", "list", "-n", org.name)).json())
    assert (listed["id"], listed["name"], listed["title"]) == (campaign.id, name, title)
    assert listed["org"] == {"name": org.name, "title": org.title}
    assert listed["stats"]["supporterCount"] == 0
    return campaign


async def close_campaign(proca: NodeCli, org: OrgRef, campaign: CampaignRef) -> None:
    closed = only(
        (await proca("campaign", "status", "-n", campaign.name, "--status", "closed")).json()
    )
    assert closed["name"] == campaign.name
    assert closed["org"] == {"name": org.name}
    assert closed["status"] == "CLOSED"
    assert closed["title"] == campaign.title
    got = only((await proca("campaign", "get", "-i", str(campaign.id))).json())
    assert got["status"] == "CLOSED"


async def widget_commands(proca: NodeCli, org: OrgRef, campaign: CampaignRef) -> int:
    """add (default name `<campaign>/<org>/<lang>`), get, list by org and by campaign, update;
    returns the widget's id. `widget_delete` ends its life."""
    name = f"{campaign.name}/{org.name}/en"
    added = only(
        (await proca("widget", "add", "-c", campaign.name, "-o", org.name, "-l", "en")).json()
    )
    page_id = added["id"]
    assert isinstance(page_id, int)

    page = only((await proca("widget", "get", "-n", name)).json())
    assert (page["id"], page["name"], page["locale"]) == (page_id, name, "en")
    assert page["org"] == {"name": org.name, "id": org.id}
    assert page["campaign"] == {"name": campaign.name}
    assert page["status"] == "STANDBY"
    assert page["extraSupporters"] == 0
    assert page["journey"] == ["Petition", "Share"]
    assert page["location"] is None
    assert page["thankYouTemplate"] is None
    assert page["config"] == {}

    by_org = only((await proca("widget", "list", "-o", org.name)).json())
    assert (by_org["id"], by_org["name"], by_org["locale"]) == (page_id, name, "en")
    assert by_org["campaign"] == {"name": campaign.name}
    assert by_org["status"] == "STANDBY"
    assert by_org["thankYouTemplate"] is None
    assert by_org["supporterConfirmTemplate"] is None
    assert "config" not in by_org

    by_campaign = only((await proca("widget", "list", "-c", campaign.name)).json())
    assert (by_campaign["id"], by_campaign["name"]) == (page_id, name)
    assert by_campaign["org"] == {"name": org.name, "id": org.id}

    updated = only((await proca("widget", "update", "-i", str(page_id), "--locale", "fr")).json())
    assert (updated["id"], updated["name"], updated["locale"]) == (page_id, name, "fr")

    confirm = {"component": {"consent": {"email": {"confirmOptIn": True}}}}
    updated = only((await proca("widget", "update", "-n", name, "--confirm-optin")).json())
    assert (updated["id"], updated["locale"]) == (page_id, "fr")
    assert json.loads(updated["config"]) == confirm

    page = only((await proca("widget", "get", "-i", str(page_id))).json())
    assert (page["name"], page["locale"], page["config"]) == (name, "fr", confirm)
    return page_id


async def widget_delete(proca: NodeCli, org: OrgRef, page_id: int) -> None:
    deleted = only((await proca("widget", "delete", "-i", str(page_id))).json())
    assert deleted["id"] == page_id
    assert deleted["status"] == "SUCCESS"  # the CLI puts deleteActionPage's answer there
    assert (await proca("widget", "list", "-o", org.name)).json() == []


async def template_add(proca: NodeCli, org: OrgRef) -> None:
    # The CLI prints `[null]`: its run() returns nothing.
    assert (
        await proca("template", "add", "-o", org.name, "--type", "thankyou", "-s", "Thank you!")
    ).json() == [None]
    listed = (await proca("template", "list", "-o", org.name, output="csv")).rows()
    assert listed == [{"name": "thankyou@en", "actionConfirm": ""}]


async def service_add(proca: NodeCli, org: OrgRef) -> int:
    # --csv: `service add` and `service list` print nothing with --json.
    args = ["--type", "smtp", "--host", "smtp://mail.example.org:587", "--user", "mailer"]
    added = only(
        (
            await proca(
                "service", "add", "-o", org.name, *args, "--password", "s3cret", output="csv"
            )
        ).rows()
    )
    expected = {
        "host": "smtp://mail.example.org:587",
        "name": "SMTP",
        "path": "",
        "user": "mailer",
    }
    assert added["id"].isdigit()
    assert {k: v for k, v in added.items() if k != "id"} == expected
    listed = (await proca("service", "list", "-o", org.name, output="csv")).rows()
    assert listed == [added], "the password is never returned"
    return int(added["id"])


async def key_generated_and_activated(
    proca: NodeCli, server: ServedProca, org: OrgRef
) -> dict[str, Any]:
    """The Node CLI has no key command: the key is made through the API (as `proca key:gen` and
    `key:activate` of the Python CLI do) and must then show in `proca org get`."""
    generated = (
        await server.graphql(
            "mutation Gen($org: String!, $name: String!) {"
            " generateKey(orgName: $org, input: {name: $name}) { id name public private active } }",
            {"org": org.name, "name": "acme 2026"},
        )
    )["generateKey"]
    assert generated["active"] is False
    assert len(generated["public"]) == len(generated["private"]) == 43  # 32 bytes, b64url
    activated = await server.graphql(
        "mutation Act($org: String!, $id: Int!) { activateKey(orgName: $org, id: $id) { status } }",
        {"org": org.name, "id": generated["id"]},
    )
    assert activated == {"activateKey": {"status": "SUCCESS"}}

    shown = only((await proca("org", "get", org.name)).json())
    key = {
        "id": generated["id"],
        "name": "acme 2026",
        "expired": False,
        "expiredAt": None,
        "public": generated["public"],
    }
    assert key in shown["keys"]
    # `org get` does not ask whether a key is active; ask directly.
    keys = (
        await server.graphql(
            "query Keys($org: String!) { org(name: $org) { keys { id active } } }",
            {"org": org.name},
        )
    )["org"]["keys"]
    assert {"id": generated["id"], "active": True} in keys
    return shown


async def join_and_leave(proca: NodeCli, before: set[tuple[str, str]]) -> None:
    """The admin (instance bit join_orgs) joins the instance org as owner, then leaves it."""
    # --csv: `user join` and `user leave` print nothing with --json.
    joined = only((await proca("user", "join", "-o", INSTANCE_ORG, output="csv")).rows())
    assert (joined["name"], joined["title"], joined["status"]) == (
        INSTANCE_ORG,
        INSTANCE_ORG,
        "SUCCESS",
    )
    assert role_set(await whoami(proca)) == before | {("owner", INSTANCE_ORG)}

    left = (await proca("user", "leave", "-o", INSTANCE_ORG, output="csv")).rows()
    assert left == [{"status": "SUCCESS"}]
    assert role_set(await whoami(proca)) == before


# ---------------------------------------------------------------------------------------------
# The scenario


@pytest.mark.parametrize("fresh_server", ["sqlite", "postgresql"], indirect=True)
async def test_the_node_cli_drives_the_server(
    node_proca: Path, fresh_server: ServedProca, node_home: Path
) -> None:
    proca = NodeCli(node_proca, node_home, fresh_server)

    me = await whoami(proca)
    assert me["roles"] == []

    org = await add_and_get_org(proca, "acme", "Acme Foundation")
    campaign = await campaign_commands(proca, org, "save-the-bees", "Save the Bees")
    page_id = await widget_commands(proca, org, campaign)
    await template_add(proca, org)
    service_id = await service_add(proca, org)
    shown = await key_generated_and_activated(proca, fresh_server, org)
    assert [s["id"] for s in shown["services"]] == [service_id]
    await join_and_leave(proca, before={("owner", org.name)})
    await widget_delete(proca, org, page_id)
    await close_campaign(proca, org, campaign)

    listed = only((await proca("campaign", "list", "-n", org.name)).json())
    assert (listed["id"], listed["status"]) == (campaign.id, "CLOSED")


# ---------------------------------------------------------------------------------------------
# One command group each, on a shared server


async def _arrange_campaign(server: ServedProca) -> tuple[OrgRef, CampaignRef]:
    org = await arrange_org(server)
    return org, await arrange_campaign(server, org)


async def test_whoami_sends_what_the_spec_recorded(
    node_proca: Path, shared_server: ServedProca, node_home: Path
) -> None:
    proca = NodeCli(node_proca, node_home, shared_server)
    run = await proca("user", "whoami")
    await whoami(proca)
    exchange = only(run.exchanges)
    assert (exchange.method, exchange.path, exchange.status) == ("POST", "/api", 200)
    assert exchange.headers["authorization"] == f"Bearer {shared_server.token}"
    assert exchange.headers["content-type"] == "application/json"
    assert exchange.headers["accept"].startswith("application/graphql-response+json")
    assert set(exchange.body) == {"query", "variables"}  # anonymous: no operationName
    assert exchange.body["variables"] == {}


async def test_org_add_then_get(
    node_proca: Path, shared_server: ServedProca, node_home: Path
) -> None:
    proca = NodeCli(node_proca, node_home, shared_server)
    await add_and_get_org(proca, unique("ngo"), "Some NGO")


async def test_campaign_add_get_list_status(
    node_proca: Path, shared_server: ServedProca, node_home: Path
) -> None:
    org = await arrange_org(shared_server)
    proca = NodeCli(node_proca, node_home, shared_server)
    campaign = await campaign_commands(proca, org, unique("bees"), "Bees Forever")
    await close_campaign(proca, org, campaign)


async def test_widget_add_get_list_update_delete(
    node_proca: Path, shared_server: ServedProca, node_home: Path
) -> None:
    org, campaign = await _arrange_campaign(shared_server)
    proca = NodeCli(node_proca, node_home, shared_server)
    page_id = await widget_commands(proca, org, campaign)
    await widget_delete(proca, org, page_id)


async def test_template_add(node_proca: Path, shared_server: ServedProca, node_home: Path) -> None:
    org = await arrange_org(shared_server)
    await template_add(NodeCli(node_proca, node_home, shared_server), org)


async def test_service_add(node_proca: Path, shared_server: ServedProca, node_home: Path) -> None:
    org = await arrange_org(shared_server)
    await service_add(NodeCli(node_proca, node_home, shared_server), org)


async def test_key_generated_and_activated_shows_in_org_get(
    node_proca: Path, shared_server: ServedProca, node_home: Path
) -> None:
    org = await arrange_org(shared_server)
    proca = NodeCli(node_proca, node_home, shared_server)
    await key_generated_and_activated(proca, shared_server, org)


async def test_user_join_and_leave(
    node_proca: Path, shared_server: ServedProca, node_home: Path
) -> None:
    proca = NodeCli(node_proca, node_home, shared_server)
    before = role_set(await whoami(proca))
    assert ("owner", INSTANCE_ORG) not in before
    await join_and_leave(proca, before)
