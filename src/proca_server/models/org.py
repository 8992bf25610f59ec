from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, CIText, IntEnum, JSONMap, TimestampMixin
from proca_server.models.enums import ContactSchema


def _backend_fk() -> Mapped[int | None]:
    # use_alter: orgs and services reference each other.
    return mapped_column(
        ID, ForeignKey("services.id", ondelete="SET NULL", use_alter=True), nullable=True
    )


class Org(TimestampMixin, Base):
    __tablename__ = "orgs"
    __table_args__ = (Index(None, "name", unique=True),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(CIText())
    title: Mapped[str] = mapped_column(String(255))
    contact_schema: Mapped[ContactSchema] = mapped_column(
        IntEnum(ContactSchema), default=ContactSchema.BASIC, server_default=text("0")
    )
    action_schema_version: Mapped[int] = mapped_column(
        SmallInteger, default=2, server_default=text("2")
    )
    high_security: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    doi_thank_you: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    email_backend_id: Mapped[int | None] = _backend_fk()
    transactional_email_backend_id: Mapped[int | None] = _backend_fk()
    storage_backend_id: Mapped[int | None] = _backend_fk()
    event_backend_id: Mapped[int | None] = _backend_fk()
    detail_backend_id: Mapped[int | None] = _backend_fk()
    push_backend_id: Mapped[int | None] = _backend_fk()
    email_from: Mapped[str | None] = mapped_column(String(255))
    reply_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    sender_rewrite: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    supporter_confirm: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    supporter_confirm_template: Mapped[str | None] = mapped_column(String(255))
    custom_supporter_confirm: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    custom_action_confirm: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    custom_action_deliver: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    custom_event_deliver: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONMap(), default=dict, server_default=text("'{}'")
    )
