"""What the operator reads about mail to target: the CSV of the letters a target received
(`proca-server mtt export`) and where each campaign's sending stands (`proca-server mtt
status`, and the Prometheus gauges).

Status counts come from two places: the outcomes (sent, failed, ...) from `mtt_target_counts`,
the tally of the planner and the senders; what still waits (pending, duplicates, unranked)
from `messages`, in one grouped scan of the campaigns' messages (seconds for a few hundred
thousand: a cost to mind before polling it often)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVarTuple

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import (
    Action,
    Campaign,
    Message,
    MessageContent,
    Mtt,
    MttTargetCount,
    Org,
    SendStatus,
    Supporter,
    Target,
    TargetEmail,
)
from proca_server.models.enums import EmailStatus
from proca_server.mtt.schedule import in_days

EXPORT_HEADER = (
    "first_name",
    "last_name",
    "email",
    "area",
    "campaign_name",
    "target_name",
    "msg_subject",
    "msg_body",
    "created_at",
)

# rows fetched per round trip of the export's stream: memory stays flat whatever the total
EXPORT_PAGE = 2000

USABLE_EMAIL = (EmailStatus.NONE, EmailStatus.ACTIVE)


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def get_campaign_id(session: AsyncSession, name: str) -> int | None:
    # campaigns.name is case-insensitive (citext / NOCASE)
    return await session.scalar(select(Campaign.id).where(Campaign.name == name))


@dataclass(frozen=True)
class ExportFilter:
    emails: Sequence[str] = ()
    target_ids: Sequence[uuid.UUID] = ()
    campaign_id: int | None = None
    include_duplicates: bool = False


_Ts = TypeVarTuple("_Ts")


def _export_where(select_: Select[*_Ts], where: ExportFilter) -> Select[*_Ts]:
    by_target = []
    emails = sorted({normalize_email(e) for e in where.emails if e.strip()})
    if emails:
        by_target.append(
            Message.target_id.in_(
                select(TargetEmail.target_id).where(
                    func.lower(func.trim(TargetEmail.email)).in_(emails)
                )
            )
        )
    if where.target_ids:
        by_target.append(Message.target_id.in_(list(where.target_ids)))
    if not by_target:
        raise ValueError("an export needs target emails or target ids")
    select_ = select_.where(or_(*by_target))
    if where.campaign_id is not None:
        select_ = select_.where(Target.campaign_id == where.campaign_id)
    if not where.include_duplicates:
        # unranked messages (NULL) are left out too: they may still turn out to be duplicates
        select_ = select_.where(Message.dupe_rank == 0)
    return select_


async def count_export(session: AsyncSession, where: ExportFilter) -> int:
    stmt = _export_where(
        select(func.count()).select_from(Message).join(Target, Target.id == Message.target_id),
        where,
    )
    return int(await session.scalar(stmt) or 0)


async def count_export_by_org(session: AsyncSession, where: ExportFilter) -> dict[int, int]:
    """How many of the export's rows belong to each campaign's org (for the audit trail)."""
    stmt = _export_where(
        select(Campaign.org_id, func.count())
        .select_from(Message)
        .join(Target, Target.id == Message.target_id)
        .join(Campaign, Campaign.id == Target.campaign_id)
        .group_by(Campaign.org_id),
        where,
    )
    rows = (await session.execute(stmt)).all()
    return {org_id: int(n) for org_id, n in rows if org_id is not None}


def iso_utc(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def export_pages(
    session: AsyncSession, where: ExportFilter, page: int = EXPORT_PAGE
) -> AsyncIterator[list[tuple[str, ...]]]:
    """The export's rows in CSV column order, a page at a time, from one streamed query
    (a server-side cursor on PostgreSQL)."""
    stmt = _export_where(
        select(
            Supporter.first_name,
            Supporter.last_name,
            Supporter.email,
            Supporter.area,
            Campaign.name,
            Target.name,
            MessageContent.subject,
            MessageContent.body,
            Action.inserted_at,
        )
        .select_from(Message)
        .join(Action, Action.id == Message.action_id)
        .join(Target, Target.id == Message.target_id)
        .join(Campaign, Campaign.id == Target.campaign_id)
        .join(MessageContent, MessageContent.id == Message.message_content_id)
        .outerjoin(Supporter, Supporter.id == Action.supporter_id)
        .order_by(Action.inserted_at, Message.id),
        where,
    ).execution_options(yield_per=page)
    result = await session.stream(stmt)
    try:
        async for rows in result.partitions():
            yield [
                (
                    first or "",
                    last or "",
                    email or "",
                    area or "",
                    campaign,
                    target,
                    subject,
                    body,
                    iso_utc(at),
                )
                for first, last, email, area, campaign, target, subject, body, at in rows
            ]
    finally:
        await result.close()


class MttState(enum.StrEnum):
    RUNNING = "running"
    NOT_STARTED = "not started"
    ENDED = "ended"
    BLOCKED = "blocked"


def window_state(start_at: datetime, end_at: datetime, drip: bool, now: datetime) -> MttState:
    """Where `now` falls in the campaign's window. A drip campaign between two days' sending
    hours is running: it resumes on its own the next day."""
    if drip:
        if now < start_at:
            return MttState.NOT_STARTED
        return MttState.RUNNING if now < end_at else MttState.ENDED
    if in_days(start_at, end_at, now):
        return MttState.RUNNING
    return MttState.NOT_STARTED if now < start_at else MttState.ENDED


@dataclass
class CampaignMttStatus:
    campaign_id: int
    campaign: str
    mode: str  # "drip" or "hourly"
    start_at: datetime
    end_at: datetime
    timezone: str
    state: MttState
    lead_org: str | None
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    undeliverable: int = 0
    in_doubt: int = 0
    pending: int = 0
    duplicates: int = 0
    unranked: int = 0
    targets: int = 0
    targets_without_email: int = 0

    @property
    def state_text(self) -> str:
        if self.state is not MttState.BLOCKED:
            return self.state.value
        if self.lead_org is None:
            return "blocked: the campaign has no lead org"
        return f"blocked: the lead org {self.lead_org} has no email backend"

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "mode": self.mode,
            "start_at": iso_utc(self.start_at),
            "end_at": iso_utc(self.end_at),
            "timezone": self.timezone,
            "state": self.state_text,
            "sent": self.sent,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "undeliverable": self.undeliverable,
            "in_doubt": self.in_doubt,
            "pending": self.pending,
            "duplicates": self.duplicates,
            "unranked": self.unranked,
            "targets": self.targets,
            "targets_without_email": self.targets_without_email,
        }


def _sum(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


def _count_if(condition: Any) -> Any:
    return _sum(case((condition, 1), else_=0))


# what the senders will still take: ranked first (duplicates never go to a real target), except
# test actions, which go to the supporter whatever their rank
_PENDING = and_(
    Message.send_status == SendStatus.PENDING,
    or_(Message.dupe_rank == 0, Action.testing),
)


def _usable_email_exists() -> Any:
    return (
        select(TargetEmail.id)
        .where(
            TargetEmail.target_id == Target.id,
            TargetEmail.email.is_not(None),
            TargetEmail.email_status.in_(USABLE_EMAIL),
        )
        .exists()
    )


async def campaign_status(
    session: AsyncSession, campaign_name: str | None, now: datetime
) -> list[CampaignMttStatus]:
    """Every campaign with mail-to-target settings (or the one named), by name. A fixed number
    of grouped queries, whatever the number of campaigns."""
    stmt = (
        select(Campaign.id, Campaign.name, Mtt, Org.name, Org.email_backend_id)
        .join(Mtt, Mtt.campaign_id == Campaign.id)
        .outerjoin(Org, Org.id == Campaign.org_id)
        .order_by(Campaign.name)
    )
    if campaign_name is not None:
        stmt = stmt.where(Campaign.name == campaign_name)
    statuses: dict[int, CampaignMttStatus] = {}
    for campaign_id, name, mtt, org_name, backend_id in (await session.execute(stmt)).all():
        state = window_state(mtt.start_at, mtt.end_at, mtt.drip_delivery, now)
        if state is not MttState.ENDED and backend_id is None:
            state = MttState.BLOCKED
        statuses[campaign_id] = CampaignMttStatus(
            campaign_id=campaign_id,
            campaign=name,
            mode="drip" if mtt.drip_delivery else "hourly",
            start_at=mtt.start_at,
            end_at=mtt.end_at,
            timezone=mtt.timezone,
            state=state,
            lead_org=org_name,
        )
    if not statuses:
        return []
    ids = list(statuses)

    outcomes = (
        select(
            MttTargetCount.campaign_id,
            _sum(MttTargetCount.sent),
            _sum(MttTargetCount.failed),
            _sum(MttTargetCount.cancelled),
            _sum(MttTargetCount.undeliverable),
            _sum(MttTargetCount.in_doubt),
        )
        .where(MttTargetCount.campaign_id.in_(ids))
        .group_by(MttTargetCount.campaign_id)
    )
    for campaign_id, sent, failed, cancelled, undeliverable, in_doubt in await session.execute(
        outcomes
    ):
        status = statuses[campaign_id]
        status.sent, status.failed, status.cancelled = int(sent), int(failed), int(cancelled)
        status.undeliverable, status.in_doubt = int(undeliverable), int(in_doubt)

    waiting = (
        select(
            Target.campaign_id,
            _count_if(_PENDING),
            _count_if(Message.dupe_rank > 0),
            _count_if(Message.dupe_rank.is_(None)),
        )
        .select_from(Message)
        .join(Target, Target.id == Message.target_id)
        .join(Action, Action.id == Message.action_id)
        .where(Target.campaign_id.in_(ids))
        .group_by(Target.campaign_id)
    )
    for campaign_id, pending, duplicates, unranked in await session.execute(waiting):
        status = statuses[campaign_id]
        status.pending, status.duplicates, status.unranked = (
            int(pending),
            int(duplicates),
            int(unranked),
        )

    targets = (
        select(Target.campaign_id, func.count(), _count_if(~_usable_email_exists()))
        .where(Target.campaign_id.in_(ids))
        .group_by(Target.campaign_id)
    )
    for campaign_id, total, without_email in await session.execute(targets):
        status = statuses[campaign_id]
        status.targets, status.targets_without_email = int(total), int(without_email)

    return list(statuses.values())


@dataclass
class TargetMttStatus:
    target_id: uuid.UUID
    name: str
    external_id: str
    sent: int
    pending: int
    failed: int
    undeliverable: int
    has_usable_email: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_id": str(self.target_id),
            "name": self.name,
            "external_id": self.external_id,
            "sent": self.sent,
            "pending": self.pending,
            "failed": self.failed,
            "undeliverable": self.undeliverable,
            "has_usable_email": self.has_usable_email,
        }


async def target_status(session: AsyncSession, campaign_id: int) -> list[TargetMttStatus]:
    """Each target of the campaign, by name then external id."""
    pending = (
        select(Message.target_id, func.count().label("pending"))
        .join(Action, Action.id == Message.action_id)
        .join(Target, Target.id == Message.target_id)
        .where(Target.campaign_id == campaign_id, _PENDING)
        .group_by(Message.target_id)
        .subquery()
    )
    stmt = (
        select(
            Target.id,
            Target.name,
            Target.external_id,
            func.coalesce(MttTargetCount.sent, 0),
            func.coalesce(pending.c.pending, 0),
            func.coalesce(MttTargetCount.failed, 0),
            func.coalesce(MttTargetCount.undeliverable, 0),
            _usable_email_exists(),
        )
        .outerjoin(MttTargetCount, MttTargetCount.target_id == Target.id)
        .outerjoin(pending, pending.c.target_id == Target.id)
        .where(Target.campaign_id == campaign_id)
        .order_by(Target.name, Target.external_id)
    )
    return [
        TargetMttStatus(
            target_id=target_id,
            name=name,
            external_id=external_id,
            sent=int(sent),
            pending=int(waiting),
            failed=int(failed),
            undeliverable=int(undeliverable),
            has_usable_email=bool(usable),
        )
        for target_id, name, external_id, sent, waiting, failed, undeliverable, usable in (
            await session.execute(stmt)
        ).all()
    ]
