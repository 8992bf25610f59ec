"""Account pages under `/users/`: plain server-rendered forms.

Every form posts urlencoded with a CSRF token; PUT and DELETE arrive as POST with a
`_method` field (browsers send no other methods), or as themselves. Each request is one
transaction; emails go out after it committed. Answers to reset and confirmation requests
never tell whether the address has an account."""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Response

from proca_server.app_state import state_of
from proca_server.auth.authenticate import (
    REMEMBER_ME_COOKIE,
    SESSION_COOKIE,
    authenticate_password,
    unsign,
)
from proca_server.errors import BadArgument, TooManyAttempts
from proca_server.processing import events
from proca_server.processing.handoff import pipeline_of
from proca_server.user import repository as user_repository
from proca_server.web import account_service as accounts
from proca_server.web.cookies import clear_session_cookies, put_session_cookies
from proca_server.web.home import router as home_router
from proca_server.web.html import Html, checkbox, form, hidden, input_field, link
from proca_server.web.pages import Page, PageRoute, page_context

router = APIRouter(route_class=PageRoute)
router.include_router(home_router)

Errors = dict[str, list[str]]

MSG_LOGIN_REQUIRED = "You must log in to access this page."
MSG_CONFIRM_SENT = (
    "If your email is in our system and it has not been confirmed yet, "
    "you will receive an email with instructions shortly."
)
MSG_RESET_SENT = (
    "If your email is in our system, you will receive instructions to reset your password shortly."
)
MSG_RESET_INVALID = "Reset password link is invalid or it has expired."


def _errors(exc: BadArgument) -> Errors:
    found: Errors = defaultdict(list)
    field = exc.field[-1] if exc.field else ""
    prefix = f"{field}: "
    found[field].append(exc.message.removeprefix(prefix))
    return found


def _return_to(value: str | None) -> str:
    # Only a path on this site, never an open redirect: browsers drop tabs and line breaks
    # and read a backslash as a slash, so `/<tab>/evil.example` would leave the site.
    if (
        value
        and value.startswith("/")
        and all(33 <= ord(c) < 127 and c != "\\" for c in value)
        and not value.startswith("//")
    ):
        return value
    return "/"


def _local_auth_off(page: Page) -> Response | None:
    """In SSO mode the local log-in pages lead to the SSO home instead."""
    if page.settings.local_auth_enable:
        return None
    if page.settings.sso_home_url:
        return page.redirect(page.settings.sso_home_url)
    raise HTTPException(404)


def _visitors_only(page: Page) -> Response | None:
    return _local_auth_off(page) or (page.redirect("/") if page.user else None)


def _login_required(page: Page) -> Response:
    page.flash("error", MSG_LOGIN_REQUIRED)
    path = page.request.url.path if page.request.method == "GET" else "/users/settings"
    return page.redirect(f"/users/log_in?{urlencode({'return_to': path})}")


def _method_is(fields: dict[str, str], *allowed: str) -> bool:
    return fields.get("_method", "").lower() in allowed


# --- registration ------------------------------------------------------------------------------


def _register_form(page: Page, email: str = "", errors: Errors | None = None) -> Html:
    errors = errors or {}
    fields = [
        input_field(
            "email",
            "Email",
            kind="email",
            value=email,
            errors=errors.get("email", ()),
            autocomplete="username",
        ),
        input_field(
            "password",
            "Password",
            kind="password",
            errors=errors.get("password", ()),
            autocomplete="new-password",
        ),
    ]
    return Html(
        form("/users/register", page.csrf, fields, "Register")
        + "<p>"
        + link("/users/log_in", "Log in")
        + " · "
        + link("/users/reset_password", "Forgot your password?")
        + "</p>"
    )


@router.get("/users/register")
async def register_page(page: Page = Depends(page_context)) -> Response:
    if (other := _visitors_only(page)) is not None:
        return other
    return page.render("Register", _register_form(page))


