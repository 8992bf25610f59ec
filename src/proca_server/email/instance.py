"""The instance org's own emails (account emails, confirm notifications): sent
through its transactional or email backend, else stored in the preview mailbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.config import Settings
from proca_server.email.backend import get_instance_email_backend
from proca_server.email.message import EmailMessage, format_custom_id, split_address


async def deliver_instance_emails(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    messages: Sequence[EmailMessage],
) -> None:
    """Deliver composed messages (call after the commit that composed them); each gets the
    custom id `user:<address>` unless it has one. Raises what the backend raises."""
    if not messages:
        return
    async with sessionmaker() as session:
        backend = await get_instance_email_backend(
            session, settings, len(messages), sessionmaker=sessionmaker
        )
        # the transactional budget counted these messages
        await session.commit()
    ready = [
        m if m.custom_id else replace(m, custom_id=format_custom_id("user", split_address(m.to)[1]))
        for m in messages
    ]
    size = max(1, backend.batch_size)
    for start in range(0, len(ready), size):
        await backend.deliver(ready[start : start + size])
