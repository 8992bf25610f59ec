from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, TimestampMixin
from proca_server.service.passwords import SecretString


class Service(TimestampMixin, Base):
    """An org's external API (values of `name` are models.enums.ExternalService)."""

    __tablename__ = "services"
    __table_args__ = (Index(None, "org_id", "name"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    user: Mapped[str] = mapped_column(String(255), default="", server_default=text("''"))
    # encrypted at rest, read in clear (service/passwords.py)
    password: Mapped[str] = mapped_column(SecretString(), default="", server_default=text("''"))
    path: Mapped[str | None] = mapped_column(String(255))
    sending_from: Mapped[str | None] = mapped_column(String(255))
    transactional_email_budget: Mapped[int | None] = mapped_column()
    org_id: Mapped[int] = mapped_column(ID, ForeignKey("orgs.id", ondelete="CASCADE"))
