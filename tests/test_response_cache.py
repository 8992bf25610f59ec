"""Anonymous queries answered from the per-process response cache (graphql/response_cache.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server.app_state import state_of
from proca_server.auth.authenticate import carries_credentials
from proca_server.graphql import http as graphql_http
from proca_server.graphql.response_cache import Key, ResponseCache
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


def get_key(query_string: bytes, path: str = "/api", **headers: bytes) -> Key:
    """The cache's key of an ASGI GET request."""
    scope = {
        "method": "GET",
        "path": path,
        "query_string": query_string,
        "headers": [(name.encode(), value) for name, value in headers.items()],
    }
    key = ResponseCache.key(scope, b"")
    assert key is not None
    return key


def test_entries_expire_and_memory_is_bounded() -> None:
    cache = ResponseCache(ttl=0.05, max_entries=4)
    key = get_key(b"q=1")
    cache.put(key, time.monotonic(), "a")
    assert cache.get(key) == "a"
    time.sleep(0.06)
    assert cache.get(key) is None
    for i in range(10):
        cache.put(get_key(f"q={i}".encode()), time.monotonic(), str(i))
    assert len(cache) <= 4
    assert cache.get(get_key(b"q=9")) == "9"
    # an answer computed from data read long ago is not served at all
    cache.put(key, time.monotonic() - 1, "old")
    assert cache.get(key) is None


def test_the_key_holds_what_the_answer_depends_on() -> None:
    base = get_key(b"q=1")
    assert get_key(b"q=1") == base
    assert get_key(b"q=2") != base
    assert get_key(b"q=1", path="/private/api") != base
    assert get_key(b"q=1", **{"content-type": b"application/json"}) != base
    # headers the answer does not depend on are not in it
    assert get_key(b"q=1", referer=b"https://a.example.org/") == base


@pytest.mark.parametrize(
    ("headers", "credentials"),
    [
        ([], False),
        ([(b"referer", b"https://a.example.org/"), (b"accept", b"*/*")], False),
        ([(b"authorization", b"Bearer x")], True),
        ([(b"cookie", b"theme=dark; _proca_key=abc")], True),
        ([(b"cookie", b"_proca_user_remember_me=abc")], True),
        ([(b"cookie", b"theme=dark"), (b"cookie", b"  _proca_key =abc")], True),
        # stripped as the request's cookie parser strips it (latin-1 no-break space)
        ([(b"cookie", b"\xa0_proca_key=abc")], True),
        # a chunk without "=" is no cookie to the parser: counted as one, to be safe
        ([(b"cookie", b"_proca_key")], True),
        ([(b"cookie", b"x_proca_key=abc; theme=_proca_key")], False),
    ],
)
def test_what_carries_credentials(headers: list[tuple[bytes, bytes]], credentials: bool) -> None:
    assert carries_credentials(headers) is credentials


async def test_held_answers_to_anonymous_gets_are_given_before_routing(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await make_world(session)
    routed: list[str] = []
    execute = graphql_http.execute_request

    async def counted(request: Request, *args: Any) -> Any:
        routed.append(request.method)
        return await execute(request, *args)

    monkeypatch.setattr(graphql_http, "execute_request", counted)
    cache: ResponseCache = state_of(app).response_cache
    cache.ttl = 30.0
    origin = {"origin": "https://campaign.example.org"}
    try:
        first = await get_count(client, world.page.id, **origin)
        assert routed == ["GET"]
        held = [await get_count(client, world.page.id, **origin) for _ in range(5)]
        assert routed == ["GET"]  # the five were answered in front of the router
        for response in held:
            assert response.content == first.content
            assert response.headers == first.headers  # CORS headers included
        assert first.headers["access-control-allow-origin"] == "*"
        # with credentials, or another page, the route answers
        await get_count(client, world.page.id, authorization=f"Bearer {world.tokens['owner']}")
        await get_count(client, world.page.id, cookie="_proca_key=whatever")
        await get_count(client, world.page.id + 1000)
        assert routed == ["GET"] * 4
        # a POST of the same query is the route's, which answers from its own entry
        posted = [
            await client.post(
                "/api", json={"query": COUNT, "variables": {"actionPage": world.page.id}}
            )
            for _ in range(2)
        ]
        assert routed == ["GET"] * 4 + ["POST"] * 2
        assert posted[0].content == posted[1].content == first.content
    finally:
        cache.ttl = 0.25


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
