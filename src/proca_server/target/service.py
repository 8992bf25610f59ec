"""MTT targets: upsert by external id, with their emails (docs/mail-to-target.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.errors import BadArgument
from proca_server.kit.storable import exceeds_stored_size
from proca_server.models import Campaign, Target, TargetEmail
from proca_server.models.enums import EmailStatus
from proca_server.target import repository

EMAIL_RE = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
LOCALE_RE = re.compile(r"^[a-z]{2}(?:_[A-Z]{2})?$")
MAX_FIELDS_BYTES = 5120


def _check(index: int, attrs: dict[str, Any]) -> None:
    def fail(message: str, field: str) -> BadArgument:
        return BadArgument(message, field=["targets", str(index), field])

    if not attrs.get("external_id"):
        raise fail("can't be blank", "externalId")
    if attrs.get("locale") and not LOCALE_RE.match(attrs["locale"]):
        raise fail("has invalid format", "locale")
    fields = attrs.get("fields")
    if fields is not None:
        if any(isinstance(v, (dict, list)) and not _flat_list(v) for v in fields.values()):
            raise fail("must be a flat map", "fields")
        if exceeds_stored_size(fields, MAX_FIELDS_BYTES):
            raise fail(f"must be at most {MAX_FIELDS_BYTES} bytes", "fields")
    for n, email in enumerate(attrs.get("emails") or []):
        if not EMAIL_RE.match(email.strip()):
            raise BadArgument(
                "has invalid format", field=["targets", str(index), "emails", str(n), "email"]
            )


def _flat_list(value: Any) -> bool:
    return isinstance(value, list) and (
        all(isinstance(v, str) for v in value) or all(isinstance(v, (int, float)) for v in value)
    )


async def upsert_targets(
    session: AsyncSession,
    campaign: Campaign,
    targets: Sequence[dict[str, Any]],
    outdated: str,
) -> list[Target]:
    out = []
    for index, attrs in enumerate(targets):
        _check(index, attrs)
        target = await repository.get_target_by_external_id(session, attrs["external_id"])
        if target is None:
            if not attrs.get("name"):
                raise BadArgument("can't be blank", field=["targets", str(index), "name"])
            target = Target(external_id=attrs["external_id"], name=attrs["name"])
            session.add(target)
        target.campaign_id = campaign.id
        for key in ("name", "area", "locale", "fields"):
            if attrs.get(key) is not None:
                setattr(target, key, attrs[key])
        await session.flush()
        if attrs.get("emails") is not None:
            await _sync_emails(session, target, attrs["emails"])
        out.append(target)
    await _handle_outdated(session, campaign, {t.id for t in out}, outdated)
    return out


async def _sync_emails(session: AsyncSession, target: Target, emails: Sequence[str]) -> None:
    wanted = [e.strip().lower() for e in emails]
    existing = await repository.list_emails(session, [target.id])
    have = {e.email: e for e in existing}
    for row in existing:
        if row.email not in wanted:
            await session.delete(row)
    for email in dict.fromkeys(wanted):
        if email not in have:
            session.add(TargetEmail(target_id=target.id, email=email))
    await session.flush()


async def _handle_outdated(
    session: AsyncSession, campaign: Campaign, kept: set[Any], outdated: str
) -> None:
    if outdated == "keep":
        return
    for target in await repository.list_other_targets(session, campaign.id, kept):
        if outdated == "disable":
            for email in await repository.list_emails(session, [target.id], usable_only=True):
                email.email_status = EmailStatus.INACTIVE
        elif outdated == "delete":
            if await repository.has_messages(session, target.id):
                raise BadArgument("has messages", field=["targets", target.external_id])
            await repository.delete_emails(session, target.id)
            await session.delete(target)
    await session.flush()
