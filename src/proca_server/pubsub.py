"""Publish/subscribe for GraphQL subscriptions.

Topics are strings; messages are small JSON-able dicts. A subscriber gets an asyncio queue.

Two modes:
- in-process (the default, and SQLite's embedded single-process setup): `publish` hands the
  message straight to this process's subscribers;
- PostgreSQL (`connect(engine)` with a PostgreSQL engine, done by the app's lifespan): `publish`
  sends `NOTIFY proca_pubsub, '{"topic": ..., "message": ...}'`, and one listener connection per
  process (opened on the first subscription) fans every notification out to the local
  subscribers. PostgreSQL also delivers a process's own notifications to its listener, so
  local delivery takes the same path and nothing is delivered twice.

Delivery is best effort, like Phoenix.PubSub: a full subscriber queue drops the message, and
notifications sent while the listener is reconnecting are lost."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from proca_server.kit import retry

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
CHANNEL = "proca_pubsub"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD = 7900
READY_TIMEOUT = 10.0
KEEPALIVE = 30.0
# a lost connection is opened again after this pause (then on `retry.PUBSUB_LISTENER`)
RECONNECT_PAUSE = 0.2

Message = dict[str, Any]


class PubSubUnavailable(RuntimeError):
    """The cross-process listener could not be started in time."""


class PubSub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Message]]] = defaultdict(set)
        self._engine: AsyncEngine | None = None
        self._listener: _Listener | None = None

    @property
    def cross_process(self) -> bool:
        return self._engine is not None

    async def connect(self, engine: AsyncEngine) -> None:
        """Deliver through the engine's database when it is PostgreSQL; in-process otherwise."""
        await self.close()
        if engine.dialect.name == "postgresql":
            self._engine = engine

    async def close(self) -> None:
        """Stop the listener and fall back to in-process delivery."""
        listener, self._listener, self._engine = self._listener, None, None
        if listener is not None:
            await listener.stop()

    def subscriber_count(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    async def publish(self, topic: str, message: Message) -> None:
        if self._engine is None:
            self._deliver(topic, message)
            return
        payload = json.dumps({"topic": topic, "message": message}, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("message on %s too large for NOTIFY; delivered in this process", topic)
            self._deliver(topic, message)
            return
        try:
            async with self._engine.connect() as conn:
                await conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": CHANNEL, "payload": payload},
                )
                await conn.commit()
        except (SQLAlchemyError, OSError):
            # The other processes miss this one; this process's subscribers still get it.
            log.warning("NOTIFY failed on %s; delivered in this process only", topic)
            self._deliver(topic, message)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[Message]]:
        """A queue of the topic's messages; once entered, every later publish reaches it."""
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[topic].add(queue)
        try:
            if self._engine is not None:
                await self._listening(self._engine)
            yield queue
        finally:
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[topic]

    async def _listening(self, engine: AsyncEngine) -> None:
        if self._listener is None:
            self._listener = _Listener(engine, self._deliver)
            self._listener.start()
        try:
            await asyncio.wait_for(self._listener.ready.wait(), READY_TIMEOUT)
        except TimeoutError as exc:
            raise PubSubUnavailable("cannot listen for notifications") from exc

    def _deliver(self, topic: str, message: Message) -> None:
        for queue in list(self._subscribers.get(topic, ())):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("subscriber queue full on %s; message dropped", topic)


class _Listener:
    """One connection of its own that LISTENs, reconnecting when it is lost."""

    def __init__(self, engine: AsyncEngine, deliver: Callable[[str, Message], None]) -> None:
        self._engine = engine
        self._deliver = deliver
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pubsub-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.ready.clear()

    async def _connect(self) -> asyncpg.Connection:
        url = self._engine.url
        if self._engine.dialect.driver == "asyncpg":
            # The engine's own connection arguments (SSL included) minus SQLAlchemy's.
            args, kwargs = self._engine.dialect.create_connect_args(url)
            accepted = inspect.signature(asyncpg.connect).parameters
            kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        else:
            args, kwargs = [], url.translate_connect_args(username="user", database="database")
        return await asyncpg.connect(*args, **kwargs)

    async def _run(self) -> None:
        while True:
            async for attempt in retry.PUBSUB_LISTENER.retrying(
                (OSError, asyncpg.PostgresError, TimeoutError),
                log=log,
                what="pubsub listener: connecting",
            ):
                with attempt:
                    conn = await self._connect()
            try:
                await self._listen(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("pubsub listener connection lost (%s)", type(exc).__name__)
            finally:
                self.ready.clear()
                conn.terminate()
            await asyncio.sleep(RECONNECT_PAUSE)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        self.ready.set()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), KEEPALIVE)
            if not lost.is_set():
                # A dead peer that never closed the TCP connection shows up here.
                await conn.execute("SELECT 1", timeout=KEEPALIVE)
        log.warning("pubsub listener connection closed")

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            topic, message = data["topic"], data["message"]
        except (ValueError, KeyError, TypeError):
            log.warning("malformed notification on %s ignored", CHANNEL)
            return
        if isinstance(topic, str) and isinstance(message, dict):
            self._deliver(topic, message)


pubsub = PubSub()
