"""Worlds for the pipeline tests: signatures through the widget API, then processing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from nacl.public import Box, PrivateKey
from nacl.public import PublicKey as NaclPublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from proca_server.app_state import state_of
from proca_server.broker import OrgConfig, org_topology, store
from proca_server.broker.embedded import EmbeddedBroker
from proca_server.kit import base64url
from proca_server.models import Action, Campaign
from proca_server.org.service import ensure_instance_org
from proca_server.processing.loader import LoadedAction, load_actions_for_processing
from proca_server.processing.service import ProcessingPlan, apply_plans, plan_processing
from tests.factories import make_campaign, make_key, make_org, make_page
from tests.widget_helpers import ADD_ACTION, ADD_ACTION_CONTACT, signature, widget_post


@dataclass(frozen=True)
class Site:
    """Ids and keys of an org with a campaign and a page (read before any commit)."""

    org_id: int
    org_name: str
    campaign_id: int
    campaign_name: str
    page_id: int
    page_name: str
    private_key: PrivateKey | None  # None: the org has no active key (cleartext contacts)
    sign_public: bytes


async def make_site(
    session: AsyncSession,
    *,
    encrypted: bool = True,
    lead: Site | None = None,
    org_fields: dict[str, Any] | None = None,
    campaign_fields: dict[str, Any] | None = None,
    page_fields: dict[str, Any] | None = None,
) -> Site:
    """An org (with an active key when `encrypted`) and a page; the page is in a new
    campaign of the org, or in `lead`'s campaign (a coalition partner)."""
    instance = await ensure_instance_org(session, "instance")
    org = await make_org(session, **(org_fields or {}))
    private = None
    if encrypted:
        _, private = await make_key(session, org)
    if lead is None:
        campaign = await make_campaign(session, org)
        for name, value in (campaign_fields or {}).items():
            setattr(campaign, name, value)
    else:
        found = await session.get(Campaign, lead.campaign_id)
        assert found is not None
        campaign = found
    page = await make_page(session, campaign, org)
    for name, value in (page_fields or {}).items():
        setattr(page, name, value)
    await session.flush()
    site = Site(
        org.id,
        org.name,
        campaign.id,
        campaign.name,
        page.id,
        page.name,
        private,
        bytes(instance.key.public),
    )
    await session.commit()
    return site


async def sign(
    client: httpx.AsyncClient,
    page_id: int,
    email: str = "ann@example.org",
    *,
    referer: str | None = "https://campaign.example.org/sign?utm_source=x",
    **over: Any,
) -> str:
    """addActionContact as the widget sends it; the new contactRef."""
    body = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(page_id, email, **over),
        referer=referer,
    )
    assert "errors" not in body, body
    _take_widget_hand_off(client)
    ref: str = body["data"]["addActionContact"]["contactRef"]
    return ref


def _take_widget_hand_off(client: httpx.AsyncClient) -> None:
    """The widget's mutation handed its new action to the pipeline after commit; when a test
    records the hand-offs (tests/processing/conftest.py), check that one and drop it, so the
    test sees what the links hand over."""
    app = getattr(client._transport, "app", None)
    recorder = state_of(app).pipeline if isinstance(app, Starlette) else None
    calls = getattr(recorder, "calls", None)
    if calls is None:
        return
    publications, action_ids = calls.pop()
    assert publications == [] and len(action_ids) >= 1


async def share(client: httpx.AsyncClient, page_id: int, ref: str) -> None:
    body = await widget_post(
        client,
        "addAction",
        ADD_ACTION,
        {"contact": ref, "actionPage": page_id, "actionType": "share", "payload": "{}"},
    )
    assert "errors" not in body, body
    _take_widget_hand_off(client)


async def action_ids(session: AsyncSession) -> list[int]:
    await session.rollback()
    return list((await session.execute(select(Action.id).order_by(Action.id))).scalars().all())


async def load(session: AsyncSession, ids: list[int]) -> list[LoadedAction]:
    await session.rollback()
    session.expunge_all()
    return await load_actions_for_processing(session, ids)


async def process(session: AsyncSession, ids: list[int]) -> list[ProcessingPlan]:
    """Plan, apply and commit, as a worker does (publishing is the caller's part)."""
    plans = await plan_processing(session, await load(session, ids))
    await apply_plans(session, plans)
    await session.commit()
    return plans


def body(publication_body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(publication_body)
    return data


def decrypt(personal_info: dict[str, Any], private: PrivateKey, sign_public: bytes) -> Any:
    box = Box(private, NaclPublicKey(sign_public))
    clear = box.decrypt(
        base64url.decode(personal_info["payload"]), base64url.decode(personal_info["nonce"])
    )
    return json.loads(clear)


async def queued(session: AsyncSession, queue: str) -> list[dict[str, object]]:
    await session.rollback()
    return [json.loads(m.body) for m in await store.peek_messages(session, queue, 100)]


async def delivered_site(
    client: httpx.AsyncClient, session: AsyncSession, broker: EmbeddedBroker
) -> tuple[Site, list[int]]:
    """An org with a custom deliver queue and two delivered actions (the second a repeat)."""
    site = await make_site(session)
    await sign(client, site.page_id)
    await sign(client, site.page_id)
    ids = await action_ids(session)
    await process(session, ids)
    await broker.apply_topology(
        org_topology(OrgConfig(site.org_id, custom_action_deliver=True, push_backend="webhook"))
    )
    return site, ids
