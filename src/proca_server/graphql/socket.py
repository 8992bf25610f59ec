"""The Phoenix channel websocket at `/socket/websocket`, speaking Absinthe's subscription
protocol as the Proca clients that subscribe (such as the PyPI `proca` CLI's `page:watch`)
expect it.

- Serializers: V1 frames are objects `{topic, event, payload, ref}` (the default, used by
  Python gql, which sends integer refs); V2 frames are arrays
  `[join_ref, ref, topic, event, payload]` (phoenix.js with `?vsn=2.0.0`). Refs are echoed as
  received. The frames' join_ref follows Phoenix: the reply to `phx_join` echoes the join's
  join_ref, which becomes the channel's; every later reply on the channel carries the
  channel's join_ref (whatever the frame said), and after the reply to `phx_leave` a
  `phx_close` frame `[join_ref, join_ref, topic, "phx_close", {}]` follows. Replies outside a
  channel (the heartbeat, an unmatched topic) and the `subscription:data` pushes (broadcasts
  in Absinthe) carry none; pushes carry no ref either.
- `phoenix` topic: `heartbeat` is answered `ok`.
- `__absinthe__:control` topic: `phx_join`, then `doc` with `{query, variables,
  operationName}`. A subscription is answered `{subscriptionId}` once it listens, and its
  results are pushed as `subscription:data` on the topic named by the id, with payload
  `{subscriptionId, result}`; a query or mutation is answered with its result. A result
  without `data` is answered with status `error`, as Absinthe does. `unsubscribe` with
  `{subscriptionId}` stops one subscription; `phx_leave` and closing the socket stop all.
- The socket is unauthenticated, as in the original. A socket that sends nothing (not even
  a heartbeat) for a minute is closed, as Phoenix does."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from fastapi import APIRouter, FastAPI, WebSocket
from graphql import OperationType
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.types import ExecutionResult
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from proca_server.app_state import AppState, state_of
from proca_server.graphql.context import Context
from proca_server.graphql.errors import format_error
from proca_server.graphql.execute import run_document
from proca_server.graphql.names import convert_variables
from proca_server.graphql.subscriptions import SubscriptionContext
from proca_server.kit import jsontext
from proca_server.processing.handoff import pipeline_of
from proca_server.pubsub import pubsub

log = logging.getLogger("proca_server.socket")

CONTROL_TOPIC = "__absinthe__:control"
PHOENIX_TOPIC = "phoenix"
IDLE_TIMEOUT = 60.0
MAX_SUBSCRIPTIONS = 100
# Close codes: 1003 unsupported data, 1008 policy violation.
CLOSE_BAD_FRAME = 1003
CLOSE_POLICY = 1008


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Cross-process delivery for as long as the app runs (PostgreSQL only)."""
    await pubsub.connect(state_of(app).engine)
    try:
        yield
    finally:
        await pubsub.close()


router = APIRouter(lifespan=lifespan)


class Frame(NamedTuple):
    join_ref: Any
    ref: Any
    topic: str
    event: str
    payload: Any


class BadFrame(ValueError):
    pass


class Serializer(Protocol):
    def decode(self, text: str) -> Frame: ...

    def encode(self, frame: Frame) -> str: ...


def _dumps(value: Any) -> str:
    return jsontext.dumps(value)


def _frame(join_ref: Any, ref: Any, topic: Any, event: Any, payload: Any) -> Frame:
    if not isinstance(topic, str) or not isinstance(event, str):
        raise BadFrame("topic and event must be strings")
    return Frame(join_ref, ref, topic, event, payload)


class V1Serializer:
    def decode(self, text: str) -> Frame:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise BadFrame("a V1 frame is a JSON object")
        return _frame(
            data.get("join_ref"),
            data.get("ref"),
            data.get("topic"),
            data.get("event"),
            data.get("payload"),
        )

    def encode(self, frame: Frame) -> str:
        fields = {"topic": frame.topic, "event": frame.event, "payload": frame.payload}
        return _dumps({**fields, "ref": frame.ref})


class V2Serializer:
    def decode(self, text: str) -> Frame:
        data = json.loads(text)
        # Phoenix reads the first five elements and ignores any others
        if not isinstance(data, list) or len(data) < 5:
            raise BadFrame("a V2 frame is a JSON array of five")
        return _frame(*data[:5])

    def encode(self, frame: Frame) -> str:
        return _dumps(list(frame))


def pick_serializer(vsn: str | None) -> Serializer | None:
    """Phoenix's defaults: `~> 1.0.0` and `~> 2.0.0`; no vsn means 1.0.0."""
    if not vsn or vsn.startswith("1.0."):
        return V1Serializer()
    if vsn.startswith("2.0."):
        return V2Serializer()
    return None


