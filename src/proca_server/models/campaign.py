from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import (
    ID,
    Base,
    CIText,
    IntEnum,
    JSONMap,
    StringArray,
    TimestampMixin,
)
from proca_server.models.enums import CampaignStatus, ContactSchema


class Campaign(TimestampMixin, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        Index(None, "name", unique=True),
        Index(None, "org_id", "external_id", unique=True),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(CIText())
    external_id: Mapped[int | None] = mapped_column()
    title: Mapped[str] = mapped_column(String(255))
    force_delivery: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    public_actions: Mapped[list[str]] = mapped_column(StringArray(), default=list)
    transient_actions: Mapped[list[str]] = mapped_column(StringArray(), default=list)
    contact_schema: Mapped[ContactSchema] = mapped_column(
        IntEnum(ContactSchema), default=ContactSchema.BASIC, server_default=text("0")
    )
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
    status: Mapped[CampaignStatus] = mapped_column(
        IntEnum(CampaignStatus), default=CampaignStatus.LIVE, server_default=text("1")
    )
    supporter_confirm: Mapped[bool | None] = mapped_column(Boolean)
    supporter_confirm_template: Mapped[str | None] = mapped_column(String(255))
    action_confirm: Mapped[bool | None] = mapped_column(Boolean)
    start_date: Mapped[date | None] = mapped_column(Date, index=True)
    end_date: Mapped[date | None] = mapped_column(Date, index=True)
    org_id: Mapped[int | None] = mapped_column(
        ID, ForeignKey("orgs.id", ondelete="SET NULL"), index=True
    )
