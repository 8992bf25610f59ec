from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Uuid, text
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
    # a planner holds the campaign's next plan until then: one plan per cycle or hour, whatever
    # the number of processes
    next_plan_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MttTargetCount(Base):
    """Counts of a target's messages, kept by the ranking, the planner and the senders (so that
    none of them counts the messages already sent): `queued` the letters to send, `planned`
    those given a send time or settled (the drip's "already sent" side of its goal), the
    others count outcomes."""

    __tablename__ = "mtt_target_counts"

    target_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ID, index=True)
    # letters ranked first (dupe_rank 0) of real actions: what the target is to receive
    queued: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    planned: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    sent: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    failed: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    cancelled: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    undeliverable: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    in_doubt: Mapped[int] = mapped_column(default=0, server_default=text("0"))
