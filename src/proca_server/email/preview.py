"""The `preview` backend: messages are stored, not sent, and read at /mailbox."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.email.message import EmailMessage
from proca_server.models import PreviewEmail

MAILBOX_PAGE_SIZE = 100


class PreviewBackend:
    name = "preview"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def deliver(self, messages: Sequence[EmailMessage]) -> None:
        if not messages:
            return
        async with self._sessionmaker() as session, session.begin():
            await store_preview_emails(session, messages)


def _headers(message: EmailMessage) -> dict[str, str]:
    """The headers a provider would see: Cc, Reply-To, the custom id and the provider
    template; the attachments are listed (name, type, size), their content is not kept."""
    headers = dict(message.headers)
    if message.cc:
        headers["Cc"] = ", ".join(message.cc)
    if message.reply_to:
        headers["Reply-To"] = message.reply_to
    if message.custom_id:
        headers["X-Proca-Custom-Id"] = message.custom_id
    if message.template_ref:
        headers["X-Proca-Template"] = message.template_ref
    if message.attachments:
        headers["X-Proca-Attachments"] = ", ".join(
            f"{a.filename} ({a.content_type}, {len(a.content)} bytes)" for a in message.attachments
        )
    return headers


async def store_preview_emails(
    session: AsyncSession, messages: Sequence[EmailMessage]
) -> list[PreviewEmail]:
    rows = [
        PreviewEmail(
            to_address=m.to,
            from_address=m.sender,
            subject=m.subject,
            html=m.html,
            text=m.text,
            headers=_headers(m),
        )
        for m in messages
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def list_preview_emails(
    session: AsyncSession, *, limit: int = MAILBOX_PAGE_SIZE
) -> list[PreviewEmail]:
    result = await session.execute(
        select(PreviewEmail).order_by(PreviewEmail.id.desc()).limit(limit)
    )
    return list(result.scalars())


async def get_preview_email(session: AsyncSession, email_id: int) -> PreviewEmail | None:
    return await session.get(PreviewEmail, email_id)
