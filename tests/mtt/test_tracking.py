"""Mailjet and Brevo events about mail-to-target letters (`mtt:<message id>`):
message flags, the target address's status, soft bounces."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.models import (
    Action,
    Message,
    MessageContent,
    Supporter,
    Target,
    TargetEmail,
)
from proca_server.models.enums import EmailStatus
from proca_server.models.enums import SupporterProcessingStatus as S
from proca_server.mtt.tracking import SOFT_BOUNCE_LIMIT, scrub_reason
from tests.factories import make_campaign, make_org, make_page, unique
from tests.processing.conftest import RecordingPipeline

FIRST = "first.office@parliament.example"
SECOND = "second.office@parliament.example"
SUPPORTER = "ann@example.org"


@pytest.fixture
def pipeline(app: FastAPI) -> Iterator[RecordingPipeline]:
    recorder = RecordingPipeline()
    previous = state_of(app).pipeline
    state_of(app).pipeline = recorder
    yield recorder
    state_of(app).pipeline = previous


@dataclass(frozen=True)
class Letter:
    message_id: int
    action_id: int
    target_id: uuid.UUID


async def make_letter(session: AsyncSession) -> Letter:
    """A target with two addresses and one letter to it from a supporter's action."""
    org = await make_org(session)
    campaign = await make_campaign(session, org)
    page = await make_page(session, campaign, org)
    supporter = Supporter(
        fingerprint=uuid.uuid4().bytes,
        campaign_id=campaign.id,
        action_page_id=page.id,
        first_name="Ann",
        email=SUPPORTER,
        processing_status=S.ACCEPTED,
    )
    session.add(supporter)
    await session.flush()
    action = Action(
        action_type="mail2target",
        campaign_id=campaign.id,
        action_page_id=page.id,
        supporter_id=supporter.id,
    )
    target = Target(name="An MEP", external_id=unique("mep"), campaign_id=campaign.id)
    content = MessageContent(subject="Please", body="Vote yes")
    session.add_all([action, target, content])
    await session.flush()
    session.add_all(
        [
            TargetEmail(target_id=target.id, email=FIRST),
            TargetEmail(target_id=target.id, email=SECOND),
        ]
    )
    message = Message(action_id=action.id, message_content_id=content.id, target_id=target.id)
    session.add(message)
    await session.flush()
    letter = Letter(message.id, action.id, target.id)
    await session.commit()
    return letter


async def flags(session: AsyncSession, message_id: int) -> tuple[bool, bool, bool, bool]:
    await session.rollback()
    session.expunge_all()
    message = await session.get(Message, message_id)
    assert message is not None
    return message.sent, message.delivered, message.opened, message.clicked


async def addresses(session: AsyncSession) -> dict[str, tuple[EmailStatus, str | None, int]]:
    await session.rollback()
    session.expunge_all()
    rows = (await session.scalars(select(TargetEmail))).all()
    return {r.email or "": (r.email_status, r.error, r.soft_bounce_count) for r in rows}


def mailjet(event: str, message_id: int, email: str | None = FIRST, **over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "event": event,
        "time": 1430812195,
        "MessageID": 13792286917004336,
        "Message_GUID": "1ab23cd4-e567-8901-2345-6789f0gh1i2j",
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": "",
        "CustomID": f"mtt:{message_id}",
        "Payload": "",
    }
    if email is not None:
        item["email"] = email
    if event == "bounce":
        item.update(
            {
                "blocked": False,
                "hard_bounce": True,
                "error_related_to": "recipient",
                "error": "user unknown",
                "comment": f"550 5.1.1 <{email}>: Recipient address rejected",
            }
        )
    item.update(over)
    return item


def brevo(event: str, message_id: int, email: str = FIRST, **over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "event": event,
        "email": email,
        "id": 26224,
        "date": "2024-05-02 14:11:02",
        "ts": 1714651862,
        "message-id": "<202405021411.12345678@smtp-relay.mailin.fr>",
        "ts_event": 1714651862,
        "subject": "Please",
        "tag": f'["mtt:{message_id}"]',
        "tags": [f"mtt:{message_id}"],
        "ts_epoch": 1714651862000,
    }
    item.update(over)
    return item


