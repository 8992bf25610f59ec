"""GraphQL document limits (graphql/limits.py): the documents that froze the server are refused
before they are validated or run, on every transport; what the real clients send still works."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql import get_introspection_query
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.errors import QueryTooComplex
from proca_server.graphql.limits import Limits, check_document
from proca_server.graphql.names import make_preparer
from proca_server.graphql.schema import build_schemas
from tests.factories import make_world
from tests.socket_helpers import CONTROL, phoenix, serve
from tests.widget_helpers import ADD_ACTION_CONTACT, COUNT, COUNT_BY_NAME, signature, widget_post

# graphql-core's schema, as an app builds it
SCHEMA = build_schemas().core
SCHEMA_WALK = "__schema { types { name fields { name args { name } } } }"
FULL_INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
    one_of=True,
)


def aliased(selection: str, times: int) -> str:
    return "{ " + " ".join(f"a{i}: {selection}" for i in range(times)) + " }"


def recorded_documents(repo_root: Path) -> list[str]:
    text = (repo_root / "docs" / "clients" / "recorded-operations.md").read_text()
    return re.findall(r"```graphql\n(.*?)```", text, re.S)


async def post(client: httpx.AsyncClient, query: str, **extra: Any) -> httpx.Response:
    return await client.post("/api", json={"query": query, **extra})


def refusal(response: httpx.Response, limit: str) -> str:
    """The refusal's message, after checking its shape: a validation error's (HTTP 200, no
    `data`), coded, naming the limit and not echoing the document."""
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "query_too_complex"}
    message: str = error["message"]
    assert f"limit of {limit}" in message
    assert "a1:" not in message and "__typename" not in message
    return message


async def test_a_hundred_aliased_schema_walks_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await post(client, aliased(SCHEMA_WALK, 100))
    assert "100 __schema and __type fields" in refusal(response, "2")


async def test_a_thousand_aliased_schema_walks_are_refused_at_parsing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await post(client, aliased(SCHEMA_WALK, 1000))
    assert "5000 tokens" in refusal(response, "5000 tokens")


async def test_tens_of_thousands_of_aliased_typenames_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # under the request body limit: the token limit is what refuses it
    response = await post(client, aliased("__typename", 50_000))
    refusal(response, "5000 tokens")
    response = await post(client, aliased("__typename", 101))
    assert "101 aliases" in refusal(response, "100")


async def test_the_attack_is_refused_over_get(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await client.get("/api", params={"query": aliased(SCHEMA_WALK, 100)})
    refusal(response, "2")


async def test_the_full_introspection_query_answers_once_per_document(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await post(client, FULL_INTROSPECTION, operationName="IntrospectionQuery")
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    types = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"RootQueryType", "RootMutationType", "ContactInput"} <= types
    # twice in one document is within the limit; three times is not
    response = await post(client, aliased(SCHEMA_WALK, 2))
    assert set(response.json()["data"]) == {"a0", "a1"}
    response = await post(client, '{ __type(name: "Campaign") { name } ' + SCHEMA_WALK + " }")
    assert response.json()["data"]["__type"] == {"name": "Campaign"}
    response = await post(client, aliased(SCHEMA_WALK, 3))
    assert "3 __schema and __type fields" in refusal(response, "2")


async def test_nested_schema_walks_are_refused_by_cost(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    inner = "name"
    for _ in range(4):
        inner = "fields { type { ofType { " + inner + " } } }"
    response = await post(client, "{ __schema { types { " + inner + " } } }")
    assert "cost" in refusal(response, "100000")


async def test_fragment_bombs_and_repeated_fields_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    bomb = " ".join(
        f"fragment F{i} on RootQueryType {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40)
    )
    response = await post(
        client, f"query {{ ...F0 }} {bomb} fragment F40 on RootQueryType {{ __typename }}"
    )
    refusal(response, "20")
    # fields of one name are compared pairwise by validation, their selections too
    page = "actionPage(id: 1) { campaign { " + " ".join(["org { name }"] * 10) + " } }"
    response = await post(client, "{ " + " ".join([page] * 10) + " }")
    assert "100 fields of one name" in refusal(response, "20")
    chain = " ".join(f"fragment C{i} on RootQueryType {{ ...C{i + 1} }}" for i in range(600))
    response = await post(
        client, f"query {{ ...C0 }} {chain} fragment C600 on RootQueryType {{ __typename }}"
    )
    refusal(response, "20 deep")


async def test_the_widget_and_the_cli_documents_still_answer(
    client: httpx.AsyncClient, session: AsyncSession, repo_root: Path
) -> None:
    world = await make_world(session)
    page, page_name = world.page.id, world.page.name
    org_name, token = world.org.name, world.tokens["owner"]
    signed = await widget_post(client, "addActionContact", ADD_ACTION_CONTACT, signature(page))
    assert signed["data"]["addActionContact"]["firstName"] == "Ann"
    response = await client.get(
        "/api", params={"query": COUNT, "variables": json.dumps({"actionPage": page})}
    )
    assert response.json()["data"]["actionPage"]["campaign"]["stats"]["supporterCount"] == 1
    by_name = await widget_post(client, "getCountByName", COUNT_BY_NAME, {"name": page_name})
    assert by_name["data"]["actionPage"]["id"] == page
    get_org = next(d for d in recorded_documents(repo_root) if "query GetOrg(" in d)
    response = await client.post(
        "/api",
        json={"query": get_org, "variables": {"name": org_name}},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert "errors" not in body, body
    assert body["data"]["org"]["name"] == org_name


def test_every_recorded_client_document_is_within_the_limits(repo_root: Path) -> None:
    documents = recorded_documents(repo_root)
    assert len(documents) > 40
    documents += [ADD_ACTION_CONTACT, COUNT, COUNT_BY_NAME, FULL_INTROSPECTION]
    documents.append(get_introspection_query(type_depth=12))
    for document in documents:
        check_document(SCHEMA, document, Limits())


def test_lower_limits_from_the_settings_refuse_what_the_defaults_take() -> None:
    settings = Settings(GRAPHQL_MAX_ALIASES="1", GRAPHQL_MAX_DEPTH="", GRAPHQL_MAX_TOKENS="50")
    limits = Limits.of(settings)
    assert limits == Limits(max_aliases=1, max_tokens=50)
    check_document(SCHEMA, aliased("__typename", 2), Limits())
    with pytest.raises(QueryTooComplex, match="2 aliases, over the limit of 1"):
        check_document(SCHEMA, aliased("__typename", 2), limits)
    with pytest.raises(QueryTooComplex, match="limit of 50 tokens"):
        check_document(SCHEMA, "{ " + "__typename " * 60 + "}", limits)


def test_the_name_normaliser_does_not_parse_past_the_limits() -> None:
    prepare = make_preparer(SCHEMA)
    assert prepare('{ action_page(name: "x") { id } }') is not None
    assert prepare(aliased("__typename", 50_000)) is None
    assert prepare(aliased(SCHEMA_WALK, 100)) is None


async def test_the_websocket_refuses_the_attack(app: FastAPI, session: AsyncSession) -> None:
    async with serve(app) as url, phoenix(url) as ph:
        await ph.join()
        reply = await ph.call(CONTROL, "doc", {"query": aliased(SCHEMA_WALK, 100)})
        assert reply["status"] == "error"
        [error] = reply["response"]["errors"]
        assert error["extensions"] == {"code": "query_too_complex"}
        reply = await ph.call(CONTROL, "doc", {"query": "{ __schema { queryType { name } } }"})
        assert reply == {
            "status": "ok",
            "response": {"data": {"__schema": {"queryType": {"name": "RootQueryType"}}}},
        }
