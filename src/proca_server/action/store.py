"""The rows of a signature: supporter, its contacts, the action and its counter change.

They are written with Core statements, not through the ORM unit of work: the signature is the
hot path and the rows are never read back in the same request. On PostgreSQL all of them go in
ONE statement (data-modifying CTEs), so a signature costs BEGIN, one statement and COMMIT; on
SQLite they are consecutive inserts in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, TextClause, bindparam, insert, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, Contact, Supporter
from proca_server.models.base import JSONMap, UTCDateTime
from proca_server.stats import record as counters


@dataclass(frozen=True)
class SupporterRow:
    fingerprint: bytes
    campaign_id: int
    action_page_id: int
    source_id: int | None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    address: str | None = None
    area: str | None = None


@dataclass(frozen=True)
class ContactRow:
    org_id: int
    payload: bytes
    crypto_nonce: bytes | None
    public_key_id: int | None
    sign_key_id: int | None
    communication_consent: bool | None  # None: not asked
    delivery_consent: bool


@dataclass(frozen=True)
class ActionRow:
    action_type: str
    fields: dict[str, Any]
    testing: bool
    campaign_id: int
    action_page_id: int
    source_id: int | None
    with_consent: bool
    ref: bytes | None = None


@dataclass(frozen=True)
class Counted:
    """The counter change of the signature: the page owner org and the person's area."""

    org_id: int
    area: str | None


_SUPPORTER_COLUMNS = (
    "fingerprint",
    "campaign_id",
    "action_page_id",
    "source_id",
    "first_name",
    "last_name",
    "email",
    "address",
    "area",
)
_CONTACT_COLUMNS = (
    "org_id",
    "payload",
    "crypto_nonce",
    "public_key_id",
    "sign_key_id",
    "communication_consent",
    "delivery_consent",
)
_ACTION_COLUMNS = (
    "action_type",
    "fields",
    "testing",
    "campaign_id",
    "action_page_id",
    "source_id",
    "with_consent",
    "ref",
)

_statements: dict[tuple[int, bool], TextClause] = {}


def _pg_statement(contacts: int, counted: bool) -> TextClause:
    """The signature's statement for `contacts` contact rows, with or without the counter
    CTEs; built once per shape. Parameters: the supporter's columns under their own names
    (campaign_id, fingerprint and area are shared with the counter CTEs), `c<i>_<column>` per
    contact, `a_<column>` for the action, `now`."""
    key = (contacts, counted)
    stmt = _statements.get(key)
    if stmt is not None:
        return stmt
    supporter_values = ", ".join(
        f"CAST(:{c} AS {_PG_TYPES.get(c, 'varchar')})" for c in _SUPPORTER_COLUMNS
    )
    contact_rows = ", ".join(
        "(" + ", ".join(f"CAST(:c{i}_{c} AS {_PG_TYPES[c]})" for c in _CONTACT_COLUMNS) + ")"
        for i in range(contacts)
    )
    action_values = ", ".join(
        f"CAST(:a_{c} AS {_PG_TYPES.get(c, 'varchar')})" for c in _ACTION_COLUMNS
    )
    parts = [
        "WITH s AS (INSERT INTO supporters (",
        ", ".join(_SUPPORTER_COLUMNS),
        ", inserted_at, updated_at) VALUES (",
        supporter_values,
        ", :now, :now) RETURNING id)",
        ", c AS (INSERT INTO contacts (supporter_id, ",
        ", ".join(_CONTACT_COLUMNS),
        ", communication_scopes, inserted_at, updated_at) SELECT s.id, v.*, "
        "ARRAY['email']::varchar[], :now, :now FROM s, (VALUES ",
        contact_rows,
        ") AS v)",
        ", a AS (INSERT INTO actions (supporter_id, ",
        ", ".join(_ACTION_COLUMNS),
        ", inserted_at, updated_at) SELECT s.id, ",
        action_values,
        ", :now, :now FROM s RETURNING id)",
    ]
    if counted:
        parts += [", ", counters.PG_COUNTER_CTES]
    parts.append(" SELECT s.id, a.id FROM s, a")
    stmt = text("".join(parts)).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("a_fields", type_=JSONMap())
    )
    _statements[key] = stmt
    return stmt


