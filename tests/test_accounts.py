"""Local account pages: what a browser sees, form by form."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.auth.authenticate import REMEMBER_ME_COOKIE, SESSION_COOKIE
from proca_server.auth.passwords import verify_password
from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models import EmailTemplate, PreviewEmail, User, UserToken
from proca_server.user.service import reset_api_token
from tests.account_helpers import app_settings, csrf_for, log_in, see_committed, submit
from tests.factories import PASSWORD, make_org, make_user, make_world

NEW_PASSWORD = "Brand-New-Passw0rd"
CURRENT_USER = {"query": "{ currentUser { email } }"}
LINK_RE = re.compile(r"http://localhost:4000(/users/\S+)")


async def current_email(client: httpx.AsyncClient) -> str | None:
    body = (await client.post("/api", json=CURRENT_USER)).json()
    return body["data"]["currentUser"]["email"] if body.get("data") else None


async def last_email_to(session: AsyncSession, address: str) -> PreviewEmail:
    await see_committed(session)
    row = await session.scalar(
        select(PreviewEmail)
        .where(PreviewEmail.to_address == address)
        .order_by(PreviewEmail.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    assert row is not None, f"no email to {address}"
    return row


def link_in(message: PreviewEmail) -> str:
    match = LINK_RE.search(message.text or "")
    assert match, message.text
    return match.group(1)


async def count_emails(session: AsyncSession) -> int:
    await see_committed(session)
    return int(await session.scalar(select(func.count()).select_from(PreviewEmail)) or 0)


def set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]


# --- registration ------------------------------------------------------------------------------


async def test_register_logs_in_and_sends_the_confirmation_email(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await submit(
        client,
        "/users/register",
        "/users/register",
        {"email": "new.person@example.org", "password": PASSWORD},
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    [cookie] = set_cookie_headers(response, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age" not in cookie  # a browser-session cookie
    home = await client.get("/")
    assert "User created successfully." in home.text
    assert "new.person@example.org" in home.text
    # the same cookie authenticates the API
    assert await current_email(client) == "new.person@example.org"

    message = await last_email_to(session, "new.person@example.org")
    assert message.subject == "Confirm your account"
    assert link_in(message).startswith("/users/confirm/")
    await see_committed(session)
    user = await session.scalar(select(User).where(User.email == "new.person@example.org"))
    assert user is not None and user.confirmed_at is None


@pytest.mark.parametrize(
    ("email", "password", "problem"),
    [
        ("not-an-email", PASSWORD, "must have the @ sign and no spaces"),
        ("weak@example.org", "short", "should be 12 to 80 characters"),
        ("weak@example.org", "", "can&#x27;t be blank"),
    ],
)
async def test_register_shows_what_is_wrong(
    client: httpx.AsyncClient, session: AsyncSession, email: str, password: str, problem: str
) -> None:
    response = await submit(
        client, "/users/register", "/users/register", {"email": email, "password": password}
    )
    assert response.status_code == 422
    assert problem in response.text
    assert not set_cookie_headers(response, SESSION_COOKIE)
    await see_committed(session)
    assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_register_refuses_a_taken_email(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    response = await submit(
        client,
        "/users/register",
        "/users/register",
        {"email": user.email.upper(), "password": PASSWORD},
    )
    assert response.status_code == 422
    assert "has already been taken" in response.text


async def test_forms_need_the_csrf_token_of_this_browser(
    client: httpx.AsyncClient, app: FastAPI, session: AsyncSession
) -> None:
    data = {"email": "csrf@example.org", "password": PASSWORD}
    # no token
    await client.get("/users/register")
    response = await client.post("/users/register", data=data)
    assert response.status_code == 403
    # a token from another browser
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        foreign = await csrf_for(other, "/users/register")
    response = await client.post("/users/register", data={**data, "_csrf_token": foreign})
    assert response.status_code == 403
    await see_committed(session)
    assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_templates_of_the_instance_org_are_used(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    org = await make_org(
        session, settings.org_name, title="Proca, Instance", email_from="hello@proca.example"
    )
    session.add(
        EmailTemplate(
            org_id=org.id,
            name="user_confirm_email",
            locale="en",
            subject="Welcome\n{{email}}",
            html='<p>Hi <a href="{{confirmLink}}">confirm</a> {{email}}</p>',
            text="Confirm here: {{confirmLink}}",
        )
    )
    await session.commit()

    await submit(
        client,
        "/users/register",
        "/users/register",
        {"email": "o'hara@example.org", "password": PASSWORD},
    )

    message = await last_email_to(session, "o'hara@example.org")
    assert message.subject == "Welcome o'hara@example.org"  # one line, not HTML-escaped
    assert message.from_address == '"Proca, Instance" <hello@proca.example>'
    assert "o&#x27;hara@example.org" in (message.html or "")
    assert link_in(message).startswith("/users/confirm/")


# --- confirmation ------------------------------------------------------------------------------


async def test_confirm_with_the_emailed_link(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await submit(
        client,
        "/users/register",
        "/users/register",
        {"email": "confirm.me@example.org", "password": PASSWORD},
    )
    path = link_in(await last_email_to(session, "confirm.me@example.org"))

    response = await submit(client, path, path, {})
    assert response.status_code == 303
    assert "User confirmed successfully." in (await client.get("/")).text
    await see_committed(session)
    user = await session.scalar(
        select(User)
        .where(User.email == "confirm.me@example.org")
        .execution_options(populate_existing=True)
    )
    assert user is not None and user.confirmed_at is not None

    # the link is used up; a confirmed user following it again sees no error
    await submit(client, path, path, {})
    assert "invalid" not in (await client.get("/")).text
    # a stranger following it is told it is invalid
    client.cookies.delete(SESSION_COOKIE)
    await submit(client, path, path, {})
    assert "User confirmation link is invalid or it has expired." in (await client.get("/")).text


async def test_confirm_links_expire_after_7_days_and_follow_the_address(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    first = await make_user(session, "late@example.org")
    second = await make_user(session, "moved@example.org")
    await session.commit()
    for user in (first, second):
        await submit(client, "/users/confirm", "/users/confirm", {"email": user.email})
    late = link_in(await last_email_to(session, "late@example.org"))
    moved = link_in(await last_email_to(session, "moved@example.org"))
    await session.execute(
        update(UserToken)
        .where(UserToken.user_id == first.id)
        .values(inserted_at=utcnow() - timedelta(days=7, seconds=1))
    )
    await session.execute(
        update(User).where(User.id == second.id).values(email="elsewhere@example.org")
    )
    await session.commit()

    for path in (late, moved):
        await submit(client, path, path, {})
        assert "link is invalid or it has expired" in (await client.get("/")).text
    await see_committed(session)
    assert await session.scalar(select(func.count()).filter(User.confirmed_at.is_not(None))) == 0


async def test_confirmation_requests_do_not_tell_whether_an_account_exists(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, "known@example.org")
    await session.commit()

    known = await submit(client, "/users/confirm", "/users/confirm", {"email": "known@example.org"})
    known_page = (await client.get("/")).text
    unknown = await submit(
        client, "/users/confirm", "/users/confirm", {"email": "unknown@example.org"}
    )
    unknown_page = (await client.get("/")).text

    assert known.status_code == unknown.status_code == 303
    assert known.headers["location"] == unknown.headers["location"]
    assert "you will receive an email with instructions shortly" in known_page
    assert known_page.replace("known@", "") == unknown_page.replace("unknown@", "")
    assert await count_emails(session) == 1


# --- log in, log out ---------------------------------------------------------------------------


async def test_log_in_with_a_wrong_password_fails(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    for email, password in ((user.email, "Wrong-Passw0rd!"), ("nobody@example.org", PASSWORD)):
        response = await log_in(client, email, password)
        assert response.status_code == 401
        assert "Invalid email or password" in response.text
        assert not set_cookie_headers(response, SESSION_COOKIE)
    assert await current_email(client) is None


async def test_log_in_returns_to_a_local_page_only(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    data = {"email": user.email, "password": PASSWORD}
    response = await submit(
        client, "/users/log_in", "/users/log_in", {**data, "return_to": "/users/settings"}
    )
    assert response.headers["location"] == "/users/settings"
    for evil in ("//evil.example/", "/\t/evil.example", "/\\evil.example", "https://evil.example"):
        client.cookies.clear()
        response = await submit(
            client, "/users/log_in", "/users/log_in", {**data, "return_to": evil}
        )
        assert response.headers["location"] == "/", evil


async def test_remember_me_keeps_the_user_for_60_days(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()

    response = await log_in(client, user.email, PASSWORD, remember=True)

    [cookie] = set_cookie_headers(response, REMEMBER_ME_COOKIE)
    assert f"Max-Age={60 * 24 * 3600}" in cookie
    assert "SameSite=lax" in cookie and "HttpOnly" in cookie
    # the browser session ends; the remember-me cookie still logs the user in
    client.cookies.delete(SESSION_COOKIE)
    assert await current_email(client) == user.email
    home = await client.get("/")
    assert user.email in home.text
    assert set_cookie_headers(home, SESSION_COOKIE)  # the session cookie is back


async def test_sessions_expire_after_60_days(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    await log_in(client, user.email, PASSWORD)
    await session.execute(
        update(UserToken)
        .where(UserToken.user_id == user.id, UserToken.context == "session")
        .values(inserted_at=utcnow() - timedelta(days=60, seconds=1))
    )
    await session.commit()
    assert await current_email(client) is None


async def test_log_out_ends_the_session_server_side(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    await log_in(client, user.email, PASSWORD, remember=True)
    stolen = dict(client.cookies)

    response = await submit(client, "/", "/users/log_out", {"_method": "delete"})

    assert response.status_code == 303
    assert all('=""' in c or "Max-Age=0" in c for c in set_cookie_headers(response, SESSION_COOKIE))
    assert "Logged out successfully." in (await client.get("/")).text
    assert await current_email(client) is None
    # a copy of the old cookies is worthless: the token is gone
    client.cookies.clear()
    client.cookies.update(stolen)
    assert await current_email(client) is None
    tokens = select(func.count()).where(
        UserToken.user_id == user.id, UserToken.context == "session"
    )
    await see_committed(session)
    assert await session.scalar(tokens) == 0


async def test_log_out_with_the_delete_method(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    await log_in(client, user.email, PASSWORD)
    token = await csrf_for(client, "/")

    refused = await client.delete("/users/log_out")
    assert refused.status_code == 403
    response = await client.delete("/users/log_out", headers={"x-csrf-token": token})
    assert response.status_code == 303
    assert await current_email(client) is None


async def test_a_header_wins_over_the_cookie_and_a_bad_cookie_is_anonymous(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    await log_in(client, user.email, PASSWORD)

    response = await client.post(
        "/api", json=CURRENT_USER, headers={"Authorization": "Bearer API-nonsense"}
    )
    assert response.status_code == 401

    value = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    response = await client.post("/api", json=CURRENT_USER)
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "unauthorized"


# --- password reset ----------------------------------------------------------------------------


async def test_reset_password_with_the_emailed_link(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    api_token = await reset_api_token(session, user)
    await session.commit()
    # another browser is logged in
    await log_in(client, user.email, PASSWORD)
    other_browser = dict(client.cookies)
    client.cookies.clear()

    await submit(client, "/users/reset_password", "/users/reset_password", {"email": user.email})
    path = link_in(await last_email_to(session, user.email))
    assert path.startswith("/users/reset_password/")

    mismatch = await submit(
        client,
        path,
        path,
        {"password": NEW_PASSWORD, "password_confirmation": "Other-Passw0rd!", "_method": "put"},
    )
    assert mismatch.status_code == 422
    assert "does not match password" in mismatch.text

    response = await submit(
        client,
        path,
        path,
        {"password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD, "_method": "put"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/users/log_in"

    # every token is gone: the link, the other browser's session, the API token
    await see_committed(session)
    assert await session.scalar(select(func.count()).where(UserToken.user_id == user.id)) == 0
    bad_token = await client.post(
        "/api", json=CURRENT_USER, headers={"Authorization": f"Bearer {api_token}"}
    )
    assert bad_token.status_code == 401
    reused = await client.get(path)
    assert reused.status_code == 303
    client.cookies.update(other_browser)
    assert await current_email(client) is None
    client.cookies.clear()
    assert (await log_in(client, user.email, PASSWORD)).status_code == 401
    assert (await log_in(client, user.email, NEW_PASSWORD)).status_code == 303


async def test_reset_password_with_a_real_put(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    await submit(client, "/users/reset_password", "/users/reset_password", {"email": user.email})
    path = link_in(await last_email_to(session, user.email))
    response = await submit(
        client,
        path,
        path,
        {"password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
        method="PUT",
    )
    assert response.status_code == 303
    await see_committed(session)
    fresh = await session.get(User, user.id, populate_existing=True)
    assert fresh is not None and verify_password(NEW_PASSWORD, fresh.hashed_password)


async def test_reset_links_expire_after_a_day(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    await submit(client, "/users/reset_password", "/users/reset_password", {"email": user.email})
    path = link_in(await last_email_to(session, user.email))
    await session.execute(
        update(UserToken)
        .where(UserToken.user_id == user.id)
        .values(inserted_at=utcnow() - timedelta(days=1, seconds=1))
    )
    await session.commit()

    response = await client.get(path)
    assert response.status_code == 303
    assert "Reset password link is invalid or it has expired." in (await client.get("/")).text


async def test_reset_requests_do_not_tell_whether_an_account_exists(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await make_user(session, "someone@example.org")
    await session.commit()
    answers = []
    for email in ("someone@example.org", "no-one@example.org"):
        response = await submit(
            client, "/users/reset_password", "/users/reset_password", {"email": email}
        )
        page = (await client.get("/")).text
        answers.append((response.status_code, response.headers["location"], page))
    assert answers[0] == answers[1]
    assert "you will receive instructions to reset your password" in answers[0][2]
    assert await count_emails(session) == 1


# --- settings ----------------------------------------------------------------------------------


async def test_settings_need_a_logged_in_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/settings")
    assert response.status_code == 303
    assert response.headers["location"] == "/users/log_in?return_to=%2Fusers%2Fsettings"
    page = await client.get(response.headers["location"])
    assert "You must log in to access this page." in page.text
    assert 'name="return_to" value="/users/settings"' in page.text


async def test_change_password(client: httpx.AsyncClient, session: AsyncSession) -> None:
    user = await make_user(session)
    await session.commit()
    await log_in(client, user.email, PASSWORD)
    elsewhere = dict(client.cookies)
    client.cookies.clear()
    await log_in(client, user.email, PASSWORD)

    wrong = await submit(
        client,
        "/users/settings",
        "/users/settings",
        {
            "action": "update_password",
            "current_password": "Not-The-Passw0rd",
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
            "_method": "put",
        },
    )
    assert wrong.status_code == 422
    assert "is not valid" in wrong.text

    response = await submit(
        client,
        "/users/settings",
        "/users/settings",
        {
            "action": "update_password",
            "current_password": PASSWORD,
            "password": NEW_PASSWORD,
            "password_confirmation": NEW_PASSWORD,
            "_method": "put",
        },
    )
    assert response.status_code == 303
    assert "Password updated successfully." in (await client.get("/users/settings")).text
    # this browser stays logged in, the other one is logged out
    assert await current_email(client) == user.email
    client.cookies.clear()
    client.cookies.update(elsewhere)
    assert await current_email(client) is None


async def test_change_email_with_the_link_sent_to_the_new_address(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session, "old@example.org")
    taken = await make_user(session, "taken@example.org")
    await session.commit()
    await log_in(client, user.email, PASSWORD)

    async def change(email: str, password: str) -> httpx.Response:
        return await submit(
            client,
            "/users/settings",
            "/users/settings",
            {
                "action": "update_email",
                "email": email,
                "current_password": password,
                "_method": "put",
            },
        )

    assert "is not valid" in (await change("new@example.org", "Wrong-Passw0rd")).text
    assert "has already been taken" in (await change(taken.email, PASSWORD)).text
    assert "did not change" in (await change("OLD@example.org", PASSWORD)).text
    response = await change("new@example.org", PASSWORD)
    assert response.status_code == 303
    message = await last_email_to(session, "new@example.org")
    assert message.subject == "Confirm your new email address"
    path = link_in(message)
    await see_committed(session)
    token = await session.scalar(
        select(UserToken).where(UserToken.user_id == user.id, UserToken.context.like("change:%"))
    )
    assert token is not None
    assert token.context == "change:old@example.org" and token.sent_to == "new@example.org"

    # someone else cannot use it
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as c:  # type: ignore[attr-defined]
        await log_in(c, taken.email, PASSWORD)
        await c.get(path)
        assert await current_email(c) == taken.email

    response = await client.get(path)
    assert response.status_code == 303
    assert "Email changed successfully." in (await client.get("/users/settings")).text
    assert await current_email(client) == "new@example.org"
    await client.get(path)
    assert (
        "Email change link is invalid or it has expired."
        in (await client.get("/users/settings")).text
    )


async def test_the_email_change_link_opened_logged_out_asks_to_continue(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/users/settings/confirm_email/abc")
    assert response.status_code == 200
    assert 'href="/users/settings/confirm_email/abc"' in response.text
    assert "return_to=%2Fusers%2Fsettings%2Fconfirm_email%2Fabc" in response.text


# --- homepage and SSO mode ---------------------------------------------------------------------


async def test_homepage_lists_the_users_orgs(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "translator"))
    owner = world.users["owner"]
    anonymous = await client.get("/")
    assert "Log in" in anonymous.text and world.org.name not in anonymous.text

    await log_in(client, owner.email, PASSWORD)
    page = await client.get("/")
    assert page.status_code == 200
    assert world.org.name in page.text and "owner" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'none'" in page.headers["content-security-policy"]


async def test_sso_mode_sends_log_ins_to_the_sso_home(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    with app_settings(app, sso_home_url="https://sso.example/login", local_auth_enable=False):
        for path in ("/", "/users/log_in", "/users/register", "/users/reset_password"):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "https://sso.example/login"


async def test_the_homepage_links_the_explorer_health_metrics_and_docs(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    page = (await client.get("/")).text
    for href in ("/graphiql", "/health", "/metrics"):
        assert f'href="{href}"' in page
    assert "docs/" in page and "DOCS_URL" in page
    # the test server's settings are local: the mailbox is open to it
    assert 'href="/mailbox"' in page
