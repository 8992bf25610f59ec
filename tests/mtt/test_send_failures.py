"""What happens to a letter when sending goes wrong: refusals, retries, a sender dying
before or during its send."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models import Message
from proca_server.models.message import SendStatus
from proca_server.models.mtt import MttTargetCount
from proca_server.mtt import repository
from proca_server.mtt.sender import Sender, retry_delay
from tests.email.conftest import SmtpHandler, SmtpServer, TlsFiles, run_smtp_server
from tests.mtt.conftest import letters, make_mtt_world, write_letters
from tests.mtt.sending import make_due, plan_now


class RefusingHandler(SmtpHandler):
    """Answers every letter's end of data with `reply`."""

    reply = "451 4.3.0 try again later"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reply.startswith("250"):
            return await super().handle_DATA(server, session, envelope)
        return self.reply


@pytest.fixture
def refusing_server(tls_files: TlsFiles) -> Iterator[SmtpServer]:
    yield from run_smtp_server(tls_files, implicit=True, handler=RefusingHandler())


async def test_a_temporary_refusal_is_tried_again_later_then_failed_and_counted(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    refusing_server: SmtpServer,
    trust_test_ca: None,
) -> None:
    world = await make_mtt_world(
        session, targets=1, smtp=refusing_server, end=utcnow() + timedelta(seconds=30)
    )
    await write_letters(session, world)
    await plan_now(sessionmaker)
    sender = Sender(settings.model_copy(update={"mtt_max_attempts": 3}), sessionmaker)
    before = utcnow()
    report = await sender.send_due()
    assert (report.claimed, report.sent, report.retried) == (1, 0, 1)
    (letter,) = await letters(session)
    assert letter.send_status is SendStatus.PENDING and not letter.sent
    assert letter.attempts == 1
    assert letter.error is not None and "451" in letter.error
    assert letter.scheduled_at is not None
    assert letter.scheduled_at >= before + retry_delay(1) - timedelta(seconds=2)
    assert (await sender.send_due()).claimed == 0  # not due before its next try
    for _ in range(2):
        await make_due(session)
        await sender.send_due()
    (letter,) = await letters(session)
    assert (letter.send_status, letter.attempts, letter.sent) == (SendStatus.FAILED, 3, False)
    (count,) = (await session.scalars(select(MttTargetCount))).all()
    assert (count.sent, count.failed) == (0, 1)
    assert refusing_server.handler.received == []


async def test_a_permanent_refusal_fails_at_once(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    refusing_server: SmtpServer,
    trust_test_ca: None,
) -> None:
    RefusingHandler.reply = "554 5.7.1 rejected"
    try:
        world = await make_mtt_world(
            session, targets=1, smtp=refusing_server, end=utcnow() + timedelta(seconds=30)
        )
        await write_letters(session, world)
        await plan_now(sessionmaker)
        report = await Sender(settings, sessionmaker).send_due()
    finally:
        RefusingHandler.reply = "451 4.3.0 try again later"
    assert (report.sent, report.retried) == (0, 0)
    (letter,) = await letters(session)
    assert (letter.send_status, letter.sent) == (SendStatus.FAILED, False)
    assert letter.error is not None and "554" in letter.error


class Killed(BaseException):
    """The process dying (a BaseException: nothing in the sender catches it)."""


async def die(*_: Any, **__: Any) -> None:
    """Where the send would be recorded, the process dies: the server never gets the end mark."""
    raise Killed


async def test_a_sender_dying_before_the_record_loses_nothing_and_sends_nothing_twice(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtps_server: SmtpServer,
    trust_test_ca: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await make_mtt_world(
        session, targets=1, smtp=smtps_server, end=utcnow() + timedelta(seconds=30)
    )
    await write_letters(session, world)
    await plan_now(sessionmaker)
    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(repository, "record_sent", die)
        await Sender(settings, sessionmaker).send_due()
    assert smtps_server.handler.received == []  # no end mark: the server dropped it
    (letter,) = await letters(session)
    assert letter.send_status is SendStatus.PENDING and letter.claimed_until is not None
    sender = Sender(settings, sessionmaker)
    assert (await sender.send_due()).claimed == 0  # still held by the dead sender
    later = letter.claimed_until + timedelta(seconds=1)
    report = await sender.send_due(now=later)
    assert (report.claimed, report.sent) == (1, 1)
    assert len(smtps_server.handler.received) == 1
    (letter,) = await letters(session)
    assert (letter.send_status, letter.attempts) == (SendStatus.SENT, 2)


async def test_a_letter_whose_provider_call_was_cut_short_is_in_doubt_never_resent(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    world = await make_mtt_world(
        session, targets=1, service="mailjet", end=utcnow() + timedelta(seconds=30)
    )
    (message_id,) = await write_letters(session, world)
    await plan_now(sessionmaker)
    # a sender claimed it, called Mailjet and died before recording the answer
    gone = utcnow() - timedelta(seconds=5)
    await session.execute(
        update(Message).where(Message.id == message_id).values(claimed_until=gone, attempts=1)
    )
    await session.commit()
    report = await Sender(settings, sessionmaker).send_due()
    assert report.by_status["in_doubt"] == 1 and report.sent == 0
    (letter,) = await letters(session)
    assert (letter.send_status, letter.sent) == (SendStatus.IN_DOUBT, False)
    (count,) = (await session.scalars(select(MttTargetCount))).all()
    assert count.in_doubt == 1
