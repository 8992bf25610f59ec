"""The Phoenix channel websocket (`actionPageUpserted`, as the Proca clients subscribe), served
by a real uvicorn server in the test's event loop and driven by the `websockets` client library.
On PostgreSQL, the publishes go through NOTIFY and the listener, as in production."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from proca_server.app import create_app
from proca_server.config import Settings
from proca_server.graphql import socket as phoenix_socket
from proca_server.pubsub import PubSub, pubsub
from tests.factories import World, make_campaign, make_page, make_world
from tests.socket_helpers import CONTROL, Phoenix, phoenix, serve, until

UPSERTED = """
subscription Watch($org: String) {
  actionPageUpserted(orgName: $org) {
    __typename id name locale config campaign { name } org { name }
  }
}
"""
UPDATE = """
mutation Update($id: Int!, $input: ActionPageInput!) {
  updateActionPage(id: $id, input: $input) { id locale }
}
"""


@pytest.fixture
async def live_pubsub(engine: AsyncEngine) -> AsyncIterator[PubSub]:
    """The app's lifespan does this: NOTIFY on PostgreSQL, in-process on SQLite."""
    await pubsub.connect(engine)
    yield pubsub
    await pubsub.close()


@pytest.fixture
async def socket_url(
    app: FastAPI, session: AsyncSession, live_pubsub: PubSub
) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


