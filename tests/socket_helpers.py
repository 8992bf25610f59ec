"""The Phoenix channel websocket served by a real uvicorn server in the test's event loop, and a
minimal Phoenix client that keeps every frame it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from proca_server.graphql.socket import PhoenixWebSocketProtocol
from tests.local_http import QuickServer

CONTROL = "__absinthe__:control"


QUIET = 0.3  # how long "nothing arrives" is watched for


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", ws=PhoenixWebSocketProtocol)
    server = QuickServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started)
        yield f"ws://127.0.0.1:{port}/socket/websocket"
    finally:
        server.should_exit = True
        await task
        sock.close()


class Phoenix:
    """A minimal Phoenix channel client that keeps every frame it receives."""

    def __init__(self, ws: ClientConnection, v2: bool) -> None:
        self.ws = ws
        self.v2 = v2
        self.last_ref = 0
        self.join_ref: str | None = None
        self.inbox: list[dict[str, Any]] = []
        self.raw: list[Any] = []

    async def send(self, topic: str, event: str, payload: Any) -> Any:
        self.last_ref += 1
        if self.v2:
            ref: Any = str(self.last_ref)
            join_ref = ref if event == "phx_join" else self.join_ref
            if topic == "phoenix":
                join_ref = None
            if event == "phx_join":
                self.join_ref = ref
            await self.ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        else:
            ref = self.last_ref
            await self.ws.send(
                json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref})
            )
        return ref

    async def _receive(self, within: float = 5) -> dict[str, Any]:
        raw = json.loads(await asyncio.wait_for(self.ws.recv(), within))
        self.raw.append(raw)
        if self.v2:
            keys = ("join_ref", "ref", "topic", "event", "payload")
            return dict(zip(keys, raw, strict=True))
        assert set(raw) == {"topic", "event", "payload", "ref"}
        return dict(raw)

    async def _wait(self, match: Any, within: float) -> dict[str, Any]:
        for frame in self.inbox:
            if match(frame):
                self.inbox.remove(frame)
                return frame
        async with asyncio.timeout(within):
            while True:
                frame = await self._receive()
                if match(frame):
                    return frame
                self.inbox.append(frame)

    async def reply(self, ref: Any, within: float = 5) -> dict[str, Any]:
        frame = await self._wait(lambda f: f["event"] == "phx_reply" and f["ref"] == ref, within)
        return frame["payload"]  # type: ignore[no-any-return]

    async def call(self, topic: str, event: str, payload: Any) -> dict[str, Any]:
        return await self.reply(await self.send(topic, event, payload))

    async def push(self, within: float = 5) -> dict[str, Any]:
        return await self._wait(lambda f: f["event"] == "subscription:data", within)

    async def no_push(self) -> None:
        with pytest.raises(TimeoutError):
            await self.push(within=QUIET)

    async def join(self) -> None:
        assert await self.call(CONTROL, "phx_join", {}) == {"status": "ok", "response": {}}

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        reply = await self.call(CONTROL, "doc", {"query": query, "variables": variables or {}})
        assert reply["status"] == "ok", reply
        subscription_id = reply["response"]["subscriptionId"]
        assert isinstance(subscription_id, str)
        assert subscription_id.startswith("__absinthe__:doc:")
        return subscription_id


@contextlib.asynccontextmanager
async def phoenix(url: str, *, v2: bool = False) -> AsyncIterator[Phoenix]:
    async with connect(f"{url}?vsn=2.0.0" if v2 else url) as ws:
        yield Phoenix(ws, v2)
