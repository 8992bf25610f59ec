"""The instance org's own emails go through its backend, else to the preview mailbox."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.backends.base import CUSTOM_ID_HEADER
from proca_server.email.instance import deliver_instance_emails
from proca_server.email.message import EmailMessage
from proca_server.models import PreviewEmail, Service
from proca_server.org.service import ensure_instance_org
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer
from tests.email.worker_world import trusted_ca

__all__ = ["trusted_ca"]

pytestmark = pytest.mark.filterwarnings(
    "ignore:Session.login_data is deprecated:DeprecationWarning"
)

INVITE = EmailMessage(
    to="staff@example.org", sender="Proca <admin@proca.example>", subject="Join", text="hi"
)


async def test_without_backend_the_email_lands_in_the_mailbox(
    session: AsyncSession, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await ensure_instance_org(session, settings.org_name)
    await session.commit()
    await deliver_instance_emails(sessionmaker, settings, [INVITE])
    [stored] = (await session.execute(select(PreviewEmail))).scalars()
    assert (stored.to_address, stored.subject) == ("staff@example.org", "Join")
    assert stored.headers["X-Proca-Custom-Id"] == "user:staff@example.org"


@pytest.mark.usefixtures("trusted_ca")
async def test_the_instance_backend_sends_it(
    session: AsyncSession,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    starttls_server: SmtpServer,
) -> None:
    instance = (await ensure_instance_org(session, settings.org_name)).org
    service = Service(
        name="smtp",
        org_id=instance.id,
        host=starttls_server.url,
        user=SMTP_USER,
        password=SMTP_PASSWORD,
    )
    session.add(service)
    await session.flush()
    instance.email_backend_id = service.id
    await session.commit()
    await deliver_instance_emails(sessionmaker, settings, [INVITE])
    [received] = starttls_server.handler.received
    assert received.rcpt_tos == ["staff@example.org"]
    assert received.message[CUSTOM_ID_HEADER] == "user:staff@example.org"
    assert (await session.execute(select(PreviewEmail))).scalars().all() == []
