"""Supporter detail lookup before emitting (spec §7.8): the seam, not yet a backend.

When the page owner org has a `detail_backend` (a webhook service), processing is to POST
`{email, contactRef}` to it before a non-no-op transition and fold the answer in: opt-in
(the processing org's contact gets communication_consent and inserted_at = givenAt), email
status (+ changed time) and custom fields merged into the action. Any lookup error fails
the action's processing, which the sweeper retries. `plan_processing` does not call a
lookup yet; a worker wires one in front of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from proca_server.models import Service
from proca_server.models.enums import EmailStatus


@dataclass(frozen=True, slots=True)
class SupporterDetails:
    opt_in: bool | None = None
    given_at: datetime | None = None
    email_status: EmailStatus | None = None
    email_status_changed: datetime | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)


class DetailLookupFailed(Exception):
    """`reason`: bad_content_type, not_found or unknown (never carries personal data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DetailLookup(Protocol):
    async def lookup(
        self, service: Service, *, email: str | None, contact_ref: str
    ) -> SupporterDetails:
        """Ask the org's detail backend; raise DetailLookupFailed when it cannot answer."""
        ...
