"""Answers to anonymous queries, kept for a fraction of a second per process.

Widgets on a campaign's pages all ask the same few queries (the counter above all) with the
same text; during a spike thousands of visitors ask each second. An anonymous query's answer
depends only on the request's document and variables (no user, no cookie, no header), so the
same request within `ttl` seconds gets the same bytes without a session, a database round trip
or GraphQL execution. What it costs: an answer is at most `ttl` seconds older than the data it
was computed from (the counters add their own 0.5 s, so a signature shows in the count within
a second). Only successful answers to queries are kept; mutations, subscriptions and any request
that carries credentials never touch the cache.

The route (graphql/http.py `execute_request`) fills the cache and answers from it; in front of
the router, `CachedAnswers` answers an anonymous GET whose answer is held with the same bytes,
before any routing: the counter read by every visitor of a campaign's pages costs a lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from proca_server.auth.authenticate import carries_credentials
from proca_server.kit.cache import Cache

DEFAULT_TTL = 0.25
# bounds on memory: entries, and bytes of requests and answers kept together
MAX_ENTRIES = 2_000
MAX_BYTES = 16 * 1024 * 1024
# a request whose body is larger is never cached (nor kept as a key): the widget's queries
# are a few hundred bytes
MAX_REQUEST_BYTES = 8 * 1024

# (method and content type, path, query string, body)
Key = tuple[str, str, bytes, bytes]
# (the answer, bytes it holds with its key)
Answer = tuple[str, int]


def _size(answer: Answer) -> int:
    return answer[1]


class ResponseCache:
    def __init__(
        self, ttl: float = DEFAULT_TTL, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._in_flight: dict[Key, asyncio.Future[str | None]] = {}

    @property
    def ttl(self) -> float:
        return self._ttl

    @ttl.setter
    def ttl(self, ttl: float) -> None:
        """Setting it empties the cache."""
        self._ttl = ttl
        # bounded by entries and bytes; expired entries leave on every write, whatever their
        # number
        self._entries: Cache[Key, Answer] = Cache(
            self.max_entries, ttl, weigh=_size, max_weight=self.max_bytes
        )

    @staticmethod
    def key(scope: Mapping[str, Any], body: bytes) -> Key | None:
        """The key of an HTTP request (its ASGI scope and body), None for one too large to
        cache."""
        query_string: bytes = scope.get("query_string", b"")
        if len(body) + len(query_string) > MAX_REQUEST_BYTES:
            return None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
                break
        return (
            f"{scope['method']} {content_type.decode('latin-1')}",
            scope["path"],
            query_string,
            body,
        )

    def get(self, key: Key) -> str | None:
        hit = self._entries.get(key)  # the counter's every read comes here
        return None if hit is None else hit[0]

    def put(self, key: Key, started_at: float, answer: str) -> None:
        """Keep `answer`, computed from data read no earlier than `started_at` (monotonic)."""
        size = len(key[0]) + len(key[1]) + len(key[2]) + len(key[3]) + len(answer)
        self._entries.put(key, (answer, size), at=started_at)

    @property
    def bytes_held(self) -> int:
        return self._entries.weight

    def __len__(self) -> int:
        return len(self._entries)

    def in_flight(self, key: Key) -> asyncio.Future[str | None] | None:
        """The answer another request is computing now for `key` (None: nobody is)."""
        return self._in_flight.get(key)

    def lead(self, key: Key) -> None:
        """This request computes `key`'s answer; it must call `finish` in all cases."""
        self._in_flight[key] = asyncio.get_running_loop().create_future()

    def finish(self, key: Key, answer: str | None) -> None:
        """Wake the requests waiting for `key` with its answer (None: compute your own)."""
        future = self._in_flight.pop(key, None)
        if future is not None and not future.done():
            future.set_result(answer)

    def clear(self) -> None:
        self._entries.clear()


def anonymous(scope: Mapping[str, Any]) -> bool:
    """True when nothing in the request could make its caller someone."""
    return not carries_credentials(scope["headers"])


class CachedAnswers:
    """ASGI middleware: an anonymous GET whose answer the cache holds is answered here, as the
    route would answer it from the cache (same bytes and headers), without routing; anything
    else goes on. Placed inside CORS, which adds its headers to either answer."""

    def __init__(self, app: ASGIApp, cache: ResponseCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and anonymous(scope):
            key = self.cache.key(scope, b"")
            hit = self.cache.get(key) if key is not None else None
            if hit is not None:
                body = hit.encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
