"""Failed log-ins are throttled per account and per client address; a password check takes as
long for an unknown email as for a wrong password, and bcrypt never runs on the event loop."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app import create_app
from proca_server.app_state import state_of
from proca_server.auth.throttle import LoginThrottle
from proca_server.config import Settings
from proca_server.errors import TooManyAttempts
from proca_server.user.service import create_user
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.slow  # dozens of deliberately slow bcrypt checks

PER_ACCOUNT = 3
PER_ADDRESS = 8
WINDOW = 900
CURRENT_USER = {"query": "{ currentUser { email } }"}
CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
REFUSED = {
    "data": None,
    "errors": [
        {
            "message": "Too many failed log-in attempts; try again later",
            "extensions": {"code": "too_many_requests"},
        }
    ],
}


@pytest.fixture
async def throttled_app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    """An app of its own, so that its throttle starts empty, with small limits."""
    settings = Settings(
        DATABASE_URL=database_url,
        PROCA_DATA_DIR=str(tmp_path_factory.mktemp("data")),
        PROCA_ENV="test",
        PIPELINE="off",
        LOGIN_MAX_FAILURES_PER_ACCOUNT=PER_ACCOUNT,
        LOGIN_MAX_FAILURES_PER_ADDRESS=PER_ADDRESS,
        LOGIN_FAILURE_WINDOW=WINDOW,
    )
    application = create_app(settings)
    yield application
    await state_of(application).signature_lane.close()
    await state_of(application).engine.dispose()


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(throttled_app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    async with client_from(throttled_app, "203.0.113.1") as c:
        yield c


def basic(email: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


async def api_as(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api", json=CURRENT_USER, headers=basic(email, password))


async def form_log_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/users/log_in")
    match = CSRF_RE.search(page.text)
    assert match, page.text
    data = {"email": email, "password": password, "_csrf_token": match.group(1)}
    return await client.post("/users/log_in", data=data)


@pytest.fixture
def bcrypt_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[int]]]:
    """The threads bcrypt's checkpw and hashpw ran in, by function."""
    seen: dict[str, list[int]] = {"checkpw": [], "hashpw": []}

    def spy(name: str) -> Callable[..., Any]:
        real = getattr(bcrypt, name)

        def call(*args: Any) -> Any:
            seen[name].append(threading.get_ident())
            return real(*args)

        return call

    for name in seen:
        monkeypatch.setattr(bcrypt, name, spy(name))
    yield seen


# --- per account -------------------------------------------------------------------------------