def _pg_params(
    supporter: SupporterRow,
    contacts: Sequence[ContactRow],
    action: ActionRow,
    counted: Counted | None,
    now: datetime,
) -> dict[str, Any]:
    params: dict[str, Any] = {c: getattr(supporter, c) for c in _SUPPORTER_COLUMNS}
    for i, contact in enumerate(contacts):
        params.update({f"c{i}_{c}": getattr(contact, c) for c in _CONTACT_COLUMNS})
    params.update({f"a_{c}": getattr(action, c) for c in _ACTION_COLUMNS})
    params["now"] = now
    if counted is not None:
        delta = counters.delta_params(supporter.campaign_id, counted.org_id, action.action_type)
        # the supporter's campaign_id, fingerprint and area are the counter's too
        params.update({k: v for k, v in delta.items() if k not in ("campaign_id", "area")})
    return params


_driver_statements: dict[tuple[int, bool], tuple[str, tuple[str, ...]]] = {}


def pg_signature(
    supporter: SupporterRow,
    contacts: Sequence[ContactRow],
    action: ActionRow,
    counted: Counted | None,
    now: datetime,
) -> tuple[str, list[Any]]:
    """The signature's statement as asyncpg runs it ($n placeholders, compiled once per shape
    by SQLAlchemy's asyncpg dialect, so it is the very text `insert_signature` sends) and its
    arguments, for callers that talk to the driver directly. It returns (supporter id,
    action id); on its own (autocommit) it is atomic. Needs at least one contact."""
    assert contacts
    key = (len(contacts), counted is not None)
    compiled = _driver_statements.get(key)
    if compiled is None:
        done = _pg_statement(*key).compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        compiled = _driver_statements[key] = (done.string, tuple(done.positiontup or ()))
    sql, names = compiled
    params = _pg_params(supporter, contacts, action, counted, now)
    # the bind processing of the statement's two typed parameters (UTCDateTime, JSONMap)
    params["now"] = now.astimezone(UTC).replace(tzinfo=None)
    params["a_fields"] = json.dumps(action.fields)
    return sql, [params[name] for name in names]


_PG_TYPES = {
    "fingerprint": "bytea",
    "campaign_id": "bigint",
    "action_page_id": "bigint",
    "source_id": "bigint",
    "area": "varchar",
    "org_id": "bigint",
    "payload": "bytea",
    "crypto_nonce": "bytea",
    "public_key_id": "bigint",
    "sign_key_id": "bigint",
    "communication_consent": "boolean",
    "delivery_consent": "boolean",
    "fields": "jsonb",
    "testing": "boolean",
    "with_consent": "boolean",
    "ref": "bytea",
}


async def insert_signature(
    session: AsyncSession,
    supporter: SupporterRow,
    contacts: Sequence[ContactRow],
    action: ActionRow,
    counted: Counted | None,
    now: datetime,
) -> tuple[int, int]:
    """Insert the rows (and count them unless `counted` is None); (supporter id, action id)."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql" and contacts:
        params = _pg_params(supporter, contacts, action, counted, now)
        row = (
            await session.execute(_pg_statement(len(contacts), counted is not None), params)
        ).one()
        return int(row[0]), int(row[1])

    supporter_id = int(
        (
            await session.execute(
                insert(Supporter)
                .values(
                    **{c: getattr(supporter, c) for c in _SUPPORTER_COLUMNS},
                    inserted_at=now,
                    updated_at=now,
                )
                .returning(Supporter.id)
            )
        ).scalar_one()
    )
    if contacts:
        # the table, not the entity: the ORM's bulk insert would leave a None consent out
        # (and the column's default false would replace "not asked")
        await session.execute(
            insert(cast(Table, Contact.__table__)),
            [
                {
                    "supporter_id": supporter_id,
                    **{c: getattr(contact, c) for c in _CONTACT_COLUMNS},
                    "communication_scopes": ["email"],
                    "inserted_at": now,
                    "updated_at": now,
                }
                for contact in contacts
            ],
        )
    action_id = await insert_action(session, action, supporter_id, now)
    if counted is not None:
        await counters.record_action(
            session,
            campaign_id=supporter.campaign_id,
            org_id=counted.org_id,
            action_page_id=supporter.action_page_id,
            action_type=action.action_type,
            fingerprint=supporter.fingerprint,
            area=counted.area,
            testing=False,
        )
    return supporter_id, action_id


async def insert_action(
    session: AsyncSession, action: ActionRow, supporter_id: int | None, now: datetime
) -> int:
    return int(
        (
            await session.execute(
                insert(Action)
                .values(
                    supporter_id=supporter_id,
                    **{c: getattr(action, c) for c in _ACTION_COLUMNS},
                    inserted_at=now,
                    updated_at=now,
                )
                .returning(Action.id)
            )
        ).scalar_one()
    )
