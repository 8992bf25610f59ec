"""Every management operation, for every kind of caller, through the GraphQL endpoint.

Callers: anonymous, a user of another org ("outsider"), each role of the org, and an instance
admin who is not a member. Each (operation, caller) pair runs on a fresh small world."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import EmailTemplate, Service
from proca_server.user.service import reset_api_token
from tests.factories import (
    make_campaign,
    make_key,
    make_org,
    make_page,
    make_user,
    unique,
)

CALLERS = ["anonymous", "outsider", "owner", "campaigner", "translator", "coordinator", "admin"]
STAFF = {"owner", "campaigner", "translator", "coordinator"}
ALL_USERS = {"outsider", *STAFF, "admin"}
EVERYONE = {"anonymous", *ALL_USERS}


@dataclass
class Case:
    name: str
    document: str
    allowed: set[str]
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass
class Matrix:
    values: dict[str, Any]
    tokens: dict[str, str]


async def build(session: AsyncSession) -> Matrix:
    org = await make_org(session)
    other = await make_org(session)
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    spare_page = await make_page(session, campaign, org)
    await make_key(session, org, active=True)
    inactive, _ = await make_key(session, org, active=False)
    # an org able to send supporter confirm emails: turning them on is then allowed
    preview = Service(name="preview", org_id=org.id)
    session.add(preview)
    session.add(EmailTemplate(org_id=org.id, name="confirm", locale="en", subject="S", html="h"))
    await session.flush()
    org.email_backend_id = preview.id
    org.supporter_confirm_template = "confirm"
    tokens = {}
    # new users have no token to delete: `keep_others` spares a statement each
    for role in STAFF:
        user = await make_user(session, org=org, role=role)
        tokens[role] = await reset_api_token(session, user, keep_others=True)
    outsider = await make_user(session, org=other, role="owner")
    tokens["outsider"] = await reset_api_token(session, outsider, keep_others=True)
    admin = await make_user(session, admin=True)
    tokens["admin"] = await reset_api_token(session, admin, keep_others=True)
    member = await make_user(session, org=org, role="coordinator")
    joiner = await make_user(session)
    await session.commit()
    values = {
        "org": org.name,
        "campaign": campaign.name,
        "campaign_id": campaign.id,
        "page": page.name,
        "page_id": page.id,
        "spare_page": spare_page.name,
        "key_id": inactive.id,
        "member": member.email,
        "joiner": joiner.email,
        "new_name": unique("n"),
        "contact_ref": "A" * 43,
    }
    return Matrix(values, tokens)


CASES = [
    # queries
    Case("currentUser", "{ currentUser { email } }", ALL_USERS),
    Case("users", "{ users { email } }", {"admin"}),
    Case("application", "{ application { name } }", {"admin"}),
    Case("org", '{ org(name: "$org") { name } }', STAFF),
    Case("campaign", '{ campaign(name: "$campaign") { name } }', EVERYONE),
    Case("campaigns", '{ campaigns(name: "$campaign") { name } }', EVERYONE),
    Case("actionPage", '{ actionPage(name: "$page") { name } }', EVERYONE),
    Case("actions", '{ actions(orgName: "$org") { actionId } }', {"owner", "admin"}),
    Case("exportActions", '{ exportActions(orgName: "$org") { actionId } }', {"owner", "admin"}),
    Case("contacts", '{ contacts(orgName: "$org") { actionId } }', {"owner", "admin"}),
    # users
    Case("resetApiToken", "mutation { resetApiToken }", ALL_USERS),
    Case("updateUser", 'mutation { updateUser(input: {jobTitle: "x"}) { email } }', ALL_USERS),
    Case(
        "updateUser other",
        'mutation { updateUser(email: "$member", input: {jobTitle: "x"}) { email } }',
        {"admin"},
    ),
    # orgs
    Case(
        "addOrg", 'mutation { addOrg(input: {name: "$new_name", title: "T"}) { name } }', ALL_USERS
    ),
    Case(
        "updateOrg",
        'mutation { updateOrg(name: "$org", input: {title: "T2"}) { name } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "updateOrgProcessing",
        'mutation { updateOrgProcessing(name: "$org", customActionDeliver: true) { name } }',
        {"owner", "campaigner", "admin"},
    ),
    Case("deleteOrg", 'mutation { deleteOrg(name: "$org") }', {"owner", "admin"}),
    Case("joinOrg", 'mutation { joinOrg(name: "$org") { status } }', {"admin"}),
    Case(
        "addOrgUser",
        'mutation { addOrgUser(orgName: "$org", input: {email: "$joiner", role: "coordinator"})'
        " { status } }",
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "updateOrgUser",
        'mutation { updateOrgUser(orgName: "$org", input: {email: "$member", role: "coordinator"})'
        " { status } }",
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "deleteOrgUser",
        'mutation { deleteOrgUser(orgName: "$org", email: "$member") { status } }',
        {"owner", "campaigner", "admin"},
    ),
    # keys, services, templates
    Case(
        "generateKey",
        'mutation { generateKey(orgName: "$org", input: {name: "k"}) { id } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "addKey",
        'mutation { addKey(orgName: "$org", input: {name: "k", '
        'public: "S43G2yLwLYusDg2oTgbzEyZbF8tzvx6btn2Z7ZoNgWI"}) { id } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "activateKey",
        'mutation { activateKey(orgName: "$org", id: $key_id) { status } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "deactivateAllKeys",
        'mutation { deactivateAllKeys(orgName: "$org") { status } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "upsertService",
        'mutation { upsertService(orgName: "$org", input: {name: WEBHOOK, host: "https://h"}) '
        "{ id } }",
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "upsertTemplate",
        'mutation { upsertTemplate(orgName: "$org", input: {name: "t", locale: "en", '
        'subject: "s", html: "h"}) }',
        {*STAFF, "admin"},
    ),
    Case(
        "resetTransactionalEmailBudget",
        'mutation { resetTransactionalEmailBudget(orgName: "$org") }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "inviteOrgUser",
        'mutation { inviteOrgUser(orgName: "$org", input: {email: "$new_name@example.org", '
        'role: "coordinator"}) { code } }',
        {"owner", "campaigner", "translator", "admin"},
    ),
    Case(
        "deleteContact",
        'mutation { deleteContact(orgName: "$org", contactRef: "$contact_ref") }',
        {"owner", "admin"},
    ),
    # campaigns
    Case(
        "addCampaign",
        'mutation { addCampaign(orgName: "$org", input: {name: "$new_name", title: "T"}) '
        "{ name } }",
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "upsertCampaign",
        'mutation { upsertCampaign(orgName: "$org", input: {name: "$campaign", title: "T"}) '
        "{ name } }",
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "updateCampaign",
        'mutation { updateCampaign(name: "$campaign", input: {title: "T3"}) { name } }',
        {*STAFF, "admin"},
    ),
    Case(
        "updateCampaignProcessing",
        'mutation { updateCampaignProcessing(name: "$campaign", supporterConfirm: true) { name } }',
        {*STAFF, "admin"},
    ),
    Case(
        "deleteCampaign",
        'mutation { deleteCampaign(name: "$campaign") }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "upsertTargets",
        'mutation { upsertTargets(campaignId: $campaign_id, targets: [{externalId: "$new_name",'
        ' name: "MEP"}]) { id } }',
        {*STAFF, "admin"},
    ),
    # action pages
    Case(
        "addActionPage",
        'mutation { addActionPage(orgName: "$org", campaignName: "$campaign", '
        'input: {name: "$org/$new_name", locale: "en"}) { id } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "updateActionPage",
        'mutation { updateActionPage(name: "$page", input: {extraSupporters: 1}) { id } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "copyActionPage",
        'mutation { copyActionPage(orgName: "$org", name: "$org/$new_name", fromName: "$page")'
        " { id } }",
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "copyCampaignActionPage",
        'mutation { copyCampaignActionPage(orgName: "$org", name: "$org/$new_name", '
        'fromCampaignName: "$campaign") { id } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "launchActionPage",
        'mutation { launchActionPage(name: "$page") { status } }',
        {"owner", "campaigner", "admin"},
    ),
    Case(
        "deleteActionPage",
        'mutation { deleteActionPage(name: "$spare_page") }',
        {"owner", "campaigner", "admin"},
    ),
]


def render(template: str, values: dict[str, Any]) -> str:
    out = template
    for key in sorted(values, key=len, reverse=True):
        out = out.replace(f"${key}", str(values[key]))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_role_matrix(case: Case, client: httpx.AsyncClient, session: AsyncSession) -> None:
    failures = []
    mutation = case.document.lstrip().startswith("mutation")
    matrix: Matrix | None = None
    for caller in CALLERS:
        if matrix is None:
            matrix = await build(session)
        headers = (
            {} if caller == "anonymous" else {"Authorization": f"Bearer {matrix.tokens[caller]}"}
        )
        response = await client.post(
            "/api", json={"query": render(case.document, matrix.values)}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        errors = body.get("errors") or []
        if caller in case.allowed:
            if errors:
                failures.append(f"{caller} should pass, got {errors}")
            if mutation:
                matrix = None  # what it changed is not the next caller's world
        else:
            codes = {(e.get("extensions") or {}).get("code") for e in errors}
            if not errors or not codes <= {"unauthorized", "permission_denied"}:
                failures.append(f"{caller} should be refused, got {body}")
    assert not failures, "\n".join(failures)
