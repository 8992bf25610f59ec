"""Local account pages driven as a browser does: forms with their CSRF token, logging in, and the
app's settings changed for a block."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.config import Settings

CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def csrf_for(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    match = CSRF_RE.search(response.text)
    assert match, "the page has no form"
    return match.group(1)


async def submit(
    client: httpx.AsyncClient, page: str, action: str, data: dict[str, str], method: str = "POST"
) -> httpx.Response:
    token = await csrf_for(client, page)
    return await client.request(method, action, data={**data, "_csrf_token": token})


async def log_in(
    client: httpx.AsyncClient, email: str, password: str, *, remember: bool = False
) -> httpx.Response:
    data = {"email": email, "password": password}
    if remember:
        data["remember_me"] = "true"
    return await submit(client, "/users/log_in", "/users/log_in", data)


async def see_committed(session: AsyncSession) -> None:
    """End the test session's transaction, so that its next read sees what the app committed
    meanwhile (on SQLite a transaction reads one snapshot). The session does not expire its
    objects on commit."""
    await session.commit()


@contextmanager
def app_settings(app: FastAPI, **changes: object) -> Iterator[Settings]:
    """The app runs with these settings changed for the block."""
    original: Settings = state_of(app).settings
    state_of(app).settings = original.model_copy(update=changes)
    try:
        yield state_of(app).settings
    finally:
        state_of(app).settings = original
