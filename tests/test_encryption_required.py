"""Contacts stored in clear are never silent: a warning per org, and REQUIRE_ENCRYPTION refuses
them, on the general path and where the signature lane would take the request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.action.lane import SignatureLane
from proca_server.app_state import state_of
from proca_server.config import Settings
from proca_server.contact import keyrings
from proca_server.models import Contact, Source
from proca_server.org.service import ensure_instance_org
from tests.factories import make_campaign, make_org, make_page, make_world
from tests.widget_helpers import ADD_ACTION_CONTACT, counts, signature, widget_post

WARNING = "has no active encryption key"
PERSONAL = ("example.org", "Ann", "Lee")


@pytest.fixture
def require_encryption(settings: Settings) -> Iterator[None]:
    settings.require_encryption = True
    try:
        yield
    finally:
        settings.require_encryption = False


async def keyless_page(session: AsyncSession) -> tuple[int, int, str]:
    """(page id, org id, org name) of an org without a key, its campaign and page."""
    org = await make_org(session)
    page = await make_page(session, await make_campaign(session, org), org)
    ids = page.id, org.id, org.name
    await session.commit()
    return ids


def keyless_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]


async def sign(client: httpx.AsyncClient, page: int, email: str) -> dict[str, Any]:
    return await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page, email))


async def test_a_keyless_org_is_warned_about_once_and_its_contacts_stay_in_clear(
    client: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_instance_org(session, "instance")
    page, org_id, _ = await keyless_page(session)
    other_page, other_id, _ = await keyless_page(session)
    caplog.set_level(logging.WARNING)
    for n in range(4):  # on PostgreSQL the later ones go the signature lane
        assert "errors" not in await sign(client, page, f"ann{n}@example.org")
    assert "errors" not in await sign(client, other_page, "bob@example.org")
    warnings = keyless_warnings(caplog)
    assert sorted(warnings) == sorted(
        f"org {i} has no active encryption key: its supporters' contacts are stored unencrypted"
        for i in (org_id, other_id)
    )
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert not any(p in logged for p in PERSONAL)
    await session.rollback()
    nonces = (await session.execute(select(Contact.crypto_nonce))).scalars().all()
    assert len(nonces) == 5 and set(nonces) == {None}  # the default behaviour is kept


async def test_require_encryption_refuses_a_keyless_org_and_stores_nothing(
    client: httpx.AsyncClient, session: AsyncSession, require_encryption: None
) -> None:
    await ensure_instance_org(session, "instance")
    page, _, name = await keyless_page(session)
    body = await sign(client, page, "ann@example.org")
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "bad_arg"
    assert f"org {name} has no active encryption key" in error["message"]
    assert not any(p in error["message"] for p in PERSONAL)
    assert await counts(session) == (0, 0, 0)
    assert await session.scalar(select(func.count()).select_from(Source)) == 0
    # an org with a key still takes signatures
    world = await make_world(session, roles=())
    assert "errors" not in await sign(client, world.page.id, "bob@example.org")
    assert await counts(session) == (1, 1, 1)


async def test_require_encryption_refuses_when_any_receiver_lacks_a_key(
    client: httpx.AsyncClient, session: AsyncSession, require_encryption: None
) -> None:
    # the partner's page has a key; the campaign's lead org, which gets a copy, has none
    await ensure_instance_org(session, "instance")
    partner = await make_world(session, roles=())
    lead = await make_org(session)
    campaign = await make_campaign(session, lead)
    page = await make_page(session, campaign, partner.org)
    page.delivery = True
    page_id, lead_name = page.id, lead.name
    await session.commit()
    variables = signature(page_id, privacy={"optIn": True, "leadOptIn": True})
    body = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, variables)
    assert f"org {lead_name} has no active encryption key" in body["errors"][0]["message"]
    assert await counts(session) == (0, 0, 0)


async def test_require_encryption_refuses_without_the_instance_sign_key(
    client: httpx.AsyncClient, session: AsyncSession, require_encryption: None
) -> None:
    world = await make_world(session, roles=())  # a key, but no instance org to sign with
    body = await sign(client, world.page.id, "ann@example.org")
    error = body["errors"][0]
    assert error["extensions"]["code"] == "bad_arg"
    assert "instance org instance has no usable sign key" in error["message"]
    assert await counts(session) == (0, 0, 0)


async def test_the_lane_leaves_a_refused_signature_to_the_general_path(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    backend: str,
) -> None:
    if backend != "postgresql":
        pytest.skip("the signature lane runs on PostgreSQL only")
    lane: SignatureLane = state_of(app).signature_lane
    await ensure_instance_org(session, "instance")
    page, _, name = await keyless_page(session)
    for n in range(3):  # warms the page, source and key caches: the lane takes the third
        assert "errors" not in await sign(client, page, f"warm{n}@example.org")
    taken = lane.answered
    assert "errors" not in await sign(client, page, "lane@example.org")
    assert lane.answered == taken + 1, "the lane takes a keyless org's signature when allowed"
    before = await counts(session)
    settings.require_encryption = True
    try:
        keyrings.forget_keyrings()  # a restart with the new setting (the other caches stay)
        for n in range(3):
            body = await sign(client, page, f"refused{n}@example.org")
            assert f"org {name} has no active encryption key" in body["errors"][0]["message"]
    finally:
        settings.require_encryption = False
    assert lane.answered == taken + 1
    assert await counts(session) == before
