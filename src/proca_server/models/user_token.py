from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import ID, Base, UTCDateTime


class UserToken(Base):
    """Session, email and API tokens; `token` is the SHA-256 of what the user holds
    (session tokens excepted, as in the original)."""

    __tablename__ = "users_tokens"
    __table_args__ = (Index(None, "context", "token", unique=True),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token: Mapped[bytes] = mapped_column(LargeBinary)
    context: Mapped[str] = mapped_column(String(255))
    sent_to: Mapped[str | None] = mapped_column(String(255))
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
