from __future__ import annotations

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, TimestampMixin


class Source(TimestampMixin, Base):
    """UTM tracking tuple, shared between actions and supporters."""

    __tablename__ = "sources"
    __table_args__ = (
        Index(None, "source", "medium", "campaign", "content", "location", unique=True),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(255))
    medium: Mapped[str] = mapped_column(String(255))
    campaign: Mapped[str] = mapped_column(
        String(255), default="unknown", server_default=text("'unknown'")
    )
    content: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    location: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
