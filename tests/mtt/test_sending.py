"""Planning and sending of mail-to-target letters (docs/mail-to-target.md), through the
preview mailbox and a real SMTP server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models import PreviewEmail
from proca_server.models.enums import EmailStatus
from proca_server.models.message import SendStatus
from proca_server.models.mtt import MttTargetCount
from proca_server.mtt.planner import plan
from proca_server.mtt.sender import Sender
from tests.email.conftest import SmtpServer
from tests.mtt.conftest import bounce, letters, make_mtt_world, write_letters
from tests.mtt.sending import mtt_settings, run_until_idle


async def previews(session: AsyncSession) -> list[PreviewEmail]:
    await session.rollback()
    return list((await session.scalars(select(PreviewEmail).order_by(PreviewEmail.id))).all())


async def test_each_target_receives_each_letter_once_with_its_own_name(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    world = await make_mtt_world(session, end=utcnow() + timedelta(seconds=30))
    for name in ("Ann", "Bob", "Cy", "Di"):
        await write_letters(session, world, first_name=name)
    await run_until_idle(mtt_settings(settings), sessionmaker)
    mails = await previews(session)
    assert len(mails) == 12
    for target in world.targets:
        mine = [m for m in mails if world.addresses[target.id] in m.to_address]
        assert len(mine) == 4
        assert {m.subject for m in mine} == {f"Dear {target.name}"}
        assert all(f"{target.name}." in (m.text or "") for m in mine)
        assert all(m.headers["X-Proca-Custom-Id"].startswith("mtt:") for m in mine)
    assert {m.send_status for m in await letters(session)} == {SendStatus.SENT}
    counts = (await session.scalars(select(MttTargetCount))).all()
    assert sorted((c.queued, c.planned, c.sent) for c in counts) == [(4, 4, 4)] * 3


async def test_a_second_letter_of_the_same_person_to_a_target_is_a_duplicate(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    world = await make_mtt_world(session, targets=1, end=utcnow() + timedelta(seconds=30))
    person = b"same-person-fingerprint-00000000"
    first = await write_letters(session, world, fingerprint=person)
    second = await write_letters(session, world, fingerprint=person)
    await run_until_idle(mtt_settings(settings), sessionmaker)
    by_id = {m.id: m for m in await letters(session)}
    assert (by_id[first[0]].dupe_rank, by_id[first[0]].send_status) == (0, SendStatus.SENT)
    assert (by_id[second[0]].dupe_rank, by_id[second[0]].send_status) == (
        1,
        SendStatus.DUPLICATE,
    )
    assert len(await previews(session)) == 1


async def test_a_test_letter_reaches_only_the_supporter_and_the_test_address(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    world = await make_mtt_world(
        session,
        targets=3,
        test_email="tester@org.example",
        end=utcnow() + timedelta(days=30),
    )
    await write_letters(session, world, email="me@people.example", testing=True)
    await run_until_idle(mtt_settings(settings), sessionmaker)
    mails = await previews(session)
    assert len(mails) == 1  # one per locale: the three targets share one
    (mail,) = mails
    assert "me@people.example" in mail.to_address
    assert mail.headers.get("Cc") == "tester@org.example"
    assert mail.subject.startswith("[TEST] Dear Member")
    assert not any(a in mail.to_address for a in world.addresses.values())
    counts = (await session.scalars(select(MttTargetCount))).all()
    assert all(c.sent == 0 for c in counts)


async def test_letters_to_a_bounced_target_are_undeliverable_and_counted(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    world = await make_mtt_world(session, targets=2, end=utcnow() + timedelta(seconds=30))
    await bounce(session, world, world.targets[0])
    await write_letters(session, world)
    await write_letters(session, world)
    await run_until_idle(mtt_settings(settings), sessionmaker)
    mails = await previews(session)
    assert len(mails) == 2
    assert all(world.addresses[world.targets[1].id] in m.to_address for m in mails)
    by_target = {c.target_id: c for c in (await session.scalars(select(MttTargetCount))).all()}
    assert by_target[world.targets[0].id].undeliverable == 2
    assert by_target[world.targets[0].id].sent == 0
    assert by_target[world.targets[1].id].sent == 2


async def test_an_empty_letter_is_cancelled_with_a_reason(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    world = await make_mtt_world(session, targets=1, end=utcnow() + timedelta(seconds=30))
    await write_letters(session, world, body="  ")
    await run_until_idle(mtt_settings(settings), sessionmaker)
    (letter,) = await letters(session)
    assert (letter.send_status, letter.error, letter.sent) == (
        SendStatus.CANCELLED,
        "empty body",
        False,
    )
    assert await previews(session) == []


async def test_a_campaign_without_email_backend_sends_nothing_and_keeps_its_letters(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = await make_mtt_world(
        session, targets=1, service=None, end=utcnow() + timedelta(seconds=30)
    )
    await write_letters(session, world)
    await run_until_idle(mtt_settings(settings), sessionmaker)
    (letter,) = await letters(session)
    assert letter.send_status is SendStatus.PENDING
    assert "has no email backend" in caplog.text


async def test_drip_spreads_letters_over_the_window(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    now = utcnow()
    world = await make_mtt_world(
        session, targets=1, start=now - timedelta(hours=1), end=now + timedelta(hours=1)
    )
    for _ in range(20):
        await write_letters(session, world)
    async with sessionmaker() as s:
        report = await plan(s, now, cycle_seconds=60, per_chunk=99)
        await s.commit()
    # half of the window has passed: about half of the letters are due
    assert report.ranked == 20
    assert 9 <= report.planned <= 12
    async with sessionmaker() as s:
        again = await plan(s, now, cycle_seconds=60, per_chunk=99)
        await s.commit()
    assert again.planned == 0  # the campaign's plan is leased until the next cycle


async def test_hourly_mode_caps_each_target_and_spreads_its_letters(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(minutes=1)
    world = await make_mtt_world(
        session,
        targets=1,
        drip=False,
        max_emails_per_hour=10,
        start=now - timedelta(days=1),
        end=now + timedelta(days=1),
        timezone="Etc/UTC",
    )
    for _ in range(12):
        await write_letters(session, world)
    async with sessionmaker() as s:
        report = await plan(s, now, cycle_seconds=60, per_chunk=99)
        await s.commit()
    from proca_server.mtt.schedule import hourly_cap

    cap = hourly_cap(10, now, "Etc/UTC")
    assert report.planned == cap
    times = sorted(m.scheduled_at for m in await letters(session) if m.scheduled_at)
    assert len(times) == cap
    assert all(now <= t <= now + timedelta(minutes=55) for t in times)


async def test_two_senders_at_once_send_each_letter_once(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    world = await make_mtt_world(session, targets=3, end=utcnow() + timedelta(seconds=30))
    for _ in range(30):
        await write_letters(session, world)
    tuned = mtt_settings(settings)
    async with sessionmaker() as s:
        await plan(s, utcnow(), cycle_seconds=60, per_chunk=999)
        await s.commit()
    one, two = Sender(tuned, sessionmaker), Sender(tuned, sessionmaker)
    for _ in range(40):
        reports = await asyncio.gather(one.send_due(limit=7), two.send_due(limit=7))
        if not any(r.claimed for r in reports):
            break
    mails = await previews(session)
    ids = [m.headers["X-Proca-Custom-Id"] for m in mails]
    assert len(ids) == 90
    assert len(set(ids)) == 90


async def test_smtp_letters_carry_sender_rewriting_and_copies(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtps_server: SmtpServer,
    trust_test_ca: None,
) -> None:
    world = await make_mtt_world(
        session,
        targets=2,
        smtp=smtps_server,
        cc_contacts=["watch@org.example"],
        cc_sender=True,
        end=utcnow() + timedelta(seconds=30),
    )
    await write_letters(session, world, first_name="Ann", email="ann@people.example")
    await run_until_idle(mtt_settings(settings), sessionmaker)
    received = smtps_server.handler.received
    assert len(received) == 2
    for item in received:
        assert set(item.rcpt_tos) >= {"watch@org.example", "ann@people.example"}
        assert "Ann Writer" in str(item.message["From"])
        assert "SRS0=" in str(item.message["From"])  # rewritten onto the org's domain
        assert str(item.message["Reply-To"]) == "Ann Writer <ann@people.example>"
    (first, second) = sorted(str(r.message["To"]) for r in received)
    assert "Member 0" in first and "Member 1" in second
    statuses = {e for e in (await session.scalars(select(MttTargetCount.sent))).all()}
    assert statuses == {1}
    from proca_server.models import TargetEmail

    emails = (await session.scalars(select(TargetEmail))).all()
    assert {e.email_status for e in emails} == {EmailStatus.ACTIVE}


async def test_campaign_gauges_show_the_letters_by_state(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    from prometheus_client import REGISTRY

    from proca_server.mtt.loop import refresh_gauges

    world = await make_mtt_world(session, targets=2, end=utcnow() + timedelta(seconds=30))
    await bounce(session, world, world.targets[0])
    await write_letters(session, world)
    await run_until_idle(mtt_settings(settings), sessionmaker)
    await refresh_gauges(sessionmaker)
    name = world.campaign.name

    def gauge(state: str) -> float | None:
        return REGISTRY.get_sample_value(
            "proca_mtt_campaign_letters", {"campaign": name, "state": state}
        )

    assert (gauge("sent"), gauge("undeliverable"), gauge("pending")) == (1.0, 1.0, 0.0)


async def test_sent_test_letters_are_deleted_after_a_day_and_real_ones_kept(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    from proca_server.mtt.planner import delete_old_test_letters

    world = await make_mtt_world(
        session, targets=2, test_email="t@org.example", end=utcnow() + timedelta(seconds=30)
    )
    await write_letters(session, world, testing=True)
    await write_letters(session, world)
    await run_until_idle(mtt_settings(settings), sessionmaker)
    assert len(await letters(session)) == 4
    async with sessionmaker() as s:
        assert await delete_old_test_letters(s, utcnow()) == 0  # too recent
        assert await delete_old_test_letters(s, utcnow() + timedelta(days=1, minutes=1)) == 2
        await s.commit()
    left = await letters(session)
    assert len(left) == 2 and {m.send_status for m in left} == {SendStatus.SENT}


async def test_a_target_left_without_any_address_does_not_stop_the_others(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    from sqlalchemy import delete

    from proca_server.models import TargetEmail

    world = await make_mtt_world(session, targets=2, end=utcnow() + timedelta(seconds=30))
    await write_letters(session, world)
    # the campaign re-upserted the target without its bounced address
    await session.execute(delete(TargetEmail).where(TargetEmail.target_id == world.targets[0].id))
    await session.commit()
    await run_until_idle(mtt_settings(settings), sessionmaker)
    by_target = {m.target_id: m for m in await letters(session)}
    assert by_target[world.targets[0].id].send_status is SendStatus.UNDELIVERABLE
    assert by_target[world.targets[1].id].send_status is SendStatus.SENT


async def test_the_campaign_template_of_each_target_locale_renders_the_letter(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    from proca_server.models import EmailTemplate

    world = await make_mtt_world(
        session,
        targets=2,
        locales=("fr", "de"),
        message_template="letter",
        end=utcnow() + timedelta(seconds=30),
    )
    for locale, greeting in (("fr", "Madame, Monsieur"), ("en", "Dear")):
        session.add(
            EmailTemplate(
                org_id=world.org.id,
                name="letter",
                locale=locale,
                subject=f"[{locale}] {{{{subject}}}}",
                html=f"<p>{greeting} {{{{target.name}}}},</p>" + "{{{body}}}<p>{{firstName}}</p>",
            )
        )
    await session.commit()
    await write_letters(session, world, first_name="Ann", body="Vote <yes> please")
    await run_until_idle(mtt_settings(settings), sessionmaker)
    mails = {m.subject: m for m in await previews(session)}
    # French for the French target; the German one has no template of its own: English
    french = mails["[fr] Dear Member 0"]
    assert "<p>Madame, Monsieur Member 0,</p><p>Vote &lt;yes&gt; please</p><p>Ann</p>" in (
        french.html or ""
    )
    other = mails["[en] Dear Member 1"]
    assert "<p>Dear Member 1,</p>" in (other.html or "")
