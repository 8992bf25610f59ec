"""A coalition for the supporter's page: a lead org (encrypted contacts) and a partner org
(cleartext contacts, preview mailbox) whose page is in the lead's campaign; a signature on
the partner's page with both opt-ins gives each org a contact."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.config import Settings
from proca_server.kit import base64url
from proca_server.models import AuditLog, Contact, Supporter
from proca_server.processing.messages import Publication
from proca_server.supporter.rights import rights_link
from tests.email.worker_world import smtp_site
from tests.processing.helpers import Site, action_ids, make_site, process, sign

RIGHTS_PATH = re.compile(r"/link/rights/[A-Za-z0-9_-]+")
BOTH_OPT_INS = {"optIn": True, "leadOptIn": True}


@dataclass(frozen=True)
class Coalition:
    lead: Site
    partner: Site


async def coalition(session: AsyncSession, **partner: Any) -> Coalition:
    lead = await make_site(session, encrypted=True, org_fields={"title": "Lead Org"})
    fields = {"title": "Partner Org", **partner.pop("org_fields", {})}
    site = await smtp_site(session, None, lead=lead, org_fields=fields, **partner)
    return Coalition(lead, site)


async def signed_and_delivered(
    client: httpx.AsyncClient, session: AsyncSession, site: Site, email: str = "ann@example.org"
) -> tuple[int, str]:
    """(action id, contactRef) of a signature with both opt-ins, processed."""
    ref = await sign(client, site.page_id, email, privacy=BOTH_OPT_INS)
    action_id = (await action_ids(session))[-1]
    await process(session, [action_id])
    return action_id, ref


def path_of(settings: Settings, action_id: int, ref: str) -> str:
    link = rights_link(settings, action_id, base64url.decode(ref))
    found = RIGHTS_PATH.search(link)
    assert found is not None, link
    return found.group(0)


@dataclass(frozen=True)
class State:
    """What a request may change, read fresh."""

    consents: dict[int, bool | None]  # org id -> consent (one contact each)
    supporters: list[tuple[Any, ...]]
    audit: int


async def state(session: AsyncSession) -> State:
    await session.rollback()
    session.expunge_all()
    contacts = (await session.execute(select(Contact).order_by(Contact.id))).scalars().all()
    supporters = (
        await session.execute(
            select(
                Supporter.id,
                Supporter.processing_status,
                Supporter.email_status,
                Supporter.first_name,
                Supporter.email,
                Supporter.fingerprint,
            ).order_by(Supporter.id)
        )
    ).all()
    audit = await session.scalar(select(func.count()).select_from(AuditLog))
    return State(
        {c.org_id: c.communication_consent for c in contacts if c.org_id is not None},
        [tuple(s) for s in supporters],
        int(audit or 0),
    )


def events(calls: list[tuple[list[Publication], list[int]]]) -> dict[int, dict[str, Any]]:
    """The events of the pipeline's hand-offs, by org id (from the exchange name)."""
    found: dict[int, dict[str, Any]] = {}
    for publications, _ in calls:
        for p in publications:
            assert p.routing_key == "supporter.email_status", p
            org_id = int(p.exchange.split(".")[1])
            assert p.exchange == f"org.{org_id}.event"
            assert org_id not in found, "one event per org"
            found[org_id] = json.loads(p.body)
    return found