async def test_basic_auth_answers_429_after_too_many_failures_for_one_account(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    other = await make_user(session)
    await session.commit()

    for _ in range(PER_ACCOUNT - 1):
        assert (await api_as(client, user.email, "wrong")).status_code == 401
    # a success clears the account's count
    assert (await api_as(client, user.email, PASSWORD)).status_code == 200
    for _ in range(PER_ACCOUNT):
        assert (await api_as(client, user.email.upper(), "wrong")).status_code == 401

    refused = await api_as(client, user.email, PASSWORD)

    assert refused.status_code == 429
    assert refused.json() == REFUSED
    assert user.email not in refused.text
    # other accounts, from the same address, are not locked out
    assert (await api_as(client, other.email, PASSWORD)).status_code == 200


async def test_basic_auth_429_says_when_to_retry(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    for _ in range(PER_ACCOUNT):
        await api_as(client, user.email, "wrong")

    refused = await api_as(client, user.email, "wrong")

    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= WINDOW


async def test_concurrent_attempts_cannot_pass_the_limit(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()

    answers = await asyncio.gather(*(api_as(client, user.email, "wrong") for _ in range(8)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * PER_ACCOUNT + [429] * (8 - PER_ACCOUNT)


async def test_the_log_in_form_answers_429_with_retry_after(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    for _ in range(PER_ACCOUNT):
        assert (await form_log_in(client, user.email, "wrong")).status_code == 401

    refused = await form_log_in(client, user.email, PASSWORD)

    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= WINDOW
    assert "Too many failed log-in attempts" in refused.text
    # the form and Basic auth count the same failures
    assert (await api_as(client, user.email, PASSWORD)).status_code == 429


# --- per address -------------------------------------------------------------------------------


async def test_failures_from_one_address_are_limited_across_accounts(
    throttled_app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    for n in range(PER_ADDRESS):
        assert (await form_log_in(client, f"nobody{n}@example.org", "guess")).status_code == 401

    assert (await form_log_in(client, user.email, PASSWORD)).status_code == 429
    async with client_from(throttled_app, "203.0.113.2") as elsewhere:
        assert (await form_log_in(elsewhere, user.email, PASSWORD)).status_code == 303


async def test_basic_auth_failures_from_one_address_are_limited_across_accounts(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    for n in range(PER_ADDRESS):
        assert (await api_as(client, f"nobody{n}@example.org", "guess")).status_code == 401

    assert (await api_as(client, user.email, PASSWORD)).status_code == 429


# --- timing and the event loop -----------------------------------------------------------------


async def test_unknown_emails_and_unusable_hashes_cost_a_bcrypt_check_off_the_loop(
    client: httpx.AsyncClient, session: AsyncSession, bcrypt_threads: dict[str, list[int]]
) -> None:
    user = await make_user(session)
    no_password = await make_user(session)
    no_password.hashed_password = ""
    await session.commit()
    loop_thread = threading.get_ident()

    for email in (user.email, "nobody@example.org", no_password.email):
        assert (await api_as(client, email, "wrong")).status_code == 401
    assert (await form_log_in(client, "nobody@example.org", "wrong")).status_code == 401

    assert len(bcrypt_threads["checkpw"]) == 4
    assert loop_thread not in bcrypt_threads["checkpw"]


async def test_passwords_are_hashed_off_the_loop(
    session: AsyncSession, bcrypt_threads: dict[str, list[int]]
) -> None:
    await create_user(session, "hashed.elsewhere@example.org", password=PASSWORD)

    assert bcrypt_threads["hashpw"]
    assert threading.get_ident() not in bcrypt_threads["hashpw"]


# --- the throttle itself -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_ends_and_retry_after_counts_down_to_it() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_account=2, per_address=0, window=60, timer=clock)
    throttle.attempt("a@example.org", None)
    clock.now += 10
    throttle.attempt("a@example.org", None)
    clock.now += 20

    with pytest.raises(TooManyAttempts) as refused:
        throttle.attempt("A@example.org ", None)

    assert refused.value.retry_after == 30
    assert refused.value.http_status == 429
    clock.now += 30
    throttle.attempt("a@example.org", None)  # a new window


def test_the_throttle_keeps_no_email_or_address_in_clear() -> None:
    throttle = LoginThrottle(per_account=5, per_address=5, window=60)
    throttle.attempt("someone@example.org", "198.51.100.7")

    kept = throttle.counter.stored()

    assert len(kept) == 2
    for digest in kept:
        assert b"someone" not in digest and b"198.51.100.7" not in digest
        assert len(digest) == 16


def test_limits_come_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        PROCA_DATA_DIR=str(tmp_path),
        LOGIN_MAX_FAILURES_PER_ACCOUNT="4",
        LOGIN_MAX_FAILURES_PER_ADDRESS="0",
        LOGIN_FAILURE_WINDOW="",
    )

    throttle = LoginThrottle.from_settings(settings)

    assert (throttle.per_account, throttle.per_address, throttle.counter.window) == (4, 0, 900)


async def test_guessing_the_current_password_in_the_settings_is_throttled(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    await session.commit()
    assert (await form_log_in(client, user.email, PASSWORD)).status_code == 303

    async def change_password(current: str) -> httpx.Response:
        page = await client.get("/users/settings")
        match = CSRF_RE.search(page.text)
        assert match, page.text
        form = {
            "action": "update_password",
            "current_password": current,
            "password": "An0ther-Passw0rd!",
            "password_confirmation": "An0ther-Passw0rd!",
            "_csrf_token": match.group(1),
        }
        return await client.post("/users/settings", data=form)

    for _ in range(PER_ACCOUNT):
        assert (await change_password("wrong")).status_code == 422
    refused = await change_password(PASSWORD)

    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= WINDOW
    assert "Too many failed log-in attempts" in refused.text
