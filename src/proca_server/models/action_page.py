from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, CIText, JSONMap, TimestampMixin


class ActionPage(TimestampMixin, Base):
    __tablename__ = "action_pages"
    __table_args__ = (Index(None, "name", unique=True),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(CIText())
    locale: Mapped[str] = mapped_column(String(255))
    delivery: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
    live: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    campaign_id: Mapped[int] = mapped_column(
        ID, ForeignKey("campaigns.id", ondelete="RESTRICT"), index=True
    )
    org_id: Mapped[int] = mapped_column(ID, ForeignKey("orgs.id", ondelete="RESTRICT"), index=True)
    extra_supporters: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    thank_you_template: Mapped[str | None] = mapped_column(String(255))
    supporter_confirm_template: Mapped[str | None] = mapped_column(String(255))
    duplicate_template: Mapped[str | None] = mapped_column(String(255))
