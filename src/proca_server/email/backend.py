"""Which backend sends an org's email.

- An org sends through its `email_backend` service. Borrowing the instance org's backend
  (`SYSTEM`) stores the instance org's service there, so the service's owner may be another
  org: that owner then lends its `email_from` and the service's `sending_from` to the sender
  rules (email/message.py).
- Emails other than MTT ones go through the org's `transactional_email_backend` while the
  emails counted since the last budget reset, plus the batch, fit in that service's
  `transactional_email_budget` (none = unlimited); then through `email_backend`.
- The instance org's own emails (account and confirm notifications) go to the preview
  mailbox while it has no backend: the embedded setup's default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from proca_server import db
from proca_server.config import Settings
from proca_server.email.backends import (
    BATCH_SIZES,
    EMAIL_SERVICES,
    AnyBackend,
    backend_for_service,
    batch_size,
)
from proca_server.email.backends.base import EmailDeliveryError
from proca_server.email.message import EmailMessage, SenderRules
from proca_server.email.preview import PreviewBackend
from proca_server.metrics import EMAILS_SENT
from proca_server.models import Org, Service
from proca_server.models.enums import ExternalService
from proca_server.org.repository import get_org_by_name
from proca_server.service import budget


class EmailBackend(Protocol):
    """Delivers composed messages. Called after the transaction that composed them committed;
    raises on a failure the caller may retry."""

    name: str

    async def deliver(self, messages: Sequence[EmailMessage]) -> None: ...


def get_backend(sessionmaker: async_sessionmaker[AsyncSession]) -> EmailBackend:
    """The preview mailbox (for callers that have no org's backend to choose)."""
    return PreviewBackend(sessionmaker)


@dataclass(frozen=True)
class OrgEmailBackend:
    """An org's email backend with the service behind it; delivers like any EmailBackend."""

    backend: AnyBackend
    # None for the preview default of the instance org
    service: Service | None
    # the org owning the service (the instance org when borrowed through SYSTEM)
    owner: Org | None
    transactional: bool = False

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def batch_size(self) -> int:
        if self.service is None:
            return BATCH_SIZES[ExternalService.PREVIEW]
        return batch_size(self.service.name)

    def borrowed_by(self, org: Org) -> bool:
        return self.owner is not None and self.owner.id != org.id

    def sender_rules(self, org: Org) -> SenderRules:
        owner = self.owner or org
        return SenderRules(
            org_name=org.name,
            org_title=org.title,
            email_from=org.email_from,
            owner_email_from=owner.email_from,
            sending_from=self.service.sending_from if self.service else None,
            sender_rewrite=org.sender_rewrite is not False,
            reply_enabled=org.reply_enabled is not False,
        )

    async def deliver(self, messages: Sequence[EmailMessage]) -> None:
        try:
            await self.backend.deliver(messages)
        except EmailDeliveryError as exc:
            if exc.failures:
                # the provider answered per message: the others were accepted
                count_sent(self.name, len(messages) - len({f.index for f in exc.failures}))
            raise
        count_sent(self.name, len(messages))


def count_sent(backend: str, count: int) -> None:
    """Count emails a backend accepted (proca_emails_sent). Every email goes through
    OrgEmailBackend.deliver, which counts, except the letters that mtt/sender.py hands to
    the SMTP or preview backend itself, which it counts."""
    if count > 0:
        EMAILS_SENT.labels(backend=backend).inc(count)


def _sessionmaker_of(session: AsyncSession) -> async_sessionmaker[AsyncSession]:
    bind = session.bind
    engine = bind.engine if isinstance(bind, AsyncConnection) else bind
    assert isinstance(engine, AsyncEngine)
    return db.create_sessionmaker(engine)


async def _for_service(
    session: AsyncSession,
    service_id: int | None,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
    *,
    transactional: bool = False,
) -> tuple[Service, OrgEmailBackend | None] | None:
    if service_id is None:
        return None
    service = await session.get(Service, service_id)
    if service is None:
        return None
    if service.name not in EMAIL_SERVICES:
        return service, None
    owner = await session.get(Org, service.org_id)
    backend = backend_for_service(service, sessionmaker or _sessionmaker_of(session))
    return service, OrgEmailBackend(backend, service, owner, transactional)


async def get_org_email_backend(
    session: AsyncSession,
    org: Org,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> OrgEmailBackend | None:
    """The org's `email_backend` (its own service or the instance org's it borrows); None when
    it has none, or when that service cannot send email. Raises EmailConfigError when the
    service's fields cannot make a backend."""
    found = await _for_service(session, org.email_backend_id, sessionmaker)
    return found[1] if found else None


async def get_transactional_backend(
    session: AsyncSession,
    org: Org,
    count: int = 1,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> OrgEmailBackend | None:
    """The backend for `count` non-MTT emails of the org: its transactional backend while its
    budget allows them (they are then counted, in this transaction), else its email backend."""
    found = await _for_service(
        session, org.transactional_email_backend_id, sessionmaker, transactional=True
    )
    if found is not None and found[1] is not None:
        service, selected = found
        if await budget.try_consume(session, org.id, service.transactional_email_budget, count):
            return selected
    return await get_org_email_backend(session, org, sessionmaker=sessionmaker)


async def get_instance_email_backend(
    session: AsyncSession,
    settings: Settings,
    count: int = 1,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> OrgEmailBackend:
    """The backend for the instance org's own emails (accounts, confirm notifications): its
    transactional or email backend, else the preview mailbox."""
    instance = await get_org_by_name(session, settings.org_name)
    if instance is not None:
        selected = await get_transactional_backend(
            session, instance, count, sessionmaker=sessionmaker
        )
        if selected is not None:
            return selected
    preview = PreviewBackend(sessionmaker or _sessionmaker_of(session))
    return OrgEmailBackend(preview, None, instance, transactional=True)
