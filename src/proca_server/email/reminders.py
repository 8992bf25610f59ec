"""Confirm reminders: supporters who have not clicked their confirm link get the
confirm email again, every `delay_days`, at most `max_count` times.

An org takes part when it opted in (`config.reminder.enabled` true), asks supporters to
confirm (`supporter_confirm` on the org or on one of its campaigns) and can send email.
Per org, `config.reminder.delay_days` (default 2) and `max_count` (default 3), numbers or
numeric strings. An action is due when its supporter is still confirming, it was given with
consent, it was last touched more than `delay_days` ago and made less than
`delay_days * max_count` days ago.

Sending claims each action first by moving its `updated_at` to now, in one conditional
UPDATE: of two processes running at once only one sends a given reminder, and the next one
is due `delay_days` later. A reminder that could not be sent gets its old `updated_at` back,
to be tried again on the next run. The links carry `?reminder=1`.

`on_progress` (the command's progress bar) hears of the due actions as they are done with:
sent or failed a batch at a time, and the rest of an org's (not claimed, no template, no
backend, a dry run) once the org is done."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.backend import OrgEmailBackend, get_transactional_backend
from proca_server.email.backends.base import EmailConfigError, EmailDeliveryError
from proca_server.email.message import EmailMessage
from proca_server.email.supporter import (
    DueEmail,
    EmailKind,
    TemplateMissing,
    compose_email,
    confirm_template_name,
)
from proca_server.kit.time import utcnow
from proca_server.metrics import EMAIL_REMINDER_CONFIRM
from proca_server.models import Action, ActionPage, Campaign, Org, Supporter
from proca_server.models.enums import SupporterProcessingStatus
from proca_server.processing.loader import load_actions_for_processing

log = logging.getLogger(__name__)

DEFAULT_DELAY_DAYS = 2
DEFAULT_MAX_COUNT = 3
# actions looked at per org and run: the rest wait for the next run
MAX_DUE_PER_ORG = 1000


@dataclass(frozen=True)
class ReminderSettings:
    delay_days: int = DEFAULT_DELAY_DAYS
    max_count: int = DEFAULT_MAX_COUNT


@dataclass
class OrgReminders:
    org: str
    due: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


@dataclass
class ReminderReport:
    dry_run: bool
    orgs: list[OrgReminders] = field(default_factory=list)

    @property
    def due(self) -> int:
        return sum(len(o.due) for o in self.orgs)

    @property
    def sent(self) -> int:
        return sum(len(o.sent) for o in self.orgs)

    @property
    def failed(self) -> int:
        return sum(len(o.failed) for o in self.orgs)


def _positive_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value if value > 0 else default
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number > 0 else default
    return default


def reminder_settings(config: Mapping[str, Any] | None) -> ReminderSettings | None:
    """The org's reminder settings, or None when it has not opted in."""
    reminder = (config or {}).get("reminder")
    if not isinstance(reminder, Mapping) or reminder.get("enabled") is not True:
        return None
    return ReminderSettings(
        delay_days=_positive_int(reminder.get("delay_days"), DEFAULT_DELAY_DAYS),
        max_count=_positive_int(reminder.get("max_count"), DEFAULT_MAX_COUNT),
    )


async def _candidate_orgs(session: AsyncSession) -> list[tuple[Org, ReminderSettings]]:
    confirming_campaign = (
        select(Campaign.id)
        .where(Campaign.org_id == Org.id, Campaign.supporter_confirm.is_(True))
        .exists()
    )
    orgs = (
        await session.execute(
            select(Org)
            .where(
                or_(
                    Org.email_backend_id.is_not(None),
                    Org.transactional_email_backend_id.is_not(None),
                ),
                or_(Org.supporter_confirm.is_(True), confirming_campaign),
            )
            .order_by(Org.id)
        )
    ).scalars()
    found = []
    for org in orgs:
        settings = reminder_settings(org.config)
        if settings is not None:
            found.append((org, settings))
    return found


async def due_actions(
    session: AsyncSession, org: Org, settings: ReminderSettings, now: datetime
) -> list[int]:
    touched_before = now - timedelta(days=settings.delay_days)
    made_after = now - timedelta(days=settings.delay_days * settings.max_count)
    result = await session.execute(
        select(Action.id)
        .join(ActionPage, ActionPage.id == Action.action_page_id)
        .join(Campaign, Campaign.id == ActionPage.campaign_id)
        .join(Supporter, Supporter.id == Action.supporter_id)
        .where(
            ActionPage.org_id == org.id,
            true() if org.supporter_confirm else Campaign.supporter_confirm.is_(True),
            Supporter.processing_status == SupporterProcessingStatus.CONFIRMING,
            Action.with_consent.is_(True),
            Action.updated_at < touched_before,
            Action.inserted_at > made_after,
        )
        .order_by(Action.id)
        .limit(MAX_DUE_PER_ORG)
    )
    return list(result.scalars())


