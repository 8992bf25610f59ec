"""Counts of events per sender in fixed time windows: the one mechanism behind the log-in
throttle (auth/throttle.py) and the signature velocity limits (action/velocity.py).

The windows are the counter's: they start when it is made and follow each other, and every
count starts again at the start of a window (so a sender may reach twice a limit across the
end of one window and the start of the next, never more). A sender (an email, a client
address) is known only by a keyed hash whose key is drawn when the counter is made and never
stored, so no sender is kept in clear. The counts live in this process, in one dictionary of
digests and integers replaced at each window: a signature's check is two dictionary look-ups,
and a million counted senders are a million small keys for the garbage collector to skip (a
cache of linked entries, one per sender, cost the signature lane a sixth of its throughput).
Past `max_tracked` senders in a window, new ones are let through uncounted until it ends."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


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
        self.max_tracked = max_tracked
        self._timer = timer
        # keyed once; each digest starts from a copy (keying is most of a short hash's cost)
        self._hasher = hashlib.blake2b(key=secrets.token_bytes(16), digest_size=16)
        self._start = timer()
        self._counts: dict[bytes, int] = {}

    def limit(self, what: str, sender: str, limit: int) -> Limit:
        hasher = self._hasher.copy()
        hasher.update(f"{what}\0{sender}".encode("utf-8", "surrogatepass"))
        return Limit(hasher.digest(), limit, what)

    def _now(self) -> float:
        now = self._timer()
        if now - self._start >= self.window:
            self._start += self.window * ((now - self._start) // self.window)
            self._counts = {}
        return now

    def take(self, limits: Sequence[Limit]) -> Refusal | None:
        """Count one event against each of `limits`; None when all were under their limit.
        Otherwise nothing is counted and the refusal names the first limit reached."""
        now = self._now()
        counts = self._counts
        for limit in limits:
            count = counts.get(limit.digest, 0)
            if count >= limit.limit:
                first = count == limit.limit
                if first:  # later refusals of this window find the count past the limit
                    counts[limit.digest] = count + 1
                retry_after = max(1, math.ceil(self._start + self.window - now))
                return Refusal(limit, retry_after, first)
        for limit in limits:
            if limit.digest in counts:
                counts[limit.digest] += 1
            elif len(counts) < self.max_tracked:
                counts[limit.digest] = 1
        return None

    def forget(self, limit: Limit) -> None:
        self._now()
        self._counts.pop(limit.digest, None)

    def give_back(self, limit: Limit) -> None:
        """Take back one event counted in the current window."""
        self._now()
        count = self._counts.get(limit.digest)
        if count:
            self._counts[limit.digest] = count - 1

    def clear(self) -> None:
        self._counts = {}

    def __len__(self) -> int:
        return len(self._counts)

    def stored(self) -> list[bytes]:
        """What the counter keeps of its senders (their digests)."""
        return list(self._counts)
