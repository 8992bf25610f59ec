"""Requests from callers who should not get what they ask: another caller's idempotent
answer, a body too large, a malformed body, a flood of signatures (docs/security.md)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.action.velocity import SignatureVelocity
from proca_server.app_state import state_of
from proca_server.errors import TooManySignatures
from proca_server.graphql import idempotency
from proca_server.graphql.response_cache import MAX_REQUEST_BYTES, ResponseCache
from proca_server.kit.time import utcnow
from proca_server.kit.windows import WindowCounter
from proca_server.models import Action, IdempotencyKey
from tests.factories import make_world
from tests.widget_helpers import ADD_ACTION_CONTACT, signature, widget_post

GENERATE_KEY = (
    'mutation($o: String!) { generateKey(orgName: $o, input: {name: "k"}) { id private } }'
)


async def _actions(session: AsyncSession) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.count()).select_from(Action)) or 0)


async def _post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    token: str | None = None,
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables or {}})
    return await client.post("/api", content=body, headers=headers)


# -- idempotency keys ------------------------------------------------------------------


async def test_a_key_never_replays_another_callers_private_key(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    owner = world.tokens["owner"]
    first = await _post(client, GENERATE_KEY, {"o": world.org.name}, key="k", token=owner)
    private = first.json()["data"]["generateKey"]["private"]
    assert private
    # an anonymous caller with the same key and an unrelated mutation runs its own request
    anonymous = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(world.page.id),
        headers={"Idempotency-Key": "k"},
    )
    assert private not in json.dumps(anonymous)
    assert anonymous["data"]["addActionContact"]["contactRef"]
    assert await _actions(session) == 1
    # the owner's own retry is not answered with the secret either: it is never kept
    again = await _post(client, GENERATE_KEY, {"o": world.org.name}, key="k", token=owner)
    assert private not in again.text
    assert again.json()["errors"][0]["extensions"]["code"] == "idempotency_secret_not_kept"
    rows = (await session.execute(select(IdempotencyKey.response))).scalars().all()
    assert all(private not in (r or "") for r in rows)


async def test_a_second_signer_reusing_a_key_is_refused_not_answered_the_first_answer(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    first = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(world.page.id, "ann@example.org"),
        headers={"Idempotency-Key": "shared"},
    )
    assert first["data"]["addActionContact"]["firstName"] == "Ann"
    other = signature(world.page.id, "bob@example.org")
    other["contact"]["firstName"] = "Bob"
    body = {"query": ADD_ACTION_CONTACT, "variables": other}
    response = await client.post(
        "/api",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "Idempotency-Key": "shared"},
    )
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "idempotency_key_reused"
    assert "Ann" not in response.text
    assert first["data"]["addActionContact"]["contactRef"] not in response.text
    assert await _actions(session) == 1
    # the same request again is still answered the first answer
    same = await widget_post(
        client,
        "addActionContact",
        ADD_ACTION_CONTACT,
        signature(world.page.id, "ann@example.org"),
        headers={"Idempotency-Key": "shared"},
    )
    assert same == first


async def test_one_users_key_is_a_new_key_for_another_user(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, roles=("owner", "campaigner"))
    query = "mutation { resetApiToken }"
    mine = await _post(client, query, key="t", token=world.tokens["owner"])
    theirs = await _post(client, query, key="t", token=world.tokens["campaigner"])
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["data"]["resetApiToken"] != theirs.json()["data"]["resetApiToken"]


async def test_keys_expire_after_a_day(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    world = await make_world(session, roles=())
    sign = signature(world.page.id)
    first = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, sign, headers={"Idempotency-Key": "old"}
    )
    assert "errors" not in first
    async with sessionmaker() as s, s.begin():
        await s.execute(update(IdempotencyKey).values(inserted_at=utcnow() - timedelta(hours=25)))
    # expired: the same key runs the request again, and can be taken again
    again = await widget_post(
        client, "addActionContact", ADD_ACTION_CONTACT, sign, headers={"Idempotency-Key": "old"}
    )
    assert "errors" not in again
    assert await _actions(session) == 2
    async with sessionmaker() as s, s.begin():
        await s.execute(update(IdempotencyKey).values(inserted_at=utcnow() - timedelta(hours=25)))
    assert await idempotency.purge_expired(sessionmaker) == 1
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_binding_covers_caller_document_operation_and_variables() -> None:
    base = idempotency.bind("k", None, "mutation { a }", None, {"x": 1})
    assert base == idempotency.bind("k", None, "mutation { a }", None, {"x": 1})
    assert base.key != idempotency.bind("k", 7, "mutation { a }", None, {"x": 1}).key
    assert base.key != idempotency.bind("k2", None, "mutation { a }", None, {"x": 1}).key
    for other in (
        idempotency.bind("k", None, "mutation { b }", None, {"x": 1}),
        idempotency.bind("k", None, "mutation { a }", "A", {"x": 1}),
        idempotency.bind("k", None, "mutation { a }", None, {"x": 2}),
    ):
        assert other.key == base.key and other.request_hash != base.request_hash


# -- request bodies ----------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_unread(client: httpx.AsyncClient) -> None:
    big = json.dumps({"query": "{ __typename }", "pad": "x" * (2 * 1024 * 1024)})
    response = await client.post("/api", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "payload_too_large"


async def test_a_chunked_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }", "pad": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/api", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"


async def test_a_body_under_the_limit_is_served(client: httpx.AsyncClient) -> None:
    body = json.dumps({"query": "{ __typename }", "pad": "x" * 500_000})
    response = await client.post("/api", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "RootQueryType"}}


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b'{"query": "{ __typename \xff\xfe }"}', 400),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, 400),
        ("application/json", b'{"query": "{ __typename }", "x": ' + b"[" * 100_000, 400),
        ("application/graphql", b"{ __typename \xff }", 400),
        ("application/x-www-form-urlencoded", b"query=%7B__typename%7D", 415),
        ("multipart/form-data; boundary=b", b"--b\r\n\r\n--b--", 415),
    ],
)
async def test_malformed_bodies_get_a_json_error(
    client: httpx.AsyncClient, content_type: str, body: bytes, status: int
) -> None:
    response = await client.post("/api", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["message"]


async def test_variables_nested_too_deep_are_refused(client: httpx.AsyncClient) -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    body = json.dumps({"query": "query($v: Json) { __typename }", "variables": {"v": deep}})
    response = await client.post("/api", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nested" in response.json()["errors"][0]["message"]
    as_get = await client.get("/api", params={"query": "{ __typename }", "variables": "[" * 20_000})
    assert as_get.status_code == 400


# -- the anonymous response cache ------------------------------------------------------------


POST_JSON = {
    "method": "POST",
    "path": "/api",
    "query_string": b"",
    "headers": [(b"content-type", b"application/json")],
}
GET = {"method": "GET", "path": "/api", "headers": []}


def test_the_response_cache_is_bounded_by_bytes_and_time() -> None:
    cache = ResponseCache(ttl=60, max_entries=1000, max_bytes=100_000)
    answer = "a" * 10_000
    for i in range(50):
        key = cache.key(POST_JSON, f"query {i}".encode())
        assert key is not None
        cache.put(key, time.monotonic(), answer)
    assert cache.bytes_held <= 100_000
    assert len(cache) < 50
    # a huge request is neither cached nor used as a key
    assert cache.key(POST_JSON, b"x" * (MAX_REQUEST_BYTES + 1)) is None


def test_expired_answers_leave_without_waiting_for_the_entry_bound() -> None:
    cache = ResponseCache(ttl=0.05, max_entries=2000)
    big = "b" * 100_000
    for i in range(20):
        key = cache.key({**GET, "query_string": f"q={i}".encode()}, b"")
        assert key is not None
        cache.put(key, time.monotonic(), big)
    assert cache.bytes_held >= 20 * 100_000
    time.sleep(0.06)
    key = cache.key({**GET, "query_string": b"q=x"}, b"")
    assert key is not None
    cache.put(key, time.monotonic(), "y")
    assert len(cache) == 1 and cache.bytes_held < 1000


async def test_huge_anonymous_queries_are_answered_but_not_kept(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    cache: ResponseCache = state_of(app).response_cache
    body = json.dumps({"query": "{ __typename }", "pad": "x" * 200_000})
    for _ in range(5):
        response = await client.post(
            "/api", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200
    assert cache.bytes_held < 10_000


# -- signature velocity ----------------------------------------------------------------------


@pytest.fixture
def velocity(app: FastAPI) -> Iterator[SignatureVelocity]:
    saved = state_of(app).velocity
    limits = SignatureVelocity(per_address=5, per_email=3, window=3600)
    state_of(app).velocity = state_of(app).signature_lane.velocity = limits
    yield limits
    state_of(app).velocity = state_of(app).signature_lane.velocity = saved


async def test_one_email_signing_again_and_again_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, velocity: SignatureVelocity
) -> None:
    world = await make_world(session, roles=())
    answers = [
        await widget_post(
            client,
            "addActionContact",
            ADD_ACTION_CONTACT,
            signature(world.page.id, "Same@Example.org" if i % 2 else "same@example.org"),
        )
        for i in range(4)
    ]
    assert all("errors" not in a for a in answers[:3])
    error = answers[3]["errors"][0]
    assert error["extensions"]["code"] == "too_many_requests"
    assert "example.org" not in error["message"]
    assert await _actions(session) == 3


async def test_one_address_flooding_is_refused_and_other_addresses_are_not(
    app: FastAPI, session: AsyncSession, velocity: SignatureVelocity
) -> None:
    world = await make_world(session, roles=())

    async def sign_from(address: str, n: int) -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=app, client=(address, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return [
                await widget_post(
                    c,
                    "addActionContact",
                    ADD_ACTION_CONTACT,
                    signature(world.page.id, f"p{address}-{i}@example.org"),
                )
                for i in range(n)
            ]

    flood = await sign_from("10.0.0.1", 7)
    assert ["errors" in a for a in flood] == [False] * 5 + [True] * 2
    assert flood[5]["errors"][0]["extensions"]["code"] == "too_many_requests"
    others = await sign_from("10.0.0.2", 2)
    assert all("errors" not in a for a in others)
    assert await _actions(session) == 7


def test_velocity_keeps_no_address_or_email_in_clear() -> None:
    limits = SignatureVelocity(per_address=5, per_email=5, window=60)
    limits.admit("192.0.2.7", "ann@example.org")
    stored = limits.counter.stored()
    assert len(stored) == 2
    for digest in stored:
        assert b"192.0.2.7" not in digest and b"ann@example.org" not in digest
        assert len(digest) == 16


def test_a_window_that_passed_starts_again() -> None:
    limits = SignatureVelocity(per_address=2, per_email=0, window=0.05)
    limits.admit("a", None)
    limits.admit("a", None)
    with pytest.raises(TooManySignatures):
        limits.admit("a", None)
    time.sleep(0.06)
    limits.admit("a", None)


@pytest.mark.parametrize("name", ["nope", "\U000bdc8c¬N"])
async def test_an_unknown_operation_name_is_a_request_error(
    client: httpx.AsyncClient, name: str
) -> None:
    body = json.dumps(
        {"query": "query a { __typename } query b { __typename }", "operationName": name}
    )
    response = await client.post("/api", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == f'Unknown operation named "{name}".'


async def test_an_answer_echoing_a_lone_surrogate_is_still_sent(
    client: httpx.AsyncClient,
) -> None:
    # graphql-core names an unknown input field as it was sent
    query = (
        "mutation($c: ContactInput!) { addActionContact(actionPageId: 1, "
        'action: {actionType: \\"x\\"}, contact: $c, privacy: {optIn: true}) { contactRef } }'
    )
    body = '{"query": "' + query + '", "variables": {"c": {"firstName": "a", "\\ud800": 1}}}'
    response = await client.post("/api", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert "\ud800" in response.json()["errors"][0]["message"]


def test_a_signature_given_back_does_not_count() -> None:
    # the lane gives a signature back when its statement was refused and the general path
    # (which counts it again) takes the request
    limits = SignatureVelocity(per_address=1, per_email=1, window=60)
    limits.admit("a", "ann@example.org")
    limits.give_back("a", "ann@example.org")
    limits.admit("a", "ann@example.org")
    with pytest.raises(TooManySignatures):
        limits.admit("a", "ann@example.org")


def test_past_the_tracked_senders_new_ones_pass_uncounted_and_known_ones_stay_counted() -> None:
    counter = WindowCounter(window=60, max_tracked=2)
    known = [counter.limit("email", f"{n}@example.org", 1) for n in range(2)]
    for limit in known:
        assert counter.take([limit]) is None
    stranger = counter.limit("email", "new@example.org", 1)
    assert counter.take([stranger]) is None
    assert counter.take([stranger]) is None  # not counted: the table is full
    assert len(counter) == 2
    refusal = counter.take([known[0]])
    assert refusal is not None and refusal.first
