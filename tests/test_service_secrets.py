"""Service passwords are encrypted at rest and read in clear by whoever uses them."""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.app_state import state_of
from proca_server.email.backends import backend_for_service
from proca_server.models import Org, Service
from proca_server.service.passwords import (
    PREFIX,
    current_secret_key_base,
    decrypt_password,
    encrypt_password,
)
from proca_server.workers.common import load_backends
from tests.factories import make_world
from tests.graphql_helpers import data, gql

migration: Any = importlib.import_module(
    "proca_server.migrations.versions.0009_service_passwords_encrypted"
)

UPSERT = (
    "mutation($o: String!, $i: ServiceInput!) { upsertService(orgName: $o, input: $i) "
    "{ id name host user path } }"
)
# longer than the 255 characters the column held before, once encrypted
LONG = "Bearer " + "t" * 180


async def stored_password(session: AsyncSession, service_id: int) -> str:
    """The column as the database holds it."""
    await session.rollback()
    value = await session.scalar(
        text("SELECT password FROM services WHERE id = :id"), {"id": service_id}
    )
    assert isinstance(value, str)
    return value


async def insert_in_clear(session: AsyncSession, org_id: int, name: str, password: str) -> int:
    """A row as it was before passwords were encrypted."""
    now = datetime.now(UTC).replace(tzinfo=None)
    await session.execute(
        text(
            'INSERT INTO services (name, host, "user", password, org_id, inserted_at, '
            "updated_at) VALUES (:name, 'smtp.example.org', 'u', :pw, :org, :now, :now)"
        ),
        {"name": name, "pw": password, "org": org_id, "now": now},
    )
    service_id = await session.scalar(
        text("SELECT max(id) FROM services WHERE org_id = :org"), {"org": org_id}
    )
    await session.commit()
    return int(service_id)


async def test_upsert_service_stores_the_password_encrypted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    world = await make_world(session)
    body = await gql(
        client,
        UPSERT,
        {"o": world.org.name, "i": {"name": "WEBHOOK", "host": "https://h", "password": LONG}},
        token=world.tokens["owner"],
    )
    service = data(body)["upsertService"]
    assert "password" not in service and LONG not in str(body)
    raw = await stored_password(session, service["id"])
    assert raw.startswith(PREFIX) and "t" * 20 not in raw
    loaded = await session.get(Service, service["id"])
    assert loaded is not None and loaded.password == LONG
    # an update through the model is encrypted too, with a fresh nonce
    loaded.password = "rotated"
    await session.commit()
    again = await stored_password(session, service["id"])
    assert again.startswith(PREFIX) and decrypt_password(again) == "rotated"
    assert encrypt_password("rotated") != encrypt_password("rotated")


async def test_the_workers_and_email_backends_get_the_clear_password(
    app: FastAPI, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    hook = Service(name="webhook", host="https://h", password="hook-secret", org_id=world.org.id)
    smtp = Service(
        name="smtp",
        host="tls://smtp.example.org:587",
        user="u",
        password="smtp-pw",
        org_id=world.org.id,
    )
    session.add_all([hook, smtp])
    await session.flush()
    world.org.push_backend_id = hook.id
    ids = world.org.id, smtp.id
    await session.commit()
    assert (await stored_password(session, ids[1])).startswith(PREFIX)
    backends = await load_backends(state_of(app).sessionmaker, ids[0])
    assert backends["push"] is not None and backends["push"].password == "hook-secret"
    service = await session.get(Service, ids[1])
    assert service is not None
    backend = backend_for_service(service, state_of(app).sessionmaker)
    assert backend._password == "smtp-pw"  # type: ignore[union-attr]


async def test_legacy_cleartext_rows_still_work_and_the_migration_encrypts_them(
    app: FastAPI, session: AsyncSession
) -> None:
    world = await make_world(session, roles=())
    org_id = world.org.id
    clear_id = await insert_in_clear(session, org_id, "webhook", "legacy-pw")
    empty_id = await insert_in_clear(session, org_id, "mailjet", "")
    org = await session.get(Org, org_id)
    assert org is not None
    org.push_backend_id = clear_id
    await session.commit()
    backends = await load_backends(state_of(app).sessionmaker, org_id)
    assert backends["push"] is not None and backends["push"].password == "legacy-pw"

    key = current_secret_key_base()
    conn = await session.connection()
    assert await conn.run_sync(migration.encrypt_rows, key) == 1
    assert await conn.run_sync(migration.encrypt_rows, key) == 0  # already encrypted
    await session.commit()
    raw = await stored_password(session, clear_id)
    assert raw.startswith(PREFIX) and "legacy-pw" not in raw
    assert await stored_password(session, empty_id) == ""
    backends = await load_backends(state_of(app).sessionmaker, org_id)
    assert backends["push"] is not None and backends["push"].password == "legacy-pw"

    conn = await session.connection()
    assert await conn.run_sync(migration.decrypt_rows, key) == 1  # the downgrade
    await session.commit()
    assert await stored_password(session, clear_id) == "legacy-pw"


async def test_a_password_under_another_secret_reads_as_empty_and_is_logged_without_it(
    session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(session, roles=())
    foreign = encrypt_password("other-pw", "another SECRET_KEY_BASE, long enough to be one")
    service_id = await insert_in_clear(session, world.org.id, "smtp", foreign)
    caplog.set_level(logging.ERROR)
    service = await session.get(Service, service_id)
    assert service is not None and service.password == ""
    assert any("does not open" in r.getMessage() for r in caplog.records)
    assert not any("other-pw" in r.getMessage() for r in caplog.records)
