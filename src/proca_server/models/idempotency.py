from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import Base, UTCDateTime


class IdempotencyKey(Base):
    """A client's idempotency key: reserved in the transaction of the writes it guards, then
    given the answer the client got, which a retry receives again. `key` is a digest of the
    caller and the client's string (graphql/idempotency.py), `request_hash` one of the request
    it first came with."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str | None] = mapped_column(Text)
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
