"""The rows of a signature: supporter, its contacts, the action and its counter change.

They are written with Core statements, not through the ORM unit of work: the signature is the
hot path and the rows are never read back in the same request. On PostgreSQL all of them go in
ONE statement (data-modifying CTEs), so a signature costs BEGIN, one statement and COMMIT; on
SQLite they are consecutive inserts in the same transaction. The columns a row fills are its
dataclass's fields, looked up in the models' tables; the statement is built from those once
per shape (how many contacts, counted or not)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, TextClause, bindparam, insert, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from proca_server.models import Action, Contact, Supporter
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


def _columns(table: Table, row: type) -> tuple[str, ...]:
    """The columns of `table` a row of type `row` fills, in the row's order: its fields are named
    after them (a field the table does not have fails here, at import)."""
    return tuple(table.c[field.name].name for field in fields(row))


_SUPPORTERS = cast(Table, Supporter.__table__)
_CONTACTS = cast(Table, Contact.__table__)
_ACTIONS = cast(Table, Action.__table__)
_SUPPORTER_COLUMNS = _columns(_SUPPORTERS, SupporterRow)
_CONTACT_COLUMNS = _columns(_CONTACTS, ContactRow)
_ACTION_COLUMNS = _columns(_ACTIONS, ActionRow)
# the scopes of a signature's communication consent
COMMUNICATION_SCOPES = ["email"]

_statements: dict[tuple[int, bool], TextClause] = {}


def _insert(table: Table, rows: Sequence[Mapping[str, str]]) -> str:
    """INSERT INTO `table` ... VALUES: one row per item of `rows` (column name: SQL expression),
    each stamped `:now` (a name the table lacks fails)."""
    names = [table.c[name].name for name in rows[0]]
    names += [table.c.inserted_at.name, table.c.updated_at.name]
    values = ", ".join("(" + ", ".join([*row.values(), ":now", ":now"]) + ")" for row in rows)
    # names from the models' tables, and this module's own placeholders: no input in the text
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {values}"  # noqa: S608


def _pg_statement(contacts: int, counted: bool) -> TextClause:
    """The signature's statement for `contacts` contact rows, with or without the counter
    CTEs; built once per shape from the models' tables. Every value goes into its column by
    INSERT ... VALUES, where PostgreSQL gives a parameter its column's type. Parameters: the
    supporter's columns under their own names (campaign_id, fingerprint and area are shared
    with the counter CTEs), `c<i>_<column>` per contact, `a_<column>` for the action,
    `scopes` and `now`."""
    key = (contacts, counted)
    stmt = _statements.get(key)
    if stmt is not None:
        return stmt
    new_supporter = "(SELECT id FROM s)"
    supporter = {c: f":{c}" for c in _SUPPORTER_COLUMNS}
    contact_rows = [
        {
            "supporter_id": new_supporter,
            **{c: f":c{i}_{c}" for c in _CONTACT_COLUMNS},
            "communication_scopes": ":scopes",
        }
        for i in range(contacts)
    ]
    action = {"supporter_id": new_supporter, **{c: f":a_{c}" for c in _ACTION_COLUMNS}}
    parts = [f"WITH s AS ({_insert(_SUPPORTERS, [supporter])} RETURNING id)"]
    if contact_rows:
        parts.append(f", c AS ({_insert(_CONTACTS, contact_rows)})")
    parts.append(f", a AS ({_insert(_ACTIONS, [action])} RETURNING id)")
    if counted:
        parts += [", ", counters.PG_COUNTER_CTES]
    parts.append(" SELECT s.id, a.id FROM s, a")
    # the two parameters whose values need their column type's conversion on the way in
    stmt = text("".join(parts)).bindparams(
        bindparam("now", type_=_SUPPORTERS.c.inserted_at.type),
        bindparam("a_fields", type_=_ACTIONS.c.fields.type),
    )
    _statements[key] = stmt
    return stmt


def _values(row: Any, columns: Sequence[str]) -> dict[str, Any]:
    return {c: getattr(row, c) for c in columns}


def _pg_params(
    supporter: SupporterRow,
    contacts: Sequence[ContactRow],
    action: ActionRow,
    counted: Counted | None,
    now: datetime,
) -> dict[str, Any]:
    params = _values(supporter, _SUPPORTER_COLUMNS)
    for i, contact in enumerate(contacts):
        params.update({f"c{i}_{c}": getattr(contact, c) for c in _CONTACT_COLUMNS})
    params.update({f"a_{c}": getattr(action, c) for c in _ACTION_COLUMNS})
    params["scopes"] = COMMUNICATION_SCOPES
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
    action id); on its own (autocommit) it is atomic."""
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
    if bind is not None and bind.dialect.name == "postgresql":
        params = _pg_params(supporter, contacts, action, counted, now)
        row = (
            await session.execute(_pg_statement(len(contacts), counted is not None), params)
        ).one()
        return int(row[0]), int(row[1])

    supporter_id = int(
        (
            await session.execute(
                insert(_SUPPORTERS)
                .values(**_values(supporter, _SUPPORTER_COLUMNS), inserted_at=now, updated_at=now)
                .returning(_SUPPORTERS.c.id)
            )
        ).scalar_one()
    )
    if contacts:
        # the table, not the entity: the ORM's bulk insert would leave a None consent out
        # (and the column's default false would replace "not asked")
        await session.execute(
            insert(_CONTACTS),
            [
                {
                    "supporter_id": supporter_id,
                    **_values(contact, _CONTACT_COLUMNS),
                    "communication_scopes": COMMUNICATION_SCOPES,
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
                insert(_ACTIONS)
                .values(
                    supporter_id=supporter_id,
                    **_values(action, _ACTION_COLUMNS),
                    inserted_at=now,
                    updated_at=now,
                )
                .returning(_ACTIONS.c.id)
            )
        ).scalar_one()
    )
