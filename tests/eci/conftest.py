"""An app built in the ECI build (ENABLE_ECI) on the test database, with its captcha checked
by a local Procaptcha verifier (tests/test_captcha_idempotency.py's), and a small ECI world
made by `create_eci` itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app import create_app
from proca_server.app_state import state_of
from proca_server.config import Settings
from proca_server.eci.service import create_eci
from proca_server.kit import base64url
from proca_server.models import ActionPage
from proca_server.org.service import ensure_instance_org
from tests.captcha_helpers import verifier
from tests.local_http import serve

JWT_SECRET = "a-shared-secret-of-at-least-32-bytes!"


@dataclass
class Verifier:
    url: str
    seen: list[dict[str, str]]


@pytest.fixture(scope="session")
async def procaptcha() -> AsyncIterator[Verifier]:
    app, seen = verifier()
    async with serve(app) as base:
        yield Verifier(f"{base}/procaptcha", seen)


@pytest.fixture(scope="session")
def eci_settings(settings: Settings, procaptcha: Verifier) -> Settings:
    # a JWT secret, so that a refused JWT is refused for its kind, not for being invalid
    return settings.model_copy(
        update={"enable_eci": True, "procaptcha_url": procaptcha.url, "jwt_secret": JWT_SECRET}
    )


@pytest.fixture(scope="session")
async def eci_app(eci_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(eci_settings)
    yield application
    await state_of(application).signature_lane.close()
    await state_of(application).engine.dispose()


@pytest.fixture
async def eci_client(eci_app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=eci_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    # its own caches: the tables are emptied after each test
    state = state_of(eci_app)
    state.response_cache.clear()
    state.page_cache.clear()


@dataclass
class EciWorld:
    org_id: int
    key_id: int
    private_key: PrivateKey
    sign_public: bytes
    campaign: str
    pages: dict[str, int]  # locale -> page id


@pytest.fixture
async def eci_world(session: AsyncSession) -> EciWorld:
    instance = await ensure_instance_org(session, "instance")
    private = PrivateKey.generate()
    setup = await create_eci(
        session,
        "eci-org",
        "eci-test",
        instance_org_name="instance",
        public_key=base64url.encode(bytes(private.public_key)),
    )
    await session.commit()
    rows = await session.execute(select(ActionPage.locale, ActionPage.id))
    pages = {locale: page_id for locale, page_id in rows.all()}
    org_id = await session.scalar(select(ActionPage.org_id).where(ActionPage.id == pages["at"]))
    assert org_id is not None
    return EciWorld(org_id, setup.key_id, private, instance.key.public, "eci-test", pages)
