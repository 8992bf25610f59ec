"""Sending the letters that are due, exactly once where the backend allows it.

The life of a letter (`messages.send_status`, models/message.py): PENDING, with no send time
until a planner gives it one (mtt/planner.py); due once that time has come. A sender claims
due letters with a conditional update (`claimed_until`, a lease; on PostgreSQL the candidates
are read `FOR UPDATE SKIP LOCKED`, SQLite has one writer), committed before anything is sent:
two senders never hold the same letter. The claimed letters are composed (render.py) and sent
through the campaign lead org's email backend, then settled: SENT, FAILED (refused for good,
or after `MTT_MAX_ATTEMPTS` tries), back to PENDING with a later send time (a failure that may
pass: the delay doubles from one minute to an hour), CANCELLED (empty subject or body),
UNDELIVERABLE (the target has no usable address) or IN_DOUBT. A letter with files gets them
from the lead org's storage while it is composed; one whose files cannot be read fails like a
refused letter, and is never sent without them (mtt/attachments.py).

When is a send recorded? Before the provider takes the letter, or with it:
- SMTP: in the instant between the letter's last byte and the end-of-data mark that alone
  makes the server accept it (email/backends/smtp.py, `before_final`). A sender killed before
  that point leaves a claimed letter that the server dropped, sent again once the lease has
  expired; killed after it, the letter is recorded sent and the server has it. Nothing is lost
  or sent twice, but for a server refusing the letter after the mark, which is then settled
  as refused, and a death in the microseconds between the record and one socket write.
- Preview mailbox: the stored email and the record are one transaction.
- Provider APIs (Mailjet, Brevo, SES, HubSpot) take a letter in one HTTP request that cannot be
  split: the record follows the answer. A sender that dies between the request and the record
  leaves a letter the provider may have sent; when its lease expires it becomes IN_DOUBT and is
  never sent again (at most once), counted so that an operator sees it. Sending twice to an
  MEP is the worse failure: it discredits the campaign."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.backend import OrgEmailBackend, count_sent, get_org_email_backend
from proca_server.email.backends.base import EmailConfigError, EmailDeliveryError
from proca_server.email.backends.smtp import SmtpBackend
from proca_server.email.merge import merge_variables
from proca_server.email.message import EmailMessage
from proca_server.email.preview import PreviewBackend, store_preview_emails
from proca_server.email.supporter import srs_key
from proca_server.email.templates import ProviderTemplate, TemplateText
from proca_server.kit.time import utcnow
from proca_server.models import Mtt, Org
from proca_server.models.message import SendStatus
from proca_server.mtt import repository as repo
from proca_server.mtt.attachments import AttachmentFailed, Attachments, OverBudget
from proca_server.mtt.render import Letter, NothingToSend, TemplateMissing, compose, find_template
from proca_server.mtt.repository import Claim
from proca_server.processing.loader import load_actions_for_processing

log = logging.getLogger(__name__)

CLAIM_BATCH = 200
# letters sent over one SMTP connection, and connections at once
SMTP_CHUNK = 25
SMTP_CONNECTIONS = 8
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
# how long a campaign whose letters cannot be composed (no backend, no template) waits
BLOCKED_DELAY = timedelta(minutes=5)

COUNTED = {
    SendStatus.SENT: "sent",
    SendStatus.FAILED: "failed",
    SendStatus.CANCELLED: "cancelled",
    SendStatus.UNDELIVERABLE: "undeliverable",
    SendStatus.IN_DOUBT: "in_doubt",
}


def retry_delay(attempts: int) -> timedelta:
    """The wait before the next try of a letter tried `attempts` times."""
    delay: timedelta = RETRY_FIRST * 2 ** max(0, attempts - 1)
    return min(delay, RETRY_MAX)


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    by_status: Counter[str] = field(default_factory=Counter)


@dataclass
class _Item:
    letter: Letter
    claim: Claim
    to_activate: bool = False
    email: EmailMessage | None = None

    @property
    def counted(self) -> bool:
        return not self.letter.loaded.action.testing


async def _load(session: AsyncSession, claims: Sequence[Claim]) -> list[tuple[_Item, Mtt, Org]]:
    by_id = {c.id: c for c in claims}
    found = await repo.list_claimed_letters(session, by_id)
    loaded = {
        la.action.id: la
        for la in await load_actions_for_processing(
            session, sorted({m.action_id for m, *_ in found})
        )
    }
    addresses = await repo.first_usable_addresses(session, {t.id for _, _, t, _, _ in found})
    items = []
    for message, content, target, mtt, org in found:
        action = loaded.get(message.action_id)
        if action is None:
            continue
        address = addresses.get(target.id)
        letter = Letter(message, content, target, address.email if address else None, action)
        item = _Item(letter, by_id[message.id], to_activate=bool(address and address.to_activate))
        items.append((item, mtt, org))
    return items


class Sender:
    """Sends due letters; one per process (its settings and sessions)."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        engine = sessionmaker.kw.get("bind")
        assert isinstance(engine, AsyncEngine)
        self.engine = engine

    async def send_due(self, now: datetime | None = None, limit: int = CLAIM_BATCH) -> SendReport:
        """Claim and send one batch of due letters."""
        now = now or utcnow()
        report = SendReport()
        lease = timedelta(seconds=self.settings.mtt_claim_seconds)
        async with self.sessionmaker() as session:
            claims = await repo.claim_due_letters(session, now, lease, limit)
            await session.commit()
        report.claimed = len(claims)
        if not claims:
            return report
        async with self.sessionmaker() as session, Attachments(session) as files:
            groups = await self._compose(session, claims, now, report, files)
        for backend, items in groups:
            await self._deliver(backend, items, report)
        return report

    async def _compose(
        self,
        session: AsyncSession,
        claims: Sequence[Claim],
        now: datetime,
        report: SendReport,
        files: Attachments,
    ) -> list[tuple[OrgEmailBackend, list[_Item]]]:
        loaded = await _load(session, claims)
        by_campaign: dict[int, list[tuple[_Item, Mtt, Org]]] = defaultdict(list)
        for entry in loaded:
            by_campaign[entry[1].campaign_id].append(entry)
        missing = {c.id for c in claims} - {item.claim.id for item, _, _ in loaded}
        if missing:
            await self._settle_ids(session, missing, SendStatus.CANCELLED, "the action is gone")
        groups: list[tuple[OrgEmailBackend, list[_Item]]] = []
        settle: dict[tuple[SendStatus, str], list[_Item]] = defaultdict(list)
        release: list[_Item] = []
        unattached: list[tuple[_Item, AttachmentFailed]] = []
        next_batch: list[_Item] = []
        for entries in by_campaign.values():
            _, mtt, org = entries[0]
            try:
                backend = await get_org_email_backend(session, org, sessionmaker=self.sessionmaker)
                why = f"org {org.name} has no email backend"
            except EmailConfigError as exc:
                backend, why = None, str(exc)
            if backend is None:
                log.warning("mail to target of campaign %d blocked: %s", mtt.campaign_id, why)
                release += [item for item, _, _ in entries]
                continue
            exact = isinstance(backend.backend, SmtpBackend | PreviewBackend)
            templates: dict[str | None, TemplateText | ProviderTemplate | None] = {}
            tested: set[tuple[int, str | None]] = set()
            ready: list[_Item] = []
            for item, _, _ in entries:
                letter = item.letter
                if item.claim.reclaimed and not exact:
                    settle[(SendStatus.IN_DOUBT, "a sender stopped during its send")].append(item)
                    continue
                locale = letter.target.locale
                if letter.loaded.action.testing:
                    key = (letter.message.action_id, locale)
                    if key in tested:
                        settle[(SendStatus.CANCELLED, "test: one letter per locale")].append(item)
                        continue
                    tested.add(key)
                try:
                    if locale not in templates:
                        templates[locale] = await find_template(session, org, backend, mtt, locale)
                    variables = await merge_variables(session, letter.loaded, org.id)
                    item.email = await compose(
                        letter,
                        mtt,
                        org,
                        backend,
                        variables,
                        templates[locale],
                        srs_key=srs_key(self.settings),
                        srs_prefix=self.settings.email_srs_prefix,
                    )
                except TemplateMissing as exc:
                    log.warning("mail to target of campaign %d waits: %s", mtt.campaign_id, exc)
                    release.append(item)
                    continue
                except NothingToSend as exc:
                    status = (
                        SendStatus.UNDELIVERABLE
                        if letter.target_email is None and not letter.loaded.action.testing
                        else SendStatus.CANCELLED
                    )
                    if status is SendStatus.CANCELLED:
                        log.warning(
                            "letter %d of campaign %d cancelled: %s",
                            letter.message.id,
                            mtt.campaign_id,
                            exc.reason,
                        )
                    settle[(status, exc.reason)].append(item)
                    continue
                if letter.message.files and item.email is not None:
                    # a letter goes with all its files or not at all (mtt/attachments.py)
                    try:
                        attached = await files.for_letter(org, letter.message.files)
                    except OverBudget:
                        next_batch.append(item)
                        continue
                    except AttachmentFailed as exc:
                        unattached.append((item, exc))
                        continue
                    item.email = replace(item.email, attachments=attached)
                ready.append(item)
            if ready:
                groups.append((backend, ready))
        for (status, reason), items in settle.items():
            await self._settle(session, items, status, reason, now)
            report.by_status[status.name.lower()] += len(items)
        for item, failure in unattached:
            log.warning("letter %d not sent: its files: %s", item.letter.message.id, failure.reason)
            again = await self._fail_in(session, item, failure.reason, failure.retryable, False)
            report.retried += int(again)
        if release:
            await self._release(session, release, now + BLOCKED_DELAY)
        if next_batch:
            # the batch holds enough files: these go with the next one
            await self._release(session, next_batch, now)
        await session.commit()
        return groups

    async def _deliver(
        self, backend: OrgEmailBackend, items: list[_Item], report: SendReport
    ) -> None:
        inner = backend.backend
        size = SMTP_CHUNK if isinstance(inner, SmtpBackend) else max(1, backend.batch_size)
        chunks = [items[start : start + size] for start in range(0, len(items), size)]
        sent: list[_Item] = []
        if isinstance(inner, SmtpBackend):
            # a few connections at once: a letter's time is mostly waiting (the server, the
            # record's commit), which they overlap
            gate = asyncio.Semaphore(SMTP_CONNECTIONS)

            async def one(chunk: list[_Item]) -> None:
                async with gate:
                    sent.extend(await self._deliver_chunk(backend, chunk, report))

            await asyncio.gather(*(one(chunk) for chunk in chunks))
        else:
            for chunk in chunks:
                sent.extend(await self._deliver_chunk(backend, chunk, report))
        # the first letter to an address makes it active (later ones find it so)
        used = {
            i.letter.target.id: i.letter.target_email for i in sent if i.counted and i.to_activate
        }
        if used:
            async with self.sessionmaker() as session:
                await repo.activate_addresses(
                    session, {t: a for t, a in used.items() if a is not None}
                )
                await session.commit()

    async def _deliver_chunk(
        self, backend: OrgEmailBackend, chunk: list[_Item], report: SendReport
    ) -> list[_Item]:
        """Send one provider batch (one SMTP connection); the letters sent."""
        inner = backend.backend
        messages = [item.email for item in chunk if item.email is not None]
        if isinstance(inner, PreviewBackend):
            async with self.sessionmaker() as session:
                await store_preview_emails(session, messages)
                await self._settle(session, chunk, SendStatus.SENT, None, utcnow())
                await session.commit()
            count_sent(backend.name, len(messages))
            report.sent += len(chunk)
            return chunk
        recorded: set[int] = set()

        async def before_final(index: int) -> None:
            item = chunk[index]
            target = item.letter.target.id if item.counted else None
            await repo.record_sent(self.engine, item.letter.message.id, target, utcnow())
            recorded.add(index)

        sent: list[_Item] = []
        # OrgEmailBackend.deliver counts what it sends (proca_emails_sent), SMTP is counted here
        smtp = isinstance(inner, SmtpBackend)
        try:
            if isinstance(inner, SmtpBackend):
                await inner.deliver(messages, before_final=before_final)
            else:
                await backend.deliver(messages)
        except EmailDeliveryError as exc:
            failed = {f.index: f for f in exc.failures}
            late: list[_Item] = []
            for index, item in enumerate(chunk):
                failure = failed.get(index)
                if (exc.failures and failure is None) or (not exc.failures and index in recorded):
                    # accepted; or the server had the whole letter when the connection failed
                    sent.append(item)
                    if index not in recorded:
                        late.append(item)
                    continue
                retryable = failure.retryable if failure is not None else exc.retryable
                reason = failure.reason if failure is not None else exc.reason
                report.retried += int(await self._fail(item, reason, retryable, index in recorded))
            await self._settle_sent(late)
            if smtp:
                count_sent(backend.name, len(sent))
            report.sent += len(sent)
            log.warning(
                "%s: %d letters not sent: %s", backend.name, len(failed) or len(chunk), exc.reason
            )
            return sent
        except Exception:
            log.exception("%s: letters not sent", backend.name)
            for index, item in enumerate(chunk):
                if index in recorded:
                    sent.append(item)
                else:
                    report.retried += int(await self._fail(item, "unexpected error", True, False))
            if smtp:
                count_sent(backend.name, len(sent))
            report.sent += len(sent)
            return sent
        if smtp:
            count_sent(backend.name, len(messages))
        await self._settle_sent([item for index, item in enumerate(chunk) if index not in recorded])
        report.sent += len(chunk)
        return chunk

    async def _settle_sent(self, items: Sequence[_Item]) -> None:
        if items:
            async with self.sessionmaker() as session:
                await self._settle(session, items, SendStatus.SENT, None, utcnow())
                await session.commit()

    async def _settle_one(self, item: _Item, status: SendStatus, reason: str | None) -> None:
        async with self.sessionmaker() as session:
            await self._settle(session, [item], status, reason, utcnow())
            await session.commit()

    async def _fail(self, item: _Item, reason: str, retryable: bool, was_sent: bool) -> bool:
        """Settle a letter the provider refused; True when it will be tried again."""
        async with self.sessionmaker() as session:
            again = await self._fail_in(session, item, reason, retryable, was_sent)
            await session.commit()
        return again

    async def _fail_in(
        self, session: AsyncSession, item: _Item, reason: str, retryable: bool, was_sent: bool
    ) -> bool:
        again = retryable and item.claim.attempts < self.settings.mtt_max_attempts
        reason = reason[:255]
        if was_sent:
            await self._unsettle_sent(session, item)
        if again:
            later = utcnow() + retry_delay(item.claim.attempts)
            await repo.settle_letters(
                session,
                [item.letter.message.id],
                {
                    "send_status": SendStatus.PENDING,
                    "claimed_until": None,
                    "scheduled_at": later,
                    "error": reason,
                },
                only_pending=False,
            )
        else:
            await self._settle(
                session, [item], SendStatus.FAILED, reason, utcnow(), only_pending=False
            )
        return again

    async def _unsettle_sent(self, session: AsyncSession, item: _Item) -> None:
        await repo.settle_letters(
            session,
            [item.letter.message.id],
            {"send_status": SendStatus.PENDING, "sent": False, "sent_at": None},
            only_pending=False,
        )
        if item.counted:
            await repo.add_to_counts(session, "sent", {item.letter.target.id: -1})

    async def _settle(
        self,
        session: AsyncSession,
        items: Sequence[_Item],
        status: SendStatus,
        reason: str | None,
        now: datetime,
        *,
        only_pending: bool = True,
    ) -> None:
        if not items:
            return
        values: dict[str, Any] = {"send_status": status, "claimed_until": None, "error": reason}
        if status is SendStatus.SENT:
            values.update(sent=True, sent_at=now, error=None)
        changed = await repo.settle_letters(
            session, [i.letter.message.id for i in items], values, only_pending=only_pending
        )
        column = COUNTED.get(status)
        if column:
            by_target = Counter(
                i.letter.target.id for i in items if i.counted and i.letter.message.id in changed
            )
            await repo.add_to_counts(session, column, by_target)

    async def _settle_ids(
        self, session: AsyncSession, ids: set[int], status: SendStatus, reason: str
    ) -> None:
        await repo.settle_letters(
            session, ids, {"send_status": status, "claimed_until": None, "error": reason}
        )

    async def _release(
        self, session: AsyncSession, items: Sequence[_Item], later: datetime
    ) -> None:
        """Give back letters that cannot be composed yet, to be tried later (not a try)."""
        await repo.release_letters(session, [i.letter.message.id for i in items], later)
