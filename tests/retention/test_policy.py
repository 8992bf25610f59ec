"""An org's retention policy (`config.retention`): checked when the config is set through the
API, applied by the server's daily housekeeping at most once a day across processes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.kit.time import months_before
from proca_server.models import AuditLog, Campaign, Org, ScheduledRun
from proca_server.models.enums import CampaignStatus
from proca_server.retention import schedule
from proca_server.retention.loop import tick
from proca_server.retention.policy import Mode, RetentionPolicy, org_policy
from proca_server.user.service import reset_api_token
from tests.factories import make_user, make_world
from tests.graphql_helpers import data, error, gql
from tests.retention.world import NOW, campaign_with_page, contacts_of, make_retention_world

UPDATE = (
    "mutation($n: String!, $c: Json!) { updateOrg(name: $n, input: {config: $c}) { name config } }"
)


async def set_config(
    client: httpx.AsyncClient, name: str, token: str, config: dict[str, Any]
) -> dict[str, Any]:
    return await gql(client, UPDATE, {"n": name, "c": json.dumps(config)}, token=token)


@pytest.mark.parametrize(
    ("retention", "field", "message"),
    [
        ({"months": 0, "mode": "remove_pii"}, "months", "from 1 to 1200"),
        ({"months": 1201, "mode": "remove_pii"}, "months", "from 1 to 1200"),
        ({"months": "two", "mode": "remove_pii"}, "months", "whole number of months"),
        ({"months": True, "mode": "remove_pii"}, "months", "whole number of months"),
        ({"months": 2.5, "mode": "remove_pii"}, "months", "whole number of months"),
        ({"mode": "remove_pii"}, "months", "can't be blank"),
        ({"months": 24}, "mode", "can't be blank"),
        ({"months": 24, "mode": "forget"}, "mode", "delete_contacts, remove_pii"),
        ({"months": 24, "mode": "remove_pii", "month": 3}, "month", "not a retention setting"),
    ],
)
async def test_a_policy_that_would_not_hold_is_refused_naming_its_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    retention: dict[str, Any],
    field: str,
    message: str,
) -> None:
    world = await make_world(session)
    refused = error(
        await set_config(
            client, world.org.name, world.tokens["owner"], {"x": 1, "retention": retention}
        )
    )
    assert refused["extensions"]["code"] == "bad_arg"
    assert refused["path"] == ["updateOrg", "config", "retention", field]
    assert message in refused["message"]
    await session.rollback()
    org = await session.get(Org, world.org.id)
    assert org is not None and org.config == {}


async def test_a_policy_that_holds_is_stored_and_read_back(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    config = {"retention": {"months": "36", "mode": "remove_pii"}, "reminder": {"enabled": True}}
    saved = data(await set_config(client, world.org.name, world.tokens["owner"], config))
    assert json.loads(saved["updateOrg"]["config"]) == config
    assert org_policy(config) == RetentionPolicy(36, Mode.REMOVE_PII)
    # removed again
    assert data(
        await set_config(client, world.org.name, world.tokens["owner"], {"retention": None})
    )
    refused = error(
        await set_config(client, world.org.name, world.tokens["owner"], {"retention": 24})
    )
    assert refused["path"] == ["updateOrg", "config", "retention"]


async def test_add_org_checks_the_policy_too(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await make_user(session)
    token = await reset_api_token(session, user)
    await session.commit()
    refused = error(
        await gql(
            client,
            'mutation($c: Json!) { addOrg(input: {name: "keeper", title: "K", config: $c}) '
            "{ name } }",
            {"c": json.dumps({"retention": {"months": -1, "mode": "remove_pii"}})},
            token=token,
        )
    )
    assert refused["path"] == ["addOrg", "config", "retention", "months"]


def test_months_are_calendar_months() -> None:
    assert months_before(datetime(2026, 3, 31, 12, tzinfo=UTC), 1) == datetime(
        2026, 2, 28, 12, tzinfo=UTC
    )
    assert months_before(datetime(2024, 3, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 24) == datetime(2024, 1, 15, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 13) == datetime(
        2024, 12, 15, tzinfo=UTC
    )


async def audit_entries(session: AsyncSession) -> list[AuditLog]:
    await session.rollback()
    return list((await session.scalars(select(AuditLog).order_by(AuditLog.inserted_at))).all())


async def test_the_daily_housekeeping_applies_a_policy_once_a_day(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    world = await make_retention_world(session)
    org = await session.get(Org, world.org.id)
    assert org is not None
    org.config = {"retention": {"months": 24, "mode": "remove_pii"}}
    await session.commit()

    first = await tick(sessionmaker, NOW, batch_size=1)
    done = first.retention[world.org.name]
    assert (done.contacts, done.supporters, done.anonymised, done.complete) == (2, 2, 1, True)
    assert first.closed == [] and first.failed == []
    assert await contacts_of(session, world.people["ann"]) == []
    [entry] = await audit_entries(session)
    assert (entry.actor_id, entry.resource, entry.org_id) == ("system", "retention", world.org.id)
    assert entry.changeset["mode"] == "remove_pii" and entry.changeset["supporters"] == 2

    # an hour later: not due, in this process or another
    later = await tick(sessionmaker, NOW + timedelta(hours=1))
    assert later.retention == {} and later.closed is None and later.failed == []
    # the next day: due again, nothing left to do
    next_day = await tick(sessionmaker, NOW + timedelta(hours=25))
    assert next_day.retention[world.org.name].supporters == 0
    assert len(await audit_entries(session)) == 2

    run = await session.get(ScheduledRun, schedule.retention_job(world.org.id))
    assert run is not None
    assert run.next_run_at == NOW + timedelta(hours=49)
    assert run.claimed_by is None and run.last_outcome["mode"] == "remove_pii"


async def test_processes_looking_at_once_run_a_job_once(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    world = await make_retention_world(session)
    org = await session.get(Org, world.org.id)
    assert org is not None
    org.config = {"retention": {"months": 24, "mode": "delete_contacts"}}
    await session.commit()
    reports = await asyncio.gather(*(tick(sessionmaker, NOW) for _ in range(3)))
    assert sorted(len(r.retention) for r in reports) == [0, 0, 1]
    assert sorted(r.closed is not None for r in reports) == [False, False, True]
    assert len(await audit_entries(session)) == 1


async def test_a_claim_that_is_not_renewed_expires(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    world = await make_retention_world(session)
    org = await session.get(Org, world.org.id)
    assert org is not None
    org.config = {"retention": {"months": 24, "mode": "delete_contacts"}}
    await session.commit()
    job = schedule.retention_job(world.org.id)
    async with sessionmaker() as s, s.begin():
        await schedule.ensure_jobs(s, [(job, world.org.id)])
        assert await schedule.claim(s, job, NOW) is not None  # then the process dies
    assert world.org.name not in (await tick(sessionmaker, NOW + timedelta(minutes=5))).retention
    taken = await tick(sessionmaker, NOW + schedule.LEASE + timedelta(seconds=1))
    assert taken.retention[world.org.name].supporters == 2


async def test_a_stored_policy_that_does_not_hold_is_reported_not_applied(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    world = await make_retention_world(session)
    org = await session.get(Org, world.org.id)
    assert org is not None
    org.config = {"retention": {"months": "forever", "mode": "remove_pii"}}
    await session.commit()
    report = await tick(sessionmaker, NOW)
    assert report.failed == [world.org.name] and report.retention == {}
    assert await contacts_of(session, world.people["ann"]) == [world.org.id]
    run = await session.get(ScheduledRun, schedule.retention_job(world.org.id))
    assert run is not None and run.last_outcome == {"error": "invalid policy"}


async def test_the_daily_housekeeping_closes_campaigns_whose_end_date_passed(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    world = await make_retention_world(session)
    today = NOW.date()
    ended = await campaign_with_page(
        session, world.org, status=CampaignStatus.LIVE, ended=today - timedelta(days=1)
    )
    ends_today = await campaign_with_page(
        session, world.org, status=CampaignStatus.LIVE, ended=today
    )
    await session.commit()
    assert (await tick(sessionmaker, NOW)).closed == [ended.campaign]
    assert (await tick(sessionmaker, NOW + timedelta(hours=2))).closed is None
    assert (await tick(sessionmaker, NOW + timedelta(days=1, hours=1))).closed == [
        ends_today.campaign
    ]
    await session.rollback()
    statuses = dict((await session.execute(select(Campaign.name, Campaign.status))).all())
    assert statuses[ended.campaign] == statuses[ends_today.campaign] == CampaignStatus.CLOSED
    # never reopened, nor are closed campaigns touched
    assert statuses[world.old.campaign] == CampaignStatus.CLOSED
