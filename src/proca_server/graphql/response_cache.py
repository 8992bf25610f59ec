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
import time
from collections.abc import Mapping

from proca_server.auth.authenticate import REMEMBER_ME_COOKIE, SESSION_COOKIE

DEFAULT_TTL = 0.25
# a bound on memory: each distinct request text is one entry
MAX_ENTRIES = 2_000

Key = tuple[str, str, bytes]


class ResponseCache:
    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Key, tuple[float, str]] = {}
        self._in_flight: dict[Key, asyncio.Future[str | None]] = {}

    def get(self, key: Key) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] >= self.ttl:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: Key, started_at: float, answer: str) -> None:
        """Keep `answer`, computed from data read no earlier than `started_at` (monotonic)."""
        if len(self._entries) >= self.max_entries:
            self._drop_expired()
            if len(self._entries) >= self.max_entries:
                # dicts keep insertion order: drop the oldest half
                for old in list(self._entries)[: self.max_entries // 2]:
                    del self._entries[old]
        self._entries[key] = (started_at, answer)

    def _drop_expired(self) -> None:
        limit = time.monotonic() - self.ttl
        for key in [k for k, (at, _) in self._entries.items() if at < limit]:
            del self._entries[key]

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
