from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import Base, JSONMap, UTCDateTime


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    actor_id: Mapped[int | None] = mapped_column()
    resource: Mapped[str] = mapped_column(String(255))
    resource_id: Mapped[int | None] = mapped_column()
    changeset: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