@router.post("/users/register")
async def register(page: Page = Depends(page_context)) -> Response:
    if (other := _visitors_only(page)) is not None:
        return other
    fields = await page.form()
    email = fields.get("email", "")
    try:
        user = await accounts.register_user(page.session, email, fields.get("password", ""))
    except BadArgument as exc:
        await page.rollback()
        return page.render("Register", _register_form(page, email, _errors(exc)), status=422)
    message = await accounts.confirmation_instructions(page.session, page.settings, user)
    token = await accounts.create_session_token(page.session, user)
    registered = await events.new_user(page.session, page.settings, user.email)
    await page.session.commit()
    events.publish_soon(pipeline_of(state_of(page.request)), registered)
    await page.send([message])
    page.flash("info", "User created successfully.")
    response = page.redirect("/")
    put_session_cookies(page.request, response, token, remember=False)
    return response


# --- log in, log out ---------------------------------------------------------------------------


def _login_form(page: Page, email: str = "", return_to: str = "/") -> Html:
    fields = [
        input_field("email", "Email", kind="email", value=email, autocomplete="username"),
        input_field("password", "Password", kind="password", autocomplete="current-password"),
        checkbox("remember_me", "Keep me logged in for 60 days"),
        hidden("return_to", return_to),
    ]
    return Html(
        form("/users/log_in", page.csrf, fields, "Log in")
        + "<p>"
        + link("/users/register", "Register")
        + " · "
        + link("/users/reset_password", "Forgot your password?")
        + "</p>"
    )


@router.get("/users/log_in")
async def log_in_page(return_to: str = "/", page: Page = Depends(page_context)) -> Response:
    if (other := _visitors_only(page)) is not None:
        return other
    return page.render("Log in", _login_form(page, return_to=_return_to(return_to)))


@router.post("/users/log_in")
async def log_in(page: Page = Depends(page_context)) -> Response:
    if (other := _local_auth_off(page)) is not None:
        return other
    fields = await page.form()
    email = fields.get("email", "")
    return_to = _return_to(fields.get("return_to"))
    client = page.request.client.host if page.request.client else None
    try:
        user = await authenticate_password(
            page.session,
            state_of(page.request).login_throttle,
            email,
            fields.get("password", ""),
            client,
        )
    except TooManyAttempts as exc:
        page.flash("error", exc.message)
        response = page.render("Log in", _login_form(page, email, return_to), status=429)
        response.headers.update(exc.headers)
        return response
    if user is None:
        page.flash("error", "Invalid email or password")
        return page.render("Log in", _login_form(page, email, return_to), status=401)
    # a fresh token: whatever session the browser had before ends here
    old = unsign(page.settings, SESSION_COOKIE, page.request.cookies.get(SESSION_COOKIE))
    if old is not None:
        await accounts.delete_session_token(page.session, old)
    token = await accounts.create_session_token(page.session, user)
    await page.session.commit()
    response = page.redirect(return_to)
    remember = fields.get("remember_me", "").lower() in ("true", "on", "1")
    put_session_cookies(page.request, response, token, remember=remember)
    return response


@router.api_route("/users/log_out", methods=["DELETE", "POST"])
async def log_out(page: Page = Depends(page_context)) -> Response:
    fields = await page.form()
    if page.request.method == "POST" and not _method_is(fields, "delete"):
        raise HTTPException(405)
    for name in (SESSION_COOKIE, REMEMBER_ME_COOKIE):
        token = unsign(page.settings, name, page.request.cookies.get(name))
        if token is not None:
            await accounts.delete_session_token(page.session, token)
    await page.session.commit()
    page.renew_session = None
    page.flash("info", "Logged out successfully.")
    response = page.redirect("/")
    clear_session_cookies(page.request, response)
    return response


# --- password reset ----------------------------------------------------------------------------


@router.get("/users/reset_password")
async def reset_password_request_page(page: Page = Depends(page_context)) -> Response:
    if (other := _visitors_only(page)) is not None:
        return other
    fields = [input_field("email", "Email", kind="email", autocomplete="username")]
    body = form("/users/reset_password", page.csrf, fields, "Send instructions to reset password")
    return page.render("Forgot your password?", body)


