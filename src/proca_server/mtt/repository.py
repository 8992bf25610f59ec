"""The SQL of mail to target's sending side: letters (`messages`), their counts per target
(`mtt_target_counts`), the campaigns' plan leases (`mtt`). The rules are in planner.py and
sender.py; functions here take the session first, flush at most, and never commit.

Counts are always changed in target order: two transactions changing the counts of the same
targets then lock their rows in the same order and never deadlock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import TextClause

from proca_server.models import (
    Action,
    Campaign,
    Message,
    MessageContent,
    Mtt,
    Org,
    Supporter,
    Target,
    TargetEmail,
)
from proca_server.models.base import UTCDateTime
from proca_server.models.enums import (
    ActionProcessingStatus,
    EmailStatus,
    SupporterProcessingStatus,
)
from proca_server.models.message import WAITING as WAITING_TERMS
from proca_server.models.message import SendStatus
from proca_server.models.mtt import MttTargetCount

# target addresses letters may go to
USABLE = (EmailStatus.NONE, EmailStatus.ACTIVE)
# ids per IN (...) list
ID_CHUNK = 1000


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _chunks(ids: Sequence[Any], size: int = ID_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# -- counts ---------------------------------------------------------------------------------


async def upsert_counts(
    session: AsyncSession, campaign_of: Mapping[UUID, int], column: str, by: Mapping[UUID, int]
) -> None:
    """Add to a count of each target, making its row on first use."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = MttTargetCount.__table__
    assert isinstance(table, Table)
    for target_id, n in sorted(by.items()):
        if not n:
            continue
        statement = insert(table).values(
            {"target_id": target_id, "campaign_id": campaign_of[target_id], column: n}
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.target_id],
            set_={column: table.c[column] + statement.excluded[column]},
        )
        await session.execute(statement)


_COUNTS = cast(Table, MttTargetCount.__table__)
_ADD_TO_COUNT = {
    column: update(_COUNTS)
    .where(_COUNTS.c.target_id == bindparam("target"))
    .values({column: _COUNTS.c[column] + bindparam("n")})
    for column in ("queued", "planned", "sent", "failed", "cancelled", "undeliverable", "in_doubt")
}


async def add_to_counts(session: AsyncSession, column: str, by: Mapping[UUID, int]) -> None:
    """Add to a count of each target (its row exists once a letter to it was ranked), in one
    executemany."""
    rows = [{"target": t, "n": n} for t, n in sorted(by.items()) if n]
    if rows:
        await session.execute(_ADD_TO_COUNT[column], rows)


async def list_campaign_counts(
    session: AsyncSession, campaign_id: int
) -> dict[UUID, MttTargetCount]:
    rows = await session.scalars(
        select(MttTargetCount).where(MttTargetCount.campaign_id == campaign_id)
    )
    return {c.target_id: c for c in rows.all()}


# -- ranking ---------------------------------------------------------------------------------


