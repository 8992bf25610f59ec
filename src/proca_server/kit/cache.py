"""The one in-process cache: bounded in entries (and in weight, when it weighs its values)
and, when it has a `ttl`, in time.

Every cache of the server is one of these, owned by the object that uses it (which the app
builds), so a test that needs a cold start calls that object's `clear()`. An entry is served
while its age is under `ttl` (or under the `max_age` a read asks for), its age counted from
the time it was stored with: by default when it was put, or the time its load started, which
an owner passes so that a slow load does not stretch the bound. Full, it drops the entry
stored longest ago first. Built on `cachetools`; a read is one dictionary look-up and a clock
reading (cachetools' own reads keep recency links: four times the cost, which the signature's
hot path reads several times per request)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# the plain mapping read of cachetools' base class (KeyError when missing)
_read = cachetools.Cache.__getitem__


class Cache(Generic[K, V]):
    __slots__ = ("_entries", "_timer", "_weighed", "maxsize", "ttl")

    def __init__(
        self,
        maxsize: int,
        ttl: float | None = None,
        *,
        weigh: Callable[[V], int] | None = None,
        max_weight: int = 0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """At most `maxsize` entries; with `weigh`, also at most `max_weight` in all (a
        value heavier than that is not kept)."""
        self.maxsize = maxsize
        self.ttl = ttl
        self._timer = timer
        self._weighed = weigh is not None
        bound, sizeof = maxsize, None
        if weigh is not None:
            bound = max_weight

            def sizeof(entry: tuple[float, V]) -> int:
                return weigh(entry[1])

        # (time stored with, value); a TTLCache also drops an entry `ttl` after its put, on
        # the next write
        self._entries: cachetools.Cache[K, tuple[float, V]] = (
            cachetools.FIFOCache(bound, getsizeof=sizeof)
            if ttl is None
            else cachetools.TTLCache(bound, ttl, timer=timer, getsizeof=sizeof)
        )

    def get(self, key: K, max_age: float | None = None) -> V | None:
        """The value while its age is under `max_age` (default `ttl`), else None."""
        try:
            at, value = _read(self._entries, key)
        except KeyError:
            return None
        limit = self.ttl if max_age is None else max_age
        if limit is not None and self._timer() - at >= limit:
            return None
        return value

    def get_aged(self, key: K) -> tuple[V, float] | None:
        """The value and its age in seconds while under `ttl`, else None."""
        try:
            at, value = _read(self._entries, key)
        except KeyError:
            return None
        age = self._timer() - at
        if self.ttl is not None and age >= self.ttl:
            return None
        return value, age

    def stored_at(self, key: K) -> float | None:
        """The time the entry was stored with, whatever its age (None: no entry)."""
        try:
            return _read(self._entries, key)[0]
        except KeyError:
            return None

    def put(self, key: K, value: V, *, at: float | None = None) -> bool:
        """Keep `value`, its age counted from `at` (a reading of the timer; default now).
        False when it weighs more than the whole cache may (it is not kept)."""
        entry = (self._timer() if at is None else at, value)
        if self._weighed:
            if self._entries.getsizeof(entry) > self._entries.maxsize:
                return False
            # the entry bound, besides the weight bound cachetools keeps (len() drops the
            # expired entries first)
            if len(self._entries) >= self.maxsize and key not in self._entries:
                self._entries.popitem()
        self._entries[key] = entry
        return True

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    @property
    def weight(self) -> int:
        """What the entries weigh in all (their number when the cache does not weigh)."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether `key` has an entry under `ttl` of age."""
        return self.get_aged(key) is not None  # type: ignore[arg-type]
