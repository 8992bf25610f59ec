"""Captcha against local verification servers, and idempotent submissions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.models import Action, AuditLog
from tests.captcha_helpers import verifier
from tests.factories import make_world
from tests.local_http import serve
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post


@pytest.fixture
def captcha_settings(settings: Settings) -> Iterator[Settings]:
    saved = (settings.procaptcha_url, settings.hcaptcha_key, settings.hcaptcha_url)
    yield settings
    settings.procaptcha_url, settings.hcaptcha_key, settings.hcaptcha_url = saved


async def _actions(session: AsyncSession) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.count()).select_from(Action)) or 0)


async def test_procaptcha(
    client: httpx.AsyncClient, session: AsyncSession, captcha_settings: Settings
) -> None:
    world = await make_world(session, roles=())
    page_id = world.page.id
    app, seen = verifier()
    async with serve(app) as base:
        captcha_settings.procaptcha_url = f"{base}/procaptcha"
        missing = await widget_post(
            client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id)
        )
        assert missing["errors"][0]["message"] == "Captcha code is required for this API call"
        assert missing["errors"][0]["extensions"]["code"] == "unauthorized"
        bad = await widget_post(
            client,
            "addActionContact",
            ADD_ACTION_CONTACT,
            signature(page_id),
            extensions={"captcha": "stale"},
        )
        assert bad["errors"][0]["extensions"]["code"] == "bad_captcha"
        assert bad["errors"][0]["message"] == "captcha: challenge expired"
        assert await _actions(session) == 0
        good = await widget_post(
            client,
            "addActionContact",
            ADD_ACTION_CONTACT,
            signature(page_id),
            extensions={"captcha": "good", "captcha_service": "procaptcha"},
        )
        assert "errors" not in good, good
        wrong_service = await widget_post(
            client,
            "addActionContact",
            ADD_ACTION_CONTACT,
            signature(page_id, "x@example.org"),
            extensions={"captcha": "good", "captcha_service": "hcaptcha"},
        )
        assert wrong_service["errors"][0]["message"] == "not enabled"
    assert [s["response"] for s in seen] == ["stale", "good"]
    assert await _actions(session) == 1
    audit = (await session.execute(select(AuditLog))).scalar_one()
    assert audit.resource == "captcha_actions" and audit.changeset == {"method": "image"}


async def test_hcaptcha(
    client: httpx.AsyncClient, session: AsyncSession, captcha_settings: Settings
) -> None:
    world = await make_world(session, roles=())
    page_id = world.page.id
    app, seen = verifier()
    async with serve(app) as base:
        captcha_settings.hcaptcha_key = "s3cret"
        captcha_settings.hcaptcha_url = f"{base}/hcaptcha"
        bad = await widget_post(
            client,
            "addActionContact",
            ADD_ACTION_CONTACT,
            signature(page_id),
            extensions={"captcha": "nope", "captcha_service": "hcaptcha"},
        )
        assert bad["errors"][0]["extensions"]["code"] == "bad_captcha"
        good = await widget_post(
            client,
            "addActionContact",
            ADD_ACTION_CONTACT,
            signature(page_id),
            extensions={"captcha": "ok-token", "captcha_service": "hcaptcha"},
        )
        assert "errors" not in good, good
    assert seen[-1] == {"service": "hcaptcha", "secret": "s3cret", "response": "ok-token"}


async def test_idempotency_key_returns_the_first_answer(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    page_id = world.page.id
    first = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(page_id),
        headers={"Idempotency-Key": "k-1"},
    )
    again = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(page_id),
        headers={"Idempotency-Key": "k-1"},
    )
    via_extensions = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(page_id),
        extensions={"idempotencyKey": "k-1"},
    )
    assert first == again == via_extensions
    assert await _actions(session) == 1
    other = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(page_id),
        headers={"Idempotency-Key": "k-2"},
    )
    assert "errors" not in other
    assert await _actions(session) == 2


async def test_concurrent_retries_write_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    page_id = world.page.id
    answers = await asyncio.gather(
        *[
            widget_post(
                client,
                "addActionContact",
                ADD_ACTION_CONTACT,
                signature(page_id),
                headers={"Idempotency-Key": "same"},
            )
            for _ in range(5)
        ]
    )
    assert all(a == answers[0] for a in answers), answers
    assert "errors" not in answers[0]
    assert await _actions(session) == 1


async def test_failed_request_is_not_remembered(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    page_id = world.page.id
    bad = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(page_id, "not-an-email"),
        headers={"Idempotency-Key": "k"},
    )
    assert bad.get("errors")
    good = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(page_id),
        headers={"Idempotency-Key": "k"},
    )
    assert "errors" not in good
    too_long = await client.post(
        "/api",
        content=json.dumps({"query": "mutation { resetApiToken }"}),
        headers={"Idempotency-Key": "x" * 300, "Content-Type": "application/json"},
    )
    assert too_long.status_code == 400
