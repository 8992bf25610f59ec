"""Mail to target end to end: letters written to the database are planned and sent by real
`proca-server worker` processes to a real SMTP server (implicit TLS, AUTH), while processes are
killed (-9) and run side by side. Every letter must arrive exactly once: the sender records an
SMTP letter in the instant before the end-of-data mark (mtt/sender.py), so a letter claimed by
a killed worker and not recorded was dropped by the server and is sent again once its lease
(MTT_CLAIM_SECONDS) has expired."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage as MimeMessage
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.kit.time import utcnow
from proca_server.models.message import SendStatus
from proca_server.models.mtt import MttTargetCount
from tests.email.conftest import Received, SmtpHandler, SmtpServer, TlsFiles, run_smtp_server
from tests.mtt.conftest import MttWorld, letters, make_mtt_world, write_letters
from tests.served import logged

pytestmark = pytest.mark.slow  # worker processes, one of them killed

CLAIM_SECONDS = 5
WAIT = 45.0
TEST_EMAIL = "tester@org.example"
SIGNERS = ("Ann", "Bob", "Cy", "Di")
_SENT_LOG = re.compile(r"sent (mtt:\d+) through SMTP")


@dataclass
class SlowHandler(SmtpHandler):
    """Takes `delay` seconds to answer the end-of-data mark, the letter already kept: the
    server has it from the mark on, whether or not the client lives to read the answer."""

    delay: float = 0.0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if self.delay:
            await asyncio.sleep(self.delay)
        return answer


@dataclass
class Mailbox:
    server: SmtpServer
    handler: SlowHandler

    def mails(self) -> list[Received]:
        # appended to by the server's thread
        return list(self.handler.received)

    def holds(self, count: int) -> bool:
        return len(self.handler.received) >= count

    def custom_ids(self) -> Counter[str]:
        return Counter(str(r.message["X-Proca-Custom-Id"]) for r in self.mails())

    def to(self, address: str) -> list[Received]:
        return [r for r in self.mails() if address in r.rcpt_tos]


@pytest.fixture
def mailbox(tls_files: TlsFiles) -> Iterator[Mailbox]:
    handler = SlowHandler()
    for server in run_smtp_server(tls_files, implicit=True, handler=handler):
        yield Mailbox(server, handler)


@dataclass
class Worker:
    proc: asyncio.subprocess.Process
    log: Path

    def running(self) -> bool:
        return "worker running" in self.log.read_text(errors="replace")

    def sent_ids(self) -> list[str]:
        return _SENT_LOG.findall(self.log.read_text(errors="replace"))


@dataclass
class Workers:
    """`proca-server worker` processes on the test's database; all stopped on exit."""

    env: dict[str, str]
    folder: Path
    started: list[Worker] = field(default_factory=list)

    async def start(self) -> Worker:
        log = self.folder / f"worker-{len(self.started) + 1}.log"
        proc = await logged("worker", "--no-workers", env=self.env, log=log)
        worker = Worker(proc, log)
        self.started.append(worker)
        return worker

    async def kill(self, worker: Worker) -> None:
        worker.proc.kill()  # -9: no cleanup of any kind
        await worker.proc.wait()

    async def stop(self, worker: Worker) -> None:
        if worker.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            worker.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.proc.wait(), 10)
        except TimeoutError:
            worker.proc.kill()
            await worker.proc.wait()

    async def stop_all(self) -> None:
        stopped = await asyncio.gather(
            *(self.stop(w) for w in self.started), return_exceptions=True
        )
        for worker, outcome in zip(self.started, stopped, strict=True):
            if isinstance(outcome, BaseException) and worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()

    def tails(self) -> str:
        return "\n".join(
            f"--- {w.log.name} (exit {w.proc.returncode})\n"
            + "\n".join(w.log.read_text(errors="replace").splitlines()[-30:])
            for w in self.started
        )


@pytest.fixture
async def workers(
    database_url: str, settings: Settings, tls_files: TlsFiles, tmp_path: Path
) -> AsyncIterator[Workers]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PROCA_DATA_DIR": str(settings.data_dir),
        "PROCA_ENV": "test",
        "LOG_LEVEL": "INFO",
        # the worker trusts the test CA that signed the SMTP server's certificate
        "SSL_CERT_FILE": str(tls_files.ca),
        "EMAIL_SRS_KEY": "end-to-end-srs-key",
        "MTT_ENABLED": "true",
        "MTT_CYCLE_SECONDS": "1",
        "MTT_SEND_INTERVAL_MS": "200",
        "MTT_CLAIM_SECONDS": str(CLAIM_SECONDS),
    }
    env.pop("AMQP_URL", None)  # the embedded broker: no RabbitMQ needed
    pool = Workers(env, tmp_path)
    try:
        yield pool
    finally:
        await pool.stop_all()
        # shown only when the test failed
        print(pool.tails())


