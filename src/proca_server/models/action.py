from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, IntEnum, JSONMap, TimestampMixin
from proca_server.models.enums import ActionProcessingStatus

# Stored size limit of `fields`, enforced by a check constraint as in the original.
MAX_FIELDS_BYTES = 5120


class Action(TimestampMixin, Base):
    __tablename__ = "actions"
    __table_args__ = (
        Index(None, "processing_status", "id"),
        Index(None, "campaign_id", "action_type"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    ref: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    supporter_id: Mapped[int | None] = mapped_column(
        ID, ForeignKey("supporters.id", ondelete="CASCADE"), index=True
    )
    with_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    action_type: Mapped[str] = mapped_column(String(255))
    fields: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ID, ForeignKey("campaigns.id", ondelete="SET NULL")
    )
    action_page_id: Mapped[int] = mapped_column(
        ID, ForeignKey("action_pages.id", ondelete="RESTRICT"), index=True
    )
    source_id: Mapped[int | None] = mapped_column(ID, ForeignKey("sources.id", ondelete="SET NULL"))
    processing_status: Mapped[ActionProcessingStatus] = mapped_column(
        IntEnum(ActionProcessingStatus),
        default=ActionProcessingStatus.NEW,
        server_default=text("0"),
    )
    testing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
