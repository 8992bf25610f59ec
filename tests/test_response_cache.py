"""Anonymous queries answered from the per-process response cache (graphql/response_cache.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.app_state import state_of
from proca_server.graphql.response_cache import ResponseCache
from proca_server.stats.counts import clear_caches
from tests.factories import make_world

COUNT = "query getCount($actionPage: Int!) { actionPage(id: $actionPage) { campaign { stats { supporterCount } } } }"  # noqa: E501
SIGN = """mutation($page: Int!, $email: String!) {
  addActionContact(actionPageId: $page, action: {actionType: "register"},
    contact: {firstName: "Ann", email: $email}, privacy: {optIn: true}) { contactRef } }"""


async def get_count(client: httpx.AsyncClient, page: int, **headers: str) -> httpx.Response:
    params = {"query": COUNT, "variables": json.dumps({"actionPage": page})}
    return await client.get("/api", params=params, headers=headers)


def count_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["actionPage"]["campaign"]["stats"]["supporterCount"])


async def sign(client: httpx.AsyncClient, page: int, email: str) -> None:
    r = await client.post("/api", json={"query": SIGN, "variables": {"page": page, "email": email}})
    assert r.status_code == 200 and "errors" not in r.json(), r.text


def test_entries_expire_and_memory_is_bounded() -> None:
    cache = ResponseCache(ttl=0.05, max_entries=4)
    key = ("GET ", "q=1", b"")
    cache.put(key, time.monotonic(), "a")
    assert cache.get(key) == "a"
    time.sleep(0.06)
    assert cache.get(key) is None
    for i in range(10):
        cache.put(("GET ", f"q={i}", b""), time.monotonic(), str(i))
    assert len(cache) <= 4
    assert cache.get(("GET ", "q=9", b"")) == "9"
    # an answer computed from data read long ago is not served at all
    cache.put(key, time.monotonic() - 1, "old")
    assert cache.get(key) is None


async def test_anonymous_counter_reads_skip_the_database_until_the_answer_expires(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_world(session)
    page = world.page.id
    cache: ResponseCache = state_of(app).response_cache
    cache.ttl = 30.0  # long enough to see the cache at work without racing the clock
    try:
        assert count_of(await get_count(client, page)) == 0
        statements: list[str] = []

        def seen(*args: Any) -> None:
            statements.append(args[2])

        await sign(client, page, "ann@example.org")
        clear_caches()  # the counters' own cache is not what answers below
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        try:
            cached = [count_of(await get_count(client, page)) for _ in range(20)]
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", seen)
        assert cached == [0] * 20
        assert statements == []  # no session, no statement
        # the same query with credentials is executed, and sees the signature
        token = world.tokens["owner"]
        assert count_of(await get_count(client, page, authorization=f"Bearer {token}")) == 1
        # other variables are another entry (this one fails, and is not kept)
        other = await client.get(
            "/api",
            params={"query": COUNT, "variables": json.dumps({"actionPage": page + 1000})},
        )
        assert "errors" in other.json()
        assert len(cache) == 1
    finally:
        cache.ttl = 0.25
    # with the default lifetime the signature shows within a second
    clear_caches()
    started = time.monotonic()
    while count_of(await get_count(client, page)) != 1:
        assert time.monotonic() - started < 1.0, "not visible within one second"
        await asyncio.sleep(0.02)


async def test_errors_and_mutations_are_never_cached(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    cache: ResponseCache = state_of(app).response_cache
    missing = await client.get("/api", params={"query": "{ actionPage(id: 999999) { id } }"})
    assert "errors" in missing.json()
    await sign(client, world.page.id, "bob@example.org")
    assert len(cache) == 0
    found = await client.get(
        "/api", params={"query": f"{{ actionPage(id: {world.page.id}) {{ id }} }}"}
    )
    assert found.json() == {"data": {"actionPage": {"id": world.page.id}}}
    assert len(cache) == 1
    # a POST of the same query is cached under its own key and answers the same bytes
    posted = await client.post(
        "/api", json={"query": f"{{ actionPage(id: {world.page.id}) {{ id }} }}"}
    )
    again = await client.post(
        "/api", json={"query": f"{{ actionPage(id: {world.page.id}) {{ id }} }}"}
    )
    assert posted.content == again.content == found.content
    assert len(cache) == 2


async def test_concurrent_identical_queries_share_one_execution(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await make_world(session)
    clear_caches()
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        answers = await asyncio.gather(*(get_count(client, world.page.id) for _ in range(30)))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert {r.content for r in answers} == {answers[0].content}
    assert count_of(answers[0]) == 0
    # one execution: the page is selected once, not thirty times
    assert sum(s.startswith("SELECT action_pages.") for s in statements) == 1
    assert state_of(app).response_cache._in_flight == {}
