"""Say a thing once, not once per message: a warning about an org's setting would otherwise
repeat with every signature. Keys are kept for `every` seconds (so a condition that lasts is
said again now and then) and at most `max_keys` at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from proca_server.kit.cache import Cache

DEFAULT_EVERY = 3600.0
DEFAULT_MAX_KEYS = 10_000


class Once:
    def __init__(
        self,
        *,
        every: float = DEFAULT_EVERY,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seen: Cache[Hashable, bool] = Cache(max_keys, every, timer=clock)

    def first(self, key: Hashable) -> bool:
        """True when `key` was not seen within the last `every` seconds (and note it)."""
        if key in self._seen:
            return False
        self._seen.put(key, True)
        return True

    def forget(self, key: Hashable) -> None:
        """The condition is over: should it come back, it is said again at once."""
        self._seen.pop(key)
