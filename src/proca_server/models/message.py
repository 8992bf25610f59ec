from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import ID, Base, StringArray, TimestampMixin, UTCDateTime


class MessageContent(TimestampMixin, Base):
    """Subject and body of a mail-to-target action, shared by its messages."""

    __tablename__ = "message_contents"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    body: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))


class Message(Base):
    """One mail-to-target email from an action to a target."""

    __tablename__ = "messages"
    __table_args__ = (Index(None, "target_id", "dupe_rank", "sent", "id"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    action_id: Mapped[int] = mapped_column(
        ID, ForeignKey("actions.id", ondelete="CASCADE"), index=True
    )
    message_content_id: Mapped[int] = mapped_column(
        ID, ForeignKey("message_contents.id", ondelete="CASCADE")
    )
    target_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("targets.id", ondelete="RESTRICT")
    )
    sent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    delivered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    opened: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    clicked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    dupe_rank: Mapped[int | None] = mapped_column()
    files: Mapped[list[str]] = mapped_column(StringArray(), default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
