"""A bound on request bodies, before anything reads them.

A body declared larger than the limit is refused at once with 413, unread; a body sent without
a length (chunked) is counted as the application reads it and refused as soon as it passes the
limit (a declared length is the server's to hold the body to). Websocket frames are bounded by
the server (`ws_max_size`, set to the same limit by `proca-server serve`). Starlette's own
RequestBodyLimitMiddleware answers in text/plain: the clients expect the JSON error shape."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from proca_server.metrics import REQUEST_LIMITS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# methods whose body no route reads (the server leaves an unread body unread)
_NOT_READ = frozenset(("GET", "HEAD", "OPTIONS"))


class _TooLarge(Exception):
    pass


def _answer(status: int, message: str, code: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NOT_READ:
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, 400, "Content-Length is not a number", "bad_request")
                    return
                if declared > limit:
                    await self._refuse_large(send)
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked:
            # no body, or one the server reads to its declared length and no further
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await self._refuse_large(send)

    async def _refuse_large(self, send: Send) -> None:
        REQUEST_LIMITS.labels(limit="body_size").inc()
        await self._refuse(
            send,
            413,
            f"Request body is larger than {self.max_bytes} bytes",
            "payload_too_large",
        )

    @staticmethod
    async def _refuse(send: Send, status: int, message: str, code: str) -> None:
        headers, body = _answer(status, message, code)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
