from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import ID, Base, UTCDateTime


class EmailSent(Base):
    """A supporter email of an action that the provider accepted, by kind (`thank_you`,
    `confirm`, `duplicate`): a redelivered queue message never sends it twice."""

    __tablename__ = "email_sent"
    __table_args__ = (Index(None, "action_id", "kind", unique=True),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    action_id: Mapped[int] = mapped_column(ID, ForeignKey("actions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
