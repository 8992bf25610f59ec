from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.email.message import EmailMessage
from proca_server.email.preview import PreviewBackend


class EmailBackend(Protocol):
    """Delivers composed messages. Called after the transaction that composed them committed;
    raises on a failure the caller may retry."""

    name: str

    async def deliver(self, messages: Sequence[EmailMessage]) -> None: ...


def get_backend(sessionmaker: async_sessionmaker[AsyncSession]) -> EmailBackend:
    # Only the preview mailbox exists yet; SMTP and the providers will be chosen here from the
    # sending org's services.
    return PreviewBackend(sessionmaker)
