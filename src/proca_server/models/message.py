from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, SmallInteger, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.kit.time import utcnow
from proca_server.models.base import ID, Base, IntEnum, StringArray, TimestampMixin, UTCDateTime

# a letter to send that has no send time yet; written out (no bound values) so that both
# databases see the query's condition is the partial index's
WAITING = "send_status = 0 AND scheduled_at IS NULL AND dupe_rank = 0"


class SendStatus(enum.IntEnum):
    """Where a mail-to-target message stands (`messages.send_status`)."""

    PENDING = 0  # waiting: not planned yet, planned for `scheduled_at`, or claimed
    SENT = 1  # the provider accepted it
    FAILED = 2  # refused for good, or retried `MTT_MAX_ATTEMPTS` times
    CANCELLED = 3  # empty subject or body: nothing to send
    UNDELIVERABLE = 4  # its target has no usable address (bounced, inactive, none)
    IN_DOUBT = 5  # a sender stopped during the provider call: maybe sent, never sent again
    DUPLICATE = 6  # dupe_rank > 0: the same person already wrote to this target


class MessageContent(TimestampMixin, Base):
    """Subject and body of a mail-to-target action, shared by its messages."""

    __tablename__ = "message_contents"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    body: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))


class Message(Base):
    """One mail-to-target email from an action to a target."""

    __tablename__ = "messages"
    __table_args__ = (
        Index(None, "target_id", "dupe_rank", "sent", "id"),
        # the planners' way in: per target, in id order, the letters to send not planned yet
        # (only they are in it, so its size follows what waits, never what was sent)
        Index(
            "messages_waiting_index",
            "target_id",
            "id",
            postgresql_where=text(WAITING),
            sqlite_where=text(WAITING),
        ),
        # the senders': what is due (letters not planned yet are left out, so that the
        # planners' query, which asks for those, never takes this one)
        Index(
            "messages_due_index",
            "send_status",
            "scheduled_at",
            postgresql_where=text("scheduled_at IS NOT NULL"),
            sqlite_where=text("scheduled_at IS NOT NULL"),
        ),
        # the ranking's: only messages not ranked yet
        Index(
            "messages_unranked_index",
            "id",
            postgresql_where=text("dupe_rank IS NULL"),
            sqlite_where=text("dupe_rank IS NULL"),
        ),
    )

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
    # the sending side (mtt/): see mtt/sender.py for the life of a message
    send_status: Mapped[SendStatus] = mapped_column(
        IntEnum(SendStatus, SmallInteger()), default=SendStatus.PENDING, server_default=text("0")
    )
    # when a planner gave it a send time (null: not planned yet)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # a sender holds it until then (null: nobody)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # why it failed, was cancelled or is undeliverable (never personal data)
    error: Mapped[str | None] = mapped_column(String(255))
