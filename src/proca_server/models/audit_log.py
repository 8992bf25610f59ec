from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import ID, Base, JSONMap, UTCDateTime


class AuditLog(Base):
    """Who did what to which resource: staff reads of personal data, key changes, erasures,
    retention runs and rights requests (audit/service.py), and the captcha metadata of a
    signature (resource `captcha_actions`)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("audit_log_org_id_inserted_at_index", "org_id", "inserted_at"),
        Index("audit_log_inserted_at_index", "inserted_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    actor_id: Mapped[str] = mapped_column(String(255))
    resource: Mapped[str] = mapped_column(String(255))
    resource_id: Mapped[str] = mapped_column(String(255))
    changeset: Mapped[dict[str, Any]] = mapped_column(JSONMap(), default=dict)
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # the org concerned (no foreign key: the trail outlives the org)
    org_id: Mapped[int | None] = mapped_column(ID, nullable=True)
