"""The PyPI `proca` 0.3.9 CLI drives a served proca-server.

It only installs on Python 3.10 (its aiohttp pin); without one these tests are skipped. Its
output is human text, so the steps read that text (colours stripped, blanks squeezed) and keep
ids consistent across commands. What each command sends is recorded in
docs/clients/recorded-operations.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.clients.harness import (
    ADMIN_EMAIL,
    INSTANCE_ORG,
    CampaignRef,
    CliRun,
    OrgRef,
    PythonCli,
    ServedProca,
    arrange_campaign,
    arrange_org,
)
from tests.factories import unique


def line_matching(run: CliRun, pattern: str) -> re.Match[str]:
    for line in run.text.splitlines():
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(run.explain(f"no output line matches {pattern!r}"))


def roles(run: CliRun) -> set[tuple[str, str, str]]:
    """(org title, role, org name) for each "`- TITLE as ROLE ⬢ NAME" line of `proca me`."""
    found = (re.search(r"`- (.+) as (\S+) ⬢ (\S+)", line) for line in run.text.splitlines())
    return {(m[1], m[2], m[3]) for m in found if m}


async def me(proca: PythonCli) -> CliRun:
    run = (await proca("me")).ok()
    line_matching(run, rf"^(.*\s)?{re.escape(ADMIN_EMAIL)} ADMIN$")
    return run


async def server_add(proca: PythonCli) -> None:
    """`server:add` probes the URL with OPTIONS (any non-error answer), then reads the token's
    user through `currentUser`."""
    run = (await proca.add_server()).ok()
    assert "API url looks ok" in run.text
    probe = run.exchanges[0]
    assert (probe.method, probe.path) == ("OPTIONS", "/api")
    assert probe.status < 400
    assert [e.body for e in run.exchanges[1:] if e.is_graphql], "currentUser was not asked"


async def org_add_and_show(proca: PythonCli, name: str, title: str) -> OrgRef:
    added = (await proca("org:add", "--no-default", name, title)).ok()
    org_id = int(line_matching(added, rf"⬣ {re.escape(name)} id: (\d+) - {re.escape(title)}$")[1])
    assert (title, "owner", name) in roles(await me(proca))

    shown = (await proca("org", name)).ok()
    lines = shown.text.splitlines()
    assert lines[0] == f"{title} {name} {org_id}"
    assert lines[1].startswith("Contact: BASIC")
    return OrgRef(org_id, name, title)


async def campaign_commands(proca: PythonCli, org: OrgRef, name: str, title: str) -> CampaignRef:
    added = (await proca("campaign:add", "-o", org.name, "-n", name, "-t", title)).ok()
    campaign_id = int(line_matching(added, rf"^(\d+) {re.escape(title)} ⬢ {name} BASIC$")[1])

    shown = (await proca("campaign", name)).ok()
    assert shown.text == f"{campaign_id} {title} by {org.name} ⬢ {name} BASIC 0 targets"
    by_id = (await proca("campaign", "-i", str(campaign_id))).ok()
    assert by_id.text == shown.text

    listed = (await proca("campaign", "-l", "-o", org.name)).ok()
    line_matching(listed, rf"^{campaign_id} {re.escape(title)} ⬢ {name} BASIC 0 targets$")

    # `campaign:set` sends snake_case input keys (`external_id`): they must keep working.
    new_title = f"{title} Now"
    changed = (await proca("campaign:set", name, "-t", new_title, "-I", "42")).ok()
    assert changed.operations()[0]["variables"]["input"] == {
        "external_id": 42,
        "title": new_title,
    }
    assert changed.text == f"{campaign_id} {new_title} by {org.name} ⬢ {name} ext: 42 BASIC"
    return CampaignRef(campaign_id, name, new_title)


async def page_commands(proca: PythonCli, org: OrgRef, campaign: CampaignRef) -> int:
    """add, show by name and id, list, set; returns the page id (`page_delete` ends it)."""
    name = f"{campaign.name}/{org.name}/en"
    added = (
        await proca("page:add", "-o", org.name, "-c", campaign.name, "-n", name, "-l", "en")
    ).ok()
    found = line_matching(
        added, rf"^Added (\d+) {org.name} {campaign.name} ⬣ {name} locale: en STANDBY"
    )
    page_id = int(found[1])

    shown = (await proca("page", name)).ok()
    line_matching(shown, rf"^{page_id} {org.name} {campaign.name} ⬣ {name} locale: en STANDBY")
    by_id = (await proca("page", "-i", str(page_id))).ok()
    assert by_id.text == shown.text

    listed = (await proca("page", "-l", "-o", org.name)).ok()
    line_matching(listed, rf"^{page_id} {campaign.name} ⬣ {name} locale: en STANDBY")

    assert (await proca("page:set", name, "-l", "fr")).ok().text == ""
    shown = (await proca("page", "-i", str(page_id))).ok()
    line_matching(shown, rf"^{page_id} {org.name} {campaign.name} ⬣ {name} locale: fr STANDBY")
    return page_id


async def page_delete(proca: PythonCli, org: OrgRef, page_id: int) -> None:
    deleted = (await proca("page:delete", "-i", str(page_id), stdin="y\n")).ok()
    assert deleted.text.endswith("✨ Deleted."), deleted.explain("not deleted")
    listed = (await proca("page", "-l", "-o", org.name)).ok()
    assert listed.text == ""


async def key_commands(proca: PythonCli, org: OrgRef) -> int:
    generated = (await proca("key:gen", "-o", org.name, "-n", "acme 2026")).ok()
    found = line_matching(generated, r"^(\d+) ([\w-]{43}) ([\w-]{43}) acme 2026$")
    key_id, public = int(found[1]), found[2]
    assert (await proca("key:activate", "-o", org.name, str(key_id))).ok().text == ""
    listed = (await proca("key", "-o", org.name)).ok()
    assert f"{key_id} {public} ACTIVE acme 2026" in listed.text.splitlines()
    return key_id


async def service_commands(proca: PythonCli, org: OrgRef) -> int:
    args = ["-n", "SMTP", "-u", "mailer", "-p", "s3cret", "-h", "smtp.example.org", "-l", "587"]
    added = (await proca("service:set", "-o", org.name, *args)).ok()
    service_id = int(line_matching(added, r"^(\d+) SMTP mailer@smtp\.example\.org/587$")[1])
    listed = (await proca("service", "-o", org.name)).ok()
    assert listed.text == f"{service_id} SMTP mailer@smtp.example.org/587"
    return service_id


async def template_commands(proca: PythonCli, org: OrgRef, home: Path) -> None:
    (home / "thanks.html").write_text("<p>Thank you, {{firstName}}!</p>")
    (home / "thanks.txt").write_text("Thank you, {{firstName}}!")
    upserted = await proca(
        "template:set",
        *("-o", org.name, "-n", "thankyou", "-l", "en", "-s", "Thank you!"),
        *("-h", str(home / "thanks.html"), "-t", str(home / "thanks.txt")),
    )
    assert upserted.ok().text == ""
    assert upserted.exchanges[0].response == {"data": {"upsertTemplate": "SUCCESS"}}
    listed = (await proca("template", "-o", org.name)).ok()
    assert listed.text == "thankyou@en"


async def join_and_leave(proca: PythonCli) -> None:
    """The admin (instance bit join_orgs) joins the instance org as owner, then leaves it."""
    before = roles(await me(proca))
    joined = (await proca("org:join", INSTANCE_ORG)).ok()
    line_matching(joined, rf"^🛸 joined {INSTANCE_ORG} {INSTANCE_ORG} \d+$")
    assert roles(await me(proca)) == before | {(INSTANCE_ORG, "owner", INSTANCE_ORG)}

    left = (await proca("org:leave", INSTANCE_ORG)).ok()
    assert left.text == f"👋 left {INSTANCE_ORG}: SUCCESS"
    assert roles(await me(proca)) == before


# ---------------------------------------------------------------------------------------------
# The scenario


@pytest.mark.parametrize("fresh_server", ["sqlite", "postgresql"], indirect=True)
async def test_the_python_cli_drives_the_server(
    python_proca: Path, fresh_server: ServedProca, python_home: Path
) -> None:
    proca = PythonCli(python_proca, python_home, fresh_server)
    await server_add(proca)
    assert roles(await me(proca)) == set()

    org = await org_add_and_show(proca, "acme", "Acme Foundation")
    campaign = await campaign_commands(proca, org, "save-the-bees", "Save the Bees")
    page_id = await page_commands(proca, org, campaign)
    await key_commands(proca, org)
    await service_commands(proca, org)
    await template_commands(proca, org, python_home)
    await join_and_leave(proca)
    await page_delete(proca, org, page_id)
    assert roles(await me(proca)) == {("Acme Foundation", "owner", "acme")}


# ---------------------------------------------------------------------------------------------
# One command group each, on a shared server


@pytest.fixture
async def proca(python_proca: Path, shared_server: ServedProca, python_home: Path) -> PythonCli:
    cli = PythonCli(python_proca, python_home, shared_server)
    await server_add(cli)
    return cli


async def test_server_add_and_me(proca: PythonCli) -> None:
    await me(proca)


async def test_org_add_and_show(proca: PythonCli) -> None:
    await org_add_and_show(proca, unique("ngo"), "Some NGO")


async def test_campaign_add_show_list_set(proca: PythonCli) -> None:
    org = await arrange_org(proca.server)
    await campaign_commands(proca, org, unique("bees"), "Bees Forever")


async def test_page_add_show_list_set_delete(proca: PythonCli) -> None:
    org = await arrange_org(proca.server)
    campaign = await arrange_campaign(proca.server, org)
    page_id = await page_commands(proca, org, campaign)
    await page_delete(proca, org, page_id)


async def test_key_gen_activate_list(proca: PythonCli) -> None:
    await key_commands(proca, await arrange_org(proca.server))


async def test_service_set_and_list(proca: PythonCli) -> None:
    await service_commands(proca, await arrange_org(proca.server))


async def test_template_set_and_list(proca: PythonCli, python_home: Path) -> None:
    await template_commands(proca, await arrange_org(proca.server), python_home)


async def test_org_join_and_leave(proca: PythonCli) -> None:
    await join_and_leave(proca)