def _subscription_id(query: str) -> str:
    digest = hashlib.sha256(query.encode()).hexdigest().upper()
    return f"__absinthe__:doc:{secrets.randbits(60)}:{digest}"


def _body(result: ExecutionResult) -> dict[str, Any]:
    """A result as the HTTP transport renders it: no `data` after a document error."""
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    executed = any(e.path for e in result.errors or ())
    if result.data is not None or not result.errors or executed:
        body["data"] = result.data
    return body


def _error_body(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


@dataclass
class _Subscription:
    id: str
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    replied: asyncio.Event = field(default_factory=asyncio.Event)
    failure: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None


class PhoenixConnection:
    def __init__(
        self,
        websocket: WebSocket,
        serializer: Serializer,
        state: AppState,
    ) -> None:
        self.websocket = websocket
        self.serializer = serializer
        self.state = state
        # the schema and the name normaliser of /api
        self.endpoint = state.api
        self.sessionmaker = state.sessionmaker
        self.settings = state.settings
        self.joined = False
        # the join_ref of the joined channel: every reply on the channel carries it
        self.join_ref: Any = None
        self.subscriptions: dict[str, _Subscription] = {}
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        try:
            while True:
                try:
                    message = await asyncio.wait_for(self.websocket.receive(), IDLE_TIMEOUT)
                except TimeoutError:
                    await self._close(CLOSE_POLICY)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                raw = message.get("text")
                if raw is None:
                    raw = (message.get("bytes") or b"").decode("utf-8", "replace")
                try:
                    frame = self.serializer.decode(raw)
                except ValueError:
                    log.info("closing a socket that sent a malformed frame")
                    await self._close(CLOSE_BAD_FRAME)
                    return
                await self.handle(frame)
        except WebSocketDisconnect:
            return
        finally:
            await self.stop_all()

    async def handle(self, frame: Frame) -> None:
        if frame.topic == PHOENIX_TOPIC and frame.event == "heartbeat":
            await self._reply(None, frame, "ok", {})
        elif frame.event == "phx_join":
            await self.join(frame)
        elif frame.topic != CONTROL_TOPIC or not self.joined:
            await self._reply(None, frame, "error", {"reason": "unmatched topic"})
        elif frame.event == "phx_leave":
            await self.stop_all()
            await self.reply(frame, "ok", {})
            join_ref, self.joined, self.join_ref = self.join_ref, False, None
            await self._send(Frame(join_ref, join_ref, CONTROL_TOPIC, "phx_close", {}))
        elif frame.event == "doc":
            await self.doc(frame)
        elif frame.event == "unsubscribe":
            await self.unsubscribe(frame)
        else:
            await self.reply(frame, "error", {"reason": "unmatched event"})

    async def join(self, frame: Frame) -> None:
        if frame.topic != CONTROL_TOPIC:
            await self._reply(None, frame, "error", {"reason": "unmatched topic"})
            return
        # A second join replaces the channel, as Phoenix does: its subscriptions end.
        await self.stop_all()
        self.joined = True
        self.join_ref = frame.join_ref
        await self.reply(frame, "ok", {})

    async def doc(self, frame: Frame) -> None:
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        query = payload.get("query")
        variables = payload.get("variables")
        operation_name = payload.get("operationName") or None
        if isinstance(variables, str):
            # Some clients send variables JSON-encoded, as over HTTP.
            with contextlib.suppress(ValueError):
                variables = json.loads(variables) if variables else None
        if not isinstance(query, str) or not query:
            await self.reply(frame, "error", _error_body("No query document supplied"))
            return
        if variables is not None and not isinstance(variables, dict):
            # Absinthe's answer, in its shape
            await self.reply(frame, "error", {"error": "Could not parse variables as map"})
            return
        if operation_name is not None and not isinstance(operation_name, str):
            await self.reply(frame, "error", _error_body("operationName must be a string"))
            return
        prepared = self.endpoint.prepare(query)
        operation = prepared.operation(operation_name) if prepared else None
        if prepared is not None:
            query = prepared.query
            if variables and operation:
                variables = convert_variables(variables, operation[1])
        if operation is not None and operation[0] is OperationType.SUBSCRIPTION:
            await self.subscribe(frame, query, variables, operation_name)
        else:
            await self.execute(frame, query, variables, operation_name)

    async def execute(
        self,
        frame: Frame,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        async with self.sessionmaker() as session:
            client = self.websocket.client
            context = Context(
                session=session,
                settings=self.settings,
                pipeline=pipeline_of(self.state),
                client_address=client.host if client else None,
                velocity=self.state.velocity,
                page_cache=self.state.page_cache,
            )
            result = await run_document(
                context, query, variables, operation_name, on=self.endpoint.schema
            )
        await context.run_after_commit()
        body = _body(result)
        await self.reply(frame, "ok" if "data" in body else "error", body)

    async def subscribe(
        self,
        frame: Frame,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            await self.reply(frame, "error", _error_body("too many subscriptions"))
            return
        sub = _Subscription(_subscription_id(query))
        sub.task = asyncio.create_task(
            self._run_subscription(sub, query, variables, operation_name)
        )
        waiter = asyncio.create_task(sub.subscribed.wait())
        try:
            await asyncio.wait({sub.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if sub.subscribed.is_set() and not sub.task.done():
            self.subscriptions[sub.id] = sub
            sub.task.add_done_callback(lambda _: self.subscriptions.pop(sub.id, None))
            await self.reply(frame, "ok", {"subscriptionId": sub.id})
            sub.replied.set()
            return
        if not sub.task.done():
            sub.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sub.task
        await self.reply(frame, "error", sub.failure or _error_body("Internal server error"))

    async def _run_subscription(
        self,
        sub: _Subscription,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        try:
            async with self.sessionmaker() as session:
                context = SubscriptionContext(
                    session=session,
                    settings=self.settings,
                    sessionmaker=self.sessionmaker,
                    subscribed=sub.subscribed,
                )
                stream = await self.endpoint.schema.subscribe(
                    query,
                    variable_values=variables,
                    context_value=context,
                    operation_name=operation_name,
                )
                async with aclosing(stream):
                    async for result in stream:
                        if not sub.subscribed.is_set():
                            # It ended before listening: the document or the setup failed.
                            errors = [format_error(e) for e in result.errors or ()]
                            sub.failure = {"errors": errors} if errors else None
                            return
                        await sub.replied.wait()
                        await self.push(sub.id, "subscription:data", _data(sub.id, result))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("subscription failed")
            if sub.subscribed.is_set():
                await self.push(sub.id, "subscription:data", _data_error(sub.id))

    async def unsubscribe(self, frame: Frame) -> None:
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        subscription_id = payload.get("subscriptionId")
        if isinstance(subscription_id, str):
            await self._stop(subscription_id)
        await self.reply(frame, "ok", {"subscriptionId": subscription_id})

    async def _stop(self, subscription_id: str) -> None:
        sub = self.subscriptions.pop(subscription_id, None)
        if sub is not None and sub.task is not None:
            sub.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sub.task

    async def stop_all(self) -> None:
        for subscription_id in list(self.subscriptions):
            await self._stop(subscription_id)

    async def reply(self, frame: Frame, status: str, response: dict[str, Any]) -> None:
        """The channel's answer to `frame`."""
        await self._reply(self.join_ref, frame, status, response)

    async def _reply(
        self, join_ref: Any, frame: Frame, status: str, response: dict[str, Any]
    ) -> None:
        payload = {"status": status, "response": response}
        await self._send(Frame(join_ref, frame.ref, frame.topic, "phx_reply", payload))

    async def push(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        await self._send(Frame(None, None, topic, event, payload))

    async def _send(self, frame: Frame) -> None:
        text = self.serializer.encode(frame)
        async with self._send_lock:
            if self.websocket.application_state is not WebSocketState.CONNECTED:
                return
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.send_text(text)

    async def _close(self, code: int) -> None:
        async with self._send_lock:
            with contextlib.suppress(RuntimeError, OSError):
                await self.websocket.close(code)


def _data(subscription_id: str, result: ExecutionResult) -> dict[str, Any]:
    return {"subscriptionId": subscription_id, "result": _body(result)}


def _data_error(subscription_id: str) -> dict[str, Any]:
    result = {"data": None, **_error_body("Internal server error")}
    return {"subscriptionId": subscription_id, "result": result}


class PhoenixWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, tolerant of an empty `Sec-WebSocket-Protocol` header.

    The Python `proca` CLI (gql 3.0 over websockets 10) sends that header empty; Cowboy
    accepts it, the `websockets` handshake answers 400. Serve with
    `uvicorn.run(..., ws="proca_server.graphql.socket:PhoenixWebSocketProtocol")`."""

    def handle_connect(self, event: Request) -> None:
        values = event.headers.get_all("Sec-WebSocket-Protocol")
        kept = [value for value in values if value.strip()]
        if len(kept) != len(values):
            del event.headers["Sec-WebSocket-Protocol"]
            for value in kept:
                event.headers["Sec-WebSocket-Protocol"] = value
        super().handle_connect(event)


@router.websocket("/socket/websocket")
async def phoenix_socket(websocket: WebSocket) -> None:
    serializer = pick_serializer(websocket.query_params.get("vsn"))
    if serializer is None:
        # Refused before the handshake completes: the client sees HTTP 403.
        await websocket.close(CLOSE_POLICY)
        return
    await websocket.accept()
    connection = PhoenixConnection(websocket, serializer, state_of(websocket))
    await connection.run()
