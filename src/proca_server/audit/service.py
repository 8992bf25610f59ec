"""Audit entries: one per staff read of personal data (`exportActions`, `actions`, `contacts`),
key generation and activation, erasure (`deleteContact`), retention run and supporter rights
request.

An entry says who (`actor`: `user:<id>`, `cli`, `system` for the server's own schedules, or
`supporter:<id>` for a rights request), what (`action`, stored as the resource), which org,
when, how many rows, and a few non-personal details (a campaign name, a key id, a mode). It
never holds personal data: no email, name or contact reference.

Entries are added to the caller's session, so they commit (or roll back) with the work they
describe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import AuditLog

CLI = "cli"
SYSTEM = "system"


def user_actor(user_id: int) -> str:
    return f"user:{user_id}"


def supporter_actor(supporter_id: int) -> str:
    return f"supporter:{supporter_id}"


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    org_id: int | None,
    count: int | None = None,
    resource_id: str | int = "",
    details: Mapping[str, Any] | None = None,
) -> AuditLog:
    """Add an entry to `session` (written with the caller's transaction)."""
    changeset: dict[str, Any] = dict(details or {})
    if count is not None:
        changeset["count"] = count
    entry = AuditLog(
        actor_id=actor,
        resource=action,
        resource_id=str(resource_id),
        org_id=org_id,
        changeset=changeset,
    )
    session.add(entry)
    return entry
