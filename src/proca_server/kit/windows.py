"""Counts of events per sender in fixed time windows: the one mechanism behind the log-in
throttle (auth/throttle.py) and the signature velocity limits (action/velocity.py).

A sender (an email, a client address) is known only by a keyed hash whose key is drawn when
the counter is made and never stored, so no sender is kept in clear. The counts live in this
process, in a cache bounded in entries; an entry leaves a window after its last change, or
earlier, least recently used first, when the bound is reached (its sender then starts again)."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass(frozen=True)
class Limit:
    """One sender's counter and what it may reach in a window."""

    digest: bytes
    limit: int
    what: str  # names the kind of sender in refusals and metrics ("address", "email"...)


@dataclass(frozen=True)
class Refusal:
    limit: Limit
    retry_after: int  # whole seconds until the sender's window ends
    first: bool  # the first refusal of this window


class WindowCounter:
    def __init__(
        self, window: float, max_tracked: int, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._timer = timer
        self._key = secrets.token_bytes(16)
        # digest -> (window start, events in it)
        self._counts: TTLCache[bytes, tuple[float, int]] = TTLCache(
            maxsize=max_tracked, ttl=window, timer=timer
        )

    def limit(self, what: str, sender: str, limit: int) -> Limit:
        digest = hashlib.blake2b(
            sender.encode("utf-8", "surrogatepass"),
            key=self._key,
            person=what.encode()[:16],
            digest_size=16,
        ).digest()
        return Limit(digest, limit, what)

    def take(self, limits: Sequence[Limit]) -> Refusal | None:
        """Count one event against each of `limits`; None when all were under their limit.
        Otherwise nothing is counted and the refusal names the first limit reached."""
        now = self._timer()
        counted = []
        for limit in limits:
            start, count = self._counts.get(limit.digest, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            if count >= limit.limit:
                first = count == limit.limit
                if first:  # later refusals of this window find the count past the limit
                    self._counts[limit.digest] = (start, count + 1)
                retry_after = max(1, math.ceil(start + self.window - now))
                return Refusal(limit, retry_after, first)
            counted.append((limit.digest, start, count + 1))
        for digest, start, count in counted:
            self._counts[digest] = (start, count)
        return None

    def forget(self, limit: Limit) -> None:
        self._counts.pop(limit.digest, None)

    def give_back(self, limit: Limit) -> None:
        """Take back one event counted in the current window."""
        entry = self._counts.get(limit.digest)
        if entry is not None:
            self._counts[limit.digest] = (entry[0], max(0, entry[1] - 1))

    def clear(self) -> None:
        self._counts.clear()

    def __len__(self) -> int:
        return len(self._counts)

    def stored(self) -> list[bytes]:
        """What the counter keeps of its senders (their digests)."""
        return list(self._counts)
