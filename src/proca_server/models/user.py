from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, CIText, TimestampMixin, UTCDateTime


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        Index(None, "email", unique=True),
        Index(None, "external_id", unique=True),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(CIText())
    external_id: Mapped[str | None] = mapped_column(String(255))
    hashed_password: Mapped[str] = mapped_column(String(255))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    perms: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    picture_url: Mapped[str | None] = mapped_column(Text)
    job_title: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
