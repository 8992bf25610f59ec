"""Mail-to-target rows for the report tests: a campaign with its settings, targets and letters."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import (
    Action,
    ActionPage,
    Campaign,
    Message,
    MessageContent,
    Mtt,
    MttTargetCount,
    Org,
    SendStatus,
    Service,
    Supporter,
    Target,
    TargetEmail,
)
from proca_server.models.enums import ActionProcessingStatus, EmailStatus
from tests.factories import make_campaign, make_org, make_page, unique

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@dataclass
class MttCampaign:
    org: Org
    campaign: Campaign
    page: ActionPage
    mtt: Mtt


async def make_mtt_campaign(
    session: AsyncSession,
    name: str | None = None,
    *,
    drip: bool = True,
    start_at: datetime = NOW - timedelta(days=1),
    end_at: datetime = NOW + timedelta(days=1),
    backend: bool = True,
    org: Org | None = None,
) -> MttCampaign:
    org = org or await make_org(session)
    if backend and org.email_backend_id is None:
        service = Service(name="smtp", host="smtp.example.org", org_id=org.id)
        session.add(service)
        await session.flush()
        org.email_backend_id = service.id
    campaign = await make_campaign(session, org, name)
    page = await make_page(session, campaign, org)
    mtt = Mtt(
        campaign_id=campaign.id,
        start_at=start_at,
        end_at=end_at,
        drip_delivery=drip,
        timezone="Europe/Brussels",
    )
    session.add(mtt)
    await session.flush()
    return MttCampaign(org, campaign, page, mtt)


async def make_target(
    session: AsyncSession,
    c: MttCampaign,
    name: str | None = None,
    emails: dict[str, EmailStatus] | None = None,
) -> Target:
    target = Target(
        name=name or unique("Target "), external_id=unique("ext"), campaign_id=c.campaign.id
    )
    session.add(target)
    await session.flush()
    for email, status in (emails or {}).items():
        session.add(TargetEmail(email=email, email_status=status, target_id=target.id))
    await session.flush()
    return target


async def write_letter(
    session: AsyncSession,
    c: MttCampaign,
    targets: list[Target],
    *,
    at: datetime = NOW,
    first_name: str | None = "Ann",
    last_name: str | None = "Lee",
    email: str = "ann@example.com",
    area: str | None = "BE",
    subject: str = "Hello",
    body: str = "Please act.",
    dupe_rank: int | None = 0,
    testing: bool = False,
    send_status: SendStatus = SendStatus.PENDING,
) -> list[Message]:
    """One supporter's action with a message to each of `targets`."""
    supporter = Supporter(
        fingerprint=secrets.token_bytes(16),
        campaign_id=c.campaign.id,
        action_page_id=c.page.id,
        first_name=first_name,
        last_name=last_name,
        email=email,
        area=area,
    )
    session.add(supporter)
    await session.flush()
    action = Action(
        action_type="mtt",
        campaign_id=c.campaign.id,
        action_page_id=c.page.id,
        supporter_id=supporter.id,
        with_consent=True,
        testing=testing,
        processing_status=ActionProcessingStatus.DELIVERED,
        inserted_at=at,
    )
    content = MessageContent(subject=subject, body=body)
    session.add_all([action, content])
    await session.flush()
    messages = [
        Message(
            action_id=action.id,
            message_content_id=content.id,
            target_id=t.id,
            dupe_rank=dupe_rank,
            send_status=send_status,
            sent=send_status == SendStatus.SENT,
        )
        for t in targets
    ]
    session.add_all(messages)
    await session.flush()
    return messages


async def count_outcomes(session: AsyncSession, target: Target, **counts: int) -> None:
    session.add(MttTargetCount(target_id=target.id, campaign_id=target.campaign_id, **counts))
    await session.flush()
