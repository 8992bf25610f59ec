"""Confirms: codes, charges, lookups, the five operations, the GraphQL mutations,
the notification emails and the /link/<verb>/<code> route."""

from __future__ import annotations

import base64
import re
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.permissions import ROLES
from proca_server.config import Settings
from proca_server.confirm import service
from proca_server.confirm.emails import confirm_link
from proca_server.models import (
    Action,
    ActionPage,
    Confirm,
    EmailTemplate,
    Org,
    PreviewEmail,
    Staffer,
    User,
)
from proca_server.models.enums import ActionProcessingStatus, ConfirmOperation
from proca_server.processing.events import AfterCommit, run_after_commit
from proca_server.processing.handoff import NULL_PIPELINE
from proca_server.user.service import reset_api_token
from tests.factories import (
    PASSWORD,
    World,
    make_campaign,
    make_org,
    make_page,
    make_user,
    make_world,
)
from tests.graphql_helpers import data, error, gql

M = TypeVar("M")

ACCEPT_ORG = """
mutation($name: String!, $confirm: ConfirmInput!) {
  acceptOrgConfirm(name: $name, confirm: $confirm) {
    status message
    actionPage { __typename name live }
    campaign { __typename name }
    org { __typename name }
  }
}"""
REJECT_ORG = """
mutation($name: String!, $confirm: ConfirmInput!) {
  rejectOrgConfirm(name: $name, confirm: $confirm) { status message }
}"""
ACCEPT_USER = """
mutation($confirm: ConfirmInput!) {
  acceptUserConfirm(confirm: $confirm) { status message org { __typename name } }
}"""
REJECT_USER = """
mutation($confirm: ConfirmInput!) { rejectUserConfirm(confirm: $confirm) { status } }"""
INVITE = """
mutation($org: String!, $email: String!, $role: String!, $message: String) {
  inviteOrgUser(orgName: $org, input: {email: $email, role: $role}, message: $message) {
    code email message objectId creator { email }
  }
}"""
LAUNCH = """
mutation($name: String!, $message: String) {
  launchActionPage(name: $name, message: $message) { status }
}"""


def basic(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


async def reload(session: AsyncSession, row: M) -> M:
    """The row as the database has it now (the API wrote it in another session)."""
    await session.commit()
    await session.refresh(row)
    return row


async def token_for(session: AsyncSession, user: User) -> str:
    token = await reset_api_token(session, user)
    await session.commit()
    return token


async def mailbox(session: AsyncSession, address: str) -> list[PreviewEmail]:
    await session.commit()
    rows = await session.execute(
        select(PreviewEmail)
        .where(PreviewEmail.to_address.contains(address))
        .order_by(PreviewEmail.id)
    )
    return list(rows.scalars())


def code_of(mail: PreviewEmail) -> str:
    found = re.search(r"/link/accept/(\d+)", mail.text or "")
    assert found, mail.text
    return found.group(1)


async def partner_world(session: AsyncSession, lead: World) -> tuple[Org, ActionPage, User, str]:
    """A partner org with an owner and a (not live) page in the lead's campaign."""
    org = await make_org(session)
    page = await make_page(session, lead.campaign, org)
    owner = await make_user(session, org=org, role="owner")
    return org, page, owner, await token_for(session, owner)


# --- codes, charges and lookups ----------------------------------------------------------------


async def test_a_new_confirm_has_one_charge_and_an_8_digit_code(session: AsyncSession) -> None:
    world = await make_world(session)
    confirm = await service.create_confirm(
        session, ConfirmOperation.ADD_STAFFER, world.org.id, object_id=1, email="a@example.org"
    )
    assert confirm.charges == 1
    assert re.fullmatch(r"\d{8}", confirm.code)
    assert confirm.operation is ConfirmOperation.ADD_STAFFER


async def test_a_code_collision_draws_a_fresh_code(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(session)
    first = await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, world.org.id)
    await session.commit()
    drawn = iter([first.code, first.code, "12345678"])
    monkeypatch.setattr(service, "generate_code", lambda: next(drawn))
    second = await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, world.org.id)
    await session.commit()
    assert second.code == "12345678"  # a fresh code, not the old one with digits appended
    assert next(drawn, None) is None  # the taken code was tried twice
    count = await session.scalar(select(func.count()).select_from(Confirm))
    assert count == 2


