from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, IntEnum, TimestampMixin
from proca_server.models.enums import ConfirmOperation


class Confirm(TimestampMixin, Base):
    """A deferred operation on (subject, object), accepted or rejected with `code`."""

    __tablename__ = "confirms"
    __table_args__ = (Index(None, "code", unique=True),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    operation: Mapped[ConfirmOperation] = mapped_column(IntEnum(ConfirmOperation))
    subject_id: Mapped[int] = mapped_column()
    object_id: Mapped[int | None] = mapped_column()
    email: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(255))
    charges: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    message: Mapped[str | None] = mapped_column(Text)
    creator_id: Mapped[int | None] = mapped_column(ID, ForeignKey("users.id", ondelete="SET NULL"))