@router.post("/users/reset_password")
async def reset_password_request(page: Page = Depends(page_context)) -> Response:
    if (other := _visitors_only(page)) is not None:
        return other
    fields = await page.form()
    user = await user_repository.get_user_by_email(page.session, fields.get("email", ""))
    message = None
    if user is not None:
        message = await accounts.reset_password_instructions(page.session, page.settings, user)
        await page.session.commit()
        await page.send([message])
    page.flash("info", MSG_RESET_SENT)
    return page.redirect("/")


def _new_password_form(page: Page, token: str, errors: Errors | None = None) -> Html:
    errors = errors or {}
    fields = [
        input_field(
            "password",
            "New password",
            kind="password",
            errors=errors.get("password", ()),
            autocomplete="new-password",
        ),
        input_field(
            "password_confirmation",
            "Confirm new password",
            kind="password",
            errors=errors.get("password_confirmation", ()),
            autocomplete="new-password",
        ),
    ]
    return form(f"/users/reset_password/{token}", page.csrf, fields, "Reset password", method="put")


@router.get("/users/reset_password/{token}")
async def reset_password_page(token: str, page: Page = Depends(page_context)) -> Response:
    if (other := _visitors_only(page)) is not None:
        return other
    if await accounts.get_user_by_reset_password_token(page.session, token) is None:
        page.flash("error", MSG_RESET_INVALID)
        return page.redirect("/")
    return page.render("Reset password", _new_password_form(page, token))


@router.api_route("/users/reset_password/{token}", methods=["PUT", "POST"])
async def reset_password(token: str, page: Page = Depends(page_context)) -> Response:
    if (other := _visitors_only(page)) is not None:
        return other
    fields = await page.form()
    user = await accounts.get_user_by_reset_password_token(page.session, token)
    if user is None:
        page.flash("error", MSG_RESET_INVALID)
        return page.redirect("/")
    try:
        await accounts.reset_password(
            page.session,
            user,
            fields.get("password", ""),
            fields.get("password_confirmation", ""),
        )
    except BadArgument as exc:
        await page.rollback()
        body = _new_password_form(page, token, _errors(exc))
        return page.render("Reset password", body, status=422)
    await page.session.commit()
    page.flash("info", "Password reset successfully.")
    return page.redirect("/users/log_in")


# --- settings ----------------------------------------------------------------------------------


def _settings_body(
    page: Page, *, email_errors: Errors | None = None, password_errors: Errors | None = None
) -> Html:
    assert page.user is not None
    email_errors = email_errors or {}
    password_errors = password_errors or {}
    email_form = form(
        "/users/settings",
        page.csrf,
        [
            hidden("action", "update_email"),
            input_field(
                "email",
                "New email",
                kind="email",
                value=page.user.email,
                errors=email_errors.get("email", ()),
            ),
            input_field(
                "current_password",
                "Current password",
                kind="password",
                errors=email_errors.get("current_password", ()),
                autocomplete="current-password",
            ),
        ],
        "Change email",
        method="put",
        form_id="update_email",
    )
    password_form = form(
        "/users/settings",
        page.csrf,
        [
            hidden("action", "update_password"),
            input_field(
                "password",
                "New password",
                kind="password",
                errors=password_errors.get("password", ()),
                autocomplete="new-password",
            ),
            input_field(
                "password_confirmation",
                "Confirm new password",
                kind="password",
                errors=password_errors.get("password_confirmation", ()),
                autocomplete="new-password",
            ),
            input_field(
                "current_password",
                "Current password",
                kind="password",
                errors=password_errors.get("current_password", ()),
                autocomplete="current-password",
            ),
        ],
        "Change password",
        method="put",
        form_id="update_password",
    )
    return Html("<h2>Change email</h2>" + email_form + "<h2>Change password</h2>" + password_form)


@router.get("/users/settings")
async def settings_page(page: Page = Depends(page_context)) -> Response:
    if page.user is None:
        return _login_required(page)
    return page.render("Settings", _settings_body(page))


