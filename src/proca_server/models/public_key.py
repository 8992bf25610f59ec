from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, TimestampMixin


class PublicKey(TimestampMixin, Base):
    """An org's NaCl key; `private` is kept only for the instance org's sign key."""

    __tablename__ = "public_keys"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    public: Mapped[bytes] = mapped_column(LargeBinary)
    private: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    expired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    org_id: Mapped[int] = mapped_column(ID, ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
