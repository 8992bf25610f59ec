"""Letters go with their files, read from the lead org's storage backend (a local server that
speaks the Supabase Storage API), or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models import Message, PreviewEmail, Service
from proca_server.models.message import SendStatus
from proca_server.models.mtt import MttTargetCount
from proca_server.mtt import attachments
from proca_server.mtt.sender import Sender
from proca_server.service.storage import StorageError, SupabaseStorage
from tests.email.conftest import SmtpServer
from tests.mtt.conftest import MttWorld, letters, make_mtt_world, write_letters
from tests.mtt.sending import make_due, plan_now
from tests.mtt.storage_server import FakeStorage, storage_server

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n" + b"\x00\xff binary \r\n." * 500


@pytest.fixture
async def storage() -> AsyncIterator[FakeStorage]:
    async with storage_server() as server:
        yield server


async def give_storage(session: AsyncSession, world: MttWorld, storage: FakeStorage) -> None:
    service = Service(name="supabase", host=storage.url, password=storage.key, org_id=world.org.id)
    session.add(service)
    await session.flush()
    world.org.storage_backend_id = service.id
    await session.commit()


async def with_files(session: AsyncSession, ids: list[int], files: list[str]) -> None:
    await session.execute(update(Message).where(Message.id.in_(ids)).values(files=files))
    await session.commit()


async def test_a_letter_arrives_with_its_files_each_downloaded_once(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtps_server: SmtpServer,
    trust_test_ca: None,
    storage: FakeStorage,
) -> None:
    world = await make_mtt_world(
        session, targets=2, smtp=smtps_server, end=utcnow() + timedelta(seconds=30)
    )
    await give_storage(session, world, storage)
    # the widget uploads the supporter's files, then sends their keys with the action
    await storage.upload("letters/2024/photo.png", PNG, "image/png")
    await storage.upload("letters/2024/report(1).pdf", PDF, "application/pdf")
    ids = await write_letters(
        session, world, body="Dear {{target.name}}, see {{#files}}{{.}} {{/files}}"
    )
    await with_files(session, ids, ["letters/2024/photo.png", "letters/2024/report(1).pdf"])
    await plan_now(sessionmaker)
    report = await Sender(settings, sessionmaker).send_due()
    assert (report.claimed, report.sent) == (2, 2)
    received = smtps_server.handler.received
    assert len(received) == 2
    for item in received:
        message = item.message
        assert message.get_content_type() == "multipart/mixed"
        body = message.get_body(preferencelist=("plain",))
        assert body is not None and "see photo.png report(1).pdf" in body.get_content()
        parts = list(message.iter_attachments())
        assert [p.get_filename() for p in parts] == ["photo.png", "report(1).pdf"]
        assert [p.get_content_type() for p in parts] == ["image/png", "application/pdf"]
        assert [p["Content-ID"] for p in parts] == ["<file1>", "<file2>"]
        assert [p.get_content_disposition() for p in parts] == ["inline", "attachment"]
        assert [p.get_payload(decode=True) for p in parts] == [PNG, PDF]
    # one action wrote to both targets: its files were read once for the batch
    assert sorted(storage.downloads) == ["letters/2024/photo.png", "letters/2024/report(1).pdf"]
    assert all(letter.send_status is SendStatus.SENT for letter in await letters(session))


async def test_a_missing_file_fails_the_letter_after_its_tries_and_nothing_is_sent(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtps_server: SmtpServer,
    trust_test_ca: None,
    storage: FakeStorage,
) -> None:
    world = await make_mtt_world(
        session, targets=1, smtp=smtps_server, end=utcnow() + timedelta(seconds=30)
    )
    await give_storage(session, world, storage)
    await storage.upload("letters/here.png", PNG, "image/png")
    ids = await write_letters(session, world)
    await with_files(session, ids, ["letters/here.png", "letters/gone.pdf"])
    await plan_now(sessionmaker)
    sender = Sender(settings.model_copy(update={"mtt_max_attempts": 2}), sessionmaker)
    report = await sender.send_due()
    assert (report.claimed, report.sent, report.retried) == (1, 0, 1)
    (letter,) = await letters(session)
    assert (letter.send_status, letter.attempts, letter.sent) == (SendStatus.PENDING, 1, False)
    assert letter.error == "file 2 of 2 (bucket 'letters'): not found (HTTP 400)"
    await make_due(session)
    report = await sender.send_due()
    assert (report.claimed, report.sent, report.retried) == (1, 0, 0)
    (letter,) = await letters(session)
    assert (letter.send_status, letter.attempts, letter.sent) == (SendStatus.FAILED, 2, False)
    assert letter.error == "file 2 of 2 (bucket 'letters'): not found (HTTP 400)"
    (count,) = (await session.scalars(select(MttTargetCount))).all()
    assert (count.sent, count.failed) == (0, 1)
    assert smtps_server.handler.received == []


async def test_a_letter_whose_org_lost_its_storage_backend_is_not_sent_without_its_files(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    world = await make_mtt_world(session, targets=1, end=utcnow() + timedelta(seconds=30))
    ids = await write_letters(session, world)
    await with_files(session, ids, ["letters/photo.png"])
    await plan_now(sessionmaker)
    sender = Sender(settings.model_copy(update={"mtt_max_attempts": 1}), sessionmaker)
    report = await sender.send_due()
    assert (report.claimed, report.sent, report.retried) == (1, 0, 0)
    (letter,) = await letters(session)
    assert letter.send_status is SendStatus.FAILED
    assert letter.error is not None and "has no storage backend" in letter.error
    assert (await session.scalars(select(PreviewEmail))).all() == []


async def test_files_over_the_letter_limit_fail_at_once(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    storage: FakeStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(attachments, "LETTER_LIMIT", len(PNG) + 10)
    world = await make_mtt_world(session, targets=1, end=utcnow() + timedelta(seconds=30))
    await give_storage(session, world, storage)
    await storage.upload("letters/a.png", PNG, "image/png")
    await storage.upload("letters/b.png", PNG, "image/png")
    ids = await write_letters(session, world)
    await with_files(session, ids, ["letters/a.png", "letters/b.png"])
    await plan_now(sessionmaker)
    report = await Sender(settings, sessionmaker).send_due()
    assert (report.sent, report.retried) == (0, 0)
    (letter,) = await letters(session)
    assert letter.send_status is SendStatus.FAILED
    assert letter.error is not None and "too large" in letter.error


async def test_letters_past_the_batch_budget_of_files_go_with_the_next_batch(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    storage: FakeStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(attachments, "BATCH_BUDGET", len(PNG))
    world = await make_mtt_world(session, targets=1, end=utcnow() + timedelta(seconds=30))
    await give_storage(session, world, storage)
    for name in ("a", "b"):
        await storage.upload(f"letters/{name}.png", PNG, "image/png")
        ids = await write_letters(session, world)
        await with_files(session, ids, [f"letters/{name}.png"])
    await plan_now(sessionmaker)
    sender = Sender(settings, sessionmaker)
    first = await sender.send_due()
    assert (first.claimed, first.sent) == (2, 1)
    second = await sender.send_due()
    assert (second.claimed, second.sent) == (1, 1)
    found = await letters(session)
    assert [(m.send_status, m.attempts) for m in found] == [(SendStatus.SENT, 1)] * 2
    stored = (await session.scalars(select(PreviewEmail).order_by(PreviewEmail.id))).all()
    assert [e.headers["X-Proca-Attachments"] for e in stored] == [
        f"{n}.png (image/png, {len(PNG)} bytes)" for n in ("a", "b")
    ]


async def test_the_storage_client_refuses_what_it_must_and_names_no_key(
    storage: FakeStorage,
) -> None:
    await storage.upload("letters/a.png", PNG, "image/png")
    client = SupabaseStorage(storage.url, storage.key)
    found = await client.download("letters/a.png", limit=len(PNG))
    assert (found.content, found.content_type, found.filename) == (PNG, "image/png", "a.png")
    with pytest.raises(StorageError) as too_large:
        await client.download("letters/a.png", limit=len(PNG) - 1)
    assert (too_large.value.kind, too_large.value.retryable) == ("too_large", False)
    wrong = SupabaseStorage(storage.url + "/", "not-the-key")
    with pytest.raises(StorageError) as refused:
        await wrong.download("letters/a.png", limit=len(PNG))
    assert (refused.value.kind, refused.value.retryable) == ("not_authenticated", True)
    assert "not-the-key" not in refused.value.reason
    before = len(storage.requests)
    # a key that would climb out of the object API never becomes a request
    for key in ("letters/../../auth/v1/admin/users", "letters", "letters//a.png", "./a.png"):
        with pytest.raises(StorageError) as invalid:
            await client.download(key, limit=100)
        assert invalid.value.kind == "invalid_key"
    only = SupabaseStorage(storage.url, storage.key, bucket="private")
    with pytest.raises(StorageError) as elsewhere:
        await only.download("letters/a.png", limit=len(PNG))
    assert elsewhere.value.kind == "invalid_key"
    assert len(storage.requests) == before
    with pytest.raises(StorageError) as unreachable:
        await SupabaseStorage("http://127.0.0.1:9", storage.key).download("a/b", limit=1)
    assert (unreachable.value.kind, unreachable.value.retryable) == ("unavailable", True)
