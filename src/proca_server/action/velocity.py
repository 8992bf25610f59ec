"""How many signatures one client address, or one email, may send in a window.

A flood of signatures from one address, or many with one email, is abuse, not a campaign; a
viral spike on a page is many addresses, each with a few signatures, so the limits are per
address and per email, never per page, and generous (a university behind one NAT address
stays well under SIGNATURE_LIMIT_PER_ADDRESS). The counts are kit/windows.py's: in this
process, by keyed hash; with N API processes a sender can get up to N times the limit through.
Both ways in (the signature lane and the GraphQL resolvers) call `admit`."""

from __future__ import annotations

from proca_server.config import Settings
from proca_server.errors import TooManySignatures
from proca_server.kit.windows import Limit, WindowCounter
from proca_server.metrics import SIGNATURES_REFUSED

# senders counted per window; past it new ones pass uncounted until it ends
MAX_TRACKED = 200_000


class SignatureVelocity:
    def __init__(self, per_address: int, per_email: int, window: float) -> None:
        self.per_address = per_address
        self.per_email = per_email
        self.counter = WindowCounter(window, MAX_TRACKED)

    @classmethod
    def from_settings(cls, settings: Settings) -> SignatureVelocity:
        return cls(
            settings.signature_limit_per_address,
            settings.signature_limit_per_email,
            settings.signature_limit_window,
        )

    def _limits(self, address: str | None, email: str | None) -> list[Limit]:
        limits: list[Limit] = []
        if self.per_address and address:
            limits.append(self.counter.limit("address", address, self.per_address))
        if self.per_email and email:
            limits.append(self.counter.limit("email", email.lower(), self.per_email))
        return limits

    def admit(self, address: str | None, email: str | None) -> None:
        """Count one signature from `address` with `email`; raises TooManySignatures, and
        counts nothing, when either is over its limit."""
        limits = self._limits(address, email)
        if not limits:
            return
        refusal = self.counter.take(limits)
        if refusal is None:
            return
        SIGNATURES_REFUSED.labels(reason=refusal.limit.what).inc()
        raise TooManySignatures(
            f"Too many signatures from this {refusal.limit.what}; try again later",
            extensions={"retryAfter": refusal.retry_after},
        )

    def give_back(self, address: str | None, email: str | None) -> None:
        """Uncount a signature `admit` counted that was not stored after all."""
        for limit in self._limits(address, email):
            self.counter.give_back(limit)


# no limits: what a context without the app's velocity gets (it counts nothing)
UNLIMITED = SignatureVelocity(0, 0, 1)
