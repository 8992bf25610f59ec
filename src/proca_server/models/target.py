from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, JSONMap, TimestampMixin


class Target(TimestampMixin, Base):
    """A mail-to-target recipient; UUID primary key as in the original."""

    __tablename__ = "targets"
    __table_args__ = (Index(None, "external_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str] = mapped_column(String(255))
    area: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(255))
    fields: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
    campaign_id: Mapped[int] = mapped_column(ID, ForeignKey("campaigns.id"), index=True)