async def test_the_three_lookup_modes(session: AsyncSession) -> None:
    world = await make_world(session)
    by_email = await service.create_confirm(
        session, ConfirmOperation.ADD_STAFFER, world.org.id, object_id=5, email="Inv@example.org"
    )
    by_object = await service.create_confirm(
        session, ConfirmOperation.LAUNCH_PAGE, world.campaign.id, object_id=world.page.id
    )
    open_code = await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, world.org.id)
    find = service.find_confirm

    assert await find(session, by_email.code, email="inv@example.org") is by_email
    assert await find(session, by_email.code, email="other@example.org") is None
    assert await find(session, by_email.code) is None  # it is not an open code
    assert await find(session, by_object.code, object_id=world.page.id) is by_object
    assert await find(session, by_object.code, object_id=world.page.id + 1) is None
    assert await find(session, by_object.code) is None
    assert await find(session, open_code.code) is open_code
    assert await find(session, "00000000") is None


async def test_accepting_spends_a_charge_then_the_confirm_is_expired(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    invitee = await make_user(session)
    other_org = await make_org(session)
    confirm = await service.create_confirm(
        session,
        ConfirmOperation.ADD_STAFFER,
        other_org.id,
        object_id=int(ROLES["translator"]),
        email=invitee.email,
        charges=2,
    )
    invitee_token = await token_for(session, invitee)
    variables = {"confirm": {"code": confirm.code, "email": invitee.email}}

    body = data(await gql(client, ACCEPT_USER, variables, token=invitee_token))
    assert body["acceptUserConfirm"]["status"] == "SUCCESS"
    assert (await reload(session, confirm)).charges == 1
    # A second charge, but the invitee is a member now: the operation fails, no charge spent.
    refused = error(await gql(client, ACCEPT_USER, variables, token=invitee_token))
    assert refused["extensions"]["code"] == "staffer_exists"
    assert (await reload(session, confirm)).charges == 1

    body = data(await gql(client, REJECT_USER, variables, token=world.tokens["owner"]))
    assert body["rejectUserConfirm"]["status"] == "SUCCESS"
    assert (await reload(session, confirm)).charges == 0
    expired = error(await gql(client, ACCEPT_USER, variables, token=invitee_token))
    assert expired["extensions"]["code"] == "expired"
    assert expired["message"] == "expired"


async def test_an_unknown_code_is_invalid(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    body = await gql(
        client, ACCEPT_USER, {"confirm": {"code": "99999999"}}, token=world.tokens["owner"]
    )
    assert error(body)["message"] == "code invalid"
    assert error(body)["extensions"]["code"] == "not_found"


# --- add_staffer and inviteOrgUser -------------------------------------------------------------


async def test_invite_email_then_the_invitee_accepts_and_becomes_a_staffer(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    world = await make_world(session)
    invitee = await make_user(session, "new.member@example.org")
    invitee_token = await token_for(session, invitee)

    body = await gql(
        client,
        INVITE,
        {"org": world.org.name, "email": invitee.email, "role": "campaigner", "message": "Hi!"},
        token=world.tokens["owner"],
    )
    invited = data(body)["inviteOrgUser"]
    assert invited["email"] == invitee.email
    assert invited["message"] == "Hi!"
    assert invited["objectId"] == int(ROLES["campaigner"])
    assert invited["creator"] == {"email": world.users["owner"].email}

    [mail] = await mailbox(session, invitee.email)
    assert mail.to_address == f'"new.member" <{invitee.email}>'
    assert world.org.title in mail.subject
    assert code_of(mail) == invited["code"]
    assert (mail.text or "").count("Hi!") == 1
    link = confirm_link(
        settings,
        Confirm(code=invited["code"], email=invitee.email, operation=ConfirmOperation.ADD_STAFFER),
        "accept",
    )
    assert link in (mail.text or "")
    assert parse_qs(urlsplit(link).query) == {"email": [invitee.email]}

    confirm = {"code": invited["code"], "email": invitee.email}
    accepted = data(await gql(client, ACCEPT_USER, {"confirm": confirm}, token=invitee_token))
    assert accepted["acceptUserConfirm"] == {
        "status": "SUCCESS",
        "message": "Hi!",
        "org": {"__typename": "PrivateOrg", "name": world.org.name},
    }
    await session.commit()
    staffer = await session.scalar(
        select(Staffer).where(Staffer.org_id == world.org.id, Staffer.user_id == invitee.id)
    )
    assert staffer is not None
    assert staffer.perms == int(ROLES["campaigner"])

    again = error(await gql(client, ACCEPT_USER, {"confirm": confirm}, token=invitee_token))
    assert again["extensions"]["code"] == "expired"


async def test_a_rejected_invitation_adds_nobody(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    invitee = await make_user(session)
    invitee_token = await token_for(session, invitee)
    invited = data(
        await gql(
            client,
            INVITE,
            {"org": world.org.name, "email": invitee.email, "role": "translator"},
            token=world.tokens["owner"],
        )
    )["inviteOrgUser"]
    confirm = {"code": invited["code"], "email": invitee.email}
    assert data(await gql(client, REJECT_USER, {"confirm": confirm}, token=invitee_token)) == {
        "rejectUserConfirm": {"status": "SUCCESS"}
    }
    members = await session.scalar(
        select(func.count()).select_from(Staffer).where(Staffer.user_id == invitee.id)
    )
    assert members == 0
    expired = error(await gql(client, ACCEPT_USER, {"confirm": confirm}, token=invitee_token))
    assert expired["extensions"]["code"] == "expired"


async def test_accepting_an_invitation_to_a_deleted_org_fails(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    invitee = await make_user(session)
    confirm = await service.create_confirm(
        session, ConfirmOperation.ADD_STAFFER, 987654, object_id=1, email=invitee.email
    )
    body = await gql(
        client,
        ACCEPT_USER,
        {"confirm": {"code": confirm.code, "email": invitee.email}},
        token=await token_for(session, invitee),
    )
    assert error(body)["extensions"]["code"] == "not_found"
    assert (await reload(session, confirm)).charges == 1


@pytest.mark.parametrize(
    ("inviter", "role", "allowed"),
    [
        ("owner", "owner", True),
        ("campaigner", "owner", False),
        ("campaigner", "campaigner", True),
        ("translator", "campaigner", False),
        ("translator", "translator", True),
        ("coordinator", "coordinator", False),  # no change_org_users
    ],
)
async def test_who_may_invite_whom(
    client: httpx.AsyncClient, session: AsyncSession, inviter: str, role: str, allowed: bool
) -> None:
    world = await make_world(session, roles=("owner", "campaigner", "translator", "coordinator"))
    body = await gql(
        client,
        INVITE,
        {"org": world.org.name, "email": "someone@example.org", "role": role},
        token=world.tokens[inviter],
    )
    if allowed:
        assert data(body)["inviteOrgUser"]["email"] == "someone@example.org"
    else:
        assert error(body)["extensions"]["code"] == "permission_denied"
        assert await mailbox(session, "someone@example.org") == []


async def test_invite_refuses_a_bad_email_an_unknown_role_and_a_member(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    owner = world.tokens["owner"]
    bad_email = await gql(
        client, INVITE, {"org": world.org.name, "email": "nope", "role": "owner"}, token=owner
    )
    assert error(bad_email)["extensions"]["code"] == "bad_arg"
    bad_role = await gql(
        client,
        INVITE,
        {"org": world.org.name, "email": "x@example.org", "role": "boss"},
        token=owner,
    )
    refused = error(bad_role)
    assert (refused["message"], refused["extensions"]["code"], refused["path"]) == (
        "No such role",
        "not_found",
        ["inviteOrgUser"],
    )
    member = await gql(
        client,
        INVITE,
        {"org": world.org.name, "email": world.users["owner"].email, "role": "owner"},
        token=owner,
    )
    assert error(member)["extensions"]["code"] == "bad_arg"
    anonymous = await gql(
        client, INVITE, {"org": world.org.name, "email": "x@example.org", "role": "owner"}
    )
    assert error(anonymous)["extensions"]["code"] == "permission_denied"


async def test_the_instance_org_template_is_used_when_it_has_one(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    instance = await make_org(session, settings.org_name, email_from="hello@proca.example")
    session.add(
        EmailTemplate(
            org_id=instance.id,
            name="add_staffer",
            locale="en",
            subject="Join {{org.title}}",
            html="<p>{{creator.email}} / {{org.name}} / {{code}} / {{acceptLink}}</p>",
            text="{{operation}} {{email}} {{rejectLink}}",
        )
    )
    world = await make_world(session)
    invited = data(
        await gql(
            client,
            INVITE,
            {"org": world.org.name, "email": "tpl@example.org", "role": "owner"},
            token=world.tokens["owner"],
        )
    )["inviteOrgUser"]
    [mail] = await mailbox(session, "tpl@example.org")
    assert mail.subject == f"Join {world.org.title}"
    assert mail.from_address == f"{instance.title} <hello@proca.example>"
    assert mail.html is not None
    assert f"{world.users['owner'].email} / {world.org.name} / {invited['code']}" in mail.html
    assert f"/link/accept/{invited['code']}?email=tpl%40example.org" in mail.html
    assert mail.text == (
        f"add_staffer tpl@example.org http://localhost:{settings.port}"
        f"/link/reject/{invited['code']}?email=tpl%40example.org"
    )


# --- launch_page --------------------------------------------------------------------------------


async def test_a_partner_launch_is_approved_by_the_lead(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session, roles=("owner", "campaigner", "translator"))
    partner, page, _, partner_token = await partner_world(session, lead)
    page.name = f"{partner.name}/launch-me"
    await session.commit()

    launched = await gql(
        client, LAUNCH, {"name": page.name, "message": "Please!"}, token=partner_token
    )
    assert data(launched) == {"launchActionPage": {"status": "CONFIRMING"}}
    assert not (await reload(session, page)).live

    # The lead's owners and campaigners are asked; translators are not.
    [to_owner] = await mailbox(session, lead.users["owner"].email)
    [to_campaigner] = await mailbox(session, lead.users["campaigner"].email)
    assert await mailbox(session, lead.users["translator"].email) == []
    assert partner.title in to_owner.subject
    assert lead.campaign.title in to_owner.subject
    code = code_of(to_owner)
    assert code_of(to_campaigner) == code
    assert f"/link/accept/{code}?id={page.id}" in (to_owner.text or "")

    confirm = {"code": code, "objectId": page.id}
    # The partner cannot approve their own page.
    refused = await gql(
        client, ACCEPT_ORG, {"name": partner.name, "confirm": confirm}, token=partner_token
    )
    assert error(refused)["extensions"]["code"] == "permission_denied"
    assert error(refused)["message"] == "User does not have sufficient permissions"

    accepted = await gql(
        client, ACCEPT_ORG, {"name": lead.org.name, "confirm": confirm}, token=lead.tokens["owner"]
    )
    result = data(accepted)["acceptOrgConfirm"]
    assert result["status"] == "SUCCESS"
    assert result["message"] == "Please!"
    assert result["actionPage"] == {
        "__typename": "PrivateActionPage",
        "name": page.name,
        "live": True,
    }
    assert (await reload(session, page)).live


async def test_a_lead_translator_cannot_approve_a_launch(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session, roles=("owner", "translator"))
    _, page, _, partner_token = await partner_world(session, lead)
    assert data(await gql(client, LAUNCH, {"name": page.name}, token=partner_token))
    [mail] = await mailbox(session, lead.users["owner"].email)
    body = await gql(
        client,
        ACCEPT_ORG,
        {"name": lead.org.name, "confirm": {"code": code_of(mail), "objectId": page.id}},
        token=lead.tokens["translator"],
    )
    assert error(body)["extensions"]["code"] == "permission_denied"
    assert not (await reload(session, page)).live


async def test_a_rejected_launch_leaves_the_page_off(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    _, page, owner, _ = await partner_world(session, lead)
    confirm = await service.create_confirm(
        session,
        ConfirmOperation.LAUNCH_PAGE,
        lead.campaign.id,
        object_id=page.id,
        creator=owner,
        message="hello",
    )
    await session.commit()
    body = await gql(
        client,
        REJECT_ORG,
        {"name": lead.org.name, "confirm": {"code": confirm.code, "objectId": page.id}},
        token=lead.tokens["owner"],
    )
    assert data(body) == {"rejectOrgConfirm": {"status": "SUCCESS", "message": "hello"}}
    assert not (await reload(session, page)).live
    assert (await reload(session, confirm)).charges == 0


async def test_org_confirms_need_a_staffer_of_the_named_org(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    stranger = await make_world(session)
    _, page, _, _ = await partner_world(session, lead)
    confirm = await service.create_confirm(
        session, ConfirmOperation.LAUNCH_PAGE, lead.campaign.id, object_id=page.id
    )
    await session.commit()
    variables = {"name": lead.org.name, "confirm": {"code": confirm.code, "objectId": page.id}}
    not_member = await gql(client, ACCEPT_ORG, variables, token=stranger.tokens["owner"])
    assert error(not_member)["extensions"]["code"] == "unauthorized"
    anonymous = await gql(client, ACCEPT_ORG, variables)
    assert error(anonymous)["extensions"]["code"] == "unauthorized"
    assert (
        error(await gql(client, ACCEPT_USER, {"confirm": variables["confirm"]}))["extensions"][
            "code"
        ]
        == "unauthorized"
    )
    assert (await reload(session, confirm)).charges == 1


# --- add_partner --------------------------------------------------------------------------------


async def test_add_partner_copies_the_page_into_the_accepting_org(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    template = await make_page(session, lead.campaign, lead.org, f"{lead.org.name}/sign")
    partner = await make_world(session, roles=("owner", "translator"))
    # Already taken: the copy gets a suffix.
    await make_page(session, lead.campaign, partner.org, f"{partner.org.name}/sign")
    confirm = await service.create_confirm(
        session, ConfirmOperation.ADD_PARTNER, template.id, charges=3
    )
    await session.commit()
    variables = {"name": partner.org.name, "confirm": {"code": confirm.code}}

    translator = await gql(client, ACCEPT_ORG, variables, token=partner.tokens["translator"])
    assert error(translator)["extensions"]["code"] == "permission_denied"
    assert error(translator)["message"] == "User does not have sufficient permissions"

    first = data(await gql(client, ACCEPT_ORG, variables, token=partner.tokens["owner"]))
    assert first["acceptOrgConfirm"]["actionPage"] == {
        "__typename": "PrivateActionPage",
        "name": f"{partner.org.name}/sign-1",
        "live": False,
    }
    second = data(await gql(client, ACCEPT_ORG, variables, token=partner.tokens["owner"]))
    assert second["acceptOrgConfirm"]["actionPage"]["name"] == f"{partner.org.name}/sign-2"
    copy = await session.scalar(
        select(ActionPage).where(ActionPage.name == f"{partner.org.name}/sign-1")
    )
    assert copy is not None
    assert (copy.org_id, copy.campaign_id) == (partner.org.id, lead.campaign.id)
    assert (await reload(session, confirm)).charges == 1


async def test_add_partner_without_an_org_is_unauthorized(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    confirm = await service.create_confirm(session, ConfirmOperation.ADD_PARTNER, lead.page.id)
    await session.commit()
    body = await gql(
        client, ACCEPT_USER, {"confirm": {"code": confirm.code}}, token=lead.tokens["owner"]
    )
    assert error(body)["extensions"]["code"] == "unauthorized"
    anonymous = await client.get(f"/link/accept/{confirm.code}")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="Proca"'


async def test_add_partner_invitation_by_email_and_reject(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    lead = await make_world(session)
    after_commit: AfterCommit = []
    notify = service.Notify(settings, after_commit, NULL_PIPELINE)
    confirm = await service.invite_partner(
        session, notify, lead.page, "partner@example.org", lead.users["owner"], "Join us"
    )
    await session.commit()
    await run_after_commit(after_commit)
    [mail] = await mailbox(session, "partner@example.org")
    assert lead.campaign.title in mail.subject
    assert code_of(mail) == confirm.code

    partner = await make_world(session)
    body = await gql(
        client,
        REJECT_ORG,
        {
            "name": partner.org.name,
            "confirm": {"code": confirm.code, "email": "partner@example.org"},
        },
        token=partner.tokens["owner"],
    )
    assert data(body)["rejectOrgConfirm"]["status"] == "SUCCESS"
    pages = await session.scalar(
        select(func.count()).select_from(ActionPage).where(ActionPage.org_id == partner.org.id)
    )
    assert pages == 1  # only the world's own page


# --- join_campaign ------------------------------------------------------------------------------


async def test_join_campaign_puts_the_partner_pages_live(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session, roles=("owner", "coordinator"))
    partner, first_page, partner_owner, partner_token = await partner_world(session, lead)
    second_page = await make_page(session, lead.campaign, partner)
    other_campaign = await make_campaign(session, lead.org)
    elsewhere = await make_page(session, other_campaign, partner)
    confirm = await service.create_confirm(
        session,
        ConfirmOperation.JOIN_CAMPAIGN,
        partner.id,
        object_id=lead.campaign.id,
        creator=partner_owner,
    )
    await session.commit()
    variables = {"confirm": {"code": confirm.code, "objectId": lead.campaign.id}}

    for token, org_name in (
        (partner_token, partner.name),
        (lead.tokens["coordinator"], lead.org.name),
    ):
        refused = await gql(client, ACCEPT_ORG, {**variables, "name": org_name}, token=token)
        assert error(refused)["extensions"]["code"] == "permission_denied"

    body = await gql(
        client, ACCEPT_ORG, {**variables, "name": lead.org.name}, token=lead.tokens["owner"]
    )
    result = data(body)["acceptOrgConfirm"]
    assert result["status"] == "SUCCESS"
    assert result["campaign"] == {"__typename": "PrivateCampaign", "name": lead.campaign.name}
    assert (await reload(session, first_page)).live
    assert (await reload(session, second_page)).live
    assert not (await reload(session, elsewhere)).live


async def test_a_rejected_join_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    partner, page, _, _ = await partner_world(session, lead)
    confirm = await service.create_confirm(
        session, ConfirmOperation.JOIN_CAMPAIGN, partner.id, object_id=lead.campaign.id
    )
    await session.commit()
    body = await gql(
        client,
        REJECT_ORG,
        {"name": lead.org.name, "confirm": {"code": confirm.code, "objectId": lead.campaign.id}},
        token=lead.tokens["owner"],
    )
    assert data(body)["rejectOrgConfirm"]["status"] == "SUCCESS"
    assert not (await reload(session, page)).live


# --- confirm_action -----------------------------------------------------------------------------


async def make_action(
    session: AsyncSession, world: World, status: ActionProcessingStatus
) -> Action:
    action = Action(
        action_type="signature",
        action_page_id=world.page.id,
        campaign_id=world.campaign.id,
        processing_status=status,
    )
    session.add(action)
    await session.flush()
    return action


async def test_confirm_action_accept_and_reject(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    anyone = await make_user(session)
    token = await token_for(session, anyone)
    to_accept = await make_action(session, world, ActionProcessingStatus.CONFIRMING)
    to_reject = await make_action(session, world, ActionProcessingStatus.CONFIRMING)
    accept_code = (
        await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, to_accept.id)
    ).code
    reject_code = (
        await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, to_reject.id)
    ).code
    await session.commit()

    body = await gql(client, ACCEPT_USER, {"confirm": {"code": accept_code}}, token=token)
    assert data(body)["acceptUserConfirm"]["status"] == "SUCCESS"
    assert (await reload(session, to_accept)).processing_status is ActionProcessingStatus.ACCEPTED

    body = await gql(client, REJECT_USER, {"confirm": {"code": reject_code}}, token=token)
    assert data(body)["rejectUserConfirm"]["status"] == "SUCCESS"
    assert (await reload(session, to_reject)).processing_status is ActionProcessingStatus.REJECTED


async def test_confirm_action_works_from_a_link_without_logging_in(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    action = await make_action(session, world, ActionProcessingStatus.CONFIRMING)
    confirm = await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, action.id)
    await session.commit()
    response = await client.get(f"/link/reject/{confirm.code}?redir=/thanks")
    assert response.status_code == 302
    assert response.headers["location"] == "/thanks"
    assert (await reload(session, action)).processing_status is ActionProcessingStatus.REJECTED


async def test_a_new_action_cannot_be_accepted_by_code(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    action = await make_action(session, world, ActionProcessingStatus.NEW)
    confirm = await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, action.id)
    await session.commit()
    body = await gql(
        client, ACCEPT_USER, {"confirm": {"code": confirm.code}}, token=world.tokens["owner"]
    )
    assert error(body)["extensions"]["code"] == "bad_arg"
    assert (await reload(session, confirm)).charges == 1
    assert (await reload(session, action)).processing_status is ActionProcessingStatus.NEW


# --- the /link route ----------------------------------------------------------------------------


async def test_link_accept_with_basic_auth_redirects(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    _, page, _, _ = await partner_world(session, lead)
    confirm = await service.create_confirm(
        session, ConfirmOperation.LAUNCH_PAGE, lead.campaign.id, object_id=page.id
    )
    await session.commit()
    url = f"/link/accept/{confirm.code}?id={page.id}"

    anonymous = await client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="Proca"'
    assert not (await reload(session, page)).live

    wrong_password = await client.get(url, headers=basic(lead.users["owner"].email, "nope"))
    assert wrong_password.status_code == 401

    response = await client.get(
        url + "&redir=https://campaign.example/done?x=1", headers=basic(lead.users["owner"].email)
    )
    assert response.status_code == 302
    assert response.headers["location"] == "https://campaign.example/done?x=1"
    assert (await reload(session, page)).live

    expired = await client.get(url, headers=basic(lead.users["owner"].email))
    assert expired.status_code == 400
    assert expired.json() == {"errors": [{"message": "expired", "extensions": {"code": "expired"}}]}


async def test_link_acts_for_the_named_org(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session)
    template = await make_page(session, lead.campaign, lead.org, f"{lead.org.name}/petition")
    partner = await make_world(session)
    owner = partner.users["owner"]
    # The owner is also a member of a third org that they signed in to last.
    other = await make_org(session)
    session.add(Staffer(org_id=other.id, user_id=owner.id, perms=int(ROLES["owner"])))
    confirm = await service.create_confirm(
        session, ConfirmOperation.ADD_PARTNER, template.id, email="p@example.org"
    )
    await session.commit()

    response = await client.get(
        f"/link/accept/{confirm.code}",
        params={"email": "p@example.org", "org": partner.org.name},
        headers=basic(owner.email),
    )
    assert response.status_code == 302
    assert response.headers["location"] == "/"
    copy = await session.scalar(
        select(ActionPage).where(ActionPage.name == f"{partner.org.name}/petition")
    )
    assert copy is not None


async def test_link_defaults_to_the_most_recent_membership(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from proca_server.kit.time import utcnow

    lead = await make_world(session)
    template = await make_page(session, lead.campaign, lead.org, f"{lead.org.name}/recent")
    older, recent = await make_org(session), await make_org(session)
    user = await make_user(session)
    now = utcnow()
    session.add_all(
        [
            Staffer(
                org_id=recent.id, user_id=user.id, perms=int(ROLES["owner"]), last_signin_at=now
            ),
            Staffer(org_id=older.id, user_id=user.id, perms=int(ROLES["owner"])),
        ]
    )
    confirm = await service.create_confirm(session, ConfirmOperation.ADD_PARTNER, template.id)
    await session.commit()
    response = await client.get(f"/link/accept/{confirm.code}", headers=basic(user.email))
    assert response.status_code == 302
    names = (
        (await session.execute(select(ActionPage.name).where(ActionPage.org_id == recent.id)))
        .scalars()
        .all()
    )
    assert names == [f"{recent.name}/recent"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/link/accept/12ab34", 400, "code invalid"),
        ("/link/accept/00000000", 400, "code invalid"),
        ("/link/reject/00000000?email=x@example.org", 400, "code invalid"),
        ("/link/frobnicate/12345678", 400, "malformed link"),
        ("/link/accept/12345678?id=abc", 400, "malformed link"),
    ],
)
async def test_link_refuses_bad_links(
    client: httpx.AsyncClient, session: AsyncSession, path: str, status: int, message: str
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.json()["errors"][0]["message"] == message


async def test_link_refusals_by_the_operation_are_500_with_the_reason(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lead = await make_world(session, roles=("owner", "translator"))
    _, page, _, _ = await partner_world(session, lead)
    confirm = await service.create_confirm(
        session, ConfirmOperation.LAUNCH_PAGE, lead.campaign.id, object_id=page.id
    )
    await session.commit()
    response = await client.get(
        f"/link/accept/{confirm.code}?id={page.id}",
        headers=basic(lead.users["translator"].email),
    )
    assert response.status_code == 500
    assert response.json()["errors"][0]["extensions"]["code"] == "permission_denied"
    assert not (await reload(session, page)).live
    assert (await reload(session, confirm)).charges == 1


async def test_a_bad_redirect_target_goes_home(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    action = await make_action(session, world, ActionProcessingStatus.CONFIRMING)
    confirm = await service.create_confirm(session, ConfirmOperation.CONFIRM_ACTION, action.id)
    await session.commit()
    response = await client.get(
        f"/link/accept/{confirm.code}", params={"redir": "javascript:alert(1)"}
    )
    assert response.status_code == 302
    assert response.headers["location"] == "/"


async def test_launch_page_merge_fields_carry_the_partner_org_and_its_twitter(
    session: AsyncSession, settings: Settings
) -> None:
    from proca_server.confirm.emails import merge_fields

    lead = await make_world(session)
    twitter = {"screen_name": "partner_org", "followers_count": 12, "name": None}
    partner = await make_org(session, config={"twitter": twitter})
    page = await make_page(session, lead.campaign, partner)
    creator = await make_user(session, org=partner)
    creator.job_title = "Campaigner"
    confirm = await service.create_confirm(
        session,
        ConfirmOperation.LAUNCH_PAGE,
        lead.campaign.id,
        object_id=page.id,
        creator=creator,
    )
    fields = await merge_fields(session, settings, confirm)
    base = f"http://localhost:{settings.port}/link"
    assert fields == {
        "operation": "launch_page",
        "email": "",
        "message": "",
        "subjectId": lead.campaign.id,
        "objectId": page.id,
        "code": confirm.code,
        "creator": {"email": creator.email, "jobTitle": "Campaigner"},
        "acceptLink": f"{base}/accept/{confirm.code}?id={page.id}",
        "rejectLink": f"{base}/reject/{confirm.code}?id={page.id}",
        "campaign": {"name": lead.campaign.name, "title": lead.campaign.title},
        "org": {
            "name": partner.name,
            "title": partner.title,
            "twitter": {"screenName": "partner_org", "followersCount": 12},
        },
    }
