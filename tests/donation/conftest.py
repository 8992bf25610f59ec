from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.config import Settings
from proca_server.models import Service
from tests.donation.standin import StripeStandIn, running_standin
from tests.factories import World, make_world
from tests.processing.conftest import RecordingPipeline

API_KEY = "sk_test_standin"
TEST_API_KEY = "sk_test_testmode"
WEBHOOK_SECRET = "whsec_0123456789abcdef"
TEST_WEBHOOK_SECRET = "whsec_testmode0123"


@pytest.fixture
async def stripe(settings: Settings) -> AsyncIterator[StripeStandIn]:
    """The Stripe stand-in, set as the server's Stripe API (STRIPE_API_BASE)."""
    standin = StripeStandIn(api_keys={API_KEY, TEST_API_KEY})
    async with running_standin(standin) as (_, url):
        previous = settings.stripe_api_base
        settings.stripe_api_base = url
        try:
            yield standin
        finally:
            settings.stripe_api_base = previous


@dataclass
class Donors:
    """An org with a page, its `stripe` service (API key and webhook secret) and, when
    asked, its `test_stripe` one."""

    world: World
    page_id: int
    org_id: int
    service_id: int
    test_service_id: int | None
    page_name: str = ""
    campaign_id: int = 0
    campaign_name: str = ""

    @property
    def webhook(self) -> str:
        return f"/webhook/stripe/{self.service_id}"


async def make_donors(
    session: AsyncSession,
    *,
    password: str | None = f"{API_KEY} {WEBHOOK_SECRET}",
    test_password: str | None = None,
) -> Donors:
    world = await make_world(session, roles=())
    ids: list[int | None] = []
    for name, secret in (("stripe", password), ("test_stripe", test_password)):
        if secret is None:
            ids.append(None)
            continue
        service = Service(name=name, password=secret, org_id=world.org.id)
        session.add(service)
        await session.flush()
        ids.append(service.id)
    await session.commit()
    assert ids[0] is not None or password is None
    return Donors(
        world,
        world.page.id,
        world.org.id,
        ids[0] or 0,
        ids[1],
        world.page.name,
        world.campaign.id,
        world.campaign.name,
    )


@pytest.fixture
def pipeline(app: FastAPI) -> Iterator[RecordingPipeline]:
    """What the webhook hands over after commit (stands where the broker plugs in)."""
    recorder = RecordingPipeline()
    previous = state_of(app).pipeline
    state_of(app).pipeline = recorder
    yield recorder
    state_of(app).pipeline = previous
