from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, JSONMap, StringArray, TimestampMixin, UTCDateTime


class Mtt(TimestampMixin, Base):
    """Mail-to-target settings of one campaign."""

    __tablename__ = "mtt"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ID, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True, unique=True
    )
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
    test_email: Mapped[str | None] = mapped_column(String(255))
    cc_contacts: Mapped[list[str]] = mapped_column(StringArray(), default=list)
    cc_sender: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    message_template: Mapped[str | None] = mapped_column(String(255))
    max_emails_per_hour: Mapped[int | None] = mapped_column()
    timezone: Mapped[str] = mapped_column(
        String(255), default="Etc/UTC", server_default=text("'Etc/UTC'")
    )
    drip_delivery: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