async def test_mailjet_events_turn_the_flags_on(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    mid = letter.message_id
    response = await client.post("/webhook/mailjet", json=[mailjet("sent", mid)])
    assert response.status_code == 200
    assert response.json() == {"handled": 0, "tracked": 1}
    assert await flags(session, mid) == (False, True, False, False)
    await client.post("/webhook/mailjet", json=mailjet("open", mid))
    assert await flags(session, mid) == (False, True, True, False)
    await client.post("/webhook/mailjet", json=mailjet("click", mid, url="https://x.example"))
    assert await flags(session, mid) == (False, True, True, True)


async def test_a_click_before_any_delivery_sets_every_flag(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await client.post("/webhook/mailjet", json=mailjet("click", letter.message_id))
    assert await flags(session, letter.message_id) == (False, True, True, True)
    # a late delivery report turns nothing off
    await client.post("/webhook/mailjet", json=mailjet("sent", letter.message_id))
    assert await flags(session, letter.message_id) == (False, True, True, True)


async def test_an_open_before_the_delivery_report_sets_delivered(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await client.post("/webhook/brevo", json=brevo("unique_opened", letter.message_id))
    assert await flags(session, letter.message_id) == (False, True, True, False)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("delivered", (False, True, False, False)),
        ("opened", (False, True, True, False)),
        ("unique_opened", (False, True, True, False)),
        ("proxy_open", (False, True, True, False)),
        ("click", (False, True, True, True)),
    ],
)
async def test_brevo_events_turn_the_flags_on(
    client: httpx.AsyncClient,
    session: AsyncSession,
    event: str,
    expected: tuple[bool, bool, bool, bool],
) -> None:
    letter = await make_letter(session)
    response = await client.post("/webhook/brevo", json=brevo(event, letter.message_id))
    assert response.status_code == 200
    assert response.json() == {"handled": 0, "tracked": 1}
    assert await flags(session, letter.message_id) == expected


@pytest.mark.parametrize("event", ["request", "deferred", "error", "invalid_email", "new_one"])
async def test_brevo_events_of_no_interest_are_ignored(
    client: httpx.AsyncClient, session: AsyncSession, event: str
) -> None:
    letter = await make_letter(session)
    response = await client.post("/webhook/brevo", json=brevo(event, letter.message_id))
    assert response.status_code == 200
    assert response.json() == {"handled": 0, "tracked": 0}
    assert await flags(session, letter.message_id) == (False, False, False, False)
    assert {s for s, _, _ in (await addresses(session)).values()} == {EmailStatus.NONE}


@pytest.mark.parametrize(
    ("provider", "event", "status"),
    [
        ("mailjet", mailjet("bounce", 0), EmailStatus.BOUNCE),
        ("mailjet", mailjet("blocked", 0, error="sender blocked"), EmailStatus.BLOCKED),
        ("mailjet", mailjet("spam", 0, source="JMRPP"), EmailStatus.SPAM),
        ("mailjet", mailjet("unsub", 0, mj_list_id=1), EmailStatus.UNSUB),
        ("brevo", brevo("hard_bounce", 0, reason="550 unknown user"), EmailStatus.BOUNCE),
        ("brevo", brevo("blocked", 0, reason="blocked"), EmailStatus.BLOCKED),
        ("brevo", brevo("spam", 0), EmailStatus.SPAM),
        ("brevo", brevo("unsubscribed", 0), EmailStatus.UNSUB),
    ],
)
async def test_a_hard_report_gives_up_only_the_address_it_names(
    client: httpx.AsyncClient,
    session: AsyncSession,
    provider: str,
    event: dict[str, Any],
    status: EmailStatus,
) -> None:
    letter = await make_letter(session)
    event = {**event, "CustomID": f"mtt:{letter.message_id}", "tags": [f"mtt:{letter.message_id}"]}
    # the recipient as the provider spells it
    event["email"] = SECOND.upper()
    response = await client.post(f"/webhook/{provider}", json=event)
    assert response.status_code == 200
    assert response.json() == {"handled": 0, "tracked": 1}
    state = await addresses(session)
    assert state[FIRST] == (EmailStatus.NONE, None, 0)
    assert state[SECOND][0] == status
    assert state[SECOND][2] == 0


async def test_the_stored_reason_never_holds_the_address(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await client.post("/webhook/mailjet", json=mailjet("bounce", letter.message_id))
    status, error, _ = (await addresses(session))[FIRST]
    assert status == EmailStatus.BOUNCE
    assert error is not None
    assert "user unknown" in error and "Recipient address rejected" in error
    assert FIRST not in error.lower() and "@" not in error


def test_a_reason_is_scrubbed_and_cut_to_the_column() -> None:
    reason = f"rejected {FIRST.upper()} and postmaster@relay.example: " + "x" * 400
    scrubbed = scrub_reason(reason, FIRST)
    assert scrubbed is not None
    assert len(scrubbed) == 255
    assert "@" not in scrubbed
    assert scrub_reason("", FIRST) is None


async def test_a_soft_bounce_counts_and_gives_up_at_the_limit(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    assert SOFT_BOUNCE_LIMIT == 1
    letter = await make_letter(session)
    soft = mailjet("bounce", letter.message_id, hard_bounce=False, error="mailbox full")
    response = await client.post("/webhook/mailjet", json=soft)
    assert response.json() == {"handled": 0, "tracked": 1}
    status, error, count = (await addresses(session))[FIRST]
    assert (status, count) == (EmailStatus.BOUNCE, 1)
    assert error is not None and "mailbox full" in error and FIRST not in error
    # a soft bounce is counted even once given up on
    await client.post("/webhook/brevo", json=brevo("soft_bounce", letter.message_id))
    assert (await addresses(session))[FIRST][::2] == (EmailStatus.BOUNCE, 2)


async def test_a_soft_bounce_does_not_weaken_a_stronger_status(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await client.post("/webhook/brevo", json=brevo("unsubscribed", letter.message_id))
    await client.post(
        "/webhook/brevo", json=brevo("soft_bounce", letter.message_id, reason="try later")
    )
    assert (await addresses(session))[FIRST] == (EmailStatus.UNSUB, "try later", 1)


async def test_a_delivery_marks_the_address_active_and_clears_soft_bounces(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await session.execute(
        update(TargetEmail)
        .where(TargetEmail.email == FIRST)
        .values(soft_bounce_count=3, error="mailbox full")
    )
    await session.commit()
    await client.post("/webhook/mailjet", json=mailjet("sent", letter.message_id))
    state = await addresses(session)
    assert state[FIRST] == (EmailStatus.ACTIVE, "mailbox full", 0)
    assert state[SECOND] == (EmailStatus.NONE, None, 0)
    await client.post("/webhook/brevo", json=brevo("delivered", letter.message_id, email=SECOND))
    assert (await addresses(session))[SECOND] == (EmailStatus.ACTIVE, None, 0)


async def test_a_late_delivery_does_not_bring_a_bounced_address_back(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await client.post("/webhook/mailjet", json=mailjet("bounce", letter.message_id))
    await client.post("/webhook/mailjet", json=mailjet("sent", letter.message_id))
    status, _, _ = (await addresses(session))[FIRST]
    assert status == EmailStatus.BOUNCE
    assert await flags(session, letter.message_id) == (False, True, False, False)


async def test_an_event_without_recipient_uses_the_first_usable_address(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await client.post("/webhook/mailjet", json=mailjet("bounce", letter.message_id))
    # FIRST is given up on now: the next usable address is SECOND
    await client.post("/webhook/mailjet", json=mailjet("blocked", letter.message_id, email=None))
    state = await addresses(session)
    assert (state[FIRST][0], state[SECOND][0]) == (EmailStatus.BOUNCE, EmailStatus.BLOCKED)


async def test_replaying_a_report_leaves_the_same_state(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    report = [
        mailjet("sent", letter.message_id, email=SECOND),
        mailjet("open", letter.message_id, email=SECOND),
        mailjet("bounce", letter.message_id),
    ]
    await client.post("/webhook/mailjet", json=report)
    once = (await addresses(session), await flags(session, letter.message_id))
    await client.post("/webhook/mailjet", json=report)
    assert (await addresses(session), await flags(session, letter.message_id)) == once
    assert once[0][SECOND] == (EmailStatus.ACTIVE, None, 0)
    assert once[0][FIRST][0] == EmailStatus.BOUNCE


async def test_a_removed_address_is_skipped(
    client: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    letter = await make_letter(session)
    # the target was upserted again without FIRST
    await session.execute(delete(TargetEmail).where(TargetEmail.email == FIRST))
    await session.commit()
    caplog.set_level(logging.INFO)
    for event in (
        mailjet("bounce", letter.message_id),
        mailjet("bounce", letter.message_id, hard_bounce=False),
        mailjet("sent", letter.message_id),
    ):
        response = await client.post("/webhook/mailjet", json=event)
        assert response.status_code == 200
        assert response.json() == {"handled": 0, "tracked": 1}
    assert await addresses(session) == {SECOND: (EmailStatus.NONE, None, 0)}
    # the message still learns it was delivered
    assert await flags(session, letter.message_id) == (False, True, False, False)
    logged = " ".join(r.getMessage() for r in caplog.records).lower()
    assert "no such address" in logged
    assert FIRST not in logged and SUPPORTER not in logged


async def test_a_target_without_addresses_is_skipped(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    await session.execute(delete(TargetEmail))
    await session.commit()
    response = await client.post(
        "/webhook/brevo", json=brevo("hard_bounce", letter.message_id, email="")
    )
    assert response.status_code == 200
    assert response.json() == {"handled": 0, "tracked": 1}


async def test_events_for_unknown_or_deleted_messages_are_dropped(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    unknown = letter.message_id + 1000
    response = await client.post(
        "/webhook/mailjet", json=[mailjet("sent", unknown), mailjet("bounce", unknown)]
    )
    assert response.status_code == 200
    assert response.json() == {"handled": 0, "tracked": 0}
    await session.execute(delete(Message))
    await session.commit()
    response = await client.post("/webhook/brevo", json=brevo("click", letter.message_id))
    assert response.status_code == 200
    assert response.json() == {"handled": 0, "tracked": 0}
    assert {s for s, _, _ in (await addresses(session)).values()} == {EmailStatus.NONE}


async def test_one_mailjet_report_mixes_supporter_and_letter_events(
    client: httpx.AsyncClient, session: AsyncSession, pipeline: RecordingPipeline
) -> None:
    letter = await make_letter(session)
    supporter_bounce = mailjet("bounce", 0, email=SUPPORTER, CustomID=f"action:{letter.action_id}")
    report = [
        mailjet("sent", letter.message_id),
        supporter_bounce,
        mailjet("click", letter.message_id),
        mailjet("bounce", letter.message_id, email=SECOND),
        mailjet("open", 0, CustomID="user:staff@example.org"),
    ]
    response = await client.post("/webhook/mailjet", json=report)
    assert response.status_code == 200
    assert response.json() == {"handled": 1, "tracked": 3}
    await session.rollback()
    session.expunge_all()
    supporter = (await session.scalars(select(Supporter))).one()
    assert (supporter.processing_status, supporter.email_status) == (
        S.REJECTED,
        EmailStatus.BOUNCE,
    )
    assert await flags(session, letter.message_id) == (False, True, True, True)
    state = await addresses(session)
    assert state[FIRST][0] == EmailStatus.ACTIVE
    assert state[SECOND][0] == EmailStatus.BOUNCE


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_events_are_counted_by_provider_and_kind(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    mid = letter.message_id
    before = (
        sample("proca_mtt_provider_events_total", provider="brevo", event="open"),
        sample("proca_mtt_provider_events_total", provider="brevo", event="other"),
        sample("proca_mtt_provider_events_total", provider="mailjet", event="soft_bounce"),
        sample("proca_email_provider_bounces_total", provider="mailjet", reason="soft_bounce"),
    )
    await client.post("/webhook/brevo", json=brevo("proxy_open", mid))
    await client.post("/webhook/brevo", json=brevo("request", mid))
    await client.post("/webhook/mailjet", json=mailjet("bounce", mid, hard_bounce=False))
    after = (
        sample("proca_mtt_provider_events_total", provider="brevo", event="open"),
        sample("proca_mtt_provider_events_total", provider="brevo", event="other"),
        sample("proca_mtt_provider_events_total", provider="mailjet", event="soft_bounce"),
        sample("proca_email_provider_bounces_total", provider="mailjet", reason="soft_bounce"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]


async def test_reports_without_the_webhook_secret_are_refused_when_one_is_set(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    letter = await make_letter(session)
    previous = state_of(app).settings
    state_of(app).settings = previous.model_copy(update={"email_webhook_secret": "Hook-s3cret-42"})
    try:
        event = [mailjet("bounce", letter.message_id)]
        anonymous = await client.post("/webhook/mailjet", json=event)
        wrong = await client.post("/webhook/brevo?secret=nope", json=brevo("hard_bounce", 1))
        assert (anonymous.status_code, wrong.status_code) == (401, 401)
        assert "Hook-s3cret-42" not in anonymous.text
        statuses = await addresses(session)
        assert statuses[FIRST][0] is EmailStatus.NONE  # nothing changed
        basic = await client.post("/webhook/mailjet", json=event, auth=("proca", "Hook-s3cret-42"))
        query = await client.post(
            "/webhook/brevo?secret=Hook-s3cret-42", json=brevo("delivered", letter.message_id)
        )
        assert (basic.status_code, query.status_code) == (200, 200)
        statuses = await addresses(session)
        assert statuses[FIRST][0] is EmailStatus.BOUNCE
    finally:
        state_of(app).settings = previous
