"""The supporter's page in a real headless Chromium (Debian's), against a served proca-server,
as a supporter uses it: the thank-you email read in the preview mailbox, its rights link
opened, a button pressed, the result read; and what that changed in the database.

Skipped when /usr/bin/chromium is missing (`.ci/run` installs it). SQLite only: the page
touches the database no differently on PostgreSQL (tests/supporter runs on both)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect
from sqlalchemy import select
from tests.clients.browser import CHROMIUM, CHROMIUM_FLAGS, TIMEOUT_MS
from tests.clients.harness import ServedProca, arrange_org, arranged
from tests.factories import make_campaign, make_page, unique
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post

from proca_server.models import Action, Contact, EmailTemplate, Org, Service
from proca_server.models.enums import ActionProcessingStatus as A

pytestmark = pytest.mark.browser  # Debian's Chromium

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield await context.new_page()
        finally:
            await context.close()


async def signed_with_thank_you(server: ServedProca) -> tuple[int, str]:
    """An org sending to the preview mailbox, a page with a thank-you template carrying the
    rights link, and a signature on it: (action id, the supporter's email)."""
    org = await arrange_org(server)
    async with arranged(server) as session:
        found = await session.get(Org, org.id)
        assert found is not None
        found.title = "Bee Friends"
        session.add(Service(name="preview", org_id=org.id))
        campaign = await make_campaign(session, found)
        action_page = await make_page(session, campaign, found)
        action_page.thank_you_template = "thanks"
        session.add(
            EmailTemplate(
                org_id=org.id,
                name="thanks",
                locale="en",
                subject="Thank you",
                html="<p>Thank you</p>",
                text="Thank you, {{firstName}}. Your data and your choices: {{rightsLink}}",
            )
        )
        await session.flush()
        page_id = action_page.id
    # through the API, so that the running server applies the org's queues and workers
    await server.graphql(
        "mutation($n: String!) { updateOrgProcessing(name: $n, emailBackend: PREVIEW,"
        ' emailFrom: "hello@bees.example") { name } }',
        {"n": org.name},
    )
    email = f"{unique('ann')}@example.org"
    async with httpx.AsyncClient(base_url=server.direct_url, timeout=10) as client:
        body = await widget_post(
            client, "addActionContact", ADD_ACTION_CONTACT, signature(page_id, email)
        )
    assert "errors" not in body, body
    async with arranged(server) as session:
        action_id = (
            await session.execute(select(Action.id).where(Action.action_page_id == page_id))
        ).scalar_one()
    return action_id, email


async def open_rights_link_from_the_mailbox(page: Page, server: ServedProca, email: str) -> None:
    """The newest email to `email` in the preview mailbox, its rights link followed."""
    row = page.locator("tr", has_text=email)
    for _ in range(TIMEOUT_MS // 250):
        await page.goto(f"{server.direct_url}/mailbox")
        if await row.count():
            break
        await page.wait_for_timeout(250)
    else:
        raise AssertionError(f"no email in the mailbox:\n{server.log_tail()}")
    await row.first.get_by_role("link").click()
    link = page.locator("pre a", has_text="/link/rights/")
    await expect(link).to_have_count(1, timeout=TIMEOUT_MS)
    href = await link.get_attribute("href")
    assert href is not None
    # the email names the server by DOMAIN and PORT; this one listens on a port of its own
    await page.goto(server.direct_url + urlsplit(href).path)
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your data and your choices", timeout=TIMEOUT_MS
    )
    await expect(page.locator("main")).to_contain_text("Bee Friends — may send you emails")


async def test_a_supporter_withdraws_consent_from_the_thank_you_email(
    page: Page, shared_server: ServedProca
) -> None:
    action_id, email = await signed_with_thank_you(shared_server)
    await open_rights_link_from_the_mailbox(page, shared_server, email)

    await page.get_by_role("button", name="No more emails from any of them").click()
    await expect(page.locator("main")).to_contain_text(
        "None of these organisations will send you emails any more.", timeout=TIMEOUT_MS
    )
    async with arranged(shared_server) as session:
        consents = (
            await session.execute(
                select(Contact.communication_consent)
                .join(Action, Action.supporter_id == Contact.supporter_id)
                .where(Action.id == action_id)
            )
        ).scalars()
        assert list(consents) == [False]

    await page.get_by_role("link", name="Back to your choices").click()
    await expect(page.locator("main")).to_contain_text("Bee Friends — will not send you emails")


async def test_a_supporter_says_it_was_not_them_and_the_action_is_rejected(
    page: Page, shared_server: ServedProca
) -> None:
    action_id, email = await signed_with_thank_you(shared_server)
    await open_rights_link_from_the_mailbox(page, shared_server, email)

    await page.get_by_role("button", name="It wasn't me").click()
    await expect(page.locator("main")).to_contain_text(
        "The action is cancelled", timeout=TIMEOUT_MS
    )
    async with arranged(shared_server) as session:
        action = await session.get(Action, action_id)
        assert action is not None and action.processing_status is A.REJECTED
