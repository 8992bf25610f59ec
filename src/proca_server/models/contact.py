from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, text
from sqlalchemy.orm import Mapped, mapped_column

from proca_server.models.base import ID, Base, StringArray, TimestampMixin


class Contact(TimestampMixin, Base):
    """One receiving org's copy of a supporter's personal data (JSON or ciphertext)."""

    __tablename__ = "contacts"
    __table_args__ = (Index(None, "supporter_id", "org_id"), Index(None, "org_id"))

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ID, ForeignKey("supporters.id", ondelete="CASCADE"))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)  # None once PII is removed
    crypto_nonce: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_key_id: Mapped[int | None] = mapped_column(ID, ForeignKey("public_keys.id"))
    sign_key_id: Mapped[int | None] = mapped_column(ID, ForeignKey("public_keys.id"))
    # None: the supporter was not asked
    communication_consent: Mapped[bool | None] = mapped_column(
        Boolean, server_default=text("false")
    )
    communication_scopes: Mapped[list[str]] = mapped_column(StringArray(), default=list)
    delivery_consent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    org_id: Mapped[int | None] = mapped_column(ID, ForeignKey("orgs.id", ondelete="SET NULL"))