async def _truth(value: bool | Awaitable[bool]) -> bool:
    return await value if inspect.isawaitable(value) else value


async def wait_for(
    what: str, ready: Callable[[], bool | Awaitable[bool]], seconds: float = WAIT
) -> None:
    deadline = time.monotonic() + seconds
    while not await _truth(ready()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def world_near_its_end(session: AsyncSession, mailbox: Mailbox, **fields: Any) -> MttWorld:
    """A campaign that started a year ago and ends in a few minutes: the drip has planned
    nearly all of its window, so every letter a target has waiting is due at once."""
    now = utcnow()
    return await make_mtt_world(
        session,
        smtp=mailbox.server,
        start=now - timedelta(days=365, minutes=10),
        end=now + timedelta(minutes=3),
        **fields,
    )


def text_of(mail: Received) -> str:
    body = mail.message.get_body(preferencelist=("plain",))
    assert isinstance(body, MimeMessage)
    return str(body.get_content())


async def statuses(session: AsyncSession, ids: list[int]) -> Counter[SendStatus]:
    wanted = set(ids)
    return Counter(m.send_status for m in await letters(session) if m.id in wanted)


async def all_sent(session: AsyncSession, ids: list[int]) -> bool:
    return await statuses(session, ids) == Counter({SendStatus.SENT: len(ids)})


async def test_each_target_receives_its_letters_and_the_tester_the_test_letter(
    session: AsyncSession, mailbox: Mailbox, workers: Workers
) -> None:
    world = await world_near_its_end(session, mailbox, test_email=TEST_EMAIL)
    ids = []
    for name in SIGNERS:
        ids += await write_letters(session, world, first_name=name)
    tester = "trying.it.out@people.example"
    tests = await write_letters(session, world, first_name="Tess", email=tester, testing=True)

    await workers.start()
    await wait_for("13 letters", partial(mailbox.holds, 13))
    await wait_for("every letter settled", lambda: all_sent(session, ids))
    await asyncio.sleep(1)  # five more sending rounds: nothing else may arrive

    assert len(mailbox.mails()) == 13
    for target in world.targets:
        address = world.addresses[target.id]
        mine = mailbox.to(address)
        assert len(mine) == 4
        assert {m.message["Subject"] for m in mine} == {f"Dear {target.name}"}
        assert all(f"Please vote yes, {target.name}." in text_of(m) for m in mine)
        assert all(str(m.message["To"]) == f"{target.name} <{address}>" for m in mine)
        senders = {str(m.message["From"]).split(" Writer")[0] for m in mine}
        assert senders == set(SIGNERS)
        assert all(m.tls and m.login == "mailer" for m in mine)
    (test_letter,) = mailbox.to(tester)
    assert str(test_letter.message["Subject"]).startswith("[TEST] Dear Member ")
    assert str(test_letter.message["Cc"]) == TEST_EMAIL
    assert set(test_letter.rcpt_tos) == {tester, TEST_EMAIL}
    assert not set(test_letter.rcpt_tos) & set(world.addresses.values())
    # the targets share a locale: one test letter shows what they all would receive
    assert await statuses(session, tests) == {SendStatus.SENT: 1, SendStatus.CANCELLED: 2}
    counts = (await session.scalars(select(MttTargetCount))).all()
    assert sorted((c.queued, c.planned, c.sent) for c in counts) == [(4, 4, 4)] * 3


def mailjet_bounce(message_id: int, email: str) -> dict[str, Any]:
    return {
        "event": "bounce",
        "time": 1430812195,
        "MessageID": 13792286917004336,
        "Message_GUID": "1ab23cd4-e567-8901-2345-6789f0gh1i2j",
        "email": email,
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": "",
        "CustomID": f"mtt:{message_id}",
        "Payload": "",
        "blocked": False,
        "hard_bounce": True,
        "error_related_to": "recipient",
        "error": "user unknown",
        "comment": "550 5.1.1 Recipient address rejected",
    }


async def test_letters_to_a_target_that_bounced_are_undeliverable_and_never_sent(
    session: AsyncSession, mailbox: Mailbox, workers: Workers, client: httpx.AsyncClient
) -> None:
    world = await world_near_its_end(session, mailbox)
    bounced, *others = world.targets
    first = await write_letters(session, world, first_name="Ann")
    await workers.start()
    await wait_for("the first letters", lambda: all_sent(session, first))
    await wait_for("3 letters", partial(mailbox.holds, 3))
    (received,) = mailbox.to(world.addresses[bounced.id])
    message_id = int(str(received.message["X-Proca-Custom-Id"]).removeprefix("mtt:"))

    response = await client.post(
        "/webhook/mailjet", json=[mailjet_bounce(message_id, world.addresses[bounced.id])]
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"handled": 0, "tracked": 1}

    later = await write_letters(session, world, first_name="Bob")
    later += await write_letters(session, world, first_name="Cy")
    by_id = {m.id: m.target_id for m in await letters(session)}
    to_bounced = [i for i in later if by_id[i] == bounced.id]
    to_others = [i for i in later if by_id[i] != bounced.id]

    async def settled() -> bool:
        return await statuses(session, later) == Counter(
            {SendStatus.SENT: 4, SendStatus.UNDELIVERABLE: 2}
        )

    await wait_for("the later letters settled", settled)
    await wait_for("7 letters", partial(mailbox.holds, 7))
    await asyncio.sleep(1)

    assert len(mailbox.mails()) == 7
    assert len(mailbox.to(world.addresses[bounced.id])) == 1
    for target in others:
        assert len(mailbox.to(world.addresses[target.id])) == 3
    final = {m.id: m for m in await letters(session)}
    assert {final[i].send_status for i in to_bounced} == {SendStatus.UNDELIVERABLE}
    assert {final[i].send_status for i in to_others} == {SendStatus.SENT}
    assert not any(final[i].sent for i in to_bounced)
    counts = {c.target_id: c for c in (await session.scalars(select(MttTargetCount))).all()}
    assert (counts[bounced.id].sent, counts[bounced.id].undeliverable) == (1, 2)
    assert all((counts[t.id].sent, counts[t.id].undeliverable) == (3, 0) for t in others)


async def write_many(session: AsyncSession, world: MttWorld, signers: int) -> list[int]:
    ids = []
    for n in range(signers):
        ids += await write_letters(session, world, first_name=f"Signer{n}")
    return ids


async def test_a_worker_killed_while_sending_loses_no_letter_and_sends_none_twice(
    session: AsyncSession, mailbox: Mailbox, workers: Workers
) -> None:
    mailbox.handler.delay = 0.05
    world = await world_near_its_end(session, mailbox)
    ids = await write_many(session, world, 21)
    total = len(ids)
    assert total == 63

    for share in (1 / 3, 2 / 3):
        worker = await workers.start()
        goal = int(total * share)
        await wait_for(f"{goal} letters", partial(mailbox.holds, goal))
        await workers.kill(worker)
        assert len(mailbox.mails()) < total, "the kill came too late to test anything"
    await workers.start()
    await wait_for("every letter sent", lambda: all_sent(session, ids))
    await wait_for(f"{total} letters", partial(mailbox.holds, total))
    await workers.stop_all()

    received = mailbox.custom_ids()
    twice = {c: n for c, n in received.items() if n > 1}
    assert not twice, f"sent more than once: {twice}"
    assert set(received) == {f"mtt:{i}" for i in ids}
    reclaimed = [m for m in await letters(session) if m.attempts > 1]
    assert reclaimed, "no letter was held by a killed worker"
    counts = (await session.scalars(select(MttTargetCount))).all()
    assert sorted(c.sent for c in counts) == [21] * 3


async def test_two_workers_at_once_send_each_letter_once(
    session: AsyncSession, mailbox: Mailbox, workers: Workers
) -> None:
    mailbox.handler.delay = 0.02
    # a cycle plans a share of the letters, so that both workers usually get some to send
    workers.env["MAX_MESSAGES_PER_CYCLE"] = "30"
    world = await world_near_its_end(session, mailbox)
    pair = [await workers.start(), await workers.start()]
    # one worker may take seconds longer to start on a busy machine
    await wait_for("both workers", lambda: all(w.running() for w in pair))
    ids = await write_many(session, world, 30)
    assert len(ids) == 90

    await wait_for("every letter sent", lambda: all_sent(session, ids))
    await wait_for("90 letters", partial(mailbox.holds, 90))
    # a worker logs a letter once the server answered it, after the server kept it
    await wait_for("every send logged", lambda: sum(len(w.sent_ids()) for w in pair) >= 90)
    await workers.stop_all()

    received = mailbox.custom_ids()
    assert len(mailbox.mails()) == 90
    assert set(received) == {f"mtt:{i}" for i in ids}
    one, two = (set(w.sent_ids()) for w in pair)
    assert one | two == set(received)
    assert not one & two
    # which worker sends what depends on which takes each cycle's plan first: often both,
    # sometimes one (a fast one may send a whole cycle before the other claims); claims that
    # interleave for certain are test_sending.py's two senders
    print(f"letters sent by each worker: {len(one)}, {len(two)}")
