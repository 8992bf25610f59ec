from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, IntEnum, TimestampMixin, UTCDateTime
from proca_server.models.enums import EmailStatus, SupporterProcessingStatus


class Supporter(TimestampMixin, Base):
    __tablename__ = "supporters"
    __table_args__ = (Index(None, "campaign_id", "fingerprint"), Index(None, "fingerprint"))

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    campaign_id: Mapped[int] = mapped_column(ID, ForeignKey("campaigns.id", ondelete="RESTRICT"))
    action_page_id: Mapped[int] = mapped_column(
        ID, ForeignKey("action_pages.id", ondelete="RESTRICT"), index=True
    )
    source_id: Mapped[int | None] = mapped_column(ID, ForeignKey("sources.id", ondelete="SET NULL"))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(255))
    area: Mapped[str | None] = mapped_column(String(32))
    processing_status: Mapped[SupporterProcessingStatus] = mapped_column(
        IntEnum(SupporterProcessingStatus),
        default=SupporterProcessingStatus.NEW,
        server_default=text("0"),
    )
    email_status: Mapped[EmailStatus] = mapped_column(
        IntEnum(EmailStatus, SmallInteger()), default=EmailStatus.NONE, server_default=text("0")
    )
    email_status_changed: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dupe_rank: Mapped[int | None] = mapped_column(index=True)