async def _claim(
    session: AsyncSession, action_ids: Sequence[int], before: datetime, now: datetime
) -> dict[int, datetime]:
    """Move the actions' updated_at to now where nobody did since; their old values."""
    old = dict(
        (
            await session.execute(
                select(Action.id, Action.updated_at).where(
                    Action.id.in_(action_ids), Action.updated_at < before
                )
            )
        ).all()
    )
    if not old:
        return {}
    claimed = (
        await session.execute(
            update(Action)
            .where(Action.id.in_(list(old)), Action.updated_at < before)
            .values(updated_at=now)
            .returning(Action.id)
            .execution_options(synchronize_session=False)
        )
    ).scalars()
    return {action_id: old[action_id] for action_id in claimed}


async def _release(
    sessionmaker: async_sessionmaker[AsyncSession], old: Mapping[int, datetime]
) -> None:
    if not old:
        return
    async with sessionmaker() as session, session.begin():
        for action_id, updated_at in old.items():
            await session.execute(
                update(Action)
                .where(Action.id == action_id)
                .values(updated_at=updated_at)
                .execution_options(synchronize_session=False)
            )


async def _remind_org(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    org_id: int,
    reminder: ReminderSettings,
    report: OrgReminders,
    *,
    dry_run: bool,
    now: datetime,
    advance: Callable[[int], None],
) -> None:
    before = now - timedelta(days=reminder.delay_days)
    outgoing: list[tuple[int, EmailMessage]] = []
    backend: OrgEmailBackend | None = None
    async with sessionmaker() as session:
        org = await session.get(Org, org_id)
        if org is None:
            return
        report.due = await due_actions(session, org, reminder, now)
        if dry_run or not report.due:
            return
        backend = await get_transactional_backend(
            session, org, len(report.due), sessionmaker=sessionmaker
        )
        if backend is None:
            return
        claimed = await _claim(session, report.due, before, now)
        for loaded in await load_actions_for_processing(session, list(claimed)):
            template = confirm_template_name(loaded)
            if template is None:
                continue
            try:
                message = await compose_email(
                    session,
                    settings,
                    loaded,
                    DueEmail(EmailKind.CONFIRM, template),
                    backend,
                    reminder=True,
                )
            except TemplateMissing as exc:
                log.warning("reminder for action %d not sent: %s", loaded.action.id, exc)
                report.failed.append(loaded.action.id)
                continue
            if message is not None:
                outgoing.append((loaded.action.id, message))
        await session.commit()
    failed = {i: claimed[i] for i in report.failed}
    size = max(1, backend.batch_size)
    for start in range(0, len(outgoing), size):
        chunk = outgoing[start : start + size]
        try:
            await backend.deliver([m for _, m in chunk])
        except (EmailDeliveryError, EmailConfigError) as exc:
            log.warning("org %s: %d reminders not sent: %s", report.org, len(chunk), exc)
            failures = exc.failures if isinstance(exc, EmailDeliveryError) else ()
            # a refused recipient address is done with: a reminder would be refused again
            bad = {f.index for f in failures if not f.recipient}
            for position, (action_id, _) in enumerate(chunk):
                if failures and position not in bad:
                    report.sent.append(action_id)
                else:
                    report.failed.append(action_id)
                    failed[action_id] = claimed[action_id]
            if failures:
                EMAIL_REMINDER_CONFIRM.inc(len(chunk) - len({f.index for f in failures}))
            advance(len(chunk))
            continue
        report.sent.extend(action_id for action_id, _ in chunk)
        EMAIL_REMINDER_CONFIRM.inc(len(chunk))
        advance(len(chunk))
    await _release(sessionmaker, failed)


async def run_reminders(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReminderReport:
    """Send the confirm reminders due now; `dry_run` only finds them."""
    now = now or utcnow()
    report = ReminderReport(dry_run=dry_run)
    async with sessionmaker() as session:
        orgs = [(org.id, org.name, s) for org, s in await _candidate_orgs(session)]
    for org_id, name, reminder in orgs:
        org_report = OrgReminders(name)
        report.orgs.append(org_report)
        counted = _Counted(on_progress)
        try:
            await _remind_org(
                settings,
                sessionmaker,
                org_id,
                reminder,
                org_report,
                dry_run=dry_run,
                now=now,
                advance=counted,
            )
        except Exception:
            log.exception("org %s: reminders failed", name)
        counted.up_to(len(org_report.due))
    return report


class _Counted:
    """Passes counts on to `on_progress`, remembering their sum for `up_to`."""

    def __init__(self, on_progress: Callable[[int], None] | None) -> None:
        self.on_progress = on_progress
        self.count = 0

    def __call__(self, count: int) -> None:
        self.count += count
        if self.on_progress is not None:
            self.on_progress(count)

    def up_to(self, total: int) -> None:
        if total > self.count:
            self(total - self.count)


async def reminder_loop(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Run the reminders every REMINDER_INTERVAL seconds until cancelled (0: never)."""
    interval = settings.reminder_interval
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        try:
            report = await run_reminders(settings, sessionmaker)
        except Exception:
            log.exception("confirm reminders failed")
            continue
        if report.due:
            log.info(
                "confirm reminders: %d due, %d sent, %d failed",
                report.due,
                report.sent,
                report.failed,
            )