@router.api_route("/users/settings", methods=["PUT", "POST"])
async def update_settings(page: Page = Depends(page_context)) -> Response:
    if page.user is None:
        return _login_required(page)
    fields = await page.form()
    user = page.user
    action = fields.get("action")
    current = fields.get("current_password", "")
    client = page.request.client.host if page.request.client else None
    guess = (state_of(page.request).login_throttle, client)
    if action == "update_email":
        try:
            message = await accounts.change_email_instructions(
                page.session, page.settings, user, current, fields.get("email", ""), guess
            )
        except TooManyAttempts as exc:
            return _too_many(page, exc)
        except BadArgument as exc:
            await page.rollback()
            body = _settings_body(page, email_errors=_errors(exc))
            return page.render("Settings", body, status=422)
        await page.session.commit()
        await page.send([message])
        page.flash("info", "A link to confirm your email change has been sent to the new address.")
        return page.redirect("/users/settings")
    if action == "update_password":
        try:
            await accounts.change_password(
                page.session,
                user,
                current,
                fields.get("password", ""),
                fields.get("password_confirmation", ""),
                guess,
            )
        except TooManyAttempts as exc:
            return _too_many(page, exc)
        except BadArgument as exc:
            await page.rollback()
            body = _settings_body(page, password_errors=_errors(exc))
            return page.render("Settings", body, status=422)
        # every session ended with the password change; this browser logs in again
        token = await accounts.create_session_token(page.session, user)
        await page.session.commit()
        page.renew_session = None
        page.flash("info", "Password updated successfully.")
        response = page.redirect("/users/settings")
        had_remember = REMEMBER_ME_COOKIE in page.request.cookies
        put_session_cookies(page.request, response, token, remember=had_remember)
        return response
    raise HTTPException(400, "Unknown settings action")


def _too_many(page: Page, exc: TooManyAttempts) -> Response:
    page.flash("error", exc.message)
    response = page.render("Settings", _settings_body(page), status=429)
    response.headers.update(exc.headers)
    return response


@router.get("/users/settings/confirm_email/{token}")
async def confirm_email_change(token: str, page: Page = Depends(page_context)) -> Response:
    if page.user is None:
        # Opened from a mail client, a SameSite=Strict session cookie is not sent: one click
        # from here (same site) sends it.
        body = Html(
            "<p>To change your email, continue while logged in.</p><p>"
            + link(page.request.url.path, "Continue")
            + " · "
            + link(f"/users/log_in?{urlencode({'return_to': page.request.url.path})}", "Log in")
            + "</p>"
        )
        return page.render("Confirm email change", body)
    if await accounts.apply_email_change(page.session, page.user, token):
        await page.session.commit()
        page.flash("info", "Email changed successfully.")
    else:
        page.flash("error", "Email change link is invalid or it has expired.")
    return page.redirect("/users/settings")


# --- confirmation ------------------------------------------------------------------------------


@router.get("/users/confirm")
async def confirmation_request_page(page: Page = Depends(page_context)) -> Response:
    email = page.user.email if page.user else ""
    fields = [input_field("email", "Email", kind="email", value=email, autocomplete="username")]
    body = form("/users/confirm", page.csrf, fields, "Resend confirmation instructions")
    return page.render("Resend confirmation instructions", body)


@router.post("/users/confirm")
async def confirmation_request(page: Page = Depends(page_context)) -> Response:
    fields = await page.form()
    user = await user_repository.get_user_by_email(page.session, fields.get("email", ""))
    if user is not None:
        message = await accounts.confirmation_instructions(page.session, page.settings, user)
        if message is not None:
            await page.session.commit()
            await page.send([message])
    page.flash("info", MSG_CONFIRM_SENT)
    return page.redirect("/")


@router.get("/users/confirm/{token}")
async def confirm_page(token: str, page: Page = Depends(page_context)) -> Response:
    body = form(f"/users/confirm/{token}", page.csrf, [], "Confirm my account")
    return page.render("Confirm account", body)


@router.post("/users/confirm/{token}")
async def confirm(token: str, page: Page = Depends(page_context)) -> Response:
    await page.form()
    user = await accounts.confirm_user(page.session, token)
    if user is not None:
        await page.session.commit()
        page.flash("info", "User confirmed successfully.")
        return page.redirect("/")
    # a second click on the link of an already confirmed account is not an error
    if page.user is None or page.user.confirmed_at is None:
        page.flash("error", "User confirmation link is invalid or it has expired.")
    return page.redirect("/")
