"""The migrations build the model's schema on both databases, with the original's rules."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from proca_server import db
from proca_server.app import NotMigrated, create_app
from proca_server.app_state import state_of
from proca_server.config import Settings
from proca_server.migrations.migrate import alembic_config, current_revision, head_revision
from proca_server.models import (
    Action,
    Base,
    Org,
    PublicKey,
    Service,
    Staffer,
    User,
    UserToken,
)
from proca_server.models.enums import ActionProcessingStatus
from tests.conftest import create_pg_database, drop_pg_database, pg_available
from tests.factories import make_campaign, make_org, make_page, make_user, make_world


def _diff(conn: Connection) -> list[Any]:
    migration = MigrationContext.configure(conn, opts={"compare_type": False})
    return compare_metadata(migration, Base.metadata)


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
    assert await current_revision(engine) == head_revision()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_every_table_of_the_original_is_there(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert {
        "orgs",
        "campaigns",
        "action_pages",
        "actions",
        "donations",
        "supporters",
        "contacts",
        "sources",
        "public_keys",
        "users",
        "users_tokens",
        "staffers",
        "services",
        "email_templates",
        "confirms",
        "targets",
        "target_emails",
        "mtt",
        "message_contents",
        "messages",
        "audit_log",
    } <= tables


def _indexes(conn: Connection) -> dict[str, list[list[str]]]:
    insp = inspect(conn)
    return {
        t: [list(i["column_names"]) for i in insp.get_indexes(t)]
        for t in ("action_pages", "supporters", "actions", "contacts")
    }


async def test_hot_path_indexes(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        indexes = await conn.run_sync(_indexes)
    assert ["name"] in indexes["action_pages"]
    assert ["campaign_id", "fingerprint"] in indexes["supporters"]
    assert ["supporter_id"] in indexes["actions"]
    assert ["campaign_id", "action_type"] in indexes["actions"]
    assert ["processing_status", "id"] in indexes["actions"]
    assert ["supporter_id", "org_id"] in indexes["contacts"]


async def _add(session: AsyncSession, row: Any) -> Any:
    session.add(row)
    await session.flush()
    return row


@pytest.mark.parametrize(
    "make",
    [
        lambda s, name: make_org(s, name),
        lambda s, name: _add(s, User(email=f"{name}@example.org", hashed_password="x")),
    ],
    ids=["org", "user"],
)
async def test_names_are_unique_case_insensitively(session: AsyncSession, make: Any) -> None:
    await make(session, "Green")
    await session.commit()
    with pytest.raises(IntegrityError):
        await make(session, "gREEN")
    await session.rollback()


async def test_lookups_ignore_case(session: AsyncSession) -> None:
    org = await make_org(session, "CaseOrg")
    campaign = await make_campaign(session, org, "Save-The-Bees")
    await make_page(session, campaign, org, "caseorg/Bees")
    await session.commit()
    assert (await session.execute(select(Org.id).where(Org.name == "caseorg"))).scalar() == org.id
    from proca_server.models import ActionPage, Campaign

    assert await session.scalar(select(Campaign.id).where(Campaign.name == "save-the-bees"))
    assert await session.scalar(select(ActionPage.id).where(ActionPage.name == "CASEORG/bees"))


async def test_foreign_keys_cascade_and_restrict_as_the_original(session: AsyncSession) -> None:
    world = await make_world(session)
    org_id, user_id = world.org.id, world.users["owner"].id
    service = Service(name="webhook", host="https://example.org", org_id=org_id)
    session.add(service)
    await session.flush()
    world.org.email_backend_id = service.id
    await session.commit()

    # deleting a service unsets the org's backend
    await session.delete(service)
    await session.commit()
    assert await session.scalar(select(Org.email_backend_id).where(Org.id == org_id)) is None

    # an org with action pages cannot be deleted
    with pytest.raises(IntegrityError):
        await session.execute(text("DELETE FROM orgs WHERE id = :id"), {"id": org_id})
        await session.flush()
    await session.rollback()

    # deleting a user deletes their tokens and memberships
    await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": user_id})
    await session.commit()
    assert await session.scalar(select(UserToken.id).where(UserToken.user_id == user_id)) is None
    assert await session.scalar(select(Staffer.id).where(Staffer.user_id == user_id)) is None
    assert await session.scalar(select(PublicKey.id).where(PublicKey.org_id == org_id))


async def test_action_fields_size_is_bounded(session: AsyncSession) -> None:
    world = await make_world(session, roles=())
    ok = Action(
        action_type="petition",
        campaign_id=world.campaign.id,
        action_page_id=world.page.id,
        fields={"comment": "x" * 4000},
    )
    session.add(ok)
    await session.commit()
    ok_id = ok.id
    assert ok.processing_status is ActionProcessingStatus.NEW
    raw = await session.scalar(
        text("SELECT processing_status FROM actions WHERE id = :id"), {"id": ok_id}
    )
    assert raw == 0  # enums are stored as the original's integers

    session.add(
        Action(
            action_type="petition",
            campaign_id=world.campaign.id,
            action_page_id=world.page.id,
            fields={"comment": "x" * 6000},
        )
    )
    with pytest.raises(IntegrityError):
        await session.commit()
    await session.rollback()
    stored = await session.scalar(select(Action.fields).where(Action.id == ok_id))
    assert json.dumps(stored).startswith('{"comment"')


async def test_timestamps_are_aware_utc(session: AsyncSession) -> None:
    user = await make_user(session)
    user_id = user.id
    await session.commit()
    session.expire_all()
    fresh = await session.get(User, user_id)
    assert fresh is not None and fresh.inserted_at.tzinfo is not None
    assert fresh.inserted_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not pg_available():
        pytest.skip("PostgreSQL not available")
    name, url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


async def test_app_refuses_an_unmigrated_database(empty_database: str, tmp_path: Path) -> None:
    app: FastAPI = create_app(Settings(DATABASE_URL=empty_database, PROCA_DATA_DIR=str(tmp_path)))
    with pytest.raises(NotMigrated, match="proca-server db upgrade"):
        async with app.router.lifespan_context(app):
            pass
    await state_of(app).engine.dispose()


async def test_downgrade_and_upgrade_again(empty_database: str) -> None:
    url = Settings(DATABASE_URL=empty_database).sqlalchemy_url
    cfg = alembic_config(url)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    await asyncio.to_thread(command.downgrade, cfg, "base")
    await asyncio.to_thread(command.upgrade, cfg, "head")
    engine = db.create_engine(Settings(DATABASE_URL=empty_database))
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()
