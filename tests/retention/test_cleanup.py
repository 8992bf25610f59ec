"""The retention cleanup: who is a candidate, what each mode erases, batches that
can stop midway and a rerun that finishes."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proca_server.audit import service as audit
from proca_server.errors import UserInputError
from proca_server.models import Action, AuditLog, Org, Supporter
from proca_server.retention.repository import Counts
from proca_server.retention.service import (
    RetentionRun,
    count,
    erase,
    list_candidates,
    plan_run,
)
from tests.retention.world import (
    LATELY,
    LONG_AGO,
    NOW,
    Retention,
    cleartext,
    contacts_of,
    make_retention_world,
    sign,
    table_count,
)

CLEARED = (None, None, None, None)


@pytest.fixture
async def world(session: AsyncSession) -> Retention:
    return await make_retention_world(session)


async def planned(
    session: AsyncSession,
    world: Retention,
    *,
    mode: str | None = None,
    months: str | None = None,
    campaign: str | None = None,
) -> RetentionRun:
    run = await plan_run(
        session, world.org.name, months=months, mode=mode, campaign=campaign, now=NOW
    )
    await session.rollback()
    return run


async def run_all(
    sessionmaker: async_sessionmaker[AsyncSession], run: RetentionRun, batch_size: int = 2
) -> tuple[int, int, int, int]:
    candidates = await list_candidates(sessionmaker, run)
    report = await erase(sessionmaker, run, candidates, actor=audit.CLI, batch_size=batch_size)
    assert report.complete
    return report.contacts, report.supporters, report.anonymised, report.skipped


async def test_dry_run_counts_the_eligible_and_changes_nothing(
    session: AsyncSession, world: Retention
) -> None:
    delete_run = await planned(session, world)
    assert delete_run.mode.value == "delete_contacts" and delete_run.months == 24
    # ann and bob; cat is protected by her live signature, dan and eve are recent, fay
    # is the partner's
    assert await count(session, delete_run) == Counts(contacts=2, supporters=2, unshared=1)
    assert await contacts_of(session, world.people["ann"]) == [world.org.id]
    # older than 31 months: none
    assert await count(session, await planned(session, world, months="31")) == Counts()


async def test_delete_contacts_deletes_the_org_contacts_only(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], world: Retention
) -> None:
    actions = await table_count(session, Action)
    run = await planned(session, world, mode="delete_contacts")
    assert await run_all(sessionmaker, run) == (2, 2, 0, 0)

    ann, bob = world.people["ann"], world.people["bob"]
    assert await contacts_of(session, ann) == []
    assert await contacts_of(session, bob) == [world.partner.id]
    # the cleartext stays in this mode
    assert (await cleartext(session, ann))[:3] == ("Ann", "Lee", "ann@example.org")
    for kept in ("cat", "cat_live", "dan", "eve"):
        assert await contacts_of(session, world.people[kept]) == [world.org.id], kept
    assert await contacts_of(session, world.people["fay"]) == [world.partner.id]
    assert await table_count(session, Action) == actions
    assert await table_count(session, Supporter) == len(world.people)

    entry = (await session.execute(select(AuditLog))).scalar_one()
    assert (entry.actor_id, entry.resource, entry.org_id) == ("cli", "retention", world.org.id)
    assert entry.changeset == {
        "mode": "delete_contacts",
        "months": 24,
        "campaign": None,
        "contacts": 2,
        "supporters": 2,
        "anonymised": 0,
        "skipped": 0,
        "complete": True,
        "count": 2,
    }
    # nothing is left to do
    assert await count(session, run) == Counts()
    assert await run_all(sessionmaker, run) == (0, 0, 0, 0)


async def test_remove_pii_also_clears_cleartext_no_other_org_holds(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], world: Retention
) -> None:
    run = await planned(session, world, mode="remove_pii")
    assert await run_all(sessionmaker, run) == (2, 2, 1, 0)

    ann, bob = world.people["ann"], world.people["bob"]
    # the area stays: the counters are made of it
    assert await cleartext(session, ann) == (*CLEARED, "DE")
    assert await contacts_of(session, ann) == []
    # the partner still holds a contact of bob's: his cleartext is the partner's too
    assert (await cleartext(session, bob))[:3] == ("Bob", "Lee", "bob@example.org")
    assert await contacts_of(session, bob) == [world.partner.id]
    for kept in ("cat", "dan", "eve", "fay"):
        assert (await cleartext(session, world.people[kept]))[0] == kept.title(), kept
    await session.rollback()
    fingerprints = (await session.scalars(select(Supporter.fingerprint))).all()
    assert len(set(fingerprints)) == 6  # fingerprints stay
    assert await run_all(sessionmaker, run) == (0, 0, 0, 0)


async def test_a_campaign_filter_protects_within_that_campaign_only(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], world: Retention
) -> None:
    old = await planned(session, world, campaign=world.old.campaign)
    # cat's live signature is in another campaign: her old contact goes now
    assert await count(session, old) == Counts(contacts=3, supporters=3, unshared=2)
    assert await run_all(sessionmaker, old) == (3, 3, 0, 0)
    assert await contacts_of(session, world.people["cat"]) == []
    assert await contacts_of(session, world.people["cat_live"]) == [world.org.id]


async def test_an_interrupted_run_keeps_its_batches_and_a_rerun_finishes(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], world: Retention
) -> None:
    for n in range(5):
        await sign(session, world.old, f"more{n}", at=LONG_AGO, contacts=[world.org])
    await session.commit()
    run = await planned(session, world, mode="remove_pii")
    assert await count(session, run) == Counts(contacts=7, supporters=7, unshared=6)

    class Stop(Exception):
        pass

    batches = 0

    def advance(n: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise Stop  # the operator's Ctrl-C after the second batch

    candidates = await list_candidates(sessionmaker, run)
    with pytest.raises(Stop):
        await erase(sessionmaker, run, candidates, actor=audit.CLI, batch_size=3, advance=advance)
    assert await count(session, run) == Counts(contacts=1, supporters=1, unshared=1)
    entry = (await session.execute(select(AuditLog))).scalar_one()
    assert entry.changeset["supporters"] == 6 and entry.changeset["complete"] is False

    assert await run_all(sessionmaker, run) == (1, 1, 1, 0)
    assert await count(session, run) == Counts()
    await session.rollback()
    entries = (await session.scalars(select(AuditLog).order_by(AuditLog.inserted_at))).all()
    assert sorted(e.changeset["supporters"] for e in entries) == [1, 6]


async def test_a_person_who_acts_again_during_a_run_is_left_alone(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], world: Retention
) -> None:
    run = await planned(session, world)
    candidates = await list_candidates(sessionmaker, run)
    assert len(candidates) == 2
    await sign(session, world.live, "ann", at=LATELY, contacts=[world.org])
    await session.commit()
    report = await erase(sessionmaker, run, candidates, actor=audit.CLI)
    assert (report.supporters, report.skipped) == (1, 1)
    assert await contacts_of(session, world.people["ann"]) == [world.org.id]


async def test_unknown_org_campaign_months_or_mode_are_refused(
    session: AsyncSession, world: Retention
) -> None:
    with pytest.raises(UserInputError, match="no org named nobody"):
        await plan_run(session, "nobody", months=None, mode=None, campaign=None, now=NOW)
    with pytest.raises(UserInputError, match="no campaign named nothing"):
        await planned(session, world, campaign="nothing")
    for months in ("0", "-3", "1201", "two"):
        with pytest.raises(UserInputError, match="--months must be a whole number"):
            await planned(session, world, months=months)
    with pytest.raises(UserInputError, match="--mode must be one of delete_contacts, remove_pii"):
        await planned(session, world, mode="delete_everything")


async def test_the_org_policy_gives_the_defaults(session: AsyncSession, world: Retention) -> None:
    org = await session.get(Org, world.org.id)
    assert org is not None
    org.config = {"retention": {"months": 6, "mode": "remove_pii"}}
    await session.commit()
    run = await planned(session, world)
    assert (run.mode.value, run.months) == ("remove_pii", 6)
    # dan's campaign ended a month ago: still too recent for 6 months
    assert await count(session, run) == Counts(contacts=2, supporters=2, unshared=1)
    given = await planned(session, world, months="1", mode="delete_contacts")
    assert (given.mode.value, given.months) == ("delete_contacts", 1)
