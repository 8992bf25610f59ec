"""Declarative base, shared column types and the original's constraint naming."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String, Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from proca_server.kit.time import utcnow

# Names as Ecto creates them, so a database laid out by the original server matches.
NAMING_CONVENTION = {
    "ix": "%(table_name)s_%(column_0_N_name)s_index",
    "uq": "%(table_name)s_%(column_0_N_name)s_index",
    "ck": "%(table_name)s_%(constraint_name)s",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CIText(TypeDecorator[str]):
    """Case-insensitive text: citext on PostgreSQL, NOCASE collation on SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.CITEXT())
        return dialect.type_descriptor(String(collation="NOCASE"))


class UTCDateTime(TypeDecorator[datetime]):
    """Stored naive UTC (timestamp without time zone, as the original); aware UTC in Python."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where aware UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class JSONMap(TypeDecorator[Any]):
    """jsonb on PostgreSQL, JSON text on SQLite."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(JSON())


class StringArray(TypeDecorator[list[str]]):
    """varchar[] on PostgreSQL, a JSON list in text on SQLite."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(String()))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps(list(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str] | None:
        if value is None or dialect.name == "postgresql":
            return value  # type: ignore[no-any-return]
        return list(json.loads(value))


E = TypeVar("E", bound=enum.IntEnum)


class IntEnum(TypeDecorator[E]):
    """An IntEnum stored as its integer value, as the original stores its enums."""

    impl = Integer
    cache_ok = True

    def __init__(self, enum_class: type[E], column_type: TypeEngine[int] | None = None) -> None:
        super().__init__()
        self.enum_class = enum_class
        self.column_type = column_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(self.column_type or Integer())

    def process_bind_param(self, value: E | int | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_class(value)


class TimestampMixin:
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


# bigint ids as the original has them; SQLite needs INTEGER to keep its rowid autoincrement.
ID = BigInteger().with_variant(Integer(), "sqlite")
