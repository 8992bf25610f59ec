from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base


class EmailTemplate(Base):
    """A local mustache template (or a pointer to a provider template by external_id)."""

    __tablename__ = "email_templates"
    __table_args__ = (Index(None, "org_id", "name", "locale", unique=True),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(255))
    # Provider templates (external_id set) store empty subject and html.
    subject: Mapped[str] = mapped_column(String(255))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255))
    org_id: Mapped[int] = mapped_column(ID, ForeignKey("orgs.id", ondelete="CASCADE"))
