"""Bounce reports posted by Mailjet and Brevo reject the supporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.models import Action, Supporter
from proca_server.models.enums import ActionProcessingStatus as A
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from tests.email.providers import mailjet_bounce
from tests.processing.conftest import RecordingPipeline
from tests.processing.helpers import action_ids, make_site, process, sign


@pytest.fixture
def pipeline(app: FastAPI) -> Iterator[RecordingPipeline]:
    recorder = RecordingPipeline()
    previous = state_of(app).pipeline
    state_of(app).pipeline = recorder
    yield recorder
    state_of(app).pipeline = previous


async def delivered(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> tuple[int, int]:
    """A processed signature: (action id, org id); what the signature handed over is
    forgotten."""
    site = await make_site(session)
    await sign(client, site.page_id, email="ann@example.org")
    [action_id] = await action_ids(session)
    await process(session, [action_id])
    pipeline.calls.clear()
    return action_id, site.org_id


async def state(session: AsyncSession) -> tuple[S, EmailStatus, A]:
    await session.rollback()
    session.expunge_all()
    supporter = (await session.execute(select(Supporter))).scalar_one()
    action = (await session.execute(select(Action))).scalar_one()
    return supporter.processing_status, supporter.email_status, action.processing_status


@pytest.mark.parametrize(
    ("over", "status"),
    [
        ({}, EmailStatus.BOUNCE),
        ({"event": "spam", "source": "JMRPP"}, EmailStatus.SPAM),
        ({"event": "blocked"}, EmailStatus.BLOCKED),
        ({"event": "unsub", "mj_list_id": 1}, EmailStatus.UNSUB),
    ],
)
async def test_mailjet_report_rejects_the_supporter(
    client: httpx.AsyncClient,
    session: AsyncSession,
    pipeline: RecordingPipeline,
    over: dict[str, Any],
    status: EmailStatus,
) -> None:
    action_id, org_id = await delivered(client, session, pipeline)
    response = await client.post("/webhook/mailjet", json=[mailjet_bounce(action_id, **over)])
    assert response.status_code == 200
    assert await state(session) == (S.REJECTED, status, A.REJECTED)
    [(publications, _)] = pipeline.calls
    [event] = publications
    assert (event.exchange, event.routing_key) == (f"org.{org_id}.event", "supporter.email_status")
    body = json.loads(event.body)
    assert body["supporter"]["privacy"]["emailStatus"] == status.name.lower()


async def test_mailjet_soft_bounce_is_only_logged(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    action_id, _ = await delivered(client, session, pipeline)
    response = await client.post(
        "/webhook/mailjet", json=mailjet_bounce(action_id, hard_bounce=False)
    )
    assert response.status_code == 200
    assert response.json() == {"handled": 0}
    supporter_status, email_status, _ = await state(session)
    assert (supporter_status, email_status) == (S.ACCEPTED, EmailStatus.NONE)
    assert pipeline.calls == []


def brevo_event(event: str, tags: list[str], email: str = "ann@example.org") -> dict[str, Any]:
    return {
        "event": event,
        "email": email,
        "id": 26224,
        "date": "2024-05-02 14:11:02",
        "ts": 1714651862,
        "message-id": "<202405021411.12345678@smtp-relay.mailin.fr>",
        "ts_event": 1714651862,
        "subject": "Thanks",
        "tag": json.dumps(tags),
        "sending_ip": "185.41.28.109",
        "ts_epoch": 1714651862000,
        "tags": tags,
        "reason": "550 5.1.1 mailbox unavailable",
    }


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("hard_bounce", EmailStatus.BOUNCE),
        ("spam", EmailStatus.SPAM),
        ("unsubscribed", EmailStatus.UNSUB),
        ("blocked", EmailStatus.BLOCKED),
    ],
)
async def test_brevo_report_rejects_the_supporter(
    client: httpx.AsyncClient,
    session: AsyncSession,
    pipeline: RecordingPipeline,
    event: str,
    status: EmailStatus,
) -> None:
    action_id, org_id = await delivered(client, session, pipeline)
    response = await client.post("/webhook/brevo", json=brevo_event(event, [f"action:{action_id}"]))
    assert response.json() == {"handled": 1}
    assert await state(session) == (S.REJECTED, status, A.REJECTED)
    [(publications, _)] = pipeline.calls
    assert [p.routing_key for p in publications] == ["supporter.email_status"]
    assert publications[0].exchange == f"org.{org_id}.event"


async def test_brevo_report_without_tag_finds_the_supporter_by_address(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    await delivered(client, session, pipeline)
    response = await client.post("/webhook/brevo", json=brevo_event("hard_bounce", []))
    assert response.json() == {"handled": 1}
    assert (await state(session))[:2] == (S.REJECTED, EmailStatus.BOUNCE)


async def test_reports_on_other_emails_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    action_id, _ = await delivered(client, session, pipeline)
    events = [
        brevo_event("soft_bounce", [f"action:{action_id}"]),
        brevo_event("hard_bounce", ["user:staff@example.org"]),
        brevo_event("delivered", [f"action:{action_id}"]),
    ]
    for event in events:
        assert (await client.post("/webhook/brevo", json=event)).json() == {"handled": 0}
    garbage = await client.post("/webhook/mailjet", content=b"not json")
    assert garbage.status_code == 200
    assert (await state(session))[:2] == (S.ACCEPTED, EmailStatus.NONE)
    assert pipeline.calls == []
