"""GraphiQL at /graphiql in a real headless Chromium (Debian's), against a served proca-server,
as a person uses it: the token typed into the Headers editor, a query typed and run, the
answer read in the result pane; and nothing fetched from anywhere but the server.

Skipped when /usr/bin/chromium is missing (`.ci/run` installs it). The page touches the
database no differently on PostgreSQL, so these run on SQLite only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, WebSocket, async_playwright, expect
from tests.clients.browser import CHROMIUM, CHROMIUM_FLAGS, TIMEOUT_MS
from tests.clients.harness import INSTANCE_ORG, ServedProca

pytestmark = pytest.mark.browser  # Debian's Chromium

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULT = ".graphiql-response .result-window"

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@dataclass
class Browser:
    context: BrowserContext
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)

    async def open(self, url: str) -> Page:
        page = await self.context.new_page()
        page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        page.on("websocket", self._watch_socket)
        await page.goto(url)
        return page

    def _watch_socket(self, ws: WebSocket) -> None:
        self.requests.append(ws.url)
        ws.on("framereceived", lambda payload: self.frames.append(str(payload)))

    def remote_requests(self) -> list[str]:
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob")
            and urlsplit(url).hostname not in LOCAL_HOSTS
        ]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        watched = Browser(context)
        context.on("request", lambda r: watched.requests.append(r.url))
        try:
            yield watched
        finally:
            await context.close()


async def type_into(page: Page, editor: str, text: str) -> None:
    """Replace an editor's text as a person pasting it would."""
    await page.locator(editor).click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)


async def open_explorer(browser: Browser, server: ServedProca, token: str | None) -> Page:
    page = await browser.open(f"{server.direct_url}/graphiql")
    await expect(page.locator(QUERY_EDITOR)).to_be_visible(timeout=TIMEOUT_MS)
    if token is not None:
        headers = json.dumps({"Authorization": f"Bearer {token}"})
        await type_into(page, HEADERS_EDITOR, headers)
    return page


async def run(page: Page, query: str) -> None:
    await type_into(page, QUERY_EDITOR, query)
    # GraphiQL parses the editor 100 ms after a change, and picks HTTP or the socket from
    # that parse: a click sooner than a person's would send the previous document's kind
    await page.wait_for_timeout(300)
    await page.locator(".graphiql-execute-button").click()


async def api(server: ServedProca, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.direct_url, timeout=10) as client:
        response = await client.post(
            "/api",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {server.token}"},
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(TIMEOUT_MS // 50):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_admin_runs_a_query_with_their_token_in_the_headers_editor(
    browser: Browser, shared_server: ServedProca
) -> None:
    page = await open_explorer(browser, shared_server, shared_server.token)
    await run(page, "{ currentUser { email } }")

    result = page.locator(RESULT)
    await expect(result).to_contain_text(shared_server.admin_email, timeout=TIMEOUT_MS)
    assert '"currentUser"' in await result.inner_text()
    assert browser.problems == [], shared_server.log_tail()
    assert browser.remote_requests() == []
    assert any(urlsplit(u).path == "/graphiql/assets/graphiql.min.js" for u in browser.requests)


async def test_a_subscription_shows_the_action_page_added_after_it_started(
    browser: Browser, shared_server: ServedProca
) -> None:
    await api(
        shared_server,
        'mutation($org: String!) { addCampaign(orgName: $org, input: {name: "bees", '
        'title: "Save the bees"}) { id } }',
        {"org": INSTANCE_ORG},
    )
    # the socket is anonymous: no token needed
    page = await open_explorer(browser, shared_server, token=None)
    await run(page, f'subscription {{ actionPageUpserted(orgName: "{INSTANCE_ORG}") {{ name }} }}')
    await until(lambda: any("subscriptionId" in f for f in browser.frames), "the subscription")

    await api(
        shared_server,
        'mutation($org: String!) { addActionPage(orgName: $org, campaignName: "bees", '
        'input: {name: "bees.example.org/en", locale: "en"}) { id } }',
        {"org": INSTANCE_ORG},
    )

    await expect(page.locator(RESULT)).to_contain_text("bees.example.org/en", timeout=TIMEOUT_MS)
    assert browser.problems == [], shared_server.log_tail()
    assert browser.remote_requests() == []
    assert any(urlsplit(u).path == "/socket/websocket" for u in browser.requests)