async def update_page(
    client: httpx.AsyncClient, world: World, page_id: int, **input: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api",
        json={"query": UPDATE, "variables": {"id": page_id, "input": input}},
        headers={"Authorization": f"Bearer {world.tokens['owner']}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["updateActionPage"]  # type: ignore[no-any-return]


async def test_v1_subscribe_receive_and_unsubscribe(
    socket_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    async with phoenix(socket_url) as ph:
        ref = await ph.send(CONTROL, "phx_join", {})
        await ph.reply(ref)
        assert ph.raw[-1] == {
            "topic": CONTROL,
            "event": "phx_reply",
            "payload": {"status": "ok", "response": {}},
            "ref": ref,
        }
        sub_id = await ph.subscribe(UPSERTED, {"org": world.org.name})

        await update_page(client, world, world.page.id, locale="de")

        frame = await ph.push()
        assert frame == {
            "topic": sub_id,
            "event": "subscription:data",
            "payload": {
                "subscriptionId": sub_id,
                "result": {
                    "data": {
                        "actionPageUpserted": {
                            "__typename": "PublicActionPage",
                            "id": world.page.id,
                            "name": world.page.name,
                            "locale": "de",
                            "config": "{}",
                            "campaign": {"name": world.campaign.name},
                            "org": {"name": world.org.name},
                        }
                    }
                },
            },
            "ref": None,
        }

        reply = await ph.call(CONTROL, "unsubscribe", {"subscriptionId": sub_id})
        assert reply == {"status": "ok", "response": {"subscriptionId": sub_id}}
        assert pubsub.subscriber_count(f"org:{world.org.name.lower()}") == 0
        await update_page(client, world, world.page.id, locale="fr")
        await ph.no_push()

        assert await ph.call(CONTROL, "phx_leave", {}) == {"status": "ok", "response": {}}


async def test_v2_instance_wide_subscriber_sees_every_org(
    socket_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    one = await make_world(session)
    two = await make_world(session)
    async with phoenix(socket_url, v2=True) as ph:
        join_ref = await ph.send(CONTROL, "phx_join", {})
        assert await ph.reply(join_ref) == {"status": "ok", "response": {}}
        assert ph.raw[-1] == [
            join_ref,
            join_ref,
            CONTROL,
            "phx_reply",
            {"status": "ok", "response": {}},
        ]
        doc_ref = await ph.send(CONTROL, "doc", {"query": UPSERTED, "variables": {}})
        reply = await ph.reply(doc_ref)
        sub_id = reply["response"]["subscriptionId"]
        assert ph.raw[-1][:4] == [join_ref, doc_ref, CONTROL, "phx_reply"]

        await update_page(client, one, one.page.id, locale="de")
        await update_page(client, two, two.page.id, locale="pl")

        first, second = await ph.push(), await ph.push()
        assert ph.raw[-1][:4] == [None, None, sub_id, "subscription:data"]
        pages = [f["payload"]["result"]["data"]["actionPageUpserted"] for f in (first, second)]
        assert [(p["id"], p["locale"], p["org"]["name"]) for p in pages] == [
            (one.page.id, "de", one.org.name),
            (two.page.id, "pl", two.org.name),
        ]
        assert first["payload"]["subscriptionId"] == sub_id

        heartbeat = await ph.send("phoenix", "heartbeat", {})
        assert await ph.reply(heartbeat) == {"status": "ok", "response": {}}
        assert ph.raw[-1] == [None, heartbeat, "phoenix", "phx_reply", ph.raw[-1][4]]

        reply = await ph.call(CONTROL, "unsubscribe", {"subscriptionId": sub_id})
        assert reply == {"status": "ok", "response": {"subscriptionId": sub_id}}
        await update_page(client, one, one.page.id, locale="en")
        await ph.no_push()


async def test_org_subscriber_gets_only_its_orgs_pages(
    socket_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    mine = await make_world(session)
    other = await make_world(session)
    async with phoenix(socket_url) as ph:
        await ph.join()
        # the org name is matched case-insensitively, as the original's citext
        await ph.subscribe(UPSERTED, {"org": mine.org.name.upper()})
        await update_page(client, other, other.page.id, locale="pl")
        await update_page(client, mine, mine.page.id, locale="de")
        frame = await ph.push()
        assert frame["payload"]["result"]["data"]["actionPageUpserted"]["id"] == mine.page.id
        await ph.no_push()


async def test_a_page_added_by_mutation_is_published(
    socket_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    async with phoenix(socket_url, v2=True) as ph:
        await ph.join()
        await ph.subscribe("subscription { actionPageUpserted { id name } }")
        response = await client.post(
            "/api",
            json={
                "query": "mutation($org: String!, $campaign: String!) {"
                " addActionPage(orgName: $org, campaignName: $campaign,"
                ' input: {name: "example.org/new-page", locale: "en"}) { id } }',
                "variables": {"org": world.org.name, "campaign": world.campaign.name},
            },
            headers={"Authorization": f"Bearer {world.tokens['owner']}"},
        )
        added = response.json()["data"]["addActionPage"]
        frame = await ph.push()
        assert frame["payload"]["result"]["data"]["actionPageUpserted"] == {
            "id": added["id"],
            "name": "example.org/new-page",
        }


async def test_unknown_org_is_not_found(socket_url: str, session: AsyncSession) -> None:
    for v2 in (False, True):
        async with phoenix(socket_url, v2=v2) as ph:
            await ph.join()
            reply = await ph.call(
                CONTROL, "doc", {"query": UPSERTED, "variables": {"org": "no-such-org"}}
            )
            assert reply["status"] == "error"
            [error] = reply["response"]["errors"]
            assert error["message"] == "Entity not found"
            assert error["extensions"]["code"] == "not_found"
            assert error["path"] == ["actionPageUpserted"]
            assert "data" not in reply["response"]
    assert pubsub.subscriber_count("$instance") == 0


async def test_invalid_documents_are_errors(socket_url: str, session: AsyncSession) -> None:
    async with phoenix(socket_url) as ph:
        await ph.join()
        for query in (
            "subscription { actionPageUpserted { nope } }",
            "subscription {",
            "subscription { nothingLikeThis }",
        ):
            reply = await ph.call(CONTROL, "doc", {"query": query, "variables": {}})
            assert reply["status"] == "error", query
            assert reply["response"]["errors"][0]["message"], query
        reply = await ph.call(CONTROL, "doc", {"variables": {}})
        assert reply == {
            "status": "error",
            "response": {"errors": [{"message": "No query document supplied"}]},
        }
        reply = await ph.call(CONTROL, "doc", {"query": UPSERTED, "variables": [1]})
        assert reply == {
            "status": "error",
            "response": {"error": "Could not parse variables as map"},
        }
        # the socket is still usable
        heartbeat = await ph.call("phoenix", "heartbeat", {})
        assert heartbeat == {"status": "ok", "response": {}}


async def test_snake_case_names_are_accepted(
    socket_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    async with phoenix(socket_url) as ph:
        await ph.join()
        await ph.subscribe(
            "subscription($org: String) {"
            " action_page_upserted(org_name: $org) { id thank_you_template } }",
            {"org": world.org.name},
        )
        await update_page(client, world, world.page.id, locale="it")
        frame = await ph.push()
        assert frame["payload"]["result"]["data"] == {
            "action_page_upserted": {"id": world.page.id, "thank_you_template": None}
        }


async def test_a_query_over_the_socket_is_answered_with_its_result(
    socket_url: str, session: AsyncSession
) -> None:
    world = await make_world(session)
    async with phoenix(socket_url) as ph:
        await ph.join()
        reply = await ph.call(
            CONTROL,
            "doc",
            {
                "query": "query Page($id: Int!) { actionPage(id: $id) { __typename name } }",
                "variables": {"id": world.page.id},
            },
        )
        assert reply == {
            "status": "ok",
            "response": {
                "data": {"actionPage": {"__typename": "PublicActionPage", "name": world.page.name}}
            },
        }
        reply = await ph.call(
            CONTROL, "doc", {"query": "{ actionPage(id: -1) { name } }", "variables": None}
        )
        assert reply["status"] == "ok"
        assert reply["response"]["data"] is None
        assert reply["response"]["errors"][0]["extensions"]["code"] == "not_found"


async def test_v2_frames_carry_the_join_ref_where_phoenix_puts_it(
    socket_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Replies on the channel carry the channel's join_ref (the one its join gave), whatever
    the frame says; the heartbeat's and unmatched topics' replies and the pushes carry none;
    a leave is answered, then closed with `phx_close`."""
    world = await make_world(session)
    keys = ("join_ref", "ref", "topic", "event", "payload")
    ok: dict[str, Any] = {"status": "ok", "response": {}}
    unmatched = {"status": "error", "response": {"reason": "unmatched topic"}}
    async with phoenix(socket_url, v2=True) as ph:

        async def answer(*frame: Any) -> list[Any]:
            await ph.ws.send(json.dumps(list(frame)))
            got = await ph._wait(lambda f: f["event"] == "phx_reply" and f["ref"] == frame[1], 5)
            return [got[k] for k in keys]

        doc = {"query": UPSERTED, "variables": {"org": world.org.name}}
        assert await answer("7", "1", "phoenix", "heartbeat", {}) == [
            None, "1", "phoenix", "phx_reply", ok,
        ]  # fmt: skip
        assert await answer("7", "2", CONTROL, "doc", doc) == [
            None, "2", CONTROL, "phx_reply", unmatched,
        ]  # fmt: skip
        assert await answer("3", "3", CONTROL, "phx_join", {}) == [
            "3", "3", CONTROL, "phx_reply", ok,
        ]  # fmt: skip
        # a frame on the channel without (or with another) join_ref: the channel's
        subscribed = await answer(None, "4", CONTROL, "doc", doc)
        sub_id = subscribed[4]["response"]["subscriptionId"]
        with_id = {"status": "ok", "response": {"subscriptionId": sub_id}}
        assert subscribed == ["3", "4", CONTROL, "phx_reply", with_id]
        await update_page(client, world, world.page.id, locale="de")
        pushed = await ph.push()
        assert [pushed[k] for k in keys[:4]] == [None, None, sub_id, "subscription:data"]
        assert pushed["payload"]["subscriptionId"] == sub_id
        unsubscribed = await answer("1", "5", CONTROL, "unsubscribe", {"subscriptionId": sub_id})
        assert unsubscribed == ["3", "5", CONTROL, "phx_reply", with_id]
        assert await answer("3", "6", CONTROL, "phx_leave", {}) == [
            "3", "6", CONTROL, "phx_reply", ok,
        ]  # fmt: skip
        closed = await ph._wait(lambda f: f["event"] == "phx_close", 5)
        assert [closed[k] for k in keys] == ["3", "3", CONTROL, "phx_close", {}]
        assert await answer("3", "8", CONTROL, "doc", doc) == [
            None, "8", CONTROL, "phx_reply", unmatched,
        ]  # fmt: skip


async def test_v1_leave_is_answered_then_closed(socket_url: str, session: AsyncSession) -> None:
    async with phoenix(socket_url) as ph:
        await ph.join()
        leave = await ph.send(CONTROL, "phx_leave", {})
        assert await ph.reply(leave) == {"status": "ok", "response": {}}
        closed = await ph._wait(lambda f: f["event"] == "phx_close", 5)
        assert closed == {"topic": CONTROL, "event": "phx_close", "payload": {}, "ref": None}
        heartbeat = await ph.send("phoenix", "heartbeat", {})
        await ph.reply(heartbeat)
        assert ph.raw[-1] == {
            "topic": "phoenix",
            "event": "phx_reply",
            "payload": {"status": "ok", "response": {}},
            "ref": heartbeat,
        }


async def test_messages_before_join_are_unmatched(socket_url: str, session: AsyncSession) -> None:
    async with phoenix(socket_url) as ph:
        reply = await ph.call(CONTROL, "doc", {"query": UPSERTED, "variables": {}})
        assert reply == {"status": "error", "response": {"reason": "unmatched topic"}}
        reply = await ph.call("room:lobby", "phx_join", {})
        assert reply == {"status": "error", "response": {"reason": "unmatched topic"}}
        assert pubsub.subscriber_count("$instance") == 0


async def test_leaving_and_closing_end_the_subscriptions(
    socket_url: str, session: AsyncSession
) -> None:
    async with phoenix(socket_url, v2=True) as ph:
        await ph.join()
        await ph.subscribe(UPSERTED)
        await ph.subscribe(UPSERTED)
        assert pubsub.subscriber_count("$instance") == 2
        assert await ph.call(CONTROL, "phx_leave", {}) == {"status": "ok", "response": {}}
        assert pubsub.subscriber_count("$instance") == 0
        reply = await ph.call(CONTROL, "doc", {"query": UPSERTED, "variables": {}})
        assert reply["response"] == {"reason": "unmatched topic"}

    async with phoenix(socket_url) as ph:
        await ph.join()
        await ph.subscribe(UPSERTED)
        assert pubsub.subscriber_count("$instance") == 1
    await until(lambda: pubsub.subscriber_count("$instance") == 0)


async def test_a_malformed_frame_closes_the_socket(socket_url: str, session: AsyncSession) -> None:
    async with phoenix(socket_url, v2=True) as ph:
        await ph.ws.send(json.dumps({"topic": CONTROL, "event": "phx_join"}))  # V1 on V2
        with pytest.raises(ConnectionClosed) as closed:
            await ph.ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003


async def test_an_unknown_serializer_version_is_refused(
    socket_url: str, session: AsyncSession
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{socket_url}?vsn=3.0.0"):
            pass
    assert refused.value.response.status_code == 403


async def test_an_empty_subprotocol_header_is_accepted(
    socket_url: str, session: AsyncSession
) -> None:
    # what the Python proca CLI (gql 3.0 on websockets 10) sends
    async with connect(socket_url, additional_headers={"Sec-WebSocket-Protocol": ""}) as ws:
        ph = Phoenix(ws, v2=False)
        await ph.join()


async def test_a_silent_socket_is_closed(
    socket_url: str, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phoenix_socket, "IDLE_TIMEOUT", 0.2)
    async with phoenix(socket_url) as ph:
        await ph.join()
        await ph.subscribe(UPSERTED)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ph.ws.recv(), 5)
    await until(lambda: pubsub.subscriber_count("$instance") == 0)


async def test_the_app_lifespan_connects_the_pubsub(settings: Settings, backend: str) -> None:
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        assert pubsub.cross_process is (backend == "postgresql")
    assert pubsub.cross_process is False


# Two server processes on one PostgreSQL database: the test process (the `app` fixture) and a
# uvicorn subprocess configured from the environment, as `proca-server serve` starts workers.


@pytest.fixture
async def other_process(
    settings: Settings, backend: str, tmp_path: Path, session: AsyncSession
) -> AsyncIterator[str]:
    if backend != "postgresql":
        pytest.skip("cross-process delivery uses PostgreSQL NOTIFY")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "PROCA_ENV": "test",
        "PROCA_DATA_DIR": str(tmp_path),
    }
    log = (tmp_path / "server.log").open("wb")
    run = (
        "import uvicorn; uvicorn.run('proca_server.app:create_app', factory=True,"
        f" host='127.0.0.1', port={port}, log_level='warning',"
        " ws='proca_server.graphql.socket:PhoenixWebSocketProtocol')"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", run, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http, asyncio.timeout(30):
            while True:
                assert process.returncode is None, (tmp_path / "server.log").read_text()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log.close()


@pytest.mark.slow  # a second server process
async def test_pages_reach_subscribers_of_another_process(
    other_process: str, socket_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    other_socket = other_process.replace("http", "ws") + "/socket/websocket"
    async with phoenix(other_socket, v2=True) as there, phoenix(socket_url) as here:
        await there.join()
        await there.subscribe(UPSERTED, {"org": world.org.name})
        await here.join()
        await here.subscribe(UPSERTED)

        # updated in this process, seen in the other one (and here)
        await update_page(client, world, world.page.id, locale="de")
        frame = await there.push()
        assert frame["payload"]["result"]["data"]["actionPageUpserted"]["locale"] == "de"
        assert (await here.push())["payload"]["result"]["data"]["actionPageUpserted"]["id"] == (
            world.page.id
        )

        # updated in the other process, seen here
        campaign = await make_campaign(session, world.org)
        page = await make_page(session, campaign, world.org)
        await session.commit()
        async with httpx.AsyncClient(base_url=other_process) as http:
            response = await http.post(
                "/api",
                json={"query": UPDATE, "variables": {"id": page.id, "input": {"locale": "nl"}}},
                headers={"Authorization": f"Bearer {world.tokens['owner']}"},
            )
        assert "errors" not in response.json(), response.json()
        frame = await here.push()
        assert frame["payload"]["result"]["data"]["actionPageUpserted"]["id"] == page.id
        frame = await there.push()
        assert frame["payload"]["result"]["data"]["actionPageUpserted"]["locale"] == "nl"
