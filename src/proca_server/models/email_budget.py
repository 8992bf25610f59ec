from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import ID, Base, UTCDateTime


class TransactionalEmailUsage(Base):
    """Emails an org sent through its transactional backend since the last reset
    (service/budget.py).

    Kept in the database so that every server process counts against the same budget."""

    __tablename__ = "transactional_email_usage"

    org_id: Mapped[int] = mapped_column(
        ID, ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    sent: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    reset_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
