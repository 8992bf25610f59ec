"""Supporters whose personal data the audit trail must never hold, and the trail as JSON."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.kit import base64url
from proca_server.models import Action, AuditLog, Contact, Supporter
from proca_server.models.enums import ActionProcessingStatus, SupporterProcessingStatus
from proca_server.supporter.fingerprint import email_fingerprint
from tests.factories import World

SEED = ""
# what an entry must never contain: the supporters' emails, names and contact refs
PEOPLE = [
    ("quentin.private@example.org", "Quentinius", "Privatov"),
    ("ruth.secret@example.org", "Ruthelda", "Secretwood"),
]


def contact_ref(email: str) -> str:
    return base64url.encode(email_fingerprint(SEED, email))


def personal_data() -> list[str]:
    return [v for email, first, last in PEOPLE for v in (email, first, last, contact_ref(email))]


async def sign_people(session: AsyncSession, world: World) -> list[Action]:
    actions = []
    for email, first, last in PEOPLE:
        supporter = Supporter(
            fingerprint=email_fingerprint(SEED, email),
            campaign_id=world.campaign.id,
            action_page_id=world.page.id,
            email=email,
            first_name=first,
            last_name=last,
            processing_status=SupporterProcessingStatus.ACCEPTED,
        )
        session.add(supporter)
        await session.flush()
        session.add(
            Contact(
                supporter_id=supporter.id,
                org_id=world.org.id,
                payload=json.dumps({"email": email, "firstName": first, "lastName": last}).encode(),
                communication_consent=True,
                delivery_consent=True,
            )
        )
        action = Action(
            action_type="petition",
            campaign_id=world.campaign.id,
            action_page_id=world.page.id,
            supporter_id=supporter.id,
            with_consent=True,
            fields={},
            processing_status=ActionProcessingStatus.DELIVERED,
        )
        session.add(action)
        await session.flush()
        actions.append(action)
    await session.commit()
    return actions


async def entries(session: AsyncSession) -> list[AuditLog]:
    await session.rollback()  # end the read snapshot, see what requests committed
    rows = await session.scalars(select(AuditLog).order_by(AuditLog.inserted_at))
    return list(rows.all())


def as_json(entry: AuditLog) -> str:
    row: dict[str, Any] = {
        "actor": entry.actor_id,
        "action": entry.resource,
        "resource_id": entry.resource_id,
        "org_id": entry.org_id,
        "changeset": entry.changeset,
    }
    return json.dumps(row)


def assert_nothing_personal(found: list[AuditLog]) -> None:
    text = "\n".join(as_json(e) for e in found).lower()
    for value in personal_data():
        assert value.lower() not in text, value
