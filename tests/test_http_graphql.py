"""The /api transport as the Proca clients use it (docs/clients/recorded-operations.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.models import UserToken
from proca_server.web.explorer import ExplorerFiles
from tests.explorer_helpers import lay_out
from tests.factories import PASSWORD, make_user, make_world

CURRENT_USER = "{ currentUser { email isAdmin apiToken { expiresAt } } }"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_current_user_over_post_with_api_token(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session, admin=True)
    response = await client.post(
        "/api", json={"query": CURRENT_USER}, headers=bearer(world.tokens["admin"])
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    user = response.json()["data"]["currentUser"]
    assert user["email"] == world.users["admin"].email
    assert user["isAdmin"] is True
    assert user["apiToken"]["expiresAt"].count(":") == 2  # naive ISO 8601, no zone


async def test_current_user_over_get(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    response = await client.get(
        "/api",
        params={"query": "{ currentUser { email isAdmin } }", "variables": "{}"},
        headers=bearer(world.tokens["owner"]),
    )
    assert response.status_code == 200
    assert response.json() == {
        "data": {"currentUser": {"email": world.users["owner"].email, "isAdmin": False}}
    }


async def test_bad_token_is_401_with_the_clients_error_shape(client: httpx.AsyncClient) -> None:
    for token in ("API-nonsense", "API-" + "A" * 43, "garbage"):
        response = await client.post("/api", json={"query": CURRENT_USER}, headers=bearer(token))
        assert response.status_code == 401
        assert response.json() == {
            "data": None,
            "errors": [{"message": "Cannot verify token", "extensions": {"code": "unauthorized"}}],
        }


async def test_anonymous_current_user_is_an_unauthorized_graphql_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api", json={"query": "{ currentUser { email } }"})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["currentUser"]
    assert body["errors"][0]["extensions"] == {"code": "unauthorized"}
    assert body["errors"][0]["message"] == "Authentication is required for this API call"


async def test_basic_auth(client: httpx.AsyncClient, session: AsyncSession) -> None:
    user = await make_user(session)
    await session.commit()
    good = base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()
    response = await client.post(
        "/api", json={"query": CURRENT_USER}, headers={"Authorization": f"Basic {good}"}
    )
    assert response.json()["data"]["currentUser"]["email"] == user.email

    wrong = base64.b64encode(f"{user.email}:wrong".encode()).decode()
    response = await client.post(
        "/api", json={"query": CURRENT_USER}, headers={"Authorization": f"Basic {wrong}"}
    )
    assert response.status_code == 401
    assert response.json()["errors"][0] == {
        "message": "Can not authenticate with these Basic HTTP credentials",
        "extensions": {"code": "unauthorized"},
    }

    response = await client.post(
        "/api", json={"query": CURRENT_USER}, headers={"Authorization": "Basic %%%"}
    )
    assert response.status_code == 400
    assert response.json()["data"] is None


async def test_mutation_over_get_is_405(client: httpx.AsyncClient, session: AsyncSession) -> None:
    world = await make_world(session)
    response = await client.get(
        "/api",
        params={"query": "mutation { resetApiToken }"},
        headers=bearer(world.tokens["owner"]),
    )
    assert response.status_code == 405
    # and nothing was done: the token still works
    ok = await client.post(
        "/api", json={"query": CURRENT_USER}, headers=bearer(world.tokens["owner"])
    )
    assert ok.status_code == 200


async def test_no_query_is_400(client: httpx.AsyncClient) -> None:
    for response in (
        await client.post("/api", json={}),
        await client.post("/api", json={"variables": {}}),
        await client.get("/api"),
        await client.post("/api", content=b"", headers={"content-type": "application/json"}),
    ):
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert response.json()["errors"][0]["message"] == "No query document supplied"


async def test_variables_forms_and_empty_operation_name(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    query = "query me($x: Boolean = true) { currentUser @include(if: $x) { email } }"
    for extra in (
        {"variables": {"x": True}},
        {"variables": json.dumps({"x": True})},
        {"variables": None},
        {},
        {"variables": "", "operationName": ""},
        {"operationName": "me"},
    ):
        response = await client.post(
            "/api", json={"query": query, **extra}, headers=bearer(world.tokens["owner"])
        )
        assert response.status_code == 200, extra
        assert response.json()["data"]["currentUser"]["email"] == world.users["owner"].email

    bad = await client.post("/api", json={"query": query, "variables": "{nope"})
    assert bad.status_code == 400
    listed = await client.post("/api", json={"query": query, "variables": "[1]"})
    assert listed.status_code == 400


async def test_errors_are_200_json_whatever_accept_says(client: httpx.AsyncClient) -> None:
    accept = (
        "application/graphql-response+json, application/graphql+json, application/json, "
        "text/event-stream, multipart/mixed"
    )
    response = await client.post(
        "/api", json={"query": "{ noSuchField }"}, headers={"Accept": accept}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "Cannot query field" in response.json()["errors"][0]["message"]
    syntax = await client.post("/api", json={"query": "{ currentUser {"})
    assert syntax.status_code == 200
    assert syntax.json()["errors"][0]["message"].startswith("Syntax Error")


async def test_widget_query_parameter_on_post_is_harmless(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    response = await client.post(
        "/api?id=5",
        json={"query": "{ currentUser { email } }", "operationName": "", "variables": {}},
        headers=bearer(world.tokens["owner"]),
    )
    assert response.status_code == 200
    assert response.json()["data"]["currentUser"]["email"] == world.users["owner"].email


async def test_reset_api_token_replaces_older_tokens(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    old = world.tokens["owner"]
    response = await client.post(
        "/api", json={"query": "mutation { resetApiToken }"}, headers=bearer(old)
    )
    new = response.json()["data"]["resetApiToken"]
    assert new.startswith("API-") and new != old
    assert (
        await client.post("/api", json={"query": CURRENT_USER}, headers=bearer(old))
    ).status_code == 401
    assert (
        await client.post("/api", json={"query": CURRENT_USER}, headers=bearer(new))
    ).status_code == 200
    count = await session.scalar(
        select(func.count())
        .select_from(UserToken)
        .where(UserToken.user_id == world.users["owner"].id)
    )
    assert count == 1


async def test_graphiql_for_browsers(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_of(app), "explorer_files", ExplorerFiles(lay_out(tmp_path)))
    response = await client.get("/api", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert '<script src="/graphiql/assets/graphiql.min.js?v=' in response.text


async def test_cors_preflight_and_bare_options(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api?id=3",
        headers={
            "Origin": "https://campaign.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert 200 <= response.status_code < 300
    assert response.headers["access-control-allow-origin"] == "*"
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert "POST" in response.headers["access-control-allow-methods"]

    bare = await client.options("/api")
    assert 200 <= bare.status_code < 300

    simple = await client.post(
        "/api", json={"query": "{ __typename }"}, headers={"Origin": "https://x.example.org"}
    )
    assert simple.headers["access-control-allow-origin"] == "*"
    assert simple.json() == {"data": {"__typename": "RootQueryType"}}


async def test_health_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_health_503_when_the_database_is_unreachable(tmp_path: object) -> None:
    from proca_server.app import create_app
    from proca_server.config import Settings

    app = create_app(
        Settings(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", PROCA_ENV="test")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/health")
    await state_of(app).engine.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "error", "message": "database unreachable"}


async def test_a_subscription_over_http_is_refused_pointing_to_the_socket(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api", json={"query": 'subscription { actionPageUpserted(orgName: "x") { name } }'}
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert "/socket/websocket" in error["message"]
