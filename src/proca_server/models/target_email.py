from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, SmallInteger, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, IntEnum, TimestampMixin
from proca_server.models.enums import EmailStatus


class TargetEmail(TimestampMixin, Base):
    __tablename__ = "target_emails"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(255))
    email_status: Mapped[EmailStatus] = mapped_column(
        IntEnum(EmailStatus, SmallInteger()), default=EmailStatus.NONE, server_default=text("0")
    )
    error: Mapped[str | None] = mapped_column(String(255))
    soft_bounce_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    target_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("targets.id", ondelete="CASCADE"), index=True
    )
