"""An MTT campaign to send letters from: targets with addresses, a lead org with an email
backend, and delivered actions that wrote to the targets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit.time import utcnow
from proca_server.models import (
    Action,
    Campaign,
    Message,
    MessageContent,
    Mtt,
    Org,
    Service,
    Supporter,
    Target,
    TargetEmail,
)
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import SupporterProcessingStatus as S
from tests.email.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, smtps_server, tls_files
from tests.factories import make_campaign, make_org, make_page, unique

__all__ = ["smtps_server", "tls_files"]


@dataclass
class MttWorld:
    org: Org
    campaign: Campaign
    page_id: int
    mtt: Mtt
    targets: list[Target] = field(default_factory=list)
    addresses: dict[uuid.UUID, str] = field(default_factory=dict)


async def make_mtt_world(
    session: AsyncSession,
    *,
    targets: int = 3,
    service: str | None = "preview",
    smtp: SmtpServer | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    drip: bool = True,
    locales: tuple[str | None, ...] = (None,),
    **mtt_fields: object,
) -> MttWorld:
    org = await make_org(session, email_from="campaigns@org.example")
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    if smtp is not None:
        backend = Service(
            name="smtp", host=smtp.url, user=SMTP_USER, password=SMTP_PASSWORD, org_id=org.id
        )
    elif service is not None:
        backend = Service(name=service, org_id=org.id)
    else:
        backend = None
    if backend is not None:
        session.add(backend)
        await session.flush()
        org.email_backend_id = backend.id
    now = utcnow()
    mtt = Mtt(
        campaign_id=campaign.id,
        start_at=start or now - timedelta(days=1),
        end_at=end or now + timedelta(minutes=5),
        drip_delivery=drip,
        **mtt_fields,
    )
    session.add(mtt)
    world = MttWorld(org, campaign, page.id, mtt)
    for n in range(targets):
        target = Target(
            name=f"Member {n}",
            external_id=unique("mep"),
            campaign_id=campaign.id,
            locale=locales[n % len(locales)],
            area="BE",
        )
        session.add(target)
        await session.flush()
        address = f"member{n}.{target.id.hex[:8]}@parliament.example"
        session.add(TargetEmail(target_id=target.id, email=address))
        world.targets.append(target)
        world.addresses[target.id] = address
    await session.commit()
    return world


async def write_letters(
    session: AsyncSession,
    world: MttWorld,
    *,
    first_name: str = "Ann",
    email: str | None = None,
    fingerprint: bytes | None = None,
    subject: str = "Dear {{target.name}}",
    body: str = "Please vote yes, {{target.name}}.\n\nRegards",
    testing: bool = False,
    targets: list[Target] | None = None,
    status: A = A.DELIVERED,
) -> list[int]:
    """A delivered action of a new (accepted) supporter writing to the targets: message ids."""
    supporter = Supporter(
        fingerprint=fingerprint or uuid.uuid4().bytes,
        campaign_id=world.campaign.id,
        action_page_id=world.page_id,
        first_name=first_name,
        last_name="Writer",
        email=email or f"{unique('writer')}@people.example",
        processing_status=S.ACCEPTED,
    )
    session.add(supporter)
    await session.flush()
    action = Action(
        action_type="mail2target",
        campaign_id=world.campaign.id,
        action_page_id=world.page_id,
        supporter_id=supporter.id,
        processing_status=status,
        testing=testing,
    )
    content = MessageContent(subject=subject, body=body)
    session.add_all([action, content])
    await session.flush()
    messages = [
        Message(action_id=action.id, message_content_id=content.id, target_id=t.id)
        for t in (targets or world.targets)
    ]
    session.add_all(messages)
    await session.flush()
    ids = [m.id for m in messages]
    await session.commit()
    return ids


async def letters(session: AsyncSession) -> list[Message]:
    await session.rollback()
    session.expunge_all()
    return list((await session.scalars(select(Message).order_by(Message.id))).all())


async def bounce(session: AsyncSession, world: MttWorld, target: Target) -> None:
    from proca_server.models.enums import EmailStatus

    await session.execute(
        update(TargetEmail)
        .where(TargetEmail.target_id == target.id)
        .values(email_status=EmailStatus.BOUNCE)
    )
    await session.commit()


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch, tls_files: object) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))  # type: ignore[attr-defined]
