from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, TimestampMixin, UTCDateTime


class Staffer(TimestampMixin, Base):
    """Membership of a user in an org, with the staffer permission bits."""

    __tablename__ = "staffers"
    __table_args__ = (Index(None, "org_id", "user_id", unique=True),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    perms: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    last_signin_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    org_id: Mapped[int] = mapped_column(ID, ForeignKey("orgs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
