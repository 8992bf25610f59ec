"""Failed log-ins (HTTP Basic on /api and /link, the /users/log_in form), counted per account
and per client address, so that passwords cannot be guessed at the speed of the server.

After LOGIN_MAX_FAILURES_PER_ACCOUNT failures with one email, or LOGIN_MAX_FAILURES_PER_ADDRESS
from one client address, within a window of LOGIN_FAILURE_WINDOW seconds (kit/windows.py),
further attempts are refused with TooManyAttempts (HTTP 429, Retry-After) until the window
ends; refused attempts check no password and count nothing. A successful log-in clears
its account's count and does not count against its address.

An attempt is counted when it starts, before its password is checked: concurrent attempts
cannot all slip under the limit while bcrypt runs. The counts are kit/windows.py's: in this
process, by keyed hash; with N API processes the effective limits are up to N times these."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from proca_server.errors import TooManyAttempts
from proca_server.kit.windows import Limit, WindowCounter
from proca_server.metrics import REQUEST_LIMITS

if TYPE_CHECKING:
    from proca_server.config import Settings

log = logging.getLogger("proca_server.auth")

# accounts and addresses counted per window; past it new ones pass uncounted until it ends
MAX_TRACKED = 100_000
MESSAGE = "Too many failed log-in attempts; try again later"


class LoginThrottle:
    def __init__(
        self,
        *,
        per_account: int,
        per_address: int,
        window: float,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.counter = WindowCounter(window, MAX_TRACKED, timer)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(
            per_account=settings.login_max_failures_per_account,
            per_address=settings.login_max_failures_per_address,
            window=settings.login_failure_window,
        )

    def _limits(self, email: str, address: str | None) -> list[Limit]:
        limits = []
        if self.per_account:
            limits.append(self.counter.limit("account", email.strip().lower(), self.per_account))
        if self.per_address and address:
            limits.append(self.counter.limit("address", address, self.per_address))
        return limits

    def attempt(self, email: str, address: str | None) -> None:
        """Count a log-in attempt with `email` from `address` as failed until `succeeded`
        says otherwise; raises TooManyAttempts, counting nothing, when either is over its
        limit."""
        refusal = self.counter.take(self._limits(email, address))
        if refusal is None:
            return
        REQUEST_LIMITS.labels(limit=f"login_{refusal.limit.what}").inc()
        if refusal.first:
            log.warning(
                "refusing log-ins for one %s: %d failures", refusal.limit.what, refusal.limit.limit
            )
        raise TooManyAttempts(MESSAGE, retry_after=refusal.retry_after)

    def succeeded(self, email: str, address: str | None) -> None:
        for limit in self._limits(email, address):
            if limit.what == "account":
                self.counter.forget(limit)
            else:
                self.counter.give_back(limit)

    def clear(self) -> None:
        self.counter.clear()
