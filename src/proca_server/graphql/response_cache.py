"""Answers to anonymous queries, kept for a fraction of a second per process.

Widgets on a campaign's pages all ask the same few queries (the counter above all) with the
same text; during a spike thousands of visitors ask each second. An anonymous query's answer
depends only on the request's document and variables (no user, no cookie, no header), so the
same request within `ttl` seconds gets the same bytes without a session, a database round trip
or GraphQL execution. What it costs: an answer is at most `ttl` seconds older than the data it
was computed from (the counters add their own 0.5 s, so a signature shows in the count within
a second). Only successful answers to queries are kept; mutations, subscriptions and any request
that carries credentials never touch the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from proca_server.auth.authenticate import REMEMBER_ME_COOKIE, SESSION_COOKIE
from proca_server.kit.cache import Cache

DEFAULT_TTL = 0.25
# bounds on memory: entries, and bytes of requests and answers kept together
MAX_ENTRIES = 2_000
MAX_BYTES = 16 * 1024 * 1024
# a request whose body is larger is never cached (nor kept as a key): the widget's queries
# are a few hundred bytes
MAX_REQUEST_BYTES = 8 * 1024

Key = tuple[str, str, bytes]
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
    def key(method: str, query_string: str, body: bytes) -> Key | None:
        """The key of a request, None for one too large to cache."""
        if len(body) + len(query_string) > MAX_REQUEST_BYTES:
            return None
        return (method, query_string, body)

    def get(self, key: Key) -> str | None:
        hit = self._entries.get(key)  # the counter's every read comes here
        return None if hit is None else hit[0]

    def put(self, key: Key, started_at: float, answer: str) -> None:
        """Keep `answer`, computed from data read no earlier than `started_at` (monotonic)."""
        size = len(key[0]) + len(key[1]) + len(key[2]) + len(answer)
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


def anonymous(headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
    """True when nothing in the request could make its caller someone."""
    return (
        "authorization" not in headers
        and SESSION_COOKIE not in cookies
        and REMEMBER_ME_COOKIE not in cookies
    )