async def list_unranked_letters(
    session: AsyncSession, limit: int
) -> Sequence[Row[int, UUID, bytes, bool, int]]:
    """Letters not ranked yet of delivered actions of accepted supporters, oldest first:
    (id, target_id, fingerprint, testing, campaign_id)."""
    rows = await session.execute(
        select(
            Message.id,
            Message.target_id,
            Supporter.fingerprint,
            Action.testing,
            Target.campaign_id,
        )
        .join(Action, Action.id == Message.action_id)
        .join(Supporter, Supporter.id == Action.supporter_id)
        .join(Target, Target.id == Message.target_id)
        .where(
            Message.dupe_rank.is_(None),
            Action.processing_status == ActionProcessingStatus.DELIVERED,
            Supporter.processing_status == SupporterProcessingStatus.ACCEPTED,
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return rows.all()


async def count_ranked_letters(
    session: AsyncSession, keys: Collection[tuple[UUID, bytes]]
) -> Counter[tuple[UUID, bytes]]:
    """Ranked letters of real actions per (target, person fingerprint). Read from the people
    (fingerprint index), their actions and their letters: a few rows each, never a scan of
    the letters."""
    wanted = set(keys)
    found: Counter[tuple[UUID, bytes]] = Counter()
    for part in _chunks(sorted({fingerprint for _, fingerprint in wanted}), 500):
        rows = await session.execute(
            select(Message.target_id, Supporter.fingerprint, func.count())
            .select_from(Supporter)
            .join(Action, Action.supporter_id == Supporter.id)
            .join(Message, Message.action_id == Action.id)
            .where(
                Supporter.fingerprint.in_(part),
                Action.testing.is_(False),
                Message.dupe_rank.is_not(None),
            )
            .group_by(Message.target_id, Supporter.fingerprint)
        )
        for target_id, fingerprint, count in rows.all():
            if (target_id, fingerprint) in wanted:
                found[(target_id, fingerprint)] = count
    return found


async def set_rank(session: AsyncSession, ids: Sequence[int], rank: int) -> Counter[UUID]:
    """Rank letters not ranked yet (a duplicate is settled as such); the letters ranked, per
    target."""
    values: dict[str, object] = {"dupe_rank": rank}
    if rank > 0:
        values["send_status"] = SendStatus.DUPLICATE
    ranked: Counter[UUID] = Counter()
    for part in _chunks(ids):
        done = await session.execute(
            update(Message)
            .where(Message.id.in_(part), Message.dupe_rank.is_(None))
            .values(values)
            .returning(Message.target_id)
            .execution_options(synchronize_session=False)
        )
        ranked.update(done.scalars().all())
    return ranked


async def rank_test_letters(session: AsyncSession, ids: Sequence[int], now: datetime) -> int:
    """Test letters count for no one and are due at once."""
    ranked = 0
    for part in _chunks(ids):
        done = await session.execute(
            update(Message)
            .where(Message.id.in_(part), Message.dupe_rank.is_(None))
            .values(dupe_rank=0, scheduled_at=now)
            .execution_options(synchronize_session=False)
        )
        ranked += _rowcount(done)
    return ranked


# -- planning --------------------------------------------------------------------------------


async def list_campaigns_in_days(
    session: AsyncSession, now: datetime
) -> list[tuple[Mtt, Campaign, Org]]:
    """MTT campaigns started, not ended more than a day ago (the planner narrows down)."""
    rows = await session.execute(
        select(Mtt, Campaign, Org)
        .join(Campaign, Campaign.id == Mtt.campaign_id)
        .join(Org, Org.id == Campaign.org_id)
        .where(Mtt.start_at <= now, Mtt.end_at > now - timedelta(days=1))
    )
    return [(m, c, o) for m, c, o in rows.all()]


async def take_plan_lease(
    session: AsyncSession, mtt_id: int, now: datetime, until: datetime
) -> bool:
    """The campaign's next plan is this transaction's unless another holds it until later."""
    taken = await session.execute(
        update(Mtt)
        .where(Mtt.id == mtt_id, or_(Mtt.next_plan_at.is_(None), Mtt.next_plan_at <= now))
        .values(next_plan_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(_rowcount(taken))


async def list_campaign_targets(
    session: AsyncSession, campaign_id: int
) -> tuple[list[UUID], set[UUID]]:
    """The campaign's targets (stable order) and those with a usable address."""
    usable = (
        select(TargetEmail.id)
        .where(TargetEmail.target_id == Target.id, TargetEmail.email_status.in_(USABLE))
        .exists()
    )
    rows = await session.execute(
        select(Target.id, usable).where(Target.campaign_id == campaign_id).order_by(Target.id)
    )
    targets, reachable = [], set()
    for target_id, ok in rows.all():
        targets.append(target_id)
        if ok:
            reachable.add(target_id)
    return targets, reachable


def _waiting(target_id: UUID) -> tuple[ColumnElement[bool] | TextClause, ...]:
    """A target's letters to send that have no send time yet (the partial index's terms)."""
    return (Message.target_id == target_id, text(f"messages.{WAITING_TERMS}"))


async def settle_waiting_letters(
    session: AsyncSession, target_id: UUID, status: SendStatus, reason: str, now: datetime
) -> int:
    done = await session.execute(
        update(Message)
        .where(*_waiting(target_id))
        .values(send_status=status, scheduled_at=now, error=reason)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(done)


# WAITING_TERMS is a constant of this package, not input
_PLAN_PG = text(
    f"""
    UPDATE messages SET scheduled_at = :at, updated_at = :at
    WHERE id IN (
        SELECT w.id
        FROM unnest(CAST(:targets AS uuid[]), CAST(:limits AS int[])) AS a(target_id, n)
        CROSS JOIN LATERAL (
            SELECT messages.id FROM messages
            WHERE messages.target_id = a.target_id AND messages.{WAITING_TERMS}
            ORDER BY messages.id LIMIT a.n
        ) AS w
    )
    RETURNING target_id
    """  # noqa: S608
).bindparams(bindparam("at", type_=UTCDateTime()))


async def plan_waiting_letters(
    session: AsyncSession, limits: Mapping[UUID, int], at: datetime
) -> Counter[UUID]:
    """Give each target's oldest waiting letters, as many as its limit, this send time; the
    letters given one, per target. One statement on PostgreSQL (a lateral read of the waiting
    index per target); one per target on SQLite, where a statement costs no round trip."""
    planned: Counter[UUID] = Counter()
    wanted = {t: n for t, n in sorted(limits.items()) if n > 0}
    if not wanted:
        return planned
    if session.get_bind().dialect.name == "postgresql":
        done = await session.execute(
            _PLAN_PG, {"at": at, "targets": list(wanted), "limits": list(wanted.values())}
        )
        planned.update(done.scalars().all())
        return planned
    for target_id, n in wanted.items():
        oldest = select(Message.id).where(*_waiting(target_id)).order_by(Message.id).limit(n)
        done = await session.execute(
            update(Message)
            .where(Message.id.in_(oldest.scalar_subquery()))
            .values(scheduled_at=at)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(done):
            planned[target_id] = _rowcount(done)
    return planned


async def list_waiting_letters(session: AsyncSession, target_id: UUID, limit: int) -> list[int]:
    """The oldest letters to a target that have no send time yet."""
    ids = await session.scalars(
        select(Message.id).where(*_waiting(target_id)).order_by(Message.id).limit(limit)
    )
    return list(ids.all())


_MESSAGES = cast(Table, Message.__table__)
_SET_SEND_TIME = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("letter"))
    .values(scheduled_at=bindparam("at"))
)


async def set_send_times(session: AsyncSession, times: Sequence[tuple[int, datetime]]) -> None:
    """Each letter its own send time, in one executemany per thousand."""
    rows = [{"letter": i, "at": t} for i, t in times]
    for part in _chunks(rows):
        await session.execute(_SET_SEND_TIME, list(part))


async def delete_test_letters_before(session: AsyncSession, before: datetime) -> int:
    test_action = exists().where(
        and_(
            Action.id == Message.action_id,
            Action.testing.is_(True),
            Action.processing_status == ActionProcessingStatus.DELIVERED,
        )
    )
    done = await session.execute(
        delete(Message)
        .where(
            Message.send_status != SendStatus.PENDING,
            Message.updated_at < before,
            test_action,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(done)


# -- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: int
    # a sender held it before and its lease expired: it died while sending
    reclaimed: bool
    attempts: int


async def claim_due_letters(
    session: AsyncSession, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Claim up to `limit` due letters, oldest send time first."""
    query = (
        select(Message.id, Message.claimed_until, Message.attempts)
        .where(
            Message.send_status == SendStatus.PENDING,
            Message.scheduled_at <= now,
            or_(Message.claimed_until.is_(None), Message.claimed_until < now),
        )
        .order_by(Message.scheduled_at, Message.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    candidates = (await session.execute(query)).all()
    if not candidates:
        return []
    # conditional: of two senders reading the same candidates (SQLite), one wins each
    taken = await session.execute(
        update(Message)
        .where(
            Message.id.in_([c.id for c in candidates]),
            Message.send_status == SendStatus.PENDING,
            or_(Message.claimed_until.is_(None), Message.claimed_until < now),
        )
        .values(claimed_until=now + lease, attempts=Message.attempts + 1)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    won = set(taken.scalars().all())
    return [
        Claim(c.id, c.claimed_until is not None, c.attempts + 1) for c in candidates if c.id in won
    ]


async def list_claimed_letters(
    session: AsyncSession, ids: Collection[int]
) -> list[tuple[Message, MessageContent, Target, Mtt, Org]]:
    rows = await session.execute(
        select(Message, MessageContent, Target, Mtt, Org)
        .join(MessageContent, MessageContent.id == Message.message_content_id)
        .join(Target, Target.id == Message.target_id)
        .join(Campaign, Campaign.id == Target.campaign_id)
        .join(Mtt, Mtt.campaign_id == Campaign.id)
        .join(Org, Org.id == Campaign.org_id)
        .where(Message.id.in_(list(ids)))
        .order_by(Message.id)
    )
    return [(m, c, t, mt, o) for m, c, t, mt, o in rows.all()]


@dataclass(frozen=True)
class Address:
    email: str
    # not active yet, or soft bounces counted: a letter sent there makes it active
    to_activate: bool


async def first_usable_addresses(
    session: AsyncSession, target_ids: Collection[UUID]
) -> dict[UUID, Address]:
    """Each target's first address letters may go to."""
    found: dict[UUID, Address] = {}
    if not target_ids:
        return found
    rows = await session.execute(
        select(
            TargetEmail.target_id,
            TargetEmail.email,
            TargetEmail.email_status,
            TargetEmail.soft_bounce_count,
        )
        .where(
            TargetEmail.target_id.in_(list(target_ids)),
            TargetEmail.email_status.in_(USABLE),
            TargetEmail.email.is_not(None),
        )
        .order_by(TargetEmail.id)
    )
    for target_id, address, status, soft_bounces in rows.all():
        if address and target_id not in found:
            to_activate = status is not EmailStatus.ACTIVE or bool(soft_bounces)
            found[target_id] = Address(address, to_activate)
    return found


async def settle_letters(
    session: AsyncSession,
    ids: Collection[int],
    values: Mapping[str, Any],
    *,
    only_pending: bool = True,
) -> set[int]:
    """Set the letters' sending state; the ids changed."""
    conditions: list[ColumnElement[bool]] = [Message.id.in_(list(ids))]
    if only_pending:
        conditions.append(Message.send_status == SendStatus.PENDING)
    done = await session.execute(
        update(Message)
        .where(and_(*conditions))
        .values(dict(values))
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return set(done.scalars().all())


_MARK_SENT = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("letter"), _MESSAGES.c.send_status == SendStatus.PENDING)
    .values(
        send_status=SendStatus.SENT,
        sent=True,
        sent_at=bindparam("now"),
        updated_at=bindparam("now"),
        claimed_until=None,
        error=None,
    )
)
_COUNT_SENT = (
    update(cast(Table, MttTargetCount.__table__))
    .where(MttTargetCount.__table__.c.target_id == bindparam("target"))
    .values(sent=MttTargetCount.__table__.c.sent + 1)
)


async def record_sent(
    engine: AsyncEngine, letter_id: int, target_id: UUID | None, now: datetime
) -> None:
    """Record one letter sent, and count it for its target (None: a test letter), in a
    transaction of its own: the senders call it just before the provider takes the letter,
    once per letter, so it is written for speed (no ORM)."""
    async with engine.begin() as conn:
        done = await conn.execute(_MARK_SENT, {"letter": letter_id, "now": now})
        if target_id is not None and _rowcount(done):
            await conn.execute(_COUNT_SENT, {"target": target_id})


async def activate_addresses(session: AsyncSession, used: Mapping[UUID, str]) -> None:
    """A letter went to these addresses: active, soft bounces forgotten (bounced ones stay)."""
    for target_id, address in sorted(used.items()):
        await session.execute(
            update(TargetEmail)
            .where(
                TargetEmail.target_id == target_id,
                TargetEmail.email == address,
                TargetEmail.email_status.in_(USABLE),
            )
            .values(email_status=EmailStatus.ACTIVE, soft_bounce_count=0)
            .execution_options(synchronize_session=False)
        )


async def release_letters(session: AsyncSession, ids: Collection[int], later: datetime) -> None:
    """Give back claimed letters, due again `later`; the claim does not count as a try."""
    await session.execute(
        update(Message)
        .where(Message.id.in_(list(ids)))
        .values(claimed_until=None, scheduled_at=later, attempts=Message.attempts - 1)
        .execution_options(synchronize_session=False)
    )
